//! The HTTP server: the admin API plus `/metrics`, `/healthz` and `/readyz`,
//! which every role serves.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::FutureExt;
use serde_json::json;
use sqlx::PgPool;
use tracing::error;

use crate::api::error::ErrorBody;
use crate::graphql::GraphqlMetrics;
use webhookd_worker::background::panic_message;
use webhookd_worker::broker::BrokerHealth;
use webhookd_worker::metrics::Metrics;

/// How long `/readyz` waits for the database. The pool would keep retrying a
/// refused connection for its whole acquire timeout; a probe must answer
/// sooner than an orchestrator's probe timeout (Kubernetes: 1 s by default).
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Clone)]
pub struct OpsState {
    pub pool: PgPool,
    pub metrics: Metrics,
    /// The admin side's own metrics (GraphQL subscriptions).
    pub admin_metrics: GraphqlMetrics,
    /// `None` when this role does not use the broker.
    pub broker: Option<BrokerHealth>,
}

/// `/healthz`, `/readyz`, and `/metrics` unless `http.metrics_listen` gives
/// it a listener of its own (`separate_metrics`): then the public listener
/// answers 404 for it, since its text names every tenant's receiver hosts.
pub fn ops_router(state: OpsState, separate_metrics: bool) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz));
    let router = if separate_metrics {
        router
    } else {
        router.route("/metrics", get(metrics))
    };
    router.with_state(state)
}

/// `/metrics` alone, for the listener of `http.metrics_listen`.
pub fn metrics_router(state: OpsState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render() + &state.admin_metrics.render(),
    )
}

/// Alive: the process answers. Deliberately checks nothing external, so an
/// outage of a dependency never gets healthy replicas restarted.
async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let probe = sqlx::query("SELECT 1").execute(&state.pool);
    let database = tokio::time::timeout(DATABASE_PROBE_TIMEOUT, probe)
        .await
        .is_ok_and(|answered| answered.is_ok());
    let broker = state.broker.as_ref().map(BrokerHealth::is_up);
    let ready = database && broker.unwrap_or(true);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": if database { "up" } else { "down" },
        "broker": match broker { Some(true) => "up", Some(false) => "down", None => "unused" },
    });
    (status, Json(body))
}

/// Middleware: a handler that panics answers 500 with the API's JSON error,
/// and the panic is logged with the request's method and path. Without it
/// hyper drops the connection (the client sees a reset) and only stderr
/// tells why.
pub async fn catch_panics(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(payload) => {
            error!(%method, path, panic = panic_message(&*payload), "a request handler panicked");
            let body = ErrorBody {
                error: "internal server error".to_owned(),
                field: None,
            };
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::middleware::from_fn;
    use axum::routing::get;
    use axum::Router;
    use reqwest::StatusCode;
    use serde_json::Value;

    use super::catch_panics;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_json_and_the_server_keeps_serving() {
        async fn boom() -> &'static str {
            let id = 7;
            panic!("webhook {id} broke the handler");
        }
        let router = Router::new()
            .route("/boom", get(boom))
            .route("/fine", get(|| async { "fine" }))
            .layer(from_fn(catch_panics));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::new();

        let boom = client
            .get(format!("http://{addr}/boom"))
            .send()
            .await
            .unwrap();
        assert_eq!(boom.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body: Value = serde_json::from_str(&boom.text().await.unwrap()).unwrap();
        assert_eq!(body["error"], "internal server error");

        let fine = client
            .get(format!("http://{addr}/fine"))
            .send()
            .await
            .unwrap();
        assert_eq!(fine.status(), StatusCode::OK);
        assert_eq!(fine.text().await.unwrap(), "fine");
    }
}
