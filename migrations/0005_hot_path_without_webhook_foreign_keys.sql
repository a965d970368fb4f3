-- Fan-out writes one `deliveries` row and every attempt one `webhook_logs`
-- row. Their foreign keys to `webhooks` were checked per row: a lookup plus a
-- KEY SHARE lock on the webhook's row, which many concurrent batches turn
-- into multixacts. That was about a sixth of Postgres's CPU per delivery in
-- the drain benchmark (docs/PERFORMANCE.md). The rows' webhooks are read in
-- the same statement that writes them, so the check adds nothing there:
--
-- * fan-out locks each matching webhook once per batch (FOR KEY SHARE), so a
--   concurrent DELETE of the webhook either waits for the batch and then
--   removes its rows, or wins and the batch skips the webhook;
-- * the cascade on delete is kept by the trigger below.
--
-- The key from `deliveries` to `events` stays: each event is inserted in the
-- fan-out statement itself, and retention relies on its cascade.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_webhook_id_fkey;
ALTER TABLE webhook_logs DROP CONSTRAINT webhook_logs_webhook_id_fkey;

CREATE FUNCTION webhooks_delete_cascade() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries WHERE webhook_id IN (SELECT id FROM deleted_webhooks);
    DELETE FROM webhook_logs WHERE webhook_id IN (SELECT id FROM deleted_webhooks);
    RETURN NULL;
END
$$;

CREATE TRIGGER webhooks_delete_cascade
    AFTER DELETE ON webhooks
    REFERENCING OLD TABLE AS deleted_webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION webhooks_delete_cascade();
