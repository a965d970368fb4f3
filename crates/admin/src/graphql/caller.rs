//! Who is asking: the user a request's or a connection's token belongs to,
//! put into the GraphQL context by the HTTP and WebSocket handlers and read
//! by every resolver. Introspection needs no token; every data field does.

use async_graphql::Context;
use tokio_util::sync::CancellationToken;

use super::error::{coded, to_graphql, UNAVAILABLE};
use crate::api::auth::{authenticate, CurrentUser};
use crate::api::error::ApiError;
use crate::api::state::ApiState;

/// The outcome of authenticating a request.
pub(crate) enum Caller {
    User(CurrentUser),
    /// Every field answers this.
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Refusal {
    MissingToken,
    InvalidToken,
    /// The token could not be checked (the database is away).
    Unavailable,
}

impl Caller {
    /// The outcome of checking `token` (`None`: no token sent).
    pub(crate) async fn authenticate(state: &ApiState, token: Option<&str>) -> Caller {
        let Some(token) = token else {
            return Caller::Refused(Refusal::MissingToken);
        };
        match authenticate(state, token).await {
            Ok(user) => Caller::User(user),
            Err(ApiError::Storage(e)) => {
                tracing::error!(error = %e, "checking a GraphQL token failed on storage");
                Caller::Refused(Refusal::Unavailable)
            }
            Err(_) => Caller::Refused(Refusal::InvalidToken),
        }
    }
}

/// A WebSocket connection's handle for the subscriptions it carries:
/// cancelling `cut_off` closes the connection (a subscriber too slow to keep
/// up is cut off whole, as it could not even read an error message).
#[derive(Clone)]
pub(crate) struct Connection {
    pub(crate) cut_off: CancellationToken,
}

/// The authenticated user, or the error every field of the request gets.
pub(crate) fn current_user<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a CurrentUser> {
    match ctx.data_opt::<Caller>() {
        Some(Caller::User(user)) => Ok(user),
        Some(Caller::Refused(refusal)) => Err(refused(*refusal)),
        None => Err(refused(Refusal::MissingToken)),
    }
}

pub(crate) fn refused(refusal: Refusal) -> async_graphql::Error {
    match refusal {
        Refusal::MissingToken => to_graphql(ApiError::MissingToken),
        Refusal::InvalidToken => to_graphql(ApiError::InvalidToken),
        Refusal::Unavailable => coded(UNAVAILABLE, "authentication is unavailable; try again"),
    }
}
