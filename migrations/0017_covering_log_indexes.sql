-- Reads that stay fast at ten million attempts (docs/PERFORMANCE.md, "10
-- million log rows").
--
-- Statistics (`GET /stats`, the UI's statistics page) and the UI's webhook
-- list count and rank a window of attempts by hour, webhook, event, outcome
-- and response time. An attempt's row is about a kilobyte (the payload), so
-- a heap page holds a handful and a week of one user's attempts was tens of
-- thousands of page reads. With those columns in the indexes the same
-- answers come from index-only scans, a few dozen bytes per attempt.
-- The keys are unchanged, so every plan that used the old indexes uses
-- these; the old ones go, so an insert still maintains three indexes.
--
-- On a table partitioned by day these are built on the parent and so on
-- every partition, present and future. A plain CREATE INDEX holds writes to
-- `webhook_logs` for the build (about a minute per ten million rows here):
-- run this migration in a quiet moment on a large table.
CREATE INDEX webhook_logs_webhook_covering ON webhook_logs (webhook_id, created_at DESC)
    INCLUDE (event, is_success, status_code, response_time_ms);
DROP INDEX IF EXISTS webhook_logs_webhook;
CREATE INDEX webhook_logs_created_covering ON webhook_logs (created_at)
    INCLUDE (webhook_id, event, is_success, status_code, response_time_ms);
DROP INDEX IF EXISTS webhook_logs_created;

-- A webhook's failed attempts: `GET /webhooks/{id}/logs?success=false`
-- walks this; on the (webhook_id, created_at) index a healthy webhook's
-- few failures are found by reading every attempt it ever made.
CREATE INDEX webhook_logs_webhook_failures ON webhook_logs (webhook_id, created_at DESC)
    WHERE NOT is_success;

-- A webhook's deliveries that have not succeeded (failed, pending, and the
-- states a batch or a FIFO queue holds them in): `GET
-- /webhooks/{id}/deliveries?status=failed|pending` walks this instead of
-- every delivery of the webhook, and it is small (a few percent of rows).
CREATE INDEX deliveries_webhook_unsucceeded ON deliveries (webhook_id, created_at DESC)
    WHERE status <> 'succeeded';
