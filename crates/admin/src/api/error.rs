//! The API's one error type. Every failure answers JSON `{"error": "..."}`
//! (plus `"field"` for invalid input); internals never reach the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use webhookd_store::StorageError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("invalid or revoked token")]
    InvalidToken,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// Input that parsed but breaks a rule; `field` names the first offender.
    #[error("{message}")]
    Invalid {
        field: Option<String>,
        message: String,
    },
    /// A body that could not be read or is not JSON at all.
    #[error("{message}")]
    BadBody { status: StatusCode, message: String },
    #[error("{0}")]
    Conflict(String),
    /// A per-user bound is reached for now (`quotas.rs`): 429 with
    /// `Retry-After`.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after_secs: u64,
    },
    /// The token is valid but its user may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A dependency (the broker) cannot take the request now: 503 with
    /// `Retry-After`; nothing was done.
    #[error("{message}")]
    Unavailable {
        message: String,
        retry_after_secs: u64,
    },
    #[error("internal server error")]
    Storage(#[source] StorageError),
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict(message) => ApiError::Conflict(message),
            other => ApiError::Storage(other),
        }
    }
}

impl ApiError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: Some(field.to_owned()),
            message: message.into(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::MissingToken | ApiError::InvalidToken => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadBody { status, .. } => *status,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Every error's JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, for people.
    pub(crate) error: String,
    /// The request field or query parameter at fault (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Storage(e) = &self {
            // The client gets a generic message; the cause goes to the log.
            tracing::error!(error = %e, "admin API request failed on storage");
        }
        let field = match &self {
            ApiError::Invalid { field, .. } => field.clone(),
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            field,
        };
        let mut response = (self.status(), Json(body)).into_response();
        // RFC 6750: a request without credentials gets a bare challenge, a bad
        // token gets `error="invalid_token"`.
        if let ApiError::Busy {
            retry_after_secs, ..
        }
        | ApiError::Unavailable {
            retry_after_secs, ..
        } = &self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        let challenge = match self {
            ApiError::MissingToken => Some("Bearer"),
            ApiError::InvalidToken => Some("Bearer error=\"invalid_token\""),
            _ => None,
        };
        if let Some(challenge) = challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
