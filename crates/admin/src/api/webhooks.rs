//! `/webhooks`: list, create, show, change, delete and toggle webhooks.
//!
//! Ownership is the storage layer's [`Scope`]: another user's webhook answers
//! 404 exactly like a missing one, so ids reveal nothing.

use std::collections::BTreeMap;
use std::fmt;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::CurrentUser;
use super::breaker::BreakerView;
use super::error::{ApiError, ErrorBody};
use super::json::{ApiJson, Nullable};
use super::query::QueryParams;
use super::state::ApiState;
use super::validate;
use super::validate_auth;
use super::webhook_quota::create_within_quota;
use webhookd_store::webhooks::{self as store, NewWebhook, Scope, Webhook, WebhookChanges};

/// A webhook as the API shows it; the secret is only ever shown on creation
/// and rotation.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    pub(crate) id: i64,
    /// The owner.
    pub(crate) user_id: i64,
    pub(crate) name: String,
    pub(crate) url: String,
    /// Event names or wildcards (`task.*`, `*`).
    #[schema(example = json!(["task.created", "deal.*"]))]
    pub(crate) events: Vec<String>,
    pub(crate) is_active: bool,
    /// Per-webhook timeout; null for the daemon's default.
    pub(crate) timeout_ms: Option<i32>,
    /// Custom headers sent with every delivery.
    pub(crate) headers: BTreeMap<String, String>,
    /// The body template's JSON text; null to send the envelope.
    pub(crate) template: Option<String>,
    /// Events per batch (2 to 1000); null for one request per event.
    pub(crate) batch_max_events: Option<i32>,
    /// How long a batch's oldest event may wait for more, in ms.
    pub(crate) batch_max_wait_ms: i32,
    /// Why the daemon switched the webhook off (410 Gone, failing too long).
    pub(crate) disabled_reason: Option<String>,
    /// Until when the secret replaced by the last rotation is still accepted
    /// (deliveries are signed with both); null outside a grace period.
    pub(crate) previous_secret_expires_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    /// The payload filter (SPEC §13); null: every subscribed event.
    #[schema(value_type = Option<Object>, example = json!({"data.amount": {"$gte": 100000}}))]
    pub(crate) filter: Option<serde_json::Value>,
    /// Seconds to wait before each retry; null: the daemon's policy.
    #[schema(example = json!([5, 300, 1800, 7200]))]
    pub(crate) retry_schedule: Option<Vec<i32>>,
    /// `none`: no order between deliveries; `fifo`: one at a time, in the
    /// order the events were consumed (SPEC §13).
    #[schema(example = "none")]
    pub(crate) ordering: String,
    /// How deliveries authenticate to the receiver (SPEC §14), without its
    /// secrets: `{"type": "basic", "username"}`, `{"type": "bearer"}`,
    /// `{"type": "oauth2", "token_url", "client_id", "scope"}` or
    /// `{"type": "mtls", "client_cert_pem"}`; null: the signature only.
    #[schema(value_type = Option<super::auth_schema::ReceiverAuthShown>, example = json!({"type": "basic", "username": "webhookd"}))]
    pub(crate) auth: Option<serde_json::Value>,
    /// Requests per second at most, across every worker replica (SPEC §14);
    /// null: no limit.
    #[schema(example = 50)]
    pub(crate) rate_limit_per_s: Option<i32>,
    /// The circuit breaker (read-only).
    pub(crate) breaker: BreakerView,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        let auth = w
            .auth_view()
            .and_then(|view| serde_json::to_value(view).ok());
        WebhookView {
            id: w.id,
            user_id: w.user_id,
            name: w.name,
            url: w.url,
            events: w.events,
            is_active: w.is_active,
            timeout_ms: w.timeout_ms,
            headers: w.headers.0,
            template: w.template,
            batch_max_events: w.batch_max_events,
            batch_max_wait_ms: w.batch_max_wait_ms,
            disabled_reason: w.disabled_reason,
            previous_secret_expires_at: w.previous_secret_expires_at,
            created_at: w.created_at,
            updated_at: w.updated_at,
            filter: w.filter.map(|f| f.0),
            retry_schedule: w.retry_schedule,
            ordering: w.ordering.as_str().to_owned(),
            auth,
            rate_limit_per_s: w.rate_limit_per_s,
            breaker: w.breaker.into(),
        }
    }
}

/// A webhook with its secret: the answer to creation and rotation, the only
/// times the secret is shown (never by `Debug`).
#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookWithSecret {
    #[serde(flatten)]
    pub(crate) webhook: WebhookView,
    /// Receivers verify signatures with it; store it now.
    pub(crate) secret: String,
}

/// `POST /webhooks`. Every field is optional here so that a missing one is
/// reported by validation, naming it. `Debug` hides the secret.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhook {
    /// Required: 1 to 200 characters.
    pub(crate) name: Option<String>,
    /// Required: an absolute http(s) URL.
    pub(crate) url: Option<String>,
    /// Required: event names or wildcards, at most 50.
    pub(crate) events: Option<Vec<String>>,
    /// 16 to 256 printable ASCII characters; generated (`whsec_...`) when absent.
    pub(crate) secret: Option<String>,
    /// Default true.
    pub(crate) is_active: Option<bool>,
    /// 100 to 60000; the daemon's default when absent.
    pub(crate) timeout_ms: Option<i64>,
    /// At most 20 headers; not the ones webhookd sets itself.
    pub(crate) headers: Option<BTreeMap<String, String>>,
    /// A body template's JSON text (see `GET /templates`).
    pub(crate) template: Option<String>,
    /// 2 to 1000: send events in batches of up to this many (SPEC §11);
    /// not with a `template`. Absent or null: one request per event.
    pub(crate) batch_max_events: Option<i64>,
    /// 0 to 60000 (default 1000): how long a batch's oldest event may wait
    /// for more before the batch is sent.
    pub(crate) batch_max_wait_ms: Option<i64>,
    /// Admins only: create the webhook for another user.
    pub(crate) user_id: Option<i64>,
    /// A payload filter (SPEC §13): only events it matches are delivered.
    #[schema(value_type = Option<Object>)]
    pub(crate) filter: Option<serde_json::Value>,
    /// 1 to 30 delays in seconds (1 to 604800 each) replacing the daemon's
    /// retry policy: attempt n+1 waits the n-th.
    pub(crate) retry_schedule: Option<Vec<i64>>,
    /// `none` (default) or `fifo`: one delivery at a time, in consumption
    /// order; a failing one holds back the rest until it succeeds or fails
    /// for good.
    pub(crate) ordering: Option<String>,
    /// Authentication to the receiver (SPEC §14): `{"type": "basic",
    /// "username", "password"}`, `{"type": "bearer", "token"}`, `{"type":
    /// "oauth2", "token_url", "client_id", "client_secret", "scope"?}` or
    /// `{"type": "mtls", "client_cert_pem", "client_key_pem"}`. Not with a
    /// custom `Authorization` header.
    #[schema(value_type = Option<super::auth_schema::ReceiverAuthInput>, example = json!({"type": "bearer", "token": "s3cr3t"}))]
    pub(crate) auth: Option<serde_json::Value>,
    /// 1 to 10000 requests per second at most, across every worker replica;
    /// more wait (never dropped, never failed). Absent or null: no limit.
    pub(crate) rate_limit_per_s: Option<i64>,
}

/// `PATCH /webhooks/{id}`: absent fields stay as they are; `null` clears
/// `timeout_ms` and `template` (other fields cannot be null). `Debug` hides
/// the secret.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct UpdateWebhook {
    #[schema(value_type = Option<String>)]
    pub(crate) name: Nullable<String>,
    #[schema(value_type = Option<String>)]
    pub(crate) url: Nullable<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub(crate) events: Nullable<Vec<String>>,
    /// Replaces the secret at once, ending any rotation's grace period
    /// (`POST /webhooks/{id}/rotate-secret` keeps the old one valid a while).
    #[schema(value_type = Option<String>)]
    pub(crate) secret: Nullable<String>,
    #[schema(value_type = Option<bool>)]
    pub(crate) is_active: Nullable<bool>,
    #[schema(value_type = Option<i64>)]
    pub(crate) timeout_ms: Nullable<i64>,
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub(crate) headers: Nullable<BTreeMap<String, String>>,
    #[schema(value_type = Option<String>)]
    pub(crate) template: Nullable<String>,
    /// null switches batching off.
    #[schema(value_type = Option<i64>)]
    pub(crate) batch_max_events: Nullable<i64>,
    #[schema(value_type = Option<i64>)]
    pub(crate) batch_max_wait_ms: Nullable<i64>,
    /// null removes the filter.
    #[schema(value_type = Option<Object>)]
    pub(crate) filter: Nullable<serde_json::Value>,
    /// null returns to the daemon's retry policy.
    #[schema(value_type = Option<Vec<i64>>)]
    pub(crate) retry_schedule: Nullable<Vec<i64>>,
    /// `none` or `fifo`.
    #[schema(value_type = Option<String>)]
    pub(crate) ordering: Nullable<String>,
    /// null removes it. With the type already stored, a secret field left
    /// out keeps the stored secret; a new type needs all its fields.
    #[schema(value_type = Option<super::auth_schema::ReceiverAuthInput>)]
    pub(crate) auth: Nullable<serde_json::Value>,
    /// 1 to 10000; null removes the limit.
    #[schema(value_type = Option<i64>)]
    pub(crate) rate_limit_per_s: Nullable<i64>,
}

/// What `Debug` shows of a secret: whether there is one, never its text.
pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Debug for WebhookWithSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookWithSecret")
            .field("webhook", &self.webhook)
            .field("secret", &Redacted)
            .finish()
    }
}

impl fmt::Debug for CreateWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &self.secret.as_ref().map(|_| Redacted))
            .field("is_active", &self.is_active)
            .field("timeout_ms", &self.timeout_ms)
            .field("headers", &self.headers)
            .field("template", &self.template)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_wait_ms", &self.batch_max_wait_ms)
            .field("user_id", &self.user_id)
            .field("filter", &self.filter)
            .field("retry_schedule", &self.retry_schedule)
            .field("ordering", &self.ordering)
            .field("auth", &self.auth.as_ref().map(auth_kind))
            .field("rate_limit_per_s", &self.rate_limit_per_s)
            .finish()
    }
}

/// What `Debug` shows of a raw `auth`: its type only.
fn auth_kind(raw: &serde_json::Value) -> Option<&str> {
    raw.get("type").and_then(serde_json::Value::as_str)
}

impl fmt::Debug for UpdateWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = match &self.secret {
            Nullable::Absent => Nullable::Absent,
            Nullable::Null => Nullable::Null,
            Nullable::Value(_) => Nullable::Value(Redacted),
        };
        f.debug_struct("UpdateWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &secret)
            .field("is_active", &self.is_active)
            .field("timeout_ms", &self.timeout_ms)
            .field("headers", &self.headers)
            .field("template", &self.template)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_wait_ms", &self.batch_max_wait_ms)
            .field("filter", &self.filter)
            .field("retry_schedule", &self.retry_schedule)
            .field("ordering", &self.ordering)
            .field(
                "auth",
                &match &self.auth {
                    Nullable::Absent => Nullable::Absent,
                    Nullable::Null => Nullable::Null,
                    Nullable::Value(raw) => Nullable::Value(auth_kind(raw)),
                },
            )
            .field("rate_limit_per_s", &self.rate_limit_per_s)
            .finish()
    }
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid(field, format!("`{field}` is required")))
}

impl CreateWebhook {
    /// Checks fields in the documented order, so the first problem is named.
    fn into_new(self, user: &CurrentUser, allow_private: bool) -> Result<NewWebhook, ApiError> {
        let name = validate::check_name(&required(self.name, "name")?)?;
        let url = validate::check_url(&required(self.url, "url")?, allow_private)?;
        let events = validate::check_events(&required(self.events, "events")?)?;
        let timeout_ms = self
            .timeout_ms
            .map(validate::check_timeout_ms)
            .transpose()?;
        let headers = validate::check_headers(self.headers.unwrap_or_default())?;
        let template = self.template.map(validate::check_template).transpose()?;
        let batch_max_events = self
            .batch_max_events
            .map(validate::check_batch_max_events)
            .transpose()?;
        validate::check_batch_without_template(batch_max_events, template.as_deref())?;
        let batch_max_wait_ms = self
            .batch_max_wait_ms
            .map(validate::check_batch_max_wait_ms)
            .transpose()?
            .unwrap_or(validate::DEFAULT_BATCH_MAX_WAIT_MS);
        let filter = self.filter.map(validate::check_filter).transpose()?;
        let retry_schedule = self
            .retry_schedule
            .map(|r| validate::check_retry_schedule(&r))
            .transpose()?;
        let ordering = self
            .ordering
            .as_deref()
            .map(validate::check_ordering)
            .transpose()?
            .unwrap_or_default();
        let auth = self
            .auth
            .map(|raw| validate_auth::check_auth(raw, None, allow_private))
            .transpose()?;
        validate_auth::check_no_authorization_header(auth.is_some(), &headers)?;
        let rate_limit_per_s = self
            .rate_limit_per_s
            .map(validate::check_rate_limit_per_s)
            .transpose()?;
        let secret = match self.secret {
            Some(secret) => validate::check_secret(secret)?,
            None => webhookd_signing::generate_secret(),
        };
        let user_id = match self.user_id {
            None => user.0.id,
            Some(id) if id == user.0.id || user.0.is_admin => id,
            Some(_) => {
                return Err(ApiError::invalid(
                    "user_id",
                    "only an admin can create a webhook for another user",
                ))
            }
        };
        Ok(NewWebhook {
            user_id,
            name,
            url,
            events,
            secret,
            is_active: self.is_active.unwrap_or(true),
            timeout_ms,
            headers,
            template,
            batch_max_events,
            batch_max_wait_ms,
            filter,
            retry_schedule,
            ordering,
            auth,
            rate_limit_per_s,
        })
    }
}

impl UpdateWebhook {
    /// Checks fields in the documented order, so the first problem is named.
    fn into_changes(self, allow_private: bool) -> Result<WebhookChanges, ApiError> {
        let name = self.name.into_required_change("name")?;
        let name = name.map(|n| validate::check_name(&n)).transpose()?;
        let url = self.url.into_required_change("url")?;
        let url = url
            .map(|u| validate::check_url(&u, allow_private))
            .transpose()?;
        let events = self.events.into_required_change("events")?;
        let events = events.map(|e| validate::check_events(&e)).transpose()?;
        let is_active = self.is_active.into_required_change("is_active")?;
        let timeout_ms = self
            .timeout_ms
            .into_change()
            .map(|t| t.map(validate::check_timeout_ms).transpose())
            .transpose()?;
        let headers = self.headers.into_required_change("headers")?;
        let headers = headers.map(validate::check_headers).transpose()?;
        let template = self
            .template
            .into_change()
            .map(|t| t.map(validate::check_template).transpose())
            .transpose()?;
        let batch_max_events = self
            .batch_max_events
            .into_change()
            .map(|b| b.map(validate::check_batch_max_events).transpose())
            .transpose()?;
        let batch_max_wait_ms = self
            .batch_max_wait_ms
            .into_required_change("batch_max_wait_ms")?;
        let batch_max_wait_ms = batch_max_wait_ms
            .map(validate::check_batch_max_wait_ms)
            .transpose()?;
        let filter = self
            .filter
            .into_change()
            .map(|f| f.map(validate::check_filter).transpose())
            .transpose()?;
        let retry_schedule = self
            .retry_schedule
            .into_change()
            .map(|r| r.map(|r| validate::check_retry_schedule(&r)).transpose())
            .transpose()?;
        let ordering = self.ordering.into_required_change("ordering")?;
        let ordering = ordering
            .as_deref()
            .map(validate::check_ordering)
            .transpose()?;
        let rate_limit_per_s = self
            .rate_limit_per_s
            .into_change()
            .map(|r| r.map(validate::check_rate_limit_per_s).transpose())
            .transpose()?;
        let secret = self.secret.into_required_change("secret")?;
        let secret = secret.map(validate::check_secret).transpose()?;
        Ok(WebhookChanges {
            name,
            url,
            events,
            secret,
            is_active,
            timeout_ms,
            headers,
            template,
            batch_max_events,
            batch_max_wait_ms,
            filter,
            retry_schedule,
            ordering,
            auth: None,
            rate_limit_per_s,
        })
    }
}

/// The `{id}` of a webhook route. An id that is not a number cannot name a
/// webhook, so it answers 404 like any other unknown id.
pub(crate) struct WebhookId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for WebhookId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound("webhook"))?;
        raw.parse()
            .map(WebhookId)
            .map_err(|_| ApiError::NotFound("webhook"))
    }
}

/// `GET /webhooks` query: `user_id` filters (within what the caller may see).
pub(crate) struct ListFilter {
    user_id: Option<i64>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListFilter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let params = QueryParams::from_request_parts(parts, state).await?;
        params.allow_only(&["user_id"])?;
        Ok(ListFilter {
            user_id: params.parsed("user_id", "an integer")?,
        })
    }
}

/// The webhooks the caller may see, oldest first.
#[utoipa::path(
    get,
    path = "/webhooks",
    tag = "webhooks",
    params(("user_id" = Option<i64>, Query, description = "Only this user's webhooks (admins; others get only their own)")),
    responses(
        (status = 200, body = [WebhookView]),
        (status = 401, body = ErrorBody),
        (status = 422, description = "A bad query parameter", body = ErrorBody),
    )
)]
pub(crate) async fn list_webhooks(
    State(state): State<ApiState>,
    user: CurrentUser,
    filter: ListFilter,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    list(&state, &user, filter.user_id).await.map(Json)
}

/// The webhooks `user` may see, only `owner`'s when given.
pub(crate) async fn list(
    state: &ApiState,
    user: &CurrentUser,
    owner: Option<i64>,
) -> Result<Vec<WebhookView>, ApiError> {
    let scope = match (user.scope(), owner) {
        (Scope::All, Some(owner)) => Scope::User(owner),
        (Scope::User(own), Some(owner)) if owner != own => return Ok(Vec::new()),
        (scope, _) => scope,
    };
    let webhooks = store::list_webhooks(&state.pool, scope).await?;
    Ok(webhooks.into_iter().map(WebhookView::from).collect())
}

/// Creates a webhook; the answer is the only time its secret is shown.
#[utoipa::path(
    post,
    path = "/webhooks",
    tag = "webhooks",
    request_body = CreateWebhook,
    responses(
        (status = 201, body = WebhookWithSecret, headers(("location" = String, description = "The new webhook's URL"))),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
    )
)]
pub(crate) async fn create_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<impl IntoResponse, ApiError> {
    let body = create(&state, &user, body).await?;
    let location = format!("/api/v1/webhooks/{}", body.webhook.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    ))
}

/// Validates and creates a webhook for `user` (or, for an admin, the
/// `user_id` it names).
pub(crate) async fn create(
    state: &ApiState,
    user: &CurrentUser,
    body: CreateWebhook,
) -> Result<WebhookWithSecret, ApiError> {
    let new = body.into_new(user, state.allow_private_targets())?;
    validate::check_url_port(&new.url, state.config.allowed_ports)?;
    let created = create_within_quota(state, &new).await?;
    tracing::info!(
        webhook_id = created.id,
        user_id = created.user_id,
        "webhook created"
    );
    Ok(WebhookWithSecret {
        webhook: created.into(),
        secret: new.secret,
    })
}

/// One webhook.
#[utoipa::path(
    get,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = WebhookView),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such webhook, or another user's", body = ErrorBody),
    )
)]
pub(crate) async fn show_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
) -> Result<Json<WebhookView>, ApiError> {
    show(&state, &user, id).await.map(Json)
}

/// Webhook `id`, when `user` may see it.
pub(crate) async fn show(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
) -> Result<WebhookView, ApiError> {
    let webhook = store::find_webhook(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(webhook.into())
}

/// Changes the given fields of a webhook.
#[utoipa::path(
    patch,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's id")),
    request_body = UpdateWebhook,
    responses(
        (status = 200, body = WebhookView),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
    )
)]
pub(crate) async fn update_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    update(&state, &user, id, body).await.map(Json)
}

/// Validates and applies `body`'s changes to webhook `id`.
pub(crate) async fn update(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
    body: UpdateWebhook,
) -> Result<WebhookView, ApiError> {
    let mut body = body;
    let auth = std::mem::take(&mut body.auth);
    let mut changes = body.into_changes(state.allow_private_targets())?;
    if let Some(url) = &changes.url {
        validate::check_url_port(url, state.config.allowed_ports)?;
    }
    if changes.batch_max_events.is_some() || changes.template.is_some() {
        let current = store::find_webhook(&state.pool, user.scope(), id)
            .await?
            .ok_or(ApiError::NotFound("webhook"))?;
        validate::check_batch_without_template(
            changes.batch_max_events.unwrap_or(current.batch_max_events),
            match &changes.template {
                Some(template) => template.as_deref(),
                None => current.template.as_deref(),
            },
        )?;
    }
    if !matches!(auth, Nullable::Absent) || changes.headers.is_some() {
        let current = store::find_webhook(&state.pool, user.scope(), id)
            .await?
            .ok_or(ApiError::NotFound("webhook"))?;
        changes.auth =
            validate_auth::change_auth(auth, &current, &changes, state.allow_private_targets())?;
    }
    // An empty PATCH changes nothing, not even `updated_at`.
    let webhook = if changes.is_empty() {
        store::find_webhook(&state.pool, user.scope(), id).await?
    } else {
        store::update_webhook(&state.pool, user.scope(), id, &changes, &state.keys).await?
    };
    let webhook = webhook.ok_or(ApiError::NotFound("webhook"))?;
    tracing::info!(webhook_id = webhook.id, "webhook updated");
    Ok(webhook.into())
}

/// Deletes a webhook with its deliveries and logs.
#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn delete_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
) -> Result<StatusCode, ApiError> {
    delete(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes webhook `id` with its deliveries and logs.
pub(crate) async fn delete(state: &ApiState, user: &CurrentUser, id: i64) -> Result<(), ApiError> {
    if !store::delete_webhook(&state.pool, user.scope(), id).await? {
        return Err(ApiError::NotFound("webhook"));
    }
    tracing::info!(webhook_id = id, "webhook deleted");
    Ok(())
}

/// Switches a webhook on or off (and clears `disabled_reason`).
#[utoipa::path(
    post,
    path = "/webhooks/{id}/toggle",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's id")),
    responses(
        (status = 200, body = WebhookView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub(crate) async fn toggle_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
) -> Result<Json<WebhookView>, ApiError> {
    toggle(&state, &user, id).await.map(Json)
}

/// Switches webhook `id` on or off.
pub(crate) async fn toggle(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
) -> Result<WebhookView, ApiError> {
    let webhook = store::toggle_webhook(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    tracing::info!(
        webhook_id = id,
        is_active = webhook.is_active,
        "webhook toggled"
    );
    Ok(webhook.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn debug_output_never_shows_a_secret() {
        let create: CreateWebhook = serde_json::from_value(serde_json::json!({
            "name": "crm",
            "url": "https://example.com/hook",
            "events": ["task.created"],
            "secret": SECRET,
        }))
        .unwrap();
        let update: UpdateWebhook =
            serde_json::from_value(serde_json::json!({ "secret": SECRET })).unwrap();
        let rotate: super::super::secrets::RotateSecret =
            serde_json::from_value(serde_json::json!({ "secret": SECRET })).unwrap();
        let now = Utc::now();
        let shown_once = WebhookWithSecret {
            webhook: WebhookView {
                id: 1,
                user_id: 1,
                name: "crm".to_owned(),
                url: "https://example.com/hook".to_owned(),
                events: vec!["task.created".to_owned()],
                is_active: true,
                timeout_ms: None,
                headers: BTreeMap::new(),
                template: None,
                batch_max_events: None,
                batch_max_wait_ms: 1000,
                disabled_reason: None,
                previous_secret_expires_at: None,
                created_at: now,
                updated_at: now,
                filter: None,
                retry_schedule: None,
                ordering: "none".to_owned(),
                auth: None,
                rate_limit_per_s: None,
                breaker: BreakerView::closed(),
            },
            secret: SECRET.to_owned(),
        };
        for shown in [
            format!("{create:?}"),
            format!("{update:?}"),
            format!("{rotate:?}"),
            format!("{shown_once:?}"),
        ] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        // The secret is still what creation answers with.
        let body = serde_json::to_value(&shown_once).unwrap();
        assert_eq!(body["secret"], SECRET);
    }
}
