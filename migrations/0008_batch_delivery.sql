-- Batch delivery (docs/ARCHITECTURE.md, "Batches"). A webhook with
-- `batch_max_events` set gets its events as one request per batch.
--
-- A batch is itself a row of `deliveries` (its id is the batch id), with an
-- `events` row of its own holding the batch body, so claiming, leases,
-- retries, hand-back, shutdown and `webhook_logs` treat it exactly like any
-- delivery. The events it carries keep their own delivery rows:
--
--   collecting  written by the fan-out, waiting to be put in a batch; never
--               claimed on its own (it is outside `deliveries_due`)
--   batched     in the batch `batch_id`, whose row holds the state
ALTER TABLE webhooks
    ADD COLUMN batch_max_events INTEGER
        CHECK (batch_max_events BETWEEN 2 AND 1000),
    ADD COLUMN batch_max_wait_ms INTEGER NOT NULL DEFAULT 1000
        CHECK (batch_max_wait_ms BETWEEN 0 AND 60000);

ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_status_check,
    ADD CONSTRAINT deliveries_status_check
        CHECK (status IN ('pending', 'succeeded', 'failed', 'collecting', 'batched')),
    -- On an event's row: the batch it was sent in.
    ADD COLUMN batch_id UUID,
    -- On a batch's row: how many events it carries.
    ADD COLUMN batch_size INTEGER,
    -- On a collecting row: its event's place among the events consumed with
    -- it (`created_at` orders the fan-outs), so a batch lists its events in
    -- consumption order.
    ADD COLUMN collect_order INTEGER;

-- The batcher's one scan: what each webhook has collected, oldest first.
CREATE INDEX deliveries_collecting ON deliveries (webhook_id, created_at, collect_order)
    WHERE status = 'collecting';
-- A batch's events, for the API's `?batch_id=` and the logs page.
CREATE INDEX deliveries_batch ON deliveries (batch_id) WHERE batch_id IS NOT NULL;

-- A batch body is fixed by §11; a template could not shape it.
ALTER TABLE webhooks ADD CONSTRAINT webhooks_batch_without_template
    CHECK (batch_max_events IS NULL OR template IS NULL);
