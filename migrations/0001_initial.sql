-- Users own webhooks. `id` is the CRM's user id (the `user_id` events carry)
-- when given at creation, else the next free number.
CREATE TABLE users (
    id          BIGINT PRIMARY KEY,
    name        TEXT NOT NULL,
    is_admin    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- API tokens are stored as SHA-256 digests: they are 256-bit random values, so
-- a fast hash is enough and lookups stay indexed.
CREATE TABLE api_tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE webhooks (
    id               BIGSERIAL PRIMARY KEY,
    user_id          BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name             TEXT NOT NULL,
    url              TEXT NOT NULL,
    events           TEXT[] NOT NULL,
    secret           TEXT NOT NULL,
    is_active        BOOLEAN NOT NULL DEFAULT TRUE,
    timeout_ms       INTEGER,
    headers          JSONB NOT NULL DEFAULT '{}'::jsonb,
    template         TEXT,
    disabled_reason  TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_user ON webhooks (user_id);
CREATE INDEX webhooks_active_events ON webhooks USING GIN (events) WHERE is_active;

-- One row per accepted event. `body` is the exact envelope delivered (TEXT, not
-- JSONB: JSONB refuses \u0000 and would reorder keys, and the signed bytes must
-- never change between attempts).
CREATE TABLE events (
    id          UUID PRIMARY KEY,
    event       TEXT NOT NULL,
    user_id     BIGINT,
    body        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Delivery state: one row per (event, webhook). The unique key makes fan-out
-- idempotent when a broker message is redelivered. A pending row is claimable
-- once `next_attempt_at` has passed; claiming it moves `next_attempt_at` to the
-- end of a lease (timeout + margin), so a crashed worker's deliveries become
-- claimable again by any worker when the lease runs out.
CREATE TABLE deliveries (
    id               UUID PRIMARY KEY,
    event_id         UUID NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id       BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (event_id, webhook_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_webhook ON deliveries (webhook_id, created_at DESC);

-- One row per attempt: the seed's columns plus delivery identity.
CREATE TABLE webhook_logs (
    id                BIGSERIAL PRIMARY KEY,
    webhook_id        BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    delivery_id       UUID NOT NULL,
    event             TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    status_code       INTEGER,
    response_time_ms  INTEGER NOT NULL,
    is_success        BOOLEAN NOT NULL,
    payload           TEXT NOT NULL,
    response          TEXT,
    error_message     TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_logs_webhook ON webhook_logs (webhook_id, created_at DESC);
CREATE INDEX webhook_logs_delivery ON webhook_logs (delivery_id);
CREATE INDEX webhook_logs_created ON webhook_logs (created_at);
