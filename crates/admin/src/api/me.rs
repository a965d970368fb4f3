//! `/me` (who the token belongs to) and `/events` (what can be subscribed to).

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use webhookd_events::CATALOGUE;

use super::auth::CurrentUser;
use super::error::ErrorBody;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MeView {
    /// The `user_id` that events carry.
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) is_admin: bool,
    /// May publish events with `POST /api/v1/events` (admins always may).
    pub(crate) can_publish: bool,
}

/// One event of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventView {
    /// `entity.action`, also the broker routing key.
    #[schema(example = "task.created")]
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
}

/// The token's user.
#[utoipa::path(
    get,
    path = "/me",
    tag = "me",
    responses(
        (status = 200, body = MeView),
        (status = 401, description = "No token, or an invalid or revoked one", body = ErrorBody),
    )
)]
pub(crate) async fn show_me(CurrentUser(user): CurrentUser) -> Json<MeView> {
    let can_publish = user.may_publish();
    Json(MeView {
        id: user.id,
        name: user.name,
        is_admin: user.is_admin,
        can_publish,
    })
}

/// The catalogue, for building subscription pickers. Authenticated like the
/// rest of the API, though it holds nothing private.
#[utoipa::path(
    get,
    path = "/events",
    tag = "me",
    responses(
        (status = 200, body = [EventView]),
        (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn list_events(_user: CurrentUser) -> Json<Vec<EventView>> {
    Json(
        CATALOGUE
            .iter()
            .map(|spec| EventView {
                name: spec.name,
                description: spec.description,
            })
            .collect(),
    )
}
