-- FIFO delivery per webhook (SPEC §13; docs/ARCHITECTURE.md, "FIFO
-- webhooks"). A webhook with `ordering = 'fifo'` has one delivery let go at
-- a time, its head: `pending` (in flight, or waiting for its retry) until it
-- succeeds or fails for good. The rest wait `queued`:
--
--   queued   written by the fan-out (or formed as a batch) for a FIFO
--            webhook; never claimed on its own (it is outside
--            `deliveries_due`)
--
-- The sequencer lets the oldest queued row go once the head has ended, and
-- records it in `webhooks.fifo_head`: one primary-key lookup tells whether
-- the head is still pending, and the update of that column is the
-- compare-and-set that keeps two sequencers from letting two rows go.
-- Order: `created_at` (the fan-out's write), then `collect_order` (the
-- event's place among the events consumed with it), as for batches.
ALTER TABLE webhooks
    ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none'
        CHECK (ordering IN ('none', 'fifo')),
    ADD COLUMN fifo_head UUID;

ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_status_check,
    ADD CONSTRAINT deliveries_status_check
        CHECK (status IN ('pending', 'succeeded', 'failed', 'collecting', 'batched', 'queued'));

-- The sequencer's scan: which webhooks have a queue, and each one's oldest.
CREATE INDEX deliveries_queued ON deliveries (webhook_id, created_at, collect_order)
    WHERE status = 'queued';
