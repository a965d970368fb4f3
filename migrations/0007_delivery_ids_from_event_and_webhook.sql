-- A delivery's id is a function of its event and its webhook, so the same
-- pair gets the same id whoever creates the row and however often the
-- broker message is redelivered. webhookd attempts a new event's deliveries
-- before it writes them (see docs/ARCHITECTURE.md, "First attempts"); a
-- worker that dies between an attempt and the write leaves the message
-- unacked, and the repeat that follows must carry the same `X-Webhook-Id`
-- so receivers can drop it.
--
-- Layout (RFC 9562 version 8): the first 6 bytes are the event id's (the
-- millisecond timestamp of a UUIDv7 event id, so new rows still land at the
-- right-hand end of the indexes), the rest the first bytes of
-- SHA-256(event id || webhook id), with the version and variant bits set.
-- Existing ids stay as they are.
CREATE FUNCTION webhookd_delivery_id(event_id uuid, webhook_id bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(
        set_byte(set_byte(b, 6, (get_byte(b, 6) & 15) | 128), 8, (get_byte(b, 8) & 63) | 128),
        'hex')::uuid
    FROM (SELECT overlay(substring(sha256(uuid_send(event_id) || int8send(webhook_id)) FROM 1 FOR 16)
                         placing substring(uuid_send(event_id) FROM 1 FOR 6) FROM 1 FOR 6) AS b) AS hashed
$$;
