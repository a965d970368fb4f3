-- Users allowed to publish events over HTTP (`POST /api/v1/events`), besides
-- admins, who always may: `webhookd users create --publisher`, or
-- `webhookd users grant-publisher` for an existing user. Off by default, so
-- an existing user gains no new power from the upgrade.
ALTER TABLE users ADD COLUMN can_publish boolean NOT NULL DEFAULT false;
