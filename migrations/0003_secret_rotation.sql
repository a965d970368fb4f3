-- Secret rotation: after `POST /webhooks/{id}/rotate-secret` the old secret
-- stays valid until `previous_secret_expires_at`, and deliveries are signed
-- with both, so receivers can switch to the new secret without a window in
-- which every delivery fails verification. Both are NULL outside a rotation;
-- an expired previous secret is ignored by every reader (no sweeper needed)
-- and overwritten by the next rotation.
ALTER TABLE webhooks
    ADD COLUMN previous_secret TEXT,
    ADD COLUMN previous_secret_expires_at TIMESTAMPTZ;
