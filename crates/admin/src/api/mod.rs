//! The JSON admin API under `/api/v1`: bearer-token auth ([`auth`]), one error
//! type ([`error`]), a JSON extractor that names bad fields ([`json`]), query
//! strings ([`query`]), the field rules ([`validate`]) and the resources
//! ([`me`], [`webhooks`], [`secrets`], [`test_delivery`], [`deliveries`],
//! [`logs`], [`stats`], [`templates`]), described by the OpenAPI document ([`openapi`]).
//!
//! Handlers stay thin: they parse and check input, call one or two storage
//! functions (`webhookd_store`), and shape the answer, so the web UI can call
//! the same storage functions.

pub mod auth;
pub mod deliveries;
pub mod error;
pub mod json;
pub mod logs;
pub mod me;
pub mod openapi;
pub mod query;
pub mod secrets;
pub mod stats;
pub mod templates;
pub mod test_delivery;
pub mod validate;
pub mod webhooks;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use error::ApiError;
use webhookd_worker::deliver::Deliverer;

/// Webhook configurations are small; anything bigger is a mistake or abuse.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub config: ApiConfig,
    /// Sends test deliveries, through the same code as real ones.
    pub deliverer: Deliverer,
}

/// The delivery settings the API applies to what it validates and tests.
#[derive(Debug, Clone, Copy)]
pub struct ApiConfig {
    /// Whether webhooks may target private addresses (local development).
    pub allow_private_targets: bool,
    /// A test delivery's timeout when its webhook sets none.
    pub default_timeout: Duration,
}

impl ApiState {
    /// Whether webhooks may target private addresses (local development).
    pub fn allow_private_targets(&self) -> bool {
        self.config.allow_private_targets
    }
}

/// Every route of the API, relative to `/api/v1`, with its OpenAPI
/// description. The one list both the router and the document are built
/// from: `routes!` takes each handler's method and path from its
/// `#[utoipa::path]`, so a route cannot be served without being documented.
/// Add routes only through `.routes(routes!(...))`, one path per call.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(me::show_me))
        .routes(routes!(me::list_events))
        .routes(routes!(templates::list_templates))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(
            webhooks::show_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::toggle_webhook))
        .routes(routes!(secrets::rotate_secret))
        .routes(routes!(test_delivery::test_webhook))
        .routes(routes!(deliveries::retry_deliveries))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(logs::list_logs))
        .routes(routes!(logs::show_log))
        .routes(routes!(stats::show_stats))
        .routes(routes!(openapi::show_openapi))
}

/// The API, served under `/api/v1`.
pub fn router(state: ApiState) -> Router {
    let (api, _) = routes().split_for_parts();
    let api = api
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    Router::new().nest(openapi::PREFIX, api)
}
