//! OAuth2 client credentials (RFC 6749 §4.4) for webhooks whose `auth` is
//! `oauth2` (SPEC §14): the access token is fetched from `token_url` and sent
//! as a bearer token.
//!
//! One [`OAuth2Client`] lives in a webhook's cached target, so its token is
//! shared by every delivery of that webhook version (an edit starts afresh)
//! and kept until shortly before it expires. Fetching is single flight: the
//! cache sits behind an async mutex, so deliveries arriving while a token is
//! fetched wait for that one request instead of each making their own. A
//! receiver's 401 drops the token it rejected (unless another delivery has
//! already replaced it) and fetches a new one.
//!
//! The token request goes through the delivery client: no proxy, no
//! redirects, the SSRF guard, the extra CA, and the webhook's timeout.

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Client, Url};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use crate::http_errors::describe_error;
use crate::target_policy::check_literal_host;

/// How long a token without `expires_in` is used.
pub(crate) const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// A token is dropped this long before it expires (at most a tenth of its
/// life), so a request never carries one that expires on the way.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// A failed token request answers the deliveries that queued behind it for
/// this long, so a burst against a dead endpoint costs one request, not one
/// per delivery in series (each waiting out the timeout).
const FAILURE_HOLD: Duration = Duration::from_secs(2);
/// Token responses larger than this are refused, unread.
const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// Every token error starts so, so a log reader tells it from the
/// receiver's answer.
pub(crate) const TOKEN_ERROR_PREFIX: &str = "oauth2 token endpoint:";

/// A failed token request. Names the status or the cause, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {}", TOKEN_ERROR_PREFIX, .0)]
pub(crate) struct TokenError(String);

/// The token requests one attempt made (none while a token is cached), for
/// `webhookd_oauth2_token_requests_total`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenRequests {
    pub(crate) fetched: u32,
    pub(crate) failed: u32,
}

/// A webhook's OAuth2 settings and its cached token. Its `Debug` shows no
/// secret and no token.
pub(crate) struct OAuth2Client {
    token_url: Result<Url, String>,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    cache: Mutex<TokenCache>,
}

#[derive(Default)]
struct TokenCache {
    token: Option<CachedToken>,
    /// The last fetch's failure and when it ended.
    failure: Option<(Instant, TokenError)>,
}

struct CachedToken {
    /// `Bearer <token>`, marked sensitive.
    header: HeaderValue,
    refresh_at: Instant,
}

impl fmt::Debug for OAuth2Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Client")
            .field("token_url", &self.token_url.as_ref().map(Url::as_str))
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// When a token fetched at `now` should be replaced.
pub(crate) fn refresh_at(now: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = expires_in.map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    let margin = EXPIRY_MARGIN.min(lifetime / 10);
    now + lifetime.saturating_sub(margin)
}

impl OAuth2Client {
    pub(crate) fn new(
        token_url: &str,
        client_id: &str,
        client_secret: &SecretString,
        scope: Option<&str>,
    ) -> Self {
        OAuth2Client {
            token_url: Url::parse(token_url).map_err(|e| format!("invalid token_url: {e}")),
            client_id: client_id.to_owned(),
            client_secret: client_secret.clone(),
            scope: scope.map(str::to_owned),
            cache: Mutex::new(TokenCache::default()),
        }
    }

    /// The `Authorization` value to send: the cached token, or a new one.
    pub(crate) async fn authorization(
        &self,
        http: &Client,
        allow_private: bool,
        timeout: Duration,
        requests: &mut TokenRequests,
    ) -> Result<HeaderValue, TokenError> {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(token) = cache.token.as_ref().filter(|t| t.refresh_at > now) {
            return Ok(token.header.clone());
        }
        if let Some((_, error)) = cache
            .failure
            .as_ref()
            .filter(|(at, _)| now.duration_since(*at) < FAILURE_HOLD)
        {
            return Err(error.clone());
        }
        self.fetch_into(&mut cache, http, allow_private, timeout, requests)
            .await
    }

    /// Fetches a token into `cache` (whose lock the caller holds), counting
    /// the request in `requests`.
    async fn fetch_into(
        &self,
        cache: &mut TokenCache,
        http: &Client,
        allow_private: bool,
        timeout: Duration,
        requests: &mut TokenRequests,
    ) -> Result<HeaderValue, TokenError> {
        match self.fetch(http, allow_private, timeout).await {
            Ok(fresh) => {
                requests.fetched += 1;
                let header = fresh.header.clone();
                *cache = TokenCache {
                    token: Some(fresh),
                    failure: None,
                };
                Ok(header)
            }
            Err(error) => {
                requests.failed += 1;
                *cache = TokenCache {
                    token: None,
                    failure: Some((Instant::now(), error.clone())),
                };
                Err(error)
            }
        }
    }

    /// After the receiver refused `rejected` with a 401: a new token, unless
    /// another delivery has already replaced that one.
    pub(crate) async fn refresh(
        &self,
        rejected: &HeaderValue,
        http: &Client,
        allow_private: bool,
        timeout: Duration,
        requests: &mut TokenRequests,
    ) -> Result<HeaderValue, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.token.as_ref() {
            if token.header != rejected && token.refresh_at > Instant::now() {
                return Ok(token.header.clone());
            }
        }
        self.fetch_into(&mut cache, http, allow_private, timeout, requests)
            .await
    }

    async fn fetch(
        &self,
        http: &Client,
        allow_private: bool,
        timeout: Duration,
    ) -> Result<CachedToken, TokenError> {
        let fail = |text: String| TokenError(text);
        let url = self.token_url.clone().map_err(fail)?;
        check_literal_host(&url, allow_private).map_err(|e| fail(e.to_string()))?;
        let form = {
            // Not `Send`: finished before the request is awaited.
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = &self.scope {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        let started = Instant::now();
        let sent = http
            .post(url)
            // client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded.
            .basic_auth(
                encode(&self.client_id),
                Some(encode(self.client_secret.expose_secret())),
            )
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(form)
            .timeout(timeout)
            .send()
            .await;
        let mut response = sent.map_err(|e| fail(describe_error(&e, timeout)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(fail(format!("HTTP {}", status.as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(describe_error(&e, timeout)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_TOKEN_RESPONSE_BYTES {
                return Err(fail(format!(
                    "the answer is larger than {MAX_TOKEN_RESPONSE_BYTES} bytes"
                )));
            }
        }
        let parsed = parse_token_response(&body).map_err(fail)?;
        let mut header = HeaderValue::try_from(format!("Bearer {}", parsed.access_token))
            .map_err(|_| fail("the access_token is not a valid header value".to_owned()))?;
        header.set_sensitive(true);
        Ok(CachedToken {
            header,
            refresh_at: refresh_at(started, parsed.expires_in),
        })
    }
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// A successful token answer (RFC 6749 §5.1). Errors describe the shape,
/// never quote the body (it may hold a token).
fn parse_token_response(body: &[u8]) -> Result<TokenResponse, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not a JSON object".to_owned())?;
    let access_token = value
        .get("access_token")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the answer has no access_token".to_owned())?;
    if let Some(kind) = value.get("token_type").and_then(serde_json::Value::as_str) {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!("unsupported token_type {kind:?} (only Bearer)"));
        }
    }
    // Some servers send the lifetime as a string.
    let expires_in = match value.get("expires_in") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(TokenResponse {
        access_token: access_token.to_owned(),
        expires_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_replaced_shortly_before_it_expires() {
        let now = Instant::now();
        assert_eq!(
            refresh_at(now, Some(3600)),
            now + Duration::from_secs(3570),
            "30 s before a long-lived token expires"
        );
        assert_eq!(
            refresh_at(now, Some(60)),
            now + Duration::from_secs(54),
            "a tenth of a short life"
        );
        assert_eq!(refresh_at(now, Some(0)), now, "expired at once");
        assert_eq!(
            refresh_at(now, None),
            now + DEFAULT_TOKEN_LIFETIME - Duration::from_secs(30),
            "no expires_in: the default lifetime"
        );
    }

    #[test]
    fn token_answers_need_a_bearer_access_token() {
        let ok = parse_token_response(
            br#"{"access_token":"abc","token_type":"bearer","expires_in":"120"}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token, "abc");
        assert_eq!(ok.expires_in, Some(120));
        assert!(parse_token_response(br#"{"access_token":"abc"}"#).is_ok());
        for bad in [
            &br#"{"token_type":"bearer"}"#[..],
            br#"{"access_token":""}"#,
            br#"{"access_token":"abc","token_type":"mac"}"#,
            b"access_token=abc",
        ] {
            let error = parse_token_response(bad).err().unwrap();
            assert!(!error.contains("abc"), "{error}");
        }
    }

    /// A token endpoint on 127.0.0.1 that answers slowly, counting requests.
    async fn slow_token_endpoint() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let hits = std::sync::Arc::new(AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let n = counted.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let body = format!(r#"{{"access_token":"t{n}","expires_in":60}}"#);
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn concurrent_deliveries_wait_for_one_token_request() {
        let (url, hits) = slow_token_endpoint().await;
        let client = std::sync::Arc::new(OAuth2Client::new(
            &url,
            "id",
            &SecretString::from("s3cret"),
            None,
        ));
        let http = Client::new();
        let waiting: Vec<_> = (0..10)
            .map(|_| {
                let (client, http) = (client.clone(), http.clone());
                tokio::spawn(async move {
                    let mut requests = TokenRequests::default();
                    let got = client
                        .authorization(&http, true, Duration::from_secs(5), &mut requests)
                        .await;
                    (got, requests)
                })
            })
            .collect();
        let mut fetched = 0;
        for task in waiting {
            let (got, requests) = task.await.unwrap();
            assert_eq!(got.unwrap(), "Bearer t1");
            assert_eq!(requests.failed, 0);
            fetched += requests.fetched;
        }
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        // Counted by the one attempt that made it.
        assert_eq!(fetched, 1);
        // A 401 on t1 replaces it once; a second report of t1 gets t2 as is.
        let rejected = HeaderValue::from_static("Bearer t1");
        let timeout = Duration::from_secs(5);
        let mut requests = TokenRequests::default();
        let fresh = client
            .refresh(&rejected, &http, true, timeout, &mut requests)
            .await
            .unwrap();
        assert_eq!(fresh, "Bearer t2");
        let again = client
            .refresh(&rejected, &http, true, timeout, &mut requests)
            .await
            .unwrap();
        assert_eq!(again, "Bearer t2");
        assert_eq!(
            requests,
            TokenRequests {
                fetched: 1,
                failed: 0
            }
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_cached_token_is_reused_until_it_is_due_and_an_unreachable_endpoint_is_an_error() {
        let client = OAuth2Client::new(
            "http://127.0.0.1:9/token",
            "id",
            &SecretString::from("s3cret"),
            None,
        );
        let mut header = HeaderValue::from_static("Bearer cached");
        header.set_sensitive(true);
        client.cache.lock().await.token = Some(CachedToken {
            header: header.clone(),
            refresh_at: Instant::now() + Duration::from_secs(60),
        });
        let http = Client::new();
        let timeout = Duration::from_millis(500);
        let mut requests = TokenRequests::default();
        let got = client
            .authorization(&http, true, timeout, &mut requests)
            .await
            .unwrap();
        assert_eq!(got, header, "no request while the token is fresh");
        // Expired: a fetch, which fails against a closed port.
        client.cache.lock().await.token.as_mut().unwrap().refresh_at = Instant::now();
        let error = client
            .authorization(&http, true, timeout, &mut requests)
            .await
            .unwrap_err();
        assert!(error.to_string().starts_with(TOKEN_ERROR_PREFIX), "{error}");
        // Deliveries right behind it get the same answer without a request.
        let held = client.cache.lock().await.failure.clone();
        assert!(held.is_some_and(|(_, e)| e == error));
        let again = client
            .authorization(&http, true, timeout, &mut requests)
            .await;
        assert_eq!(again.unwrap_err(), error);
        assert_eq!(
            requests,
            TokenRequests {
                fetched: 0,
                failed: 1
            },
            "one request for the cached token's end, none for the held failure"
        );
        // A failure that is no longer fresh is tried again.
        client.cache.lock().await.failure = None;
        assert!(client
            .authorization(&http, true, timeout, &mut requests)
            .await
            .is_err());
        assert_eq!(requests.failed, 2);
        assert!(!error.to_string().contains("s3cret"));
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
