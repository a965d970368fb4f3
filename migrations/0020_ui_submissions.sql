-- The web UI's post/redirect/get: a notice or a new secret for the page an
-- action redirects to is kept with the session (`flash`, read once), never
-- in the URL. Each form carries a one-time key; `ui_submissions` records
-- what its submission did, so a browser re-posting it (refresh, back) gets
-- the same redirect instead of a second webhook, rotation or test. Both go
-- with their session (sign-out, expiry, revoked token).
ALTER TABLE ui_sessions ADD COLUMN flash jsonb;

CREATE TABLE ui_submissions (
    session_id  BYTEA NOT NULL REFERENCES ui_sessions (id) ON DELETE CASCADE,
    form_key    TEXT NOT NULL,
    -- NULL while the action runs.
    redirect_to TEXT,
    -- What the result page shows again on a reload (a test's answer).
    result      JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, form_key)
);
