//! The JSON admin API under `/api/v1`: bearer-token auth ([`auth`]), one error
//! type ([`error`]), a JSON extractor that names bad fields ([`json`]), the
//! field rules ([`validate`]) and the resources ([`me`], [`webhooks`]).

pub mod auth;
pub mod error;
pub mod json;
pub mod me;
pub mod validate;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use sqlx::PgPool;

use crate::settings::Settings;
use error::ApiError;

/// Webhook configurations are small; anything bigger is a mistake or abuse.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
}

impl ApiState {
    /// Whether webhooks may target private addresses (local development).
    pub fn allow_private_targets(&self) -> bool {
        self.settings.delivery.allow_private_targets
    }
}

/// The API's routes, relative to `/api/v1`, for adding more before nesting.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/me", get(me::show_me))
        .route("/events", get(me::list_events))
        .route(
            "/webhooks",
            get(webhooks::list_webhooks).post(webhooks::create_webhook),
        )
        .route(
            "/webhooks/{id}",
            get(webhooks::show_webhook)
                .patch(webhooks::update_webhook)
                .delete(webhooks::delete_webhook),
        )
        .route("/webhooks/{id}/toggle", post(webhooks::toggle_webhook))
}

/// The API, served under `/api/v1`.
pub fn router(state: ApiState) -> Router {
    let api = routes()
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    Router::new().nest("/api/v1", api)
}
