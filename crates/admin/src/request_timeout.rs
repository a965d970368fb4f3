//! `http.request_timeout_secs`: a request must be answered (its body read
//! and its response head produced) within this, else it answers 503 and the
//! connection is closed. The header-read timeout stops at the end of the
//! headers; without this a client sending its body one byte at a time
//! would keep a connection busy, and so safe from the connection cap's
//! eviction, forever. Only the head is timed: a streaming answer (live logs,
//! a WebSocket upgrade) is produced at once and is not cut.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::api::error::ErrorBody;

pub(crate) async fn limit_request_time(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::info!(%method, path, "request timed out");
            let body = ErrorBody {
                error: "the request took too long".to_owned(),
                field: None,
            };
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            // Its body may be unread: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
