-- Statistics that stay fast at ten million attempts (docs/ARCHITECTURE.md,
-- "Statistics rollup"): every complete hour of `webhook_logs` summarised
-- once, per webhook and event, so a statistics read scans a few thousand
-- summaries and only the hour or two not rolled up yet of raw attempts.
--
-- `buckets` and `counts` are a sparse response-time histogram: `counts[i]`
-- attempts that got an HTTP response took a time in bucket `buckets[i]`
-- (`webhookd_store::response_histogram`; the bucket boundaries are part of
-- this format). Attempts without a response count in `attempts` only.
CREATE TABLE webhook_stats_hourly (
    webhook_id  BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    hour        TIMESTAMPTZ NOT NULL,
    event       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    successes   INTEGER NOT NULL,
    buckets     SMALLINT[] NOT NULL,
    counts      INTEGER[] NOT NULL,
    PRIMARY KEY (webhook_id, hour, event)
);
-- Everyone's statistics and retention read by hour.
CREATE INDEX webhook_stats_hourly_hour ON webhook_stats_hourly (hour);

-- Which hours are rolled up: [rolled_from, rolled_until), NULL before the
-- first pass. One row; the rollup job locks it (FOR UPDATE) and moves a
-- bound in the same transaction that inserts the hours' rows, so an hour is
-- rolled up exactly once even if two passes race or one is interrupted.
CREATE TABLE webhook_stats_rollup (
    singleton     BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    rolled_from   TIMESTAMPTZ,
    rolled_until  TIMESTAMPTZ,
    CHECK (rolled_from <= rolled_until)
);
INSERT INTO webhook_stats_rollup DEFAULT VALUES;
