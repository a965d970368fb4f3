//! How a webhook authenticates to its receiver (SPEC §14 `auth`), beyond the
//! HMAC signature: HTTP Basic, a bearer token, an OAuth2 client-credentials
//! grant, or a TLS client certificate.
//!
//! Three shapes of one value: [`ReceiverAuth`] (complete, with its secrets,
//! what the worker sends with), [`AuthView`] (what reads show: no password,
//! token, client secret or key) and [`StoredAuth`] (the JSON column as
//! written or read by the delivery path). None of them prints a secret.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The fields of `auth` that are never returned, logged or printed. Reads
/// strip exactly these in SQL, so the secret never leaves Postgres there.
pub const SECRET_FIELDS: [&str; 4] = ["password", "token", "client_secret", "client_key_pem"];

/// The kinds of `auth`, as their `type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Basic,
    Bearer,
    OAuth2,
    Mtls,
}

impl AuthKind {
    pub const ALL: [AuthKind; 4] = [
        AuthKind::Basic,
        AuthKind::Bearer,
        AuthKind::OAuth2,
        AuthKind::Mtls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Basic => "basic",
            AuthKind::Bearer => "bearer",
            AuthKind::OAuth2 => "oauth2",
            AuthKind::Mtls => "mtls",
        }
    }

    pub fn parse(text: &str) -> Option<AuthKind> {
        AuthKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The fields this kind needs, in the order they are checked; the
    /// secret ones are in [`SECRET_FIELDS`].
    pub fn required_fields(self) -> &'static [&'static str] {
        match self {
            AuthKind::Basic => &["username", "password"],
            AuthKind::Bearer => &["token"],
            AuthKind::OAuth2 => &["token_url", "client_id", "client_secret"],
            AuthKind::Mtls => &["client_cert_pem", "client_key_pem"],
        }
    }

    /// Every field this kind has, optional ones included.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            AuthKind::OAuth2 => &["token_url", "client_id", "client_secret", "scope"],
            other => other.required_fields(),
        }
    }
}

impl fmt::Display for AuthKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A complete `auth`, secrets included. Its `Debug` shows the public fields
/// only.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ReceiverAuth {
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        username: String,
        password: SecretString,
    },
    /// `Authorization: Bearer <token>`.
    Bearer { token: SecretString },
    /// A client-credentials grant at `token_url`; its access token is sent
    /// as a bearer token.
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: SecretString,
        #[serde(default)]
        scope: Option<String>,
    },
    /// A TLS client certificate (PEM) and its private key (PEM).
    Mtls {
        client_cert_pem: String,
        client_key_pem: SecretString,
    },
}

/// A stored `auth` that does not read as a complete [`ReceiverAuth`] (only a
/// row edited by hand holds one). Names no value, so it can be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the webhook's stored auth is invalid (type {kind:?}): a field is missing or malformed")]
pub struct InvalidStoredAuth {
    kind: Option<String>,
}

impl ReceiverAuth {
    pub fn kind(&self) -> AuthKind {
        match self {
            ReceiverAuth::Basic { .. } => AuthKind::Basic,
            ReceiverAuth::Bearer { .. } => AuthKind::Bearer,
            ReceiverAuth::OAuth2 { .. } => AuthKind::OAuth2,
            ReceiverAuth::Mtls { .. } => AuthKind::Mtls,
        }
    }

    /// Reads a stored value, as the delivery path loads it.
    pub fn from_stored(stored: &StoredAuth) -> Result<ReceiverAuth, InvalidStoredAuth> {
        // serde's messages can quote a value; this error names none.
        serde_json::from_value(stored.0.clone()).map_err(|_| InvalidStoredAuth {
            kind: stored.kind().map(str::to_owned),
        })
    }

    /// The value as the database keeps it: the one place secrets are exposed
    /// as JSON, for writing them.
    pub fn to_stored(&self) -> StoredAuth {
        let value = match self {
            ReceiverAuth::Basic { username, password } => serde_json::json!({
                "type": "basic", "username": username, "password": password.expose_secret(),
            }),
            ReceiverAuth::Bearer { token } => serde_json::json!({
                "type": "bearer", "token": token.expose_secret(),
            }),
            ReceiverAuth::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => serde_json::json!({
                "type": "oauth2", "token_url": token_url, "client_id": client_id,
                "client_secret": client_secret.expose_secret(), "scope": scope,
            }),
            ReceiverAuth::Mtls {
                client_cert_pem,
                client_key_pem,
            } => serde_json::json!({
                "type": "mtls", "client_cert_pem": client_cert_pem,
                "client_key_pem": client_key_pem.expose_secret(),
            }),
        };
        StoredAuth(value)
    }

    /// What reads show of it.
    pub fn view(&self) -> AuthView {
        match self {
            ReceiverAuth::Basic { username, .. } => AuthView::Basic {
                username: username.clone(),
            },
            ReceiverAuth::Bearer { .. } => AuthView::Bearer {},
            ReceiverAuth::OAuth2 {
                token_url,
                client_id,
                scope,
                ..
            } => AuthView::OAuth2 {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                scope: scope.clone(),
            },
            ReceiverAuth::Mtls {
                client_cert_pem, ..
            } => AuthView::Mtls {
                client_cert_pem: client_cert_pem.clone(),
            },
        }
    }
}

impl fmt::Debug for ReceiverAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The public view is exactly what may be shown.
        write!(f, "ReceiverAuth({:?}, secrets redacted)", self.view())
    }
}

/// `auth` as reads show it: the type and its public fields (a certificate is
/// public, its key is not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AuthView {
    Basic {
        username: String,
    },
    Bearer {},
    OAuth2 {
        token_url: String,
        client_id: String,
        #[serde(default)]
        scope: Option<String>,
    },
    Mtls {
        client_cert_pem: String,
    },
}

impl AuthView {
    pub fn kind(&self) -> AuthKind {
        match self {
            AuthView::Basic { .. } => AuthKind::Basic,
            AuthView::Bearer {} => AuthKind::Bearer,
            AuthView::OAuth2 { .. } => AuthKind::OAuth2,
            AuthView::Mtls { .. } => AuthKind::Mtls,
        }
    }
}

/// The `auth` column's JSON, possibly holding secrets: what a write stores
/// and the delivery path reads. Its `Debug` shows the type only.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAuth(serde_json::Value);

impl StoredAuth {
    /// Wraps a value validation has accepted. A change that keeps a stored
    /// secret leaves that field out; storage merges it (see
    /// `webhooks::update_webhook`).
    pub fn new(value: serde_json::Value) -> StoredAuth {
        StoredAuth(value)
    }

    pub fn as_json(&self) -> &serde_json::Value {
        &self.0
    }

    pub fn kind(&self) -> Option<&str> {
        self.0.get("type").and_then(serde_json::Value::as_str)
    }
}

impl fmt::Debug for StoredAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredAuth(type {:?}, [redacted])", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRETS: [&str; 4] = ["pa55word", "tok3n", "cl1ent-secret", "PRIVATE KEY DATA"];

    fn all() -> Vec<ReceiverAuth> {
        [
            json!({"type": "basic", "username": "u", "password": SECRETS[0]}),
            json!({"type": "bearer", "token": SECRETS[1]}),
            json!({"type": "oauth2", "token_url": "https://auth.example.com/token",
                   "client_id": "cid", "client_secret": SECRETS[2], "scope": "hooks"}),
            json!({"type": "mtls", "client_cert_pem": "CERT", "client_key_pem": SECRETS[3]}),
        ]
        .into_iter()
        .map(|v| ReceiverAuth::from_stored(&StoredAuth::new(v)).expect("valid"))
        .collect()
    }

    #[test]
    fn every_kind_reads_from_and_writes_back_to_the_same_json() {
        for auth in all() {
            let stored = auth.to_stored();
            let again = ReceiverAuth::from_stored(&stored).expect("round trip");
            assert_eq!(again.to_stored(), stored);
            assert_eq!(stored.kind(), Some(auth.kind().as_str()));
        }
    }

    #[test]
    fn debug_and_the_public_view_never_show_a_secret() {
        for auth in all() {
            let shown = [
                format!("{auth:?}"),
                format!("{:?}", auth.to_stored()),
                serde_json::to_string(&auth.view()).expect("json"),
            ];
            for text in shown {
                for secret in SECRETS {
                    assert!(!text.contains(secret), "{text}");
                }
            }
        }
    }

    #[test]
    fn the_public_view_keeps_the_type_and_public_fields() {
        let views: Vec<_> = all()
            .iter()
            .map(|a| serde_json::to_value(a.view()).expect("json"))
            .collect();
        assert_eq!(views[0], json!({"type": "basic", "username": "u"}));
        assert_eq!(views[1], json!({"type": "bearer"}));
        assert_eq!(
            views[2],
            json!({"type": "oauth2", "token_url": "https://auth.example.com/token",
                   "client_id": "cid", "scope": "hooks"})
        );
        assert_eq!(views[3], json!({"type": "mtls", "client_cert_pem": "CERT"}));
        // A stored value with its secrets stripped (as reads do) is a view.
        for auth in all() {
            let mut stripped = auth.to_stored().as_json().clone();
            if let Some(map) = stripped.as_object_mut() {
                for field in SECRET_FIELDS {
                    map.remove(field);
                }
            }
            let view: AuthView = serde_json::from_value(stripped).expect("a view");
            assert_eq!(view, auth.view());
        }
    }

    #[test]
    fn a_broken_stored_value_is_an_error_that_names_no_value() {
        let broken = StoredAuth::new(json!({"type": "basic", "password": SECRETS[0]}));
        let error = ReceiverAuth::from_stored(&broken).expect_err("no username");
        assert!(!error.to_string().contains(SECRETS[0]));
        assert!(error.to_string().contains("basic"));
        let unknown = StoredAuth::new(json!({"type": "digest"}));
        assert!(ReceiverAuth::from_stored(&unknown).is_err());
    }

    #[test]
    fn kinds_parse_their_names_and_list_their_secrets() {
        for kind in AuthKind::ALL {
            assert_eq!(AuthKind::parse(kind.as_str()), Some(kind));
            let secrets = kind
                .required_fields()
                .iter()
                .filter(|f| SECRET_FIELDS.contains(f))
                .count();
            assert_eq!(secrets, 1, "{kind}: one secret each");
        }
        assert_eq!(AuthKind::parse("OAuth2"), None);
    }
}
