//! The UI's one error type: every failure is an HTML page with the right
//! status (or, for a missing session, a redirect to the sign-in page).
//! Internals never reach the page; they go to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::layout::page;
use crate::api::error::ApiError;
use webhookd_store::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
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
            ApiError::Storage(e) => UiError::Storage(e),
            ApiError::MissingToken | ApiError::InvalidToken => {
                UiError::SignInRequired { next: None }
            }
            other => UiError::BadRequest(other.to_string()),
        }
    }
}

impl UiError {
    pub fn status(&self) -> StatusCode {
        match self {
            UiError::SignInRequired { .. } => StatusCode::SEE_OTHER,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            UiError::Forbidden(_) => StatusCode::FORBIDDEN,
            UiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::Storage(_) | UiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn title(&self) -> &'static str {
        match self {
            UiError::SignInRequired { .. } => "Sign in",
            UiError::NotFound(_) => "Not found",
            UiError::Forbidden(_) => "Refused",
            UiError::BadRequest(_) => "Bad request",
            UiError::Conflict(_) => "Not possible right now",
            UiError::Storage(_) | UiError::Internal(_) => "Something went wrong",
        }
    }

    fn explanation(&self) -> String {
        match self {
            UiError::NotFound("webhook") => {
                "There is no such webhook, or it is not yours.".to_owned()
            }
            UiError::Forbidden(_) => {
                format!("{self}. Reload the page you came from and submit the form again.")
            }
            UiError::Storage(_) | UiError::Internal(_) => {
                "The request failed on our side; it has been logged. Try again in a moment."
                    .to_owned()
            }
            other => {
                let text = other.to_string();
                let mut chars = text.chars();
                chars
                    .next()
                    .map(|first| first.to_uppercase().chain(chars).collect())
                    .unwrap_or(text)
            }
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match &self {
            UiError::SignInRequired { next } => {
                let target = match next {
                    Some(next) => super::login::login_path(next),
                    None => "/login".to_owned(),
                };
                return Redirect::to(&target).into_response();
            }
            UiError::Storage(e) => {
                tracing::error!(error = %e, "web UI request failed on storage");
            }
            UiError::Internal(e) => tracing::error!(error = %e, "web UI request failed"),
            _ => {}
        }
        let body = page(
            self.title(),
            None,
            html! {
                h1 { (self.title()) }
                p { (self.explanation()) }
                p { a href="/webhook/" { "Back to your webhooks" } }
            },
        );
        (self.status(), body).into_response()
    }
}
