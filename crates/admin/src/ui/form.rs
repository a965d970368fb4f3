//! Submitted forms. [`CsrfForm`] is the only way a UI handler receives a
//! POST body: it requires a valid session and the session's CSRF token in
//! the `_csrf` field, so a handler cannot forget the check.
//!
//! Bodies are parsed into name/value pairs rather than a serde struct:
//! repeated names (event checkboxes) are ordinary in HTML forms, and a
//! missing field is simply empty text, reported by validation like the API.

use axum::extract::{FromRequest, FromRequestParts, Request};
use maud::{html, Markup};

use super::error::UiError;
use super::session::{random_token, Session};
use super::state::UiState;

/// Webhook forms are small; the template is the biggest field (64 KiB max).
const MAX_FORM_BYTES: usize = 256 * 1024;
pub(crate) const CSRF_FIELD: &str = "_csrf";
/// Each rendered form's one-time key (`submission.rs`).
pub(crate) const FORM_KEY_FIELD: &str = "_form";

/// The name/value pairs of a submitted form, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FormFields(Vec<(String, String)>);

impl FormFields {
    pub(crate) fn parse(body: &[u8]) -> Self {
        FormFields(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`; empty text when absent.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of `name` (checkboxes).
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// A POSTed form from a signed-in user whose CSRF token checked out.
pub(crate) struct CsrfForm {
    pub(crate) session: Session,
    pub(crate) fields: FormFields,
}

impl FromRequest<UiState> for CsrfForm {
    type Rejection = UiError;

    async fn from_request(request: Request, state: &UiState) -> Result<Self, UiError> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| UiError::BadRequest("the form is too large".to_owned()))?;
        let fields = FormFields::parse(&bytes);
        if !session.csrf_matches(fields.get(CSRF_FIELD)) {
            tracing::warn!(
                user_id = session.user.id,
                path = parts.uri.path(),
                "web UI form refused: missing or wrong CSRF token"
            );
            return Err(UiError::Forbidden(
                "The form's security token is missing or out of date",
            ));
        }
        Ok(CsrfForm { session, fields })
    }
}

/// The hidden fields every form carries: the CSRF token and a one-time key.
pub(crate) fn csrf_input(session: &Session) -> Markup {
    html! {
        input type="hidden" name=(CSRF_FIELD) value=(session.csrf_token);
        input type="hidden" name=(FORM_KEY_FIELD) value=(random_token());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_keep_every_value_and_absent_ones_read_empty() {
        let form = FormFields::parse(b"events=task.*&name=A+%26+B&events=deal.won&x=");
        assert_eq!(form.all("events"), ["task.*", "deal.won"]);
        assert_eq!(form.get("name"), "A & B");
        assert_eq!(form.get("missing"), "");
        assert!(form.has("x"));
        assert!(!form.has("missing"));
    }
}
