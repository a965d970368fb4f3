-- Coarser statistics summaries, so a week of everyone's statistics reads a
-- few thousand rows at ten million attempts (docs/ARCHITECTURE.md,
-- "Statistics rollup"). Both are derived from `webhook_stats_hourly` by the
-- rollup, in the transaction that rolls the hours up, so the levels never
-- disagree; the histogram format is the same.
--
-- Per webhook and UTC day: the per-webhook summaries of a window's whole
-- days and of its last, partial one. A row exists for the days rolled up
-- from their start, and holds the day's hours rolled up so far (the newest
-- day's row is rewritten as its hours are rolled up).
CREATE TABLE webhook_stats_daily (
    webhook_id  BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    day         TIMESTAMPTZ NOT NULL,
    attempts    INTEGER NOT NULL,
    successes   INTEGER NOT NULL,
    buckets     SMALLINT[] NOT NULL,
    counts      INTEGER[] NOT NULL,
    PRIMARY KEY (webhook_id, day)
);
CREATE INDEX webhook_stats_daily_day ON webhook_stats_daily (day);

-- Per owner, hour and event, over all the owner's webhooks: the hourly
-- series, the total and the per-event summaries (everyone's: summed over
-- owners). A webhook's owner never changes; a deleted webhook's share is
-- taken out by `user_stats_forget_webhook` below.
CREATE TABLE user_stats_hourly (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hour        TIMESTAMPTZ NOT NULL,
    event       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    successes   INTEGER NOT NULL,
    buckets     SMALLINT[] NOT NULL,
    counts      INTEGER[] NOT NULL,
    PRIMARY KEY (user_id, hour, event)
);
CREATE INDEX user_stats_hourly_hour ON user_stats_hourly (hour);

-- Before a webhook goes (its hourly summaries go with it by cascade), its
-- owner's summaries of the hours it had attempts in are rebuilt from the
-- owner's other webhooks: rebuilt rather than subtracted, so they cannot
-- drift from the hourly level.
CREATE FUNCTION user_stats_forget_webhook() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_stats_hourly
    WHERE user_id = OLD.user_id
      AND hour IN (SELECT hour FROM webhook_stats_hourly WHERE webhook_id = OLD.id);
    INSERT INTO user_stats_hourly
        (user_id, hour, event, attempts, successes, buckets, counts)
    WITH src AS (
        SELECT r.hour, r.event, r.attempts, r.successes, r.buckets, r.counts
        FROM webhook_stats_hourly r
        JOIN webhooks w ON w.id = r.webhook_id
        WHERE w.user_id = OLD.user_id AND r.webhook_id <> OLD.id
          AND r.hour IN (SELECT hour FROM webhook_stats_hourly WHERE webhook_id = OLD.id)
    ), totals AS (
        SELECT hour, event, sum(attempts)::int4 AS attempts, sum(successes)::int4 AS successes
        FROM src GROUP BY hour, event
    ), cells AS (
        SELECT hour, event, u.bucket, sum(u.n)::int4 AS n
        FROM src, unnest(src.buckets, src.counts) AS u(bucket, n)
        GROUP BY hour, event, u.bucket
    ), histograms AS (
        SELECT hour, event, array_agg(bucket ORDER BY bucket) AS buckets,
               array_agg(n ORDER BY bucket) AS counts
        FROM cells GROUP BY hour, event
    )
    SELECT OLD.user_id, t.hour, t.event, t.attempts, t.successes,
           COALESCE(h.buckets, '{}'), COALESCE(h.counts, '{}')
    FROM totals t LEFT JOIN histograms h USING (hour, event);
    RETURN OLD;
END
$$;
CREATE TRIGGER webhooks_forget_user_stats BEFORE DELETE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION user_stats_forget_webhook();

-- The hours rolled up before this migration.
INSERT INTO user_stats_hourly (user_id, hour, event, attempts, successes, buckets, counts)
WITH src AS (
    SELECT w.user_id, r.hour, r.event, r.attempts, r.successes, r.buckets, r.counts
    FROM webhook_stats_hourly r JOIN webhooks w ON w.id = r.webhook_id
), totals AS (
    SELECT user_id, hour, event, sum(attempts)::int4 AS attempts,
           sum(successes)::int4 AS successes
    FROM src GROUP BY user_id, hour, event
), cells AS (
    SELECT user_id, hour, event, u.bucket, sum(u.n)::int4 AS n
    FROM src, unnest(src.buckets, src.counts) AS u(bucket, n)
    GROUP BY user_id, hour, event, u.bucket
), histograms AS (
    SELECT user_id, hour, event, array_agg(bucket ORDER BY bucket) AS buckets,
           array_agg(n ORDER BY bucket) AS counts
    FROM cells GROUP BY user_id, hour, event
)
SELECT t.user_id, t.hour, t.event, t.attempts, t.successes,
       COALESCE(h.buckets, '{}'), COALESCE(h.counts, '{}')
FROM totals t LEFT JOIN histograms h USING (user_id, hour, event);

INSERT INTO webhook_stats_daily (webhook_id, day, attempts, successes, buckets, counts)
WITH src AS (
    SELECT r.webhook_id, date_trunc('day', r.hour, 'UTC') AS day,
           r.attempts, r.successes, r.buckets, r.counts
    FROM webhook_stats_hourly r, webhook_stats_rollup g
    WHERE r.hour >= date_trunc('day', g.rolled_from + interval '1 day' - interval '1 microsecond', 'UTC')
      AND r.hour < g.rolled_until
), totals AS (
    SELECT webhook_id, day, sum(attempts)::int4 AS attempts, sum(successes)::int4 AS successes
    FROM src GROUP BY webhook_id, day
), cells AS (
    SELECT webhook_id, day, u.bucket, sum(u.n)::int4 AS n
    FROM src, unnest(src.buckets, src.counts) AS u(bucket, n)
    GROUP BY webhook_id, day, u.bucket
), histograms AS (
    SELECT webhook_id, day, array_agg(bucket ORDER BY bucket) AS buckets,
           array_agg(n ORDER BY bucket) AS counts
    FROM cells GROUP BY webhook_id, day
)
SELECT t.webhook_id, t.day, t.attempts, t.successes,
       COALESCE(h.buckets, '{}'), COALESCE(h.counts, '{}')
FROM totals t LEFT JOIN histograms h USING (webhook_id, day);
