-- The headers of each attempt, sent and received, for the attempt's page and
-- the API's log detail: JSON arrays of [name, value] pairs, bounded by the
-- worker (50 headers, 500 characters a value) with credentials masked.
-- Nullable without a default, so adding them rewrites no partition; rows
-- logged before have none.
ALTER TABLE webhook_logs ADD COLUMN request_headers jsonb, ADD COLUMN response_headers jsonb;
