//! What every page is given, and the `{id}` of a webhook page.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::error::UiError;
use crate::api::ApiState;

/// Every page is built from this state: the same one the JSON API uses, so
/// both share the pool, the settings and the test-delivery client.
pub(crate) type UiState = ApiState;

/// The `{id}` of a webhook page. A non-numeric id names nothing: 404.
pub(crate) struct WebhookPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for WebhookPath {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| UiError::NotFound("webhook"))?;
        raw.parse()
            .map(WebhookPath)
            .map_err(|_| UiError::NotFound("webhook"))
    }
}
