//! The rules for a webhook's `auth` (SPEC §14), for the API, GraphQL and the
//! web UI alike. A 422 names the field as `auth.<field>` (`auth` for the
//! value as a whole) and never quotes a secret.
//!
//! On a change, a value of the type already stored may leave a secret field
//! out: the stored secret is kept (storage merges it), so a client can change
//! a username without sending the password again. A new type needs all its
//! fields; a new certificate needs its key, so the pair is checked together.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use webhookd_events::receiver_auth::SECRET_FIELDS;
use webhookd_events::{AuthKind, AuthView, StoredAuth};
use webhookd_store::webhooks::{Webhook, WebhookChanges};
use webhookd_worker::tls_clients;

use super::error::ApiError;
use super::json::Nullable;
use super::validate;

pub(crate) const MAX_AUTH_FIELD_LEN: usize = 4096;
pub(crate) const MAX_PEM_LEN: usize = 64 * 1024;

/// Checks `raw` (an `auth` object as sent). `stored`: what the webhook has
/// now; secrets of that type may then be left out (and the key, while the
/// certificate stays the same).
pub(crate) fn check_auth(
    raw: Value,
    stored: Option<&AuthView>,
    allow_private: bool,
) -> Result<StoredAuth, ApiError> {
    let Value::Object(mut map) = raw else {
        return Err(ApiError::invalid(
            "auth",
            "`auth` must be an object with a `type` (basic, bearer, oauth2 or mtls), or null",
        ));
    };
    let kind = match map.get("type") {
        Some(Value::String(text)) => AuthKind::parse(text),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::invalid(
            "auth.type",
            "`auth.type` must be one of basic, bearer, oauth2, mtls",
        )
    })?;
    if let Some(unknown) = map
        .keys()
        .find(|k| *k != "type" && !kind.fields().contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            "auth",
            format!("`auth` of type {kind} has no field `{unknown}`"),
        ));
    }
    // An optional field sent as null is the same as leaving it out.
    map.retain(|_, v| !v.is_null());
    let keeps_secrets = stored.map(AuthView::kind) == Some(kind);
    for field in kind.required_fields() {
        let kept = keeps_secrets && SECRET_FIELDS.contains(field);
        match map.get(*field) {
            None if kept => {}
            None => {
                return Err(ApiError::invalid(
                    &path(field),
                    format!("`auth.{field}` is required for {kind} auth"),
                ))
            }
            Some(value) => {
                check_text(field, value)?;
                let sealed_lookalike = value
                    .as_str()
                    .is_some_and(|t| t.starts_with(webhookd_events::secret_box::SEALED_PREFIX));
                if SECRET_FIELDS.contains(field) && sealed_lookalike {
                    return Err(super::validate::sealed_lookalike(&path(field)));
                }
            }
        }
    }
    if let Some(scope) = map.get("scope") {
        check_text("scope", scope)?;
    }
    match kind {
        AuthKind::Basic => check_basic(&map)?,
        AuthKind::Bearer => check_header_safe(&map, "token")?,
        AuthKind::OAuth2 => check_oauth2(&mut map, allow_private)?,
        AuthKind::Mtls => {
            let stored_cert = match stored {
                Some(AuthView::Mtls { client_cert_pem }) => Some(client_cert_pem.as_str()),
                _ => None,
            };
            check_mtls(&map, stored_cert)?;
        }
    }
    Ok(StoredAuth::new(Value::Object(map)))
}

/// The `auth` change of a PATCH, checked against the webhook as it is now:
/// its stored type (whose secrets may be left out) and the headers it will
/// have.
pub(crate) fn change_auth(
    raw: Nullable<Value>,
    current: &Webhook,
    changes: &WebhookChanges,
    allow_private: bool,
) -> Result<Option<Option<StoredAuth>>, ApiError> {
    let stored = current.auth_view();
    let auth = match raw {
        Nullable::Absent => None,
        Nullable::Null => Some(None),
        Nullable::Value(raw) => Some(Some(check_auth(raw, stored.as_ref(), allow_private)?)),
    };
    let has_auth = match &auth {
        Some(change) => change.is_some(),
        None => current.auth.is_some(),
    };
    let headers = changes.headers.as_ref().unwrap_or(&current.headers.0);
    check_no_authorization_header(has_auth, headers)?;
    Ok(auth)
}

/// `auth` sets `Authorization` itself: a custom one too would be ambiguous.
pub(crate) fn check_no_authorization_header(
    has_auth: bool,
    headers: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let custom = headers
        .keys()
        .any(|name| name.eq_ignore_ascii_case("authorization"));
    if has_auth && custom {
        return Err(ApiError::invalid(
            "auth",
            "`auth` sets the Authorization header: remove the custom `Authorization` header, or `auth`",
        ));
    }
    Ok(())
}

fn path(field: &str) -> String {
    format!("auth.{field}")
}

/// A non-empty string, not too long (PEM fields may be longer).
fn check_text<'a>(field: &str, value: &'a Value) -> Result<&'a str, ApiError> {
    let text = value.as_str().ok_or_else(|| {
        ApiError::invalid(&path(field), format!("`auth.{field}` must be a string"))
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid(
            &path(field),
            format!("`auth.{field}` must not be empty"),
        ));
    }
    let max = if field.ends_with("_pem") {
        MAX_PEM_LEN
    } else {
        MAX_AUTH_FIELD_LEN
    };
    if text.len() > max {
        return Err(ApiError::invalid(
            &path(field),
            format!("`auth.{field}` is too long (at most {max} bytes)"),
        ));
    }
    Ok(text)
}

fn field_text<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    map.get(field).and_then(Value::as_str)
}

fn check_basic(map: &Map<String, Value>) -> Result<(), ApiError> {
    // RFC 7617: the user-id cannot contain a colon, the first one splits.
    if field_text(map, "username")
        .is_some_and(|u| u.contains(':') || u.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(
            "auth.username",
            "`auth.username` must not contain a colon or control characters",
        ));
    }
    if field_text(map, "password").is_some_and(|p| p.chars().any(char::is_control)) {
        return Err(ApiError::invalid(
            "auth.password",
            "`auth.password` must not contain control characters",
        ));
    }
    Ok(())
}

/// A value sent as is in a header: visible ASCII only.
fn check_header_safe(map: &Map<String, Value>, field: &str) -> Result<(), ApiError> {
    if field_text(map, field).is_some_and(|t| !t.bytes().all(|b| b.is_ascii_graphic())) {
        return Err(ApiError::invalid(
            &path(field),
            format!("`auth.{field}` must be visible ASCII without spaces"),
        ));
    }
    Ok(())
}

fn check_oauth2(map: &mut Map<String, Value>, allow_private: bool) -> Result<(), ApiError> {
    if let Some(url) = field_text(map, "token_url") {
        // The webhook URL's rules, SSRF guard included (SPEC §9).
        let checked = validate::check_url(url, allow_private).map_err(|e| {
            ApiError::invalid(
                "auth.token_url",
                e.to_string().replacen("`url`", "`auth.token_url`", 1),
            )
        })?;
        map.insert("token_url".to_owned(), Value::String(checked));
    }
    if field_text(map, "client_id").is_some_and(|t| t.chars().any(char::is_control)) {
        return Err(ApiError::invalid(
            "auth.client_id",
            "`auth.client_id` must not contain control characters",
        ));
    }
    Ok(())
}

/// `stored_cert`: the certificate stored now, whose key may be left out.
fn check_mtls(map: &Map<String, Value>, stored_cert: Option<&str>) -> Result<(), ApiError> {
    let cert = field_text(map, "client_cert_pem");
    let key = field_text(map, "client_key_pem");
    if let Some(cert) = cert {
        let parsed = reqwest::Certificate::from_pem_bundle(cert.as_bytes());
        if !cert.contains("-----BEGIN CERTIFICATE-----") || !parsed.is_ok_and(|c| !c.is_empty()) {
            return Err(ApiError::invalid(
                "auth.client_cert_pem",
                "`auth.client_cert_pem` must be a PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
    }
    if let Some(key) = key {
        if !(key.contains("-----BEGIN") && key.contains("PRIVATE KEY-----")) {
            return Err(ApiError::invalid(
                "auth.client_key_pem",
                "`auth.client_key_pem` must be a PEM private key (-----BEGIN PRIVATE KEY-----)",
            ));
        }
    }
    match (cert, key) {
        (Some(cert), Some(key)) => tls_clients::check_identity(cert, key).map_err(|problem| {
            ApiError::invalid(
                "auth.client_key_pem",
                format!("`auth.client_key_pem`: {problem}"),
            )
        }),
        (Some(cert), None) if stored_cert.is_some_and(|s| s.trim() == cert.trim()) => Ok(()),
        (Some(_), None) => Err(ApiError::invalid(
            "auth.client_key_pem",
            "`auth.client_key_pem` is required with a new certificate",
        )),
        (None, Some(_)) => Err(ApiError::invalid(
            "auth.client_cert_pem",
            "`auth.client_cert_pem` is required with a new key",
        )),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(result: Result<StoredAuth, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid {
                field: Some(f),
                message,
            }) => {
                assert!(!message.contains("s3cret"), "{message}");
                f
            }
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn complete_values_of_every_type_pass() {
        for ok in [
            json!({"type": "basic", "username": "u", "password": "s3cret"}),
            json!({"type": "bearer", "token": "s3cret"}),
            json!({"type": "oauth2", "token_url": "https://auth.example.com/token",
                   "client_id": "id", "client_secret": "s3cret", "scope": null}),
        ] {
            assert!(check_auth(ok.clone(), None, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn each_problem_is_named_by_its_field() {
        let cases = [
            (json!("basic"), "auth"),
            (json!({"type": "digest"}), "auth.type"),
            (json!({"type": "basic", "username": "u"}), "auth.password"),
            (
                json!({"type": "basic", "username": "", "password": "s3cret"}),
                "auth.username",
            ),
            (
                json!({"type": "basic", "username": "a:b", "password": "s3cret"}),
                "auth.username",
            ),
            (
                json!({"type": "bearer", "token": "enc:v1:k1:AAAA"}),
                "auth.token",
            ),
            (
                json!({"type": "basic", "username": "u", "password": "s3cret", "token": "x"}),
                "auth",
            ),
            (
                json!({"type": "bearer", "token": "has space s3cret"}),
                "auth.token",
            ),
            (
                json!({"type": "oauth2", "token_url": "http://10.0.0.1/t", "client_id": "i",
                    "client_secret": "s3cret"}),
                "auth.token_url",
            ),
            (
                json!({"type": "oauth2", "token_url": "https://a.example/t", "client_id": "i"}),
                "auth.client_secret",
            ),
            (
                json!({"type": "mtls", "client_cert_pem": "junk", "client_key_pem": "s3cret"}),
                "auth.client_cert_pem",
            ),
            (
                json!({"type": "mtls", "client_key_pem": "s3cret"}),
                "auth.client_cert_pem",
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                field(check_auth(raw.clone(), None, false)),
                expected,
                "{raw}"
            );
        }
    }

    #[test]
    fn a_secret_may_be_left_out_only_for_the_stored_type() {
        let username_only = json!({"type": "basic", "username": "new"});
        let basic = AuthView::Basic {
            username: "old".into(),
        };
        let kept = check_auth(username_only.clone(), Some(&basic), false).unwrap();
        assert_eq!(kept.as_json(), &username_only);
        assert_eq!(
            field(check_auth(username_only, Some(&AuthView::Bearer {}), false)),
            "auth.password"
        );
        assert_eq!(
            field(check_auth(json!({"type": "basic"}), Some(&basic), false)),
            "auth.username",
            "public fields are always needed"
        );
    }

    #[test]
    fn the_same_certificate_keeps_its_stored_key_a_new_one_needs_its_own() {
        let pem =
            |body: &str| format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----");
        let stored = AuthView::Mtls {
            client_cert_pem: pem("AAAA"),
        };
        let same = json!({"type": "mtls", "client_cert_pem": format!("{}\n", pem("AAAA"))});
        assert!(check_auth(same, Some(&stored), false).is_ok());
        let new_cert = json!({"type": "mtls", "client_cert_pem": pem("BBBB")});
        assert_eq!(
            field(check_auth(new_cert, Some(&stored), false)),
            "auth.client_key_pem"
        );
    }

    #[test]
    fn auth_and_a_custom_authorization_header_exclude_each_other() {
        let headers = BTreeMap::from([("authorization".to_owned(), "Bearer x".to_owned())]);
        assert!(check_no_authorization_header(true, &headers).is_err());
        assert!(check_no_authorization_header(false, &headers).is_ok());
        assert!(check_no_authorization_header(true, &BTreeMap::new()).is_ok());
    }
}
