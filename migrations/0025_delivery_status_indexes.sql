-- `GET /webhooks/{id}/deliveries?status=failed|pending` at ten million rows
-- (docs/PERFORMANCE.md, "10 million log rows"). 0017's single index of the
-- deliveries that have not succeeded served both filters, but a busy
-- webhook's few thousand failed deliveries are in it too: a `pending` page
-- (normally none) read every one of them to find nothing, and a `failed`
-- page's estimate went wrong enough to read and sort them all. One index per
-- filter instead, each holding only the states its filter can show (an
-- event in a batch shows its batch's status, so `batched` is in both);
-- a delivery is in the one of its current state, as it was in 0017's.
CREATE INDEX deliveries_webhook_failed ON deliveries (webhook_id, created_at DESC)
    WHERE status IN ('failed', 'batched');
CREATE INDEX deliveries_webhook_open ON deliveries (webhook_id, created_at DESC)
    WHERE status IN ('pending', 'collecting', 'queued', 'batched');
DROP INDEX deliveries_webhook_unsucceeded;
