-- Since when every attempt to a webhook has failed; NULL after a success.
-- A webhook failing for longer than `delivery.disable_after_failing_secs` is
-- switched off. The clock starts again when the webhook is edited or
-- re-enabled (`updated_at`), so a user who fixes a URL gets a full period.
-- Only the recorder writes it, and only when it changes, so healthy webhooks
-- cost no extra writes.
ALTER TABLE webhooks ADD COLUMN failing_since TIMESTAMPTZ;
