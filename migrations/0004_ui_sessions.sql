-- Web UI sessions, kept in Postgres so they survive restarts and work on any
-- API replica. The cookie holds a random value; only its SHA-256 is stored
-- (`id`), so a database dump cannot be replayed as a cookie. A session is tied
-- to the API token it was opened with: revoking or rotating that token
-- (`webhookd users revoke|rotate`) ends its sessions too (ON DELETE CASCADE
-- covers deleted tokens; the lookup checks `revoked_at`).
CREATE TABLE ui_sessions (
    id          BYTEA PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_id    BIGINT NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at);
CREATE INDEX ui_sessions_user ON ui_sessions (user_id);
CREATE INDEX ui_sessions_token ON ui_sessions (token_id);
