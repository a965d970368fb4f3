-- The web UI shows times in each user's time zone: an IANA name
-- (`Europe/Moscow`) chosen on the settings page. NULL: the browser's zone,
-- which the UI reads from the browser itself.
ALTER TABLE users ADD COLUMN time_zone text;
