//! How a [`UiError`] is shown: a redirect to the sign-in page, or an error
//! page in the shell. Kept apart from the type so that `error.rs` stays
//! below the shell (`layout` needs the session, whose extractor rejects with
//! `UiError`).
//!
//! `IntoResponse` has no request, so it cannot know the viewer: it marks
//! the response with what went wrong ([`ShownError`]), and the
//! [`render_errors`] middleware, which has the request, draws the page in
//! the viewer's language, with the signed-in header when there is a
//! session. Unknown paths get the same 404 page (`not_found`).

use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::error::UiError;
use super::i18n::{Lang, Tr};
use super::layout::{page, public_page};
use super::paths::login_path;
use super::session::{session_of, viewer, Session};
use super::state::UiState;

/// Marks the redirect of a request that needed a session (for the
/// sign-in page that keeps a posted form, `login.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignInNeeded;

/// What an error response is about, for `render_errors`.
#[derive(Debug, Clone)]
pub(crate) struct ShownError {
    kind: Kind,
    /// The error's own words (a refused form's reason), when it has any.
    detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotFound(&'static str),
    Forbidden,
    BadRequest,
    Conflict,
    Busy,
    Internal,
}

impl ShownError {
    fn of(e: &UiError) -> Option<ShownError> {
        let (kind, detail) = match e {
            UiError::SignInRequired { .. } => return None,
            UiError::NotFound(what) => (Kind::NotFound(what), None),
            UiError::Forbidden(_) => (Kind::Forbidden, None),
            UiError::BadRequest(text) => (Kind::BadRequest, Some(text.clone())),
            UiError::Conflict(text) => (Kind::Conflict, Some(text.clone())),
            UiError::Busy(text) => (Kind::Busy, Some(text.clone())),
            UiError::Storage(_) | UiError::Internal(_) => (Kind::Internal, None),
        };
        Some(ShownError { kind, detail })
    }

    fn title(&self, tr: &Tr) -> String {
        tr.t(match self.kind {
            Kind::NotFound(_) => "errors-not-found-title",
            Kind::Forbidden => "errors-forbidden-title",
            Kind::BadRequest => "errors-bad-request-title",
            Kind::Conflict => "errors-conflict-title",
            Kind::Busy => "errors-busy-title",
            Kind::Internal => "errors-internal-title",
        })
    }

    fn explanation(&self, tr: &Tr) -> Option<String> {
        Some(tr.t(match self.kind {
            Kind::NotFound("webhook") => "errors-not-found-webhook",
            Kind::NotFound("delivery") => "errors-not-found-delivery",
            Kind::NotFound(_) => "errors-not-found-page",
            Kind::Forbidden => "errors-forbidden-text",
            Kind::Internal => "errors-internal-text",
            Kind::BadRequest | Kind::Conflict | Kind::Busy => return None,
        }))
    }

    fn body(&self, tr: &Tr, session: Option<&Session>) -> Markup {
        let title = self.title(tr);
        let content = html! {
            h1 { (title) }
            @if let Some(text) = self.explanation(tr) { p { (text) } }
            @if let Some(detail) = &self.detail {
                // The API's own messages are English; ours are the viewer's.
                @if tr.lang == Lang::Ru && !detail.chars().any(|c| matches!(c, 'а'..='я' | 'А'..='Я' | 'ё' | 'Ё')) {
                    p lang="en" id="error-detail" { (capitalised(detail)) }
                } @else {
                    p id="error-detail" { (capitalised(detail)) }
                }
            }
            p { a href="/webhook/" { (tr.t("errors-back")) } }
        };
        match session {
            Some(session) => page(&title, session, content),
            None => public_page(tr, &title, content),
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match &self {
            UiError::SignInRequired { next } => {
                let target = match next {
                    Some(next) => login_path(next),
                    None => "/login".to_owned(),
                };
                let mut response = Redirect::to(&target).into_response();
                response.extensions_mut().insert(SignInNeeded);
                return response;
            }
            UiError::Storage(e) => {
                tracing::error!(error = %e, "web UI request failed on storage");
            }
            UiError::Internal(e) => tracing::error!(error = %e, "web UI request failed"),
            _ => {}
        }
        let Some(shown) = ShownError::of(&self) else {
            return self.status().into_response();
        };
        // In English without a header; `render_errors` draws it for the viewer.
        let mut response = (self.status(), shown.body(&Tr::default(), None)).into_response();
        response.extensions_mut().insert(shown);
        response
    }
}

/// Middleware: error pages in the viewer's language, with the signed-in
/// header when the request has a live session.
pub(crate) async fn render_errors(
    State(state): State<UiState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let Some(shown) = response.extensions().get::<ShownError>().cloned() else {
        return response;
    };
    let session = match session_of(&headers, &state).await {
        Ok(session) => session,
        // The database is down: the English page already drawn will do.
        Err(_) => return response,
    };
    let tr = session
        .as_ref()
        .map_or_else(|| viewer(&headers, None), |s| s.tr);
    let status = response.status();
    let mut redrawn = (status, shown.body(&tr, session.as_ref())).into_response();
    for (name, value) in response.headers() {
        if name != axum::http::header::CONTENT_LENGTH && name != axum::http::header::CONTENT_TYPE {
            redrawn.headers_mut().insert(name, value.clone());
        }
    }
    redrawn
}

/// The UI router's fallback: a 404 page for unknown pages; the JSON API's
/// and GraphQL's unknown paths keep their bare 404.
pub(crate) async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") || path.starts_with("/graphql") {
        return StatusCode::NOT_FOUND.into_response();
    }
    UiError::NotFound("page").into_response()
}
