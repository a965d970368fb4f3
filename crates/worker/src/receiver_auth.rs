//! How an attempt authenticates to its receiver (SPEC §14 `auth`), built
//! once per webhook version with its target: a fixed `Authorization` value
//! (basic, bearer), an OAuth2 client with its token cache, or a client
//! certificate that picks the HTTP client. [`send_authorized`] sends one
//! attempt's request with it, resending once with a fresh OAuth2 token
//! after a 401 (one attempt as far as retries go).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Client, Response, StatusCode, Url};
use secrecy::ExposeSecret;
use webhookd_events::{ReceiverAuth, StoredAuth};

use crate::http_errors::describe_error;
use crate::oauth2::{OAuth2Client, TokenRequests};
use crate::tls_clients::{ClientIdentity, TlsClients};

/// A target's authentication, ready to use. Its `Debug` shows no secret
/// (header values are marked sensitive).
#[derive(Debug, Clone, Default)]
pub(crate) enum TargetAuth {
    /// The signature only.
    #[default]
    None,
    /// `Authorization: Basic …` or `Bearer …`, on every request.
    Header(HeaderValue),
    OAuth2(Arc<OAuth2Client>),
    Mtls(Arc<ClientIdentity>),
}

impl TargetAuth {
    /// Reads a stored `auth`; an error names the problem, never a value.
    pub(crate) fn from_stored(stored: &StoredAuth) -> Result<TargetAuth, String> {
        let auth = ReceiverAuth::from_stored(stored).map_err(|e| e.to_string())?;
        Ok(match auth {
            ReceiverAuth::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose_secret());
                let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
                TargetAuth::Header(sensitive(&format!("Basic {encoded}"))?)
            }
            ReceiverAuth::Bearer { token } => {
                TargetAuth::Header(sensitive(&format!("Bearer {}", token.expose_secret()))?)
            }
            ReceiverAuth::OAuth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => TargetAuth::OAuth2(Arc::new(OAuth2Client::new(
                &token_url,
                &client_id,
                &client_secret,
                scope.as_deref(),
            ))),
            ReceiverAuth::Mtls {
                client_cert_pem,
                client_key_pem,
            } => TargetAuth::Mtls(Arc::new(ClientIdentity::new(
                &client_cert_pem,
                client_key_pem.expose_secret(),
            ))),
        })
    }
}

fn sensitive(text: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::try_from(text)
        .map_err(|_| "the auth credentials are not a valid header value".to_owned())?;
    value.set_sensitive(true);
    Ok(value)
}

/// Sends one attempt's POST with the target's authentication, counting the
/// token requests it makes in `requests`. An `Err` is the attempt's error
/// text (the request got no answer, or no token).
pub(crate) async fn send_authorized(
    clients: &TlsClients,
    auth: &TargetAuth,
    url: Url,
    mut headers: HeaderMap,
    timeout: Duration,
    body: &Bytes,
    requests: &mut TokenRequests,
) -> Result<Response, String> {
    let client = match auth {
        TargetAuth::Mtls(identity) => clients.for_identity(identity)?,
        _ => clients.shared().clone(),
    };
    let oauth2 = match auth {
        TargetAuth::Header(value) => {
            headers.insert(AUTHORIZATION, value.clone());
            None
        }
        TargetAuth::OAuth2(oauth2) => {
            let token = oauth2
                .authorization(clients.shared(), clients.allow_private(), timeout, requests)
                .await
                .map_err(|e| e.to_string())?;
            headers.insert(AUTHORIZATION, token);
            Some(oauth2)
        }
        TargetAuth::None | TargetAuth::Mtls(_) => None,
    };
    let response = post(&client, url.clone(), headers.clone(), timeout, body).await?;
    let Some(oauth2) = oauth2.filter(|_| response.status() == StatusCode::UNAUTHORIZED) else {
        return Ok(response);
    };
    // The token may have been revoked or rotated early: one new token, one
    // more try. A second 401 is the attempt's answer.
    let rejected = headers
        .get(AUTHORIZATION)
        .cloned()
        .unwrap_or(HeaderValue::from_static(""));
    drop(response);
    let token = oauth2
        .refresh(
            &rejected,
            clients.shared(),
            clients.allow_private(),
            timeout,
            requests,
        )
        .await
        .map_err(|e| e.to_string())?;
    headers.insert(AUTHORIZATION, token);
    post(&client, url, headers, timeout, body).await
}

async fn post(
    client: &Client,
    url: Url,
    headers: HeaderMap,
    timeout: Duration,
    body: &Bytes,
) -> Result<Response, String> {
    client
        .post(url)
        .headers(headers)
        .timeout(timeout)
        .body(body.clone())
        .send()
        .await
        .map_err(|e| describe_error(&e, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn basic_and_bearer_become_a_sensitive_authorization_value() {
        let basic = TargetAuth::from_stored(&StoredAuth::new(
            json!({"type": "basic", "username": "Aladdin", "password": "open sesame"}),
        ))
        .unwrap();
        let TargetAuth::Header(value) = &basic else {
            panic!("a header: {basic:?}");
        };
        assert_eq!(value, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(value.is_sensitive());
        assert!(!format!("{basic:?}").contains("QWxh"));
        let bearer = TargetAuth::from_stored(&StoredAuth::new(
            json!({"type": "bearer", "token": "t0ken"}),
        ))
        .unwrap();
        assert!(matches!(bearer, TargetAuth::Header(v) if v == "Bearer t0ken"));
        let broken =
            TargetAuth::from_stored(&StoredAuth::new(json!({"type": "bearer", "token": "a\nb"})));
        assert!(broken.is_err_and(|e| !e.contains("a\nb")));
    }
}
