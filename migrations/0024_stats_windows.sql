-- The offered statistics windows (the last 24 hours and 7 days) summarised
-- ahead, so a read of everyone's week fetches one row per webhook and one per
-- owner and event instead of thousands of hourly and daily summaries
-- (docs/ARCHITECTURE.md, "Statistics rollup", windows). Derived from the
-- other levels by the rollup job whenever `rolled_until` moves; a read uses
-- a window only if its row in `stats_windows` exists in the read's snapshot,
-- and falls back to the other levels otherwise. The histogram format is
-- `webhook_stats_hourly`'s.
--
-- One row per window summarised: the rolled-up hours [until - hours, until).
-- Whatever changes summaries inside a window without moving the rolled range
-- (a webhook deleted, retention) deletes the window's row here, and the next
-- pass summarises it again.
CREATE TABLE stats_windows (
    hours  INTEGER NOT NULL CHECK (hours > 0),
    until  TIMESTAMPTZ NOT NULL,
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
CREATE FUNCTION stats_windows_forget() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM stats_windows;
    RETURN NULL;
END
$$;
CREATE TRIGGER webhooks_forget_stats_windows AFTER DELETE ON webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION stats_windows_forget();
