//! `GET /webhooks/{id}/logs` (every attempt, filtered and paginated) and
//! `GET /webhooks/{id}/logs/{log_id}` (one attempt in full).

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use webhookd_events::delivery::BATCH_EVENT;

use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::query::{encode_cursor, QueryParams};
use super::state::ApiState;
use super::webhooks::WebhookId;
use webhookd_store::logs::{self as store, LogEntry, LogFilter};
use webhookd_store::page::After;
use webhookd_store::webhooks::find_webhook;

/// One delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogView {
    pub(crate) id: i64,
    /// The delivery this attempt belongs to: the `X-Webhook-Id` it was sent with.
    pub(crate) delivery_id: Uuid,
    /// The event, or `batch` for a batch's attempt (SPEC §11).
    #[schema(example = "task.created")]
    pub(crate) event: String,
    /// For a batch's attempt: how many events it carried (list them with
    /// `GET /webhooks/{id}/deliveries?batch_id=<delivery_id>`); otherwise
    /// absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) batch_size: Option<i32>,
    /// 1 for the first attempt of a delivery.
    pub(crate) attempt: i32,
    /// Null when no response came (connection error, timeout).
    pub(crate) status_code: Option<i32>,
    pub(crate) response_time_ms: i32,
    pub(crate) is_success: bool,
    pub(crate) error_message: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    /// The body sent. Only with `include=bodies`, and on a single attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payload: Option<String>,
    /// The response body, cut at `delivery.max_response_bytes` (null when
    /// no response came). Only with `include=bodies`, and on a single attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub(crate) response: Option<Option<String>>,
    /// True when `payload` and `response` were cut to fit a page's byte
    /// budget (4 MiB); absent otherwise. `GET /webhooks/{id}/logs/{log_id}`
    /// gives them in full.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) bodies_truncated: bool,
    /// The headers sent, as `[name, value]` pairs in order, credentials
    /// (`Authorization`, names with `token`, `secret`, `key`, `auth`)
    /// masked, at most 50. Only on a single attempt, and for attempts
    /// logged since headers are kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<String>>>)]
    pub(crate) request_headers: Option<Vec<[String; 2]>>,
    /// The headers received, the same way; absent when no response came.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<String>>>)]
    pub(crate) response_headers: Option<Vec<[String; 2]>>,
}

impl From<LogEntry> for LogView {
    fn from(e: LogEntry) -> Self {
        // The storage layer reads both bodies or neither, and `payload` is
        // never NULL in the table, so it tells which.
        let with_bodies = e.payload.is_some();
        LogView {
            id: e.id,
            delivery_id: e.delivery_id,
            event: e.event,
            batch_size: e.batch_size,
            attempt: e.attempt,
            status_code: e.status_code,
            response_time_ms: e.response_time_ms,
            is_success: e.is_success,
            error_message: e.error_message,
            created_at: e.created_at,
            payload: e.payload,
            response: with_bodies.then_some(e.response),
            bodies_truncated: e.bodies_truncated,
            request_headers: e.request_headers.map(|h| h.0),
            response_headers: e.response_headers.map(|h| h.0),
        }
    }
}

/// A page of attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogPage {
    pub(crate) items: Vec<LogView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

const LOG_PARAMS: &[&str] = &[
    "event",
    "success",
    "from",
    "to",
    "delivery_id",
    "limit",
    "cursor",
    "include",
];

/// A webhook's attempts, newest first. Filters combine with AND.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/logs",
    tag = "logs",
    params(
        ("id" = i64, Path, description = "The webhook's id"),
        ("event" = Option<String>, Query, description = "Only this event (an exact catalogue name)"),
        ("success" = Option<bool>, Query, description = "Only successful (true) or failed (false) attempts"),
        ("from" = Option<DateTime<Utc>>, Query, description = "Attempts at or after this RFC 3339 time"),
        ("to" = Option<DateTime<Utc>>, Query, description = "Attempts before this RFC 3339 time"),
        ("delivery_id" = Option<Uuid>, Query, description = "Only the attempts of this delivery"),
        ("limit" = Option<usize>, Query, description = "Page size, 1 to 200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("include" = Option<String>, Query, description = "`bodies` to add `payload` and `response`"),
    ),
    responses(
        (status = 200, body = LogPage),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "A bad query parameter, named in `field`", body = ErrorBody),
    )
)]
pub(crate) async fn list_logs(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
    params: QueryParams,
) -> Result<Json<LogPage>, ApiError> {
    params.allow_only(LOG_PARAMS)?;
    let filter = LogFilter {
        // A batch's attempts are logged as `batch`, which no event is.
        event: match params.text("event") {
            Some(BATCH_EVENT) => Some(BATCH_EVENT.to_owned()),
            _ => params.event("event")?,
        },
        success: params.boolean("success")?,
        from: params.instant("from")?,
        to: params.instant("to")?,
        delivery_id: params.parsed("delivery_id", "a delivery id (a UUID)")?,
    };
    let with_bodies = match params.text("include") {
        None => false,
        Some("bodies") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "include",
                "`include` may only be `bodies`",
            ))
        }
    };
    let limit = params.limit()?;
    let after = params.cursor::<i64>()?;
    let page = LogQuery {
        filter,
        after,
        limit,
        with_bodies,
    };
    list(&state, &user, id, &page).await.map(Json)
}

/// Which attempts of a webhook to list.
pub(crate) struct LogQuery {
    pub(crate) filter: LogFilter,
    pub(crate) after: Option<After<i64>>,
    pub(crate) limit: usize,
    pub(crate) with_bodies: bool,
}

/// A page of webhook `id`'s attempts, when `user` may see the webhook.
pub(crate) async fn list(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
    query: &LogQuery,
) -> Result<LogPage, ApiError> {
    find_webhook(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    let page = store::list_logs(
        &state.pool,
        id,
        &query.filter,
        query.after.as_ref(),
        query.limit,
        query.with_bodies,
    )
    .await?;
    Ok(LogPage {
        items: page.items.into_iter().map(LogView::from).collect(),
        next_cursor: page.next.as_ref().map(encode_cursor),
    })
}

/// The `{id}` and `{log_id}` of a single attempt's route; either one that is
/// not a number names nothing, so answers 404.
pub(crate) struct LogPath {
    pub(crate) webhook_id: i64,
    pub(crate) log_id: i64,
}

impl<S: Send + Sync> FromRequestParts<S> for LogPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((webhook, log)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("log"))?;
        let webhook_id = webhook.parse().map_err(|_| ApiError::NotFound("webhook"))?;
        let log_id = log.parse().map_err(|_| ApiError::NotFound("log"))?;
        Ok(LogPath { webhook_id, log_id })
    }
}

/// One attempt in full: the payload sent and the response received.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/logs/{log_id}",
    tag = "logs",
    params(
        ("id" = i64, Path, description = "The webhook's id"),
        ("log_id" = i64, Path, description = "The attempt's id (`id` in the list)"),
    ),
    responses(
        (status = 200, body = LogView),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such webhook (or another user's), or no such attempt of it", body = ErrorBody),
    )
)]
pub(crate) async fn show_log(
    State(state): State<ApiState>,
    user: CurrentUser,
    path: LogPath,
) -> Result<Json<LogView>, ApiError> {
    find_webhook(&state.pool, user.scope(), path.webhook_id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    let entry = store::find_log(&state.pool, path.webhook_id, path.log_id)
        .await?
        .ok_or(ApiError::NotFound("log"))?;
    Ok(Json(entry.into()))
}
