-- Routing (SPEC §13): a payload filter and a retry schedule per webhook.
--
-- `filter` is kept as given (validated by the API with the same parser the
-- fan-out compiles it with); the fan-out compiles it once per webhook
-- version (`updated_at`) and evaluates it in the worker, so an event that
-- does not match makes no delivery row at all.
ALTER TABLE webhooks
    ADD COLUMN filter JSONB CHECK (filter IS NULL OR jsonb_typeof(filter) = 'object'),
    -- Delays in seconds: attempt n+1 waits the n-th; NULL is the global policy.
    ADD COLUMN retry_schedule INTEGER[]
        CHECK (retry_schedule IS NULL OR (
            cardinality(retry_schedule) BETWEEN 1 AND 30
            AND array_position(retry_schedule, NULL) IS NULL
            AND 1 <= ALL (retry_schedule)
            AND 604800 >= ALL (retry_schedule)));
