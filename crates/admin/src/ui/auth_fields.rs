//! The webhook form's authentication fields (SPEC §14 `auth`): a type select
//! (none, basic, bearer, OAuth2, mTLS) and each type's fields, read from the
//! form and checked with the API's rule (`api::validate_auth`), and the
//! details page's line about it.
//!
//! Secret inputs are never filled back from a stored webhook: on edit an
//! empty one means "keep the stored secret" (the API's rule for a value of
//! the stored type), and a hint says so.

use std::fmt;

use maud::{html, Markup};
use serde_json::{Map, Value};
use webhookd_events::{AuthKind, AuthView, StoredAuth};

use super::form::FormFields;
use super::i18n::Tr;
use crate::api::error::ApiError;
use crate::api::validate_auth;
use crate::api::webhooks::Redacted;

/// The auth fields as typed. Its `Debug` hides the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct AuthInput {
    /// `""` (none), `basic`, `bearer`, `oauth2` or `mtls`.
    pub(crate) kind: String,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) token: String,
    pub(crate) token_url: String,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) scope: String,
    pub(crate) client_cert_pem: String,
    pub(crate) client_key_pem: String,
    /// What the webhook has stored (edit only): secrets of that type may be
    /// left empty to keep them.
    pub(crate) stored: Option<AuthView>,
}

impl fmt::Debug for AuthInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthInput")
            .field("kind", &self.kind)
            .field("username", &self.username)
            .field("password", &Redacted)
            .field("token", &Redacted)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &Redacted)
            .field("scope", &self.scope)
            .field("client_cert_pem", &self.client_cert_pem)
            .field("client_key_pem", &Redacted)
            .field("stored", &self.stored)
            .finish()
    }
}

/// A form input's name for an `auth` field (`auth_password`).
fn input_name(field: &str) -> String {
    format!("auth_{field}")
}

impl AuthInput {
    pub(crate) fn from_form(form: &FormFields) -> Self {
        let get = |field: &str| form.get(&input_name(field)).trim().to_owned();
        AuthInput {
            kind: get("type"),
            username: get("username"),
            password: get("password"),
            token: get("token"),
            token_url: get("token_url"),
            client_id: get("client_id"),
            client_secret: get("client_secret"),
            scope: get("scope"),
            // PEM keeps its line breaks; only the ends are trimmed.
            client_cert_pem: get("client_cert_pem"),
            client_key_pem: get("client_key_pem"),
            stored: None,
        }
    }

    /// A stored webhook's public fields; secrets stay empty.
    pub(crate) fn from_view(view: Option<&AuthView>) -> Self {
        let mut input = AuthInput {
            stored: view.cloned(),
            kind: view
                .map(|v| v.kind().as_str().to_owned())
                .unwrap_or_default(),
            ..AuthInput::default()
        };
        match view {
            Some(AuthView::Basic { username }) => input.username.clone_from(username),
            Some(AuthView::OAuth2 {
                token_url,
                client_id,
                scope,
            }) => {
                input.token_url.clone_from(token_url);
                input.client_id.clone_from(client_id);
                input.scope = scope.clone().unwrap_or_default();
            }
            Some(AuthView::Mtls { client_cert_pem }) => {
                input.client_cert_pem.clone_from(client_cert_pem);
            }
            Some(AuthView::Bearer {}) | None => {}
        }
        input
    }

    fn text(&self, field: &str) -> &str {
        match field {
            "username" => &self.username,
            "password" => &self.password,
            "token" => &self.token,
            "token_url" => &self.token_url,
            "client_id" => &self.client_id,
            "client_secret" => &self.client_secret,
            "scope" => &self.scope,
            "client_cert_pem" => &self.client_cert_pem,
            "client_key_pem" => &self.client_key_pem,
            _ => "",
        }
    }

    /// The checked value: `None` for "no auth". Only the selected type's
    /// fields count; an empty one is left out (so, on edit, a secret of the
    /// stored type is kept).
    pub(crate) fn check(&self, allow_private: bool) -> Result<Option<StoredAuth>, ApiError> {
        if self.kind.is_empty() {
            return Ok(None);
        }
        let mut map = Map::new();
        map.insert("type".to_owned(), Value::String(self.kind.clone()));
        if let Some(kind) = AuthKind::parse(&self.kind) {
            for field in kind.fields() {
                let text = self.text(field);
                if !text.is_empty() {
                    map.insert((*field).to_owned(), Value::String(text.to_owned()));
                }
            }
        }
        validate_auth::check_auth(Value::Object(map), self.stored.as_ref(), allow_private).map(Some)
    }
}

/// The form's id for a field an error names (`auth.password` → its input).
pub(crate) fn field_id(field: &str) -> Option<String> {
    field
        .strip_prefix("auth.")
        .map(input_name)
        .or_else(|| (field == "auth").then(|| input_name("type")))
}

struct FieldSpec {
    field: &'static str,
    secret: bool,
    multiline: bool,
}

const fn spec(field: &'static str, secret: bool, multiline: bool) -> FieldSpec {
    FieldSpec {
        field,
        secret,
        multiline,
    }
}

const BASIC: &[FieldSpec] = &[
    spec("username", false, false),
    spec("password", true, false),
];
const BEARER: &[FieldSpec] = &[spec("token", true, false)];
const OAUTH2: &[FieldSpec] = &[
    spec("token_url", false, false),
    spec("client_id", false, false),
    spec("client_secret", true, false),
    spec("scope", false, false),
];
const MTLS: &[FieldSpec] = &[
    spec("client_cert_pem", false, true),
    spec("client_key_pem", true, true),
];

fn specs(kind: AuthKind) -> &'static [FieldSpec] {
    match kind {
        AuthKind::Basic => BASIC,
        AuthKind::Bearer => BEARER,
        AuthKind::OAuth2 => OAUTH2,
        AuthKind::Mtls => MTLS,
    }
}

/// The type's name in people's words (the select's option).
fn kind_label(tr: &Tr, kind: AuthKind) -> String {
    tr.t(&format!("form-auth-kind-{}", kind.as_str()))
}

/// The type's technical name, shown as code beside the words.
fn kind_term(kind: AuthKind) -> &'static str {
    match kind {
        AuthKind::Basic => "HTTP Basic",
        AuthKind::Bearer => "Authorization: Bearer",
        AuthKind::OAuth2 => "OAuth2 client_credentials",
        AuthKind::Mtls => "mTLS",
    }
}

/// The fieldset. `error(field)` is the markup of the problems of an API
/// field name.
pub(crate) fn fieldset(
    tr: &Tr,
    input: &AuthInput,
    error: impl Fn(&str) -> Option<Markup>,
) -> Markup {
    let type_error = error("auth.type").or_else(|| error("auth"));
    html! {
        fieldset class="auth" {
            legend { (tr.t("form-auth-legend")) }
            p class="hint" id="auth-hint" {
                (tr.t("form-auth-hint"))
                @if input.stored.is_some() { " " (tr.t("form-auth-hint-keep")) }
            }
            div class="field" {
                label for="auth_type" { (tr.t("form-auth-type")) }
                select id="auth_type" name="auth_type"
                    aria-describedby={ "auth-hint" @if type_error.is_some() { " auth_type-error" } }
                    aria-invalid=[type_error.as_ref().map(|_| "true")] {
                    option value="" selected[input.kind.is_empty()] { (tr.t("form-auth-kind-none")) }
                    @for kind in AuthKind::ALL {
                        option value=(kind.as_str()) selected[input.kind == kind.as_str()] { (kind_label(tr, kind)) }
                    }
                }
                @if let Some(message) = type_error {
                    p class="field-error" id="auth_type-error" { (message) }
                }
            }
            @for kind in AuthKind::ALL {
                fieldset class="auth-kind" data-auth-kind=(kind.as_str()) {
                    legend { (kind_label(tr, kind)) ", " code { (kind_term(kind)) } " " (tr.t("form-auth-when-selected")) }
                    @for spec in specs(kind) {
                        @let id = input_name(spec.field);
                        @let message = error(&format!("auth.{}", spec.field));
                        @let stored_hint = spec.secret && input.stored.as_ref().map(AuthView::kind) == Some(kind);
                        @let described = {
                            let ids: Vec<String> = message.as_ref().map(|_| format!("{id}-error")).into_iter()
                                .chain(stored_hint.then(|| format!("{id}-hint"))).collect();
                            (!ids.is_empty()).then(|| ids.join(" "))
                        };
                        div class="field" {
                            label for=(id) {
                                (tr.t(&format!("form-auth-{}", spec.field.replace('_', "-"))))
                                // The format's name, as code in either language.
                                @if spec.multiline { " (" code { "PEM" } ")" }
                            }
                            @if stored_hint {
                                p class="hint" id={ (id) "-hint" } { (tr.t("form-auth-stored")) }
                            }
                            @if spec.multiline {
                                textarea id=(id) name=(id) rows="4" spellcheck="false" autocomplete="off" translate="no"
                                    aria-invalid=[message.as_ref().map(|_| "true")]
                                    aria-describedby=[described] {
                                    @if !spec.secret { (input.text(spec.field)) }
                                }
                            } @else {
                                input id=(id) name=(id)
                                    type=(if spec.secret { "password" } else { "text" })
                                    autocomplete=(if spec.secret { "new-password" } else { "off" })
                                    spellcheck="false"
                                    value=(if spec.secret { "" } else { input.text(spec.field) })
                                    aria-invalid=[message.as_ref().map(|_| "true")]
                                    aria-describedby=[described];
                            }
                            @if let Some(message) = message {
                                p class="field-error" id={ (id) "-error" } { (message) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The details page's line: the type and public fields, never a secret.
pub(crate) fn summary(tr: &Tr, view: Option<&AuthView>) -> Markup {
    html! {
        @match view {
            None => (tr.t("form-auth-kind-none")),
            Some(AuthView::Basic { username }) => {
                (kind_label(tr, AuthKind::Basic)) ", " code { "HTTP Basic" } ". "
                (tr.t("form-auth-username")) ": " code { (username) }
            }
            Some(AuthView::Bearer {}) => { (kind_label(tr, AuthKind::Bearer)) ", " code { "Bearer" } }
            Some(AuthView::OAuth2 { token_url, client_id, scope }) => {
                (kind_label(tr, AuthKind::OAuth2)) ", " code { "OAuth2" } ". "
                (tr.t("form-auth-token-url")) ": " code { (token_url) } "; "
                (tr.t("form-auth-client-id")) ": " code { (client_id) }
                @if let Some(scope) = scope { "; " (tr.t("form-auth-scope")) ": " code { (scope) } }
            }
            Some(AuthView::Mtls { client_cert_pem }) => {
                (kind_label(tr, AuthKind::Mtls)) ", " code { "mTLS" }
                details { summary { (tr.t("form-auth-certificate")) } pre class="body" tabindex="0" { code { (client_cert_pem) } } }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_selected_types_non_empty_fields_are_sent() {
        let input = AuthInput {
            kind: "basic".into(),
            username: "u".into(),
            password: "s3cret".into(),
            token: "ignored".into(),
            ..AuthInput::default()
        };
        let checked = input.check(false).unwrap().unwrap();
        assert_eq!(
            checked.as_json(),
            &serde_json::json!({"type": "basic", "username": "u", "password": "s3cret"})
        );
        assert!(!format!("{input:?}").contains("s3cret"));
        assert_eq!(AuthInput::default().check(false).unwrap(), None);
    }

    #[test]
    fn on_edit_an_empty_secret_keeps_the_stored_one_and_is_never_filled_back() {
        let view = AuthView::Basic {
            username: "u".into(),
        };
        let mut input = AuthInput::from_view(Some(&view));
        assert_eq!(input.kind, "basic");
        assert!(input.password.is_empty());
        input.username = "v".into();
        let checked = input.check(false).unwrap().unwrap();
        assert_eq!(
            checked.as_json(),
            &serde_json::json!({"type": "basic", "username": "v"})
        );
        let page = fieldset(&Tr::default(), &input, |_| None).into_string();
        assert!(page.contains("leave empty to keep it"));
    }

    #[test]
    fn errors_point_at_their_inputs() {
        assert_eq!(field_id("auth.password").as_deref(), Some("auth_password"));
        assert_eq!(field_id("auth").as_deref(), Some("auth_type"));
        assert_eq!(field_id("url"), None);
    }
}
