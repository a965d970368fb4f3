-- `webhook_logs` range-partitioned by UTC day (SPEC §16), so retention drops
-- a whole day instead of deleting tens of millions of rows one by one.
--
-- * No DEFAULT partition: it would block DETACH ... CONCURRENTLY, and a row
--   with nowhere to go is better as an error the writer repairs (it creates
--   the day's partition and retries) than as rows retention cannot drop.
-- * The primary key includes the partition key, as Postgres requires; ids
--   still come from the same sequence, so they stay unique in practice.
-- * The existing table is not copied: it becomes one partition,
--   `webhook_logs_legacy`, covering everything up to the end of the day of
--   its newest row (at least today). Attaching costs one read of the table
--   (to check the bound) and one index build (the new key), where copying
--   would rewrite every row and every index under the migration's lock.
--   It is dropped by retention, like any partition, once its upper bound is
--   older than `retention.logs_days`. An empty table is simply dropped.
-- * New partitions are created as plain tables and then attached: ATTACH
--   takes SHARE UPDATE EXCLUSIVE on `webhook_logs`, which does not block
--   inserts or reads, where CREATE TABLE ... PARTITION OF would take ACCESS
--   EXCLUSIVE on it.

ALTER TABLE webhook_logs RENAME TO webhook_logs_legacy;
ALTER INDEX webhook_logs_pkey RENAME TO webhook_logs_legacy_pkey;
ALTER INDEX webhook_logs_webhook RENAME TO webhook_logs_legacy_webhook;
ALTER INDEX webhook_logs_delivery RENAME TO webhook_logs_legacy_delivery;
ALTER INDEX webhook_logs_created RENAME TO webhook_logs_legacy_created;

CREATE TABLE webhook_logs (
    id                BIGINT NOT NULL DEFAULT nextval('webhook_logs_id_seq'),
    webhook_id        BIGINT NOT NULL,
    delivery_id       UUID NOT NULL,
    event             TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    status_code       INTEGER,
    response_time_ms  INTEGER NOT NULL,
    is_success        BOOLEAN NOT NULL,
    payload           TEXT NOT NULL,
    response          TEXT,
    error_message     TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT webhook_logs_pkey PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
-- The sequence follows the new table: dropping the legacy partition must not
-- take it along.
ALTER SEQUENCE webhook_logs_id_seq OWNED BY webhook_logs.id;
-- The same indexes, same names and purposes: a webhook's logs newest first,
-- a delivery's attempts, time ranges (stats, the attempt feed). Attaching a
-- partition that already has a matching index adopts it instead of building.
CREATE INDEX webhook_logs_webhook ON webhook_logs (webhook_id, created_at DESC);
CREATE INDEX webhook_logs_delivery ON webhook_logs (delivery_id);
CREATE INDEX webhook_logs_created ON webhook_logs (created_at);

-- Every partition of `webhook_logs` with its bounds (MINVALUE and MAXVALUE as
-- -infinity and infinity) and whether a DETACH ... CONCURRENTLY of it was
-- interrupted (it is then finished with DETACH ... FINALIZE).
CREATE FUNCTION webhook_logs_partitions()
RETURNS TABLE (partition regclass, lower_bound timestamptz, upper_bound timestamptz,
               detach_pending boolean)
LANGUAGE sql STABLE AS $$
    SELECT i.inhrelid::regclass,
           CASE WHEN b[1] = 'MINVALUE' THEN '-infinity'::timestamptz
                ELSE btrim(b[1], '''')::timestamptz END,
           CASE WHEN b[2] = 'MAXVALUE' THEN 'infinity'::timestamptz
                ELSE btrim(b[2], '''')::timestamptz END,
           i.inhdetachpending
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                    'FROM \((.*)\) TO \((.*)\)') AS b
    WHERE i.inhparent = 'webhook_logs'::regclass
$$;

-- Creates the missing daily partitions `webhook_logs_pYYYYMMDD` of the UTC
-- days `first_day` to `last_day` (both included) and returns how many it
-- created. A day already covered, by its own partition or by the legacy one,
-- is skipped. Callers at once are serialised by a transaction-scoped
-- advisory lock (safe behind a transaction-mode pooler), so two replicas
-- never race to create the same table.
CREATE FUNCTION webhook_logs_ensure_partitions(first_day date, last_day date)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    lo timestamptz;
    hi timestamptz;
    name text;
    created integer := 0;
BEGIN
    IF first_day IS NULL OR last_day IS NULL THEN
        RAISE EXCEPTION 'webhook_logs_ensure_partitions: first_day and last_day are required';
    END IF;
    -- 0x7765_6268_6f6f_6b02 (webhookd_store::partitions::LOCK_KEY).
    PERFORM pg_advisory_xact_lock(8603390863846894338);
    FOR d IN SELECT generate_series(first_day, last_day, interval '1 day')::date LOOP
        lo := (to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00')::timestamptz;
        hi := (to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00')::timestamptz;
        CONTINUE WHEN EXISTS (SELECT 1 FROM webhook_logs_partitions() p
                              WHERE p.lower_bound < hi AND p.upper_bound > lo);
        name := 'webhook_logs_p' || to_char(d, 'YYYYMMDD');
        EXECUTE format('CREATE TABLE %I (LIKE webhook_logs INCLUDING DEFAULTS)', name);
        EXECUTE format('ALTER TABLE webhook_logs ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       name, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

DO $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    newest timestamptz;
    upper_day date;
BEGIN
    SELECT max(created_at) INTO newest FROM webhook_logs_legacy;
    IF newest IS NULL THEN
        DROP TABLE webhook_logs_legacy;
    ELSE
        upper_day := greatest((newest AT TIME ZONE 'UTC')::date + 1, today + 1);
        -- The new key (id, created_at) is built on attach; the old one
        -- (id alone) would only cost writes until the partition is dropped.
        ALTER TABLE webhook_logs_legacy DROP CONSTRAINT webhook_logs_legacy_pkey;
        EXECUTE format('ALTER TABLE webhook_logs ATTACH PARTITION webhook_logs_legacy
                        FOR VALUES FROM (MINVALUE) TO (%L)',
                       to_char(upper_day, 'YYYY-MM-DD') || ' 00:00:00+00');
    END IF;
    -- A week back as well as ahead: rows stamped a little in the past
    -- (another replica's clock, an import, seeded data) have a home; the
    -- empty partitions cost nothing and retention drops them in time.
    PERFORM webhook_logs_ensure_partitions(today - 7, today + 7);
END
$$;
