//! The HTTP server: the admin API plus `/metrics`, `/healthz` and `/readyz`,
//! which every role serves.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;

use crate::consume::BrokerHealth;
use crate::metrics::Metrics;

/// How long `/readyz` waits for the database. The pool would keep retrying a
/// refused connection for its whole acquire timeout; a probe must answer
/// sooner than an orchestrator's probe timeout (Kubernetes: 1 s by default).
const DATABASE_PROBE_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Clone)]
pub struct OpsState {
    pub pool: PgPool,
    pub metrics: Metrics,
    /// `None` when this role does not use the broker.
    pub broker: Option<BrokerHealth>,
}

pub fn ops_router(state: OpsState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
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
