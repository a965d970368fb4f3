//! `POST /webhooks/{id}/rotate-secret`: a new secret, with the old one still
//! accepted for a grace period so receivers can switch without failures.

use std::fmt;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::json::OptionalJson;
use super::state::ApiState;
use super::validate;
use super::webhooks::{Redacted, WebhookId, WebhookWithSecret};
use webhookd_store::webhooks as store;

pub(crate) const DEFAULT_GRACE_SECS: i64 = 24 * 60 * 60;
pub(crate) const MAX_GRACE_SECS: i64 = 7 * 24 * 60 * 60;

/// Both fields are optional; an empty body is fine. `Debug` hides the secret.
#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RotateSecret {
    /// The new secret (16 to 256 printable ASCII characters); generated
    /// (`whsec_` + base64 of 32 random bytes) when absent.
    pub(crate) secret: Option<String>,
    /// How long the old secret stays valid: 0 to 604800 (7 days), default
    /// 86400. 0 revokes it at once (a leaked secret).
    #[schema(minimum = 0, maximum = 604800, default = 86400)]
    pub(crate) grace_period_secs: Option<i64>,
}

impl fmt::Debug for RotateSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotateSecret")
            .field("secret", &self.secret.as_ref().map(|_| Redacted))
            .field("grace_period_secs", &self.grace_period_secs)
            .finish()
    }
}

/// Rotates the secret. During the grace period deliveries carry signatures
/// made with both secrets, so a receiver verifies with either.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    params(("id" = i64, Path, description = "The webhook's id")),
    request_body(content = Option<RotateSecret>, description = "Optional"),
    responses(
        (status = 200, description = "The webhook with its new `secret` and `previous_secret_expires_at`", body = WebhookWithSecret),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "An invalid field, named in `field`", body = ErrorBody),
    )
)]
pub(crate) async fn rotate_secret(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
    OptionalJson(body): OptionalJson<RotateSecret>,
) -> Result<Json<WebhookWithSecret>, ApiError> {
    rotate(&state, &user, id, body).await.map(Json)
}

/// Validates `body` and rotates webhook `id`'s secret.
pub(crate) async fn rotate(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
    body: RotateSecret,
) -> Result<WebhookWithSecret, ApiError> {
    let secret = match body.secret {
        Some(secret) => validate::check_secret(secret)?,
        None => webhookd_signing::generate_secret(),
    };
    let grace = check_grace_period(body.grace_period_secs.unwrap_or(DEFAULT_GRACE_SECS))?;
    let webhook = store::rotate_secret(&state.pool, user.scope(), id, &secret, grace, &state.keys)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    let expires: Option<DateTime<Utc>> = webhook.previous_secret_expires_at;
    tracing::info!(
        webhook_id = id,
        previous_secret_expires_at = ?expires,
        "webhook secret rotated"
    );
    Ok(WebhookWithSecret {
        webhook: webhook.into(),
        secret,
    })
}

fn check_grace_period(secs: i64) -> Result<Duration, ApiError> {
    u64::try_from(secs)
        .ok()
        .filter(|s| *s <= MAX_GRACE_SECS as u64)
        .map(Duration::from_secs)
        .ok_or_else(|| {
            ApiError::invalid(
                "grace_period_secs",
                format!("`grace_period_secs` must be between 0 and {MAX_GRACE_SECS} (7 days)"),
            )
        })
}
