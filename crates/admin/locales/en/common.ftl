# The page shell and what every page uses.
skip-to-content = Skip to content
nav-main = Main
nav-webhooks = Webhooks
nav-stats = Statistics
nav-settings = Settings
nav-language = Language
sign-out = Sign out
admin-marker = (admin)
footer-api = API (OpenAPI)
none-dash = —
body-none = None.
time-utc-hint = In UTC: { $utc }
n-deliveries = { $count ->
    [one] { $count } delivery
   *[other] { $count } deliveries
}
badge-active = active
badge-inactive = inactive
status-pending = pending
status-succeeded = succeeded
status-failed = failed
status-queued = queued
notice-created = Webhook created.
notice-updated = Changes saved.
notice-deleted = Webhook deleted, with its deliveries and logs.
notice-switched-on = Webhook switched on: it receives events again.
notice-switched-off = Webhook switched off: it receives no events.
notice-retried = { $count ->
    [0] Nothing to retry: no failed deliveries.
    [one] 1 delivery will be retried now.
   *[other] { $count } deliveries will be retried now.
}
notice-retried-more = { $count } deliveries will be retried now; more failed in that range: submit the range again to retry the next ones.
notice-signed-in-again = You are signed in again. What you sent before the session ended was not saved: send it again.
