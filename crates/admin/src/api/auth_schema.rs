//! How OpenAPI describes `auth` (SPEC §14). Documentation only: requests
//! carry `auth` as raw JSON so that validation (`validate_auth.rs`) can name
//! the field at fault, and answers carry the domain's `AuthView`.

use serde::Serialize;
use utoipa::ToSchema;

/// Authentication to the receiver, as written. With the type already
/// stored, a `PATCH` may leave the secret field out to keep it.
// Never built: it only shapes the document.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ReceiverAuthInput {
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// A client-credentials grant at `token_url` (client_secret_basic); the
    /// access token is sent as a bearer token, cached until it expires and
    /// refreshed once on a 401.
    OAuth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
    /// A TLS client certificate and its private key, PEM.
    Mtls {
        client_cert_pem: String,
        client_key_pem: String,
    },
}

/// Authentication to the receiver, as read: never a password, token, client
/// secret or key.
// Never built: it only shapes the document.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum ReceiverAuthShown {
    Basic {
        username: String,
    },
    Bearer {},
    OAuth2 {
        token_url: String,
        client_id: String,
        scope: Option<String>,
    },
    Mtls {
        client_cert_pem: String,
    },
}
