-- The complete minutes after the newest hour rolled up, summarised at every
-- rollup pass (each minute), so a statistics read scans only the last few
-- minutes of `webhook_logs` instead of up to an hour and five minutes of it
-- (docs/ARCHITECTURE.md, "Statistics rollup", recent minutes). Replaced
-- whole at each pass; a read uses them only if `stats_recent` names the
-- rolled range's end it sees as their start and the current
-- `stats_generation` (0024: deleting a webhook moves it). The histogram
-- format is `webhook_stats_hourly`'s.
CREATE TABLE stats_recent (
    singleton     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    -- [rolled_until, until): rolled_until as it was when summarised.
    rolled_until  TIMESTAMPTZ NOT NULL,
    until         TIMESTAMPTZ NOT NULL,
    generation    BIGINT NOT NULL,
    CHECK (rolled_until < until)
);

-- Per webhook: the per-webhook summaries.
CREATE TABLE webhook_stats_recent (
    webhook_id  BIGINT PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    attempts    INTEGER NOT NULL,
    successes   INTEGER NOT NULL,
    buckets     SMALLINT[] NOT NULL,
    counts      INTEGER[] NOT NULL
);

-- Per owner, hour and event: the hourly series, the total and the events.
CREATE TABLE user_stats_recent (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hour        TIMESTAMPTZ NOT NULL,
    event       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    successes   INTEGER NOT NULL,
    buckets     SMALLINT[] NOT NULL,
    counts      INTEGER[] NOT NULL,
    PRIMARY KEY (user_id, hour, event)
);
