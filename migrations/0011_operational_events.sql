-- Operational events (SPEC §13): `delivery.failed` when a delivery has
-- failed for good, `webhook.disabled` when a webhook is switched off by a
-- 410 or by failing too long. docs/ARCHITECTURE.md, "Operational events".
--
-- A transactional outbox: the row is written by the very statement that
-- records the failure, so it commits (or rolls back) with it whatever path
-- ended the delivery (the fan-out's first attempt, the recorder's retry,
-- the scheduler ending a delivery of an inactive webhook, a batch), and a
-- crash or a broker outage between the failure and the publish loses
-- nothing. The worker's relay (`crates/worker/src/outbox.rs`) publishes
-- each row to the events exchange as an ordinary broker message whose `id`
-- is the row's id, and deletes the row once the broker confirmed it; a
-- publish repeated after a crash carries the same id, so the fan-out's
-- unique key on (event, webhook) drops the copy.
CREATE TABLE outbox (
    id          UUID PRIMARY KEY DEFAULT webhookd_uuid_v7(),
    event       TEXT NOT NULL,
    -- The owner of the webhook the event is about.
    user_id     BIGINT NOT NULL,
    -- JSON, not JSONB: it keeps the keys in the order SPEC §13 lists them.
    data        JSON NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Whether a delivery of this event that fails for good is reported. Not
-- for the operational events themselves (a failing webhook subscribed to
-- `delivery.failed` would otherwise report its own reports, without end),
-- nor for `webhook.test` (its outcome is the answer to the test request).
-- Mirrors `webhookd_events::reports_failure`.
CREATE FUNCTION webhookd_reports_failure(event TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT event NOT IN ('webhook.test', 'webhook.disabled', 'delivery.failed')
$$;

CREATE FUNCTION outbox_delivery_failed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    event_name TEXT;
    owner BIGINT;
BEGIN
    SELECT e.event INTO event_name FROM events e WHERE e.id = NEW.event_id;
    IF NOT webhookd_reports_failure(event_name) THEN
        RETURN NULL;
    END IF;
    -- A batch is reported unless every event in it is one that is not: a
    -- batch of `delivery.failed` events must not start the loop either.
    IF event_name = 'batch' AND NOT EXISTS (
        SELECT 1 FROM deliveries d JOIN events e ON e.id = d.event_id
        WHERE d.batch_id = NEW.id AND webhookd_reports_failure(e.event)
    ) THEN
        RETURN NULL;
    END IF;
    SELECT w.user_id INTO owner FROM webhooks w WHERE w.id = NEW.webhook_id;
    IF owner IS NULL THEN
        RETURN NULL; -- the webhook is being deleted, and its deliveries with it
    END IF;
    INSERT INTO outbox (event, user_id, data)
    VALUES ('delivery.failed', owner, json_build_object(
        'webhook_id', NEW.webhook_id,
        'delivery_id', NEW.id,
        'event_id', NEW.event_id,
        'event', event_name,
        'attempts', NEW.attempts,
        'last_status_code', NEW.last_status_code,
        'last_error', NEW.last_error));
    RETURN NULL;
END
$$;

-- Row triggers with a WHEN clause: a row that does not fail queues nothing,
-- so healthy deliveries pay only the comparison.
CREATE TRIGGER outbox_delivery_failed_insert
    AFTER INSERT ON deliveries
    FOR EACH ROW WHEN (NEW.status = 'failed')
    EXECUTE FUNCTION outbox_delivery_failed();

CREATE TRIGGER outbox_delivery_failed_update
    AFTER UPDATE OF status ON deliveries
    FOR EACH ROW WHEN (NEW.status = 'failed' AND OLD.status <> 'failed')
    EXECUTE FUNCTION outbox_delivery_failed();

-- The daemon switches a webhook off with a `disabled_reason`; its owner
-- switching it off (toggle, PATCH) clears the reason, and is not reported.
CREATE FUNCTION outbox_webhook_disabled() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (event, user_id, data)
    VALUES ('webhook.disabled', NEW.user_id, json_build_object(
        'webhook_id', NEW.id,
        'name', NEW.name,
        'url', NEW.url,
        'reason', NEW.disabled_reason));
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_webhook_disabled
    AFTER UPDATE OF is_active ON webhooks
    FOR EACH ROW WHEN (OLD.is_active AND NOT NEW.is_active AND NEW.disabled_reason IS NOT NULL)
    EXECUTE FUNCTION outbox_webhook_disabled();
