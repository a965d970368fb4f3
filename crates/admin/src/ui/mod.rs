//! The web UI: server-rendered HTML on the seed's routes, usable without
//! JavaScript (a small script only adds the live template preview and
//! `confirm()` prompts).
//!
//! Sign-in is by API token ([`session`]: a server-side session in
//! `ui_sessions`, an HttpOnly SameSite=Lax cookie); every form carries the
//! session's CSRF token ([`form`]). Pages are `maud` templates, which escape
//! every interpolated value. Handlers validate with `api::validate` and read
//! and write through `webhookd_store`, exactly like the JSON API.
//!
//! Where things are: [`login`] (sign in/out), [`list`] (`/webhook/`),
//! [`edit`] + [`fields`] + [`webhook_form`] (create and edit forms, template
//! preview), [`details`] (one webhook and its buttons), [`actions`] (toggle,
//! test, rotate, retry, delete), [`logs`] (attempts), [`stats`] + [`charts`]
//! (dashboard), [`layout`] (page shell), [`error`] (error pages).

pub mod actions;
pub mod charts;
pub mod details;
pub mod edit;
pub mod error;
pub mod fields;
pub mod form;
pub mod layout;
pub mod list;
pub mod login;
pub mod logs;
pub mod session;
pub mod stats;
pub mod webhook_form;

use axum::extract::{FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::api::ApiState;
use error::UiError;

/// Every page is built from this state: the same one the JSON API uses, so
/// both share the pool, the settings and the test-delivery client.
pub type UiState = ApiState;

const STYLESHEET: &str = include_str!("assets/webhookd.css");
const SCRIPT: &str = include_str!("assets/webhookd.js");
pub const STYLESHEET_PATH: &str = "/static/webhookd.css";
pub const SCRIPT_PATH: &str = "/static/webhookd.js";

/// The web UI's routes, to be merged next to `api::router`.
pub fn router(state: UiState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to(list::LIST_PATH) }))
        .route("/login", get(login::show_login).post(login::sign_in))
        .route("/logout", get(login::show_logout).post(login::sign_out))
        .route("/webhook", get(|| async { Redirect::to(list::LIST_PATH) }))
        .route("/webhook/", get(list::show_list))
        .route("/webhook/new", get(edit::show_new).post(edit::submit_new))
        .route("/webhook/preview", post(edit::preview_template))
        .route("/webhook/stats", get(stats::show_stats))
        .route(
            "/webhook/{id}",
            get(details::show_details).post(actions::delete_at_once),
        )
        .route(
            "/webhook/{id}/edit",
            get(edit::show_edit).post(edit::submit_edit),
        )
        .route(
            "/webhook/{id}/delete",
            get(actions::confirm_delete).post(actions::delete_webhook),
        )
        .route(
            "/webhook/{id}/toggle",
            get(back_to_details).post(actions::toggle_webhook),
        )
        .route(
            "/webhook/{id}/test",
            get(back_to_details).post(actions::test_webhook),
        )
        .route(
            "/webhook/{id}/rotate-secret",
            get(back_to_details).post(actions::rotate_secret),
        )
        .route(
            "/webhook/{id}/retry",
            get(back_to_details).post(actions::retry_deliveries),
        )
        .route("/webhook/{id}/logs", get(logs::show_logs))
        .route("/webhook/{id}/logs/{log_id}", get(logs::show_attempt))
        .route(STYLESHEET_PATH, get(serve_stylesheet))
        .route(SCRIPT_PATH, get(serve_script))
        .layer(middleware::from_fn(set_security_headers))
        .with_state(state)
}

/// The `{id}` of a webhook page. A non-numeric id names nothing: 404.
pub struct WebhookPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for WebhookPath {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| UiError::NotFound("webhook"))?;
        raw.parse()
            .map(WebhookPath)
            .map_err(|_| UiError::NotFound("webhook"))
    }
}

/// The action routes answer POST only; a GET (a bookmarked or reloaded
/// result page) goes back to the webhook instead of a bare 405.
async fn back_to_details(WebhookPath(id): WebhookPath) -> Redirect {
    Redirect::to(&details::details_path(id))
}

async fn serve_stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLESHEET,
    )
}

async fn serve_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}

/// Headers on every UI response. The policy allows only our own stylesheet
/// and script (no inline code), so even a missed escape could not run a
/// script; framing is refused (clickjacking on the action buttons); pages
/// that show secrets are never cached.
async fn set_security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
