//! Bearer-token authentication as an extractor: a handler that takes a
//! [`CurrentUser`] cannot run for an unauthenticated request.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::error::ApiError;
use super::state::ApiState;
use webhookd_store::users::{self, User};
use webhookd_store::webhooks::Scope;

/// The user whose valid token came with the request.
#[derive(Debug, Clone)]
pub(crate) struct CurrentUser(pub User);

impl CurrentUser {
    /// The webhooks this user may see and change.
    pub(crate) fn scope(&self) -> Scope {
        if self.0.is_admin {
            Scope::All
        } else {
            Scope::User(self.0.id)
        }
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    ApiState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers)?;
        authenticate(&ApiState::from_ref(state), token).await
    }
}

/// The user whose valid token `token` is.
pub(crate) async fn authenticate(state: &ApiState, token: &str) -> Result<CurrentUser, ApiError> {
    users::authenticate(&state.pool, token)
        .await?
        .map(CurrentUser)
        .ok_or(ApiError::InvalidToken)
}

/// The token of an `Authorization: Bearer <token>` header (scheme matched
/// case-insensitively, as RFC 9110 says).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::MissingToken)?
        .to_str()
        .map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::InvalidToken)?;
    // Other schemes (Basic, ...) carry no bearer credentials at all.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::MissingToken);
    }
    Ok(token.trim())
}
