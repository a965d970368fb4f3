//! How a [`UiError`] is shown: a redirect to the sign-in page, or an error
//! page in the shell. Kept apart from the type so that `error.rs` stays
//! below the shell (`layout` needs the session, whose extractor rejects with
//! `UiError`).

use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::error::UiError;
use super::i18n::Tr;
use super::layout::public_page;
use super::paths::login_path;

impl UiError {
    fn title(&self) -> &'static str {
        match self {
            UiError::SignInRequired { .. } => "Sign in",
            UiError::NotFound(_) => "Not found",
            UiError::Forbidden(_) => "Refused",
            UiError::BadRequest(_) => "Bad request",
            UiError::Conflict(_) => "Not possible right now",
            UiError::Busy(_) => "Busy: try again in a moment",
            UiError::Storage(_) | UiError::Internal(_) => "Something went wrong",
        }
    }

    fn explanation(&self) -> String {
        match self {
            UiError::NotFound("webhook") => {
                "There is no such webhook, or it is not yours.".to_owned()
            }
            UiError::Forbidden(_) => {
                format!("{self}. Reload the page you came from and submit the form again.")
            }
            UiError::Storage(_) | UiError::Internal(_) => {
                "The request failed on our side; it has been logged. Try again in a moment."
                    .to_owned()
            }
            other => {
                let text = other.to_string();
                let mut chars = text.chars();
                chars
                    .next()
                    .map(|first| first.to_uppercase().chain(chars).collect())
                    .unwrap_or(text)
            }
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match &self {
            UiError::SignInRequired { next } => {
                let target = match next {
                    Some(next) => login_path(next),
                    None => "/login".to_owned(),
                };
                return Redirect::to(&target).into_response();
            }
            UiError::Storage(e) => {
                tracing::error!(error = %e, "web UI request failed on storage");
            }
            UiError::Internal(e) => tracing::error!(error = %e, "web UI request failed"),
            _ => {}
        }
        let body = public_page(
            &Tr::default(),
            self.title(),
            html! {
                h1 { (self.title()) }
                p { (self.explanation()) }
                p { a href="/webhook/" { "Back to your webhooks" } }
            },
        );
        (self.status(), body).into_response()
    }
}
