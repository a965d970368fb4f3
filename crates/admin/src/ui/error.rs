//! The UI's one error type: every failure is an HTML page with the right
//! status (or, for a missing session, a redirect to the sign-in page).
//! Internals never reach the page; they go to the log.
//!
//! The page itself is rendered in `error_page.rs`: the extractors below the
//! page shell (state, session, form) reject with this type, so it must not
//! import the shell itself.

use axum::http::StatusCode;

use crate::api::error::ApiError;
use webhookd_store::StorageError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum UiError {
    /// No valid session: go and sign in, then come back to `next`.
    #[error("sign in first")]
    SignInRequired { next: Option<String> },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A form without the session's CSRF token, or with another one.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A per-user bound of the API's (`api/quotas.rs`), for now.
    #[error("{0}")]
    Busy(String),
    #[error("internal server error")]
    Storage(#[source] StorageError),
    #[error("internal server error")]
    Internal(String),
}

impl From<StorageError> for UiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(message) => UiError::Conflict(message),
            other => UiError::Storage(other),
        }
    }
}

/// Errors of API functions the UI calls directly (the test delivery).
impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(what) => UiError::NotFound(what),
            ApiError::Conflict(message) => UiError::Conflict(message),
            ApiError::Busy { message, .. } => UiError::Busy(message),
            ApiError::Storage(e) => UiError::Storage(e),
            ApiError::MissingToken | ApiError::InvalidToken => {
                UiError::SignInRequired { next: None }
            }
            other => UiError::BadRequest(other.to_string()),
        }
    }
}

impl UiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            UiError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            UiError::Storage(_) | UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}
