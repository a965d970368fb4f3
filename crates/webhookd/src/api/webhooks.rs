//! `/webhooks`: list, create, show, change, delete and toggle webhooks.
//!
//! Ownership is the storage layer's [`Scope`]: another user's webhook answers
//! 404 exactly like a missing one, so ids reveal nothing.

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::CurrentUser;
use super::error::ApiError;
use super::json::{ApiJson, Nullable};
use super::validate;
use super::ApiState;
use crate::storage::webhooks::{self as store, NewWebhook, Scope, Webhook, WebhookChanges};

/// A webhook as the API shows it; the secret is only ever shown on creation.
#[derive(Debug, Serialize)]
pub struct WebhookView {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub is_active: bool,
    pub timeout_ms: Option<i32>,
    pub headers: BTreeMap<String, String>,
    pub template: Option<String>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
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
            disabled_reason: w.disabled_reason,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
struct CreatedWebhook {
    #[serde(flatten)]
    webhook: WebhookView,
    secret: String,
}

/// `POST /webhooks`. Every field is optional here so that a missing one is
/// reported by validation, naming it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    name: Option<String>,
    url: Option<String>,
    events: Option<Vec<String>>,
    secret: Option<String>,
    is_active: Option<bool>,
    timeout_ms: Option<i64>,
    headers: Option<BTreeMap<String, String>>,
    template: Option<String>,
    /// Admins only: create the webhook for another user.
    user_id: Option<i64>,
}

/// `PATCH /webhooks/{id}`: absent fields stay as they are.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateWebhook {
    name: Nullable<String>,
    url: Nullable<String>,
    events: Nullable<Vec<String>>,
    secret: Nullable<String>,
    is_active: Nullable<bool>,
    timeout_ms: Nullable<i64>,
    headers: Nullable<BTreeMap<String, String>>,
    template: Nullable<String>,
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
        })
    }
}

impl WebhookChanges {
    fn is_empty(&self) -> bool {
        let WebhookChanges {
            name,
            url,
            events,
            secret,
            is_active,
            timeout_ms,
            headers,
            template,
        } = self;
        name.is_none()
            && url.is_none()
            && events.is_none()
            && secret.is_none()
            && is_active.is_none()
            && timeout_ms.is_none()
            && headers.is_none()
            && template.is_none()
    }
}

/// The `{id}` of a webhook route. An id that is not a number cannot name a
/// webhook, so it answers 404 like any other unknown id.
pub struct WebhookId(pub i64);

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
pub struct ListFilter {
    user_id: Option<i64>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListFilter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Query(pairs) =
            Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(|e| {
                ApiError::BadBody {
                    status: StatusCode::BAD_REQUEST,
                    message: e.body_text(),
                }
            })?;
        let mut filter = ListFilter { user_id: None };
        for (key, value) in pairs {
            match key.as_str() {
                "user_id" => {
                    let id = value.trim().parse().map_err(|_| {
                        ApiError::invalid("user_id", "`user_id` must be an integer")
                    })?;
                    filter.user_id = Some(id);
                }
                _ => {
                    return Err(ApiError::invalid(
                        &key,
                        format!("unknown query parameter `{key}`, expected `user_id`"),
                    ))
                }
            }
        }
        Ok(filter)
    }
}

pub async fn list_webhooks(
    State(state): State<ApiState>,
    user: CurrentUser,
    filter: ListFilter,
) -> Result<Json<Vec<WebhookView>>, ApiError> {
    let scope = match (user.scope(), filter.user_id) {
        (Scope::All, Some(owner)) => Scope::User(owner),
        (Scope::User(own), Some(owner)) if owner != own => return Ok(Json(Vec::new())),
        (scope, _) => scope,
    };
    let webhooks = store::list_webhooks(&state.pool, scope).await?;
    Ok(Json(webhooks.into_iter().map(WebhookView::from).collect()))
}

pub async fn create_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<impl IntoResponse, ApiError> {
    let new = body.into_new(&user, state.allow_private_targets())?;
    let created = store::create_webhook(&state.pool, &new)
        .await?
        .ok_or_else(|| ApiError::invalid("user_id", format!("no user with id {}", new.user_id)))?;
    tracing::info!(
        webhook_id = created.id,
        user_id = created.user_id,
        "webhook created"
    );
    let location = format!("/api/v1/webhooks/{}", created.id);
    let body = CreatedWebhook {
        webhook: created.into(),
        secret: new.secret,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    ))
}

pub async fn show_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook = store::find_webhook(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(webhook.into()))
}

pub async fn update_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    let changes = body.into_changes(state.allow_private_targets())?;
    // An empty PATCH changes nothing, not even `updated_at`.
    let webhook = if changes.is_empty() {
        store::find_webhook(&state.pool, user.scope(), id).await?
    } else {
        store::update_webhook(&state.pool, user.scope(), id, &changes).await?
    };
    let webhook = webhook.ok_or(ApiError::NotFound("webhook"))?;
    tracing::info!(webhook_id = webhook.id, "webhook updated");
    Ok(Json(webhook.into()))
}

pub async fn delete_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
) -> Result<StatusCode, ApiError> {
    if !store::delete_webhook(&state.pool, user.scope(), id).await? {
        return Err(ApiError::NotFound("webhook"));
    }
    tracing::info!(webhook_id = id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn toggle_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook = store::toggle_webhook(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    tracing::info!(
        webhook_id = id,
        is_active = webhook.is_active,
        "webhook toggled"
    );
    Ok(Json(webhook.into()))
}
