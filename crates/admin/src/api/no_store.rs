//! `Cache-Control: no-store` on every API answer. Several carry a secret (a
//! webhook created with a generated secret, a rotated secret, a webhook's
//! receiver credentials) and every one carries a tenant's data; none is
//! worth a copy in a shared proxy or a browser's disk cache, and marking all
//! of them means a new route cannot forget.

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

pub(crate) async fn forbid_caching(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
