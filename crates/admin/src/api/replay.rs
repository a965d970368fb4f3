//! `POST /webhooks/{id}/replay`: sends a webhook the stored events it would
//! have matched in a time window (one created after them, or one that was
//! switched off), oldest first, bounded per call and never twice.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::state::ApiState;
use super::webhooks::WebhookId;
use webhookd_store::replay::{replay_events, Replayed};
use webhookd_store::webhooks::find_webhook;

/// Stored events one replay examines at most (plus those stored in the same
/// instant as the last), so a call reads and writes a bounded number of
/// rows; `next_since` continues.
pub(crate) const MAX_REPLAY_EVENTS: i64 = 10_000;

/// The window of events to replay: `since` inclusive, `until` exclusive.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayRequest {
    /// Required: events stored at or after this time (RFC 3339); no older
    /// than the events' retention (`retention.logs_days`).
    // Optional to serde so that a body without it is refused naming `since`
    // (a missing required field would be blamed on a field present).
    #[schema(required = true)]
    pub(crate) since: Option<DateTime<Utc>>,
    /// Events stored before this time (RFC 3339); default: up to now.
    pub(crate) until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ReplayResult {
    /// New deliveries made (pending and due now; collected into batches
    /// for a batching webhook).
    pub(crate) replayed: u64,
    /// Matching events the webhook already has a delivery of (sent, failed
    /// or pending): not sent again.
    pub(crate) skipped_existing: u64,
    /// The window holds more matching events than one call takes.
    pub(crate) more: bool,
    /// When `more`: the `since` of the next call (same `until`).
    pub(crate) next_since: Option<DateTime<Utc>>,
}

impl From<Replayed> for ReplayResult {
    fn from(r: Replayed) -> Self {
        ReplayResult {
            replayed: r.replayed,
            skipped_existing: r.skipped_existing,
            more: r.next_since.is_some(),
            next_since: r.next_since,
        }
    }
}

/// Sends the webhook the stored events of `[since, until)` it would have
/// received: those its `events` patterns match, under the privacy rule (an
/// event with a `user_id` only to that user's webhooks and admins').
/// Delivery ids are a function of the event and the webhook, so an event
/// the webhook already got (or has pending) is skipped, however often this
/// is called. At most 10,000 events per call, oldest first.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/replay",
    tag = "deliveries",
    params(("id" = i64, Path, description = "The webhook's id")),
    request_body = ReplayRequest,
    responses(
        (status = 200, body = ReplayResult),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The webhook is switched off", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
    )
)]
pub(crate) async fn replay_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<Json<ReplayResult>, ApiError> {
    replay(&state, &user, id, body).await.map(Json)
}

/// Checks `body` and replays webhook `id`'s window.
pub(crate) async fn replay(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
    body: ReplayRequest,
) -> Result<ReplayResult, ApiError> {
    let since = check_window(&body, Utc::now(), state.config.retention_days)?;
    let webhook = find_webhook(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    if !webhook.is_active {
        return Err(switched_off());
    }
    let replayed = replay_events(&state.pool, id, since, body.until, MAX_REPLAY_EVENTS)
        .await?
        // Switched off (or deleted) since the check above.
        .ok_or_else(switched_off)?;
    tracing::info!(
        webhook_id = id,
        replayed = replayed.replayed,
        skipped_existing = replayed.skipped_existing,
        "events replayed by hand"
    );
    Ok(replayed.into())
}

fn switched_off() -> ApiError {
    // Its pending deliveries would be ended unattempted by the scheduler.
    ApiError::Conflict(
        "the webhook is switched off; switch it on (POST /webhooks/{id}/toggle) before replaying"
            .to_owned(),
    )
}

/// `since` given, before `until`, and no older than retention keeps events:
/// older ones may be gone, and a replay must not silently send part of a
/// window. Returns `since`.
pub(crate) fn check_window(
    body: &ReplayRequest,
    now: DateTime<Utc>,
    retention_days: u32,
) -> Result<DateTime<Utc>, ApiError> {
    let since = body.since.ok_or_else(|| {
        ApiError::invalid(
            "since",
            "give `since`: the time to replay events from (RFC 3339)",
        )
    })?;
    let oldest = now - Duration::days(i64::from(retention_days));
    if since < oldest {
        return Err(ApiError::invalid(
            "since",
            format!(
                "`since` must be within the events' retention ({retention_days} days): \
                 {} or later",
                oldest.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    if body.until.is_some_and(|until| until <= since) {
        return Err(ApiError::invalid(
            "until",
            "`until` must be later than `since`",
        ));
    }
    Ok(since)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn window(since: &str, until: Option<&str>) -> ReplayRequest {
        ReplayRequest {
            since: Some(at(since)),
            until: until.map(at),
        }
    }

    fn field(result: Result<DateTime<Utc>, ApiError>) -> Option<String> {
        match result {
            Err(ApiError::Invalid { field, .. }) => field,
            _ => None,
        }
    }

    #[test]
    fn a_window_must_be_ordered_and_within_retention() {
        let now = at("2025-03-31T12:00:00Z");
        assert!(check_window(&window("2025-03-01T12:00:00Z", None), now, 30).is_ok());
        assert!(check_window(
            &window("2025-03-30T00:00:00Z", Some("2025-03-30T00:00:01Z")),
            now,
            30
        )
        .is_ok());
        assert_eq!(
            field(check_window(&window("2025-03-01T11:59:59Z", None), now, 30)),
            Some("since".to_owned())
        );
        assert_eq!(
            field(check_window(&ReplayRequest::default(), now, 30)),
            Some("since".to_owned())
        );
        for until in ["2025-03-30T00:00:00Z", "2025-03-29T00:00:00Z"] {
            assert_eq!(
                field(check_window(
                    &window("2025-03-30T00:00:00Z", Some(until)),
                    now,
                    30
                )),
                Some("until".to_owned())
            );
        }
    }
}
