-- The offered statistics windows (the last 24 hours and 7 days) summarised
-- ahead, so a read of everyone's week fetches one row per webhook and one per
-- owner and event instead of thousands of hourly and daily summaries
-- (docs/ARCHITECTURE.md, "Statistics rollup", windows). Derived from the
-- other levels by the rollup job whenever `rolled_until` moves; a read uses
-- a window only if its row in `stats_windows` exists in the read's snapshot
-- with the current `stats_generation`, and falls back to the other levels
-- otherwise. The histogram format is `webhook_stats_hourly`'s.

-- Moved by whatever changes the summaries of hours already rolled up
-- without moving the rolled range: deleting webhooks (their share is in
-- their owners' summaries). What was summarised under an older value is
-- not read, and the next pass summarises it again. A counter rather than
-- deleting the summaries' rows: the deleting transaction then takes no
-- lock a rollup pass holds (the pass's inserts wait on the deleted
-- webhook's row; the other way round would be a deadlock).
CREATE TABLE stats_generation (
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    n          BIGINT NOT NULL DEFAULT 0
);
INSERT INTO stats_generation DEFAULT VALUES;

-- One row per window summarised: the rolled-up hours [until - hours, until),
-- under `stats_generation` `generation`. Retention dropping a day a window
-- covers deletes the window's row (under the rollup's row lock).
CREATE TABLE stats_windows (
    hours       INTEGER NOT NULL CHECK (hours > 0),
    until       TIMESTAMPTZ NOT NULL,
    generation  BIGINT NOT NULL,
    PRIMARY KEY (hours, until)
);

-- Per webhook: the per-webhook summaries.
CREATE TABLE webhook_stats_window (
    hours       INTEGER NOT NULL,
    until       TIMESTAMPTZ NOT NULL,
    webhook_id  BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    attempts    INTEGER NOT NULL,
    successes   INTEGER NOT NULL,
    buckets     SMALLINT[] NOT NULL,
    counts      INTEGER[] NOT NULL,
    PRIMARY KEY (hours, until, webhook_id)
);

-- Per owner and event: the total and the per-event summaries.
CREATE TABLE user_stats_window (
    hours       INTEGER NOT NULL,
    until       TIMESTAMPTZ NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    successes   INTEGER NOT NULL,
    buckets     SMALLINT[] NOT NULL,
    counts      INTEGER[] NOT NULL,
    PRIMARY KEY (hours, until, user_id, event)
);

-- The hourly series of a window read with its summaries: counts only, from
-- the index (the rows' histograms are most of their size).
DROP INDEX user_stats_hourly_hour;
CREATE INDEX user_stats_hourly_hour ON user_stats_hourly (hour)
    INCLUDE (user_id, attempts, successes);

-- A deleted webhook's share leaves the owner's hourly summaries (0023's
-- trigger) and so every window summarised before.
CREATE FUNCTION stats_generation_next() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE stats_generation SET n = n + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER webhooks_next_stats_generation AFTER DELETE ON webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION stats_generation_next();
