//! The API's route table, its router, and the OpenAPI document built from
//! the same table.

use std::sync::LazyLock;

use axum::extract::DefaultBodyLimit;
use axum::{Json, Router};
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::state::ApiState;
use super::{
    deliveries, ingest, logs, me, no_store, openapi, replay, secrets, stats, templates,
    test_delivery, webhooks,
};

/// Webhook configurations are small; anything bigger is a mistake or abuse.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Every route of the API, relative to `/api/v1`, with its OpenAPI
/// description. The one list both the router and the document are built
/// from: `routes!` takes each handler's method and path from its
/// `#[utoipa::path]`, so a route cannot be served without being documented.
/// Add routes only through `.routes(routes!(...))`, one path per call.
pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(me::show_me))
        .routes(routes!(me::list_events, ingest::publish_event))
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
        .routes(routes!(show_openapi))
        .routes(routes!(replay::replay_webhook))
}

/// The API, served under `/api/v1`.
pub fn router(state: ApiState) -> Router {
    let (api, _) = routes().split_for_parts();
    let api = api
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(no_store::forbid_caching))
        .with_state(state);
    Router::new().nest(openapi::PREFIX, api)
}

static DOCUMENT: LazyLock<Document> = LazyLock::new(|| openapi::document(routes()));

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub(crate) async fn show_openapi() -> Json<&'static Document> {
    Json(&DOCUMENT)
}
