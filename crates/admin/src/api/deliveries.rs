//! Deliveries of one webhook: `GET /webhooks/{id}/deliveries` (their state)
//! and `POST /webhooks/{id}/retry` (retry by hand).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use super::query::{encode_cursor, QueryParams};
use super::quotas::{Work, BULK_RETRIES_PER_USER};
use super::state::ApiState;
use super::webhooks::WebhookId;
use webhookd_store::delivery_admin::{
    self as store, DeliveryFilter, DeliveryRow, DeliveryStatus, RetryOutcome,
};
use webhookd_store::page::After;
use webhookd_store::replay::retry_failed_between;
use webhookd_store::webhooks::find_webhook;

/// One delivery: an event for this webhook, and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// Sent as `X-Webhook-Id` / `webhook-id` on every attempt.
    pub(crate) id: Uuid,
    pub(crate) event_id: Uuid,
    #[schema(example = "deal.won")]
    pub(crate) event: String,
    /// `pending`, `succeeded` or `failed`; for an event sent in a batch,
    /// its batch's.
    #[schema(example = "failed")]
    pub(crate) status: String,
    /// The batch the event was sent in (a batching webhook, SPEC §11):
    /// its `X-Webhook-Id`. Null while the event waits to be batched, and
    /// for webhooks that do not batch. Attempts, `last_status_code` and
    /// `last_error` are then the batch's.
    pub(crate) batch_id: Option<Uuid>,
    /// Attempts made so far.
    pub(crate) attempts: i32,
    /// When a pending delivery is attempted next (for one in flight: when
    /// its lease ends); null once it has succeeded or failed.
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
    pub(crate) last_status_code: Option<i32>,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(d: DeliveryRow) -> Self {
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            event: d.event,
            status: d.status,
            batch_id: d.batch_id,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A page of deliveries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryPage {
    pub(crate) items: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// A webhook's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    tag = "deliveries",
    params(
        ("id" = i64, Path, description = "The webhook's id"),
        ("status" = Option<String>, Query, description = "`pending`, `succeeded` or `failed`"),
        ("event" = Option<String>, Query, description = "Only this event (an exact catalogue name)"),
        ("batch_id" = Option<Uuid>, Query, description = "Only the events of this batch"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, body = DeliveryPage),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A bad query parameter, named in `field`", body = ErrorBody),
    )
)]
pub(crate) async fn list_deliveries(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
    params: QueryParams,
) -> Result<Json<DeliveryPage>, ApiError> {
    params.allow_only(&["status", "event", "batch_id", "limit", "cursor"])?;
    let status = params.text("status").map(parse_status).transpose()?;
    let filter = DeliveryFilter {
        status,
        event: params.event("event")?,
        batch_id: params.parsed("batch_id", "a batch id (a UUID)")?,
    };
    let limit = params.limit()?;
    let after = params.cursor::<Uuid>()?;
    list(&state, &user, id, &filter, after.as_ref(), limit)
        .await
        .map(Json)
}

/// A page of webhook `id`'s deliveries, when `user` may see the webhook.
pub(crate) async fn list(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
    filter: &DeliveryFilter,
    after: Option<&After<Uuid>>,
    limit: usize,
) -> Result<DeliveryPage, ApiError> {
    find_webhook(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    let page = store::list_deliveries(&state.pool, id, filter, after, limit).await?;
    Ok(DeliveryPage {
        items: page.items.into_iter().map(DeliveryView::from).collect(),
        next_cursor: page.next.as_ref().map(encode_cursor),
    })
}

/// A `status` filter's value, checked.
pub(crate) fn parse_status(text: &str) -> Result<DeliveryStatus, ApiError> {
    DeliveryStatus::parse(text)
        .ok_or_else(|| ApiError::invalid("status", "`status` must be pending, succeeded or failed"))
}

/// Either `delivery_id`, `all_failed: true`, or a range of failure times
/// (`failed_since`, `failed_until`, either or both).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RetryRequest {
    /// Retry this delivery (any state but pending); an event sent in a
    /// batch retries its whole batch.
    pub(crate) delivery_id: Option<String>,
    /// Retry every failed delivery of the webhook.
    pub(crate) all_failed: Option<bool>,
    /// Retry the failed deliveries that failed at or after this time
    /// (RFC 3339), at most 10,000 per call.
    pub(crate) failed_since: Option<DateTime<Utc>>,
    /// Retry the failed deliveries that failed before this time (RFC 3339).
    pub(crate) failed_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RetryResult {
    /// How many deliveries are pending again.
    pub(crate) retried: u64,
    /// Only for a range: more failed deliveries lie in it than one call
    /// retries; call again with the same range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) more: Option<bool>,
}

/// What to retry, checked.
enum RetryTarget {
    One(Uuid),
    AllFailed,
    Range(FailureRange),
}

/// Failure times `[since, until)`; at least one bound.
struct FailureRange {
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl RetryRequest {
    fn into_target(self) -> Result<RetryTarget, ApiError> {
        if self.failed_since.is_some() || self.failed_until.is_some() {
            return self.into_range().map(RetryTarget::Range);
        }
        match (self.delivery_id, self.all_failed) {
            (Some(_), Some(_)) => Err(ApiError::invalid(
                "all_failed",
                "give either `delivery_id` or `all_failed`, not both",
            )),
            (Some(id), None) => id.trim().parse().map(RetryTarget::One).map_err(|_| {
                ApiError::invalid(
                    "delivery_id",
                    "`delivery_id` must be a delivery id (a UUID)",
                )
            }),
            (None, Some(true)) => Ok(RetryTarget::AllFailed),
            (None, Some(false)) => Err(ApiError::invalid(
                "all_failed",
                "`all_failed` must be true (or give `delivery_id`)",
            )),
            (None, None) => Err(ApiError::invalid(
                "delivery_id",
                "give `delivery_id` to retry one delivery, `all_failed: true`, \
                 or `failed_since` / `failed_until` for a range",
            )),
        }
    }

    fn into_range(self) -> Result<FailureRange, ApiError> {
        if self.delivery_id.is_some() {
            return Err(ApiError::invalid(
                "delivery_id",
                "give either `delivery_id` or a range (`failed_since`, `failed_until`), not both",
            ));
        }
        if self.all_failed.is_some() {
            return Err(ApiError::invalid(
                "all_failed",
                "give either `all_failed` or a range (`failed_since`, `failed_until`), not both",
            ));
        }
        if let (Some(since), Some(until)) = (self.failed_since, self.failed_until) {
            if since >= until {
                return Err(ApiError::invalid(
                    "failed_until",
                    "`failed_until` must be later than `failed_since`",
                ));
            }
        }
        Ok(FailureRange {
            since: self.failed_since,
            until: self.failed_until,
        })
    }
}

/// Failed deliveries one ranged retry makes pending at most, so a call
/// never rewrites millions of rows in one statement.
pub(crate) const MAX_RANGE_RETRIES: i64 = 10_000;

/// Makes deliveries pending and due now; workers are woken at once (`NOTIFY
/// webhookd_due`). A retried delivery keeps its attempt count: one that had
/// used up its attempts gets exactly one more.
///
/// A range (`failed_since` inclusive, `failed_until` exclusive) retries the
/// `failed` deliveries whose final failure was recorded in it (their
/// `updated_at`), oldest first, at most 10,000 per call; `more: true` says
/// to call again. An event sent in a batch is retried as its whole batch.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/retry",
    tag = "deliveries",
    params(("id" = i64, Path, description = "The webhook's id")),
    request_body = RetryRequest,
    responses(
        (status = 200, body = RetryResult),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such webhook, or no such delivery of it", body = ErrorBody),
        (status = 409, description = "The delivery is already pending, or the webhook is switched off", body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
        (status = 429, description = "A bulk retry of this user's is already running; see `Retry-After`", body = ErrorBody),
    )
)]
pub(crate) async fn retry_deliveries(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
    ApiJson(body): ApiJson<RetryRequest>,
) -> Result<Json<RetryResult>, ApiError> {
    retry(&state, &user, id, body).await.map(Json)
}

/// Checks `body` and retries what it names of webhook `id`'s deliveries.
pub(crate) async fn retry(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
    body: RetryRequest,
) -> Result<RetryResult, ApiError> {
    let target = body.into_target()?;
    let webhook = find_webhook(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    // A pending delivery of an inactive webhook is ended unattempted by the
    // scheduler, so retrying one would only fail it again.
    if !webhook.is_active {
        return Err(ApiError::Conflict(
            "the webhook is switched off; switch it on (POST /webhooks/{id}/toggle) before retrying"
                .to_owned(),
        ));
    }
    let mut more = None;
    let retried = match target {
        RetryTarget::One(delivery_id) => {
            match store::retry_delivery(&state.pool, id, delivery_id).await? {
                RetryOutcome::Retried => 1,
                RetryOutcome::NotFound => return Err(ApiError::NotFound("delivery")),
                RetryOutcome::AlreadyPending => {
                    return Err(ApiError::Conflict(
                        "the delivery is already pending".to_owned(),
                    ))
                }
            }
        }
        RetryTarget::AllFailed => {
            let _slot = state
                .quotas
                .begin(Work::BulkRetry, user.0.id, BULK_RETRIES_PER_USER)?;
            store::retry_failed_deliveries(&state.pool, id).await?
        }
        RetryTarget::Range(range) => {
            let _slot = state
                .quotas
                .begin(Work::BulkRetry, user.0.id, BULK_RETRIES_PER_USER)?;
            let done =
                retry_failed_between(&state.pool, id, range.since, range.until, MAX_RANGE_RETRIES)
                    .await?;
            more = Some(done.more);
            done.retried
        }
    };
    tracing::info!(webhook_id = id, retried, "deliveries retried by hand");
    Ok(RetryResult { retried, more })
}
