//! `/me` (who the token belongs to) and `/events` (what can be subscribed to).

use axum::Json;
use serde::Serialize;
use webhookd_events::{EventSpec, CATALOGUE};

use super::auth::CurrentUser;

#[derive(Debug, Serialize)]
pub struct MeView {
    /// The `user_id` that events carry.
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
}

pub async fn show_me(CurrentUser(user): CurrentUser) -> Json<MeView> {
    Json(MeView {
        id: user.id,
        name: user.name,
        is_admin: user.is_admin,
    })
}

/// The catalogue, for building subscription pickers. Authenticated like the
/// rest of the API, though it holds nothing private.
pub async fn list_events(_user: CurrentUser) -> Json<&'static [EventSpec]> {
    Json(CATALOGUE)
}
