//! One signed HTTP attempt of one delivery. A receiver's failure (an error
//! status, a timeout, a refused connection) is an [`AttemptOutcome`], not an
//! `Err`: failures are normal and are classified here, in one place.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;
use webhookd_events::delivery::Verdict;
use webhookd_events::webhook_secrets::{open_auth, open_signing};
use webhookd_events::{RenderTooLarge, SecretKeys, StoredAuth, Template};
use webhookd_signing::Signer;

use crate::header_log::header_log;
use crate::http_errors::chain;
use crate::oauth2::TokenRequests;
use crate::receiver_auth::{send_authorized, TargetAuth};
use crate::target_policy::{check_literal_host, PortPolicy};
use crate::tls_clients::{DeliveryTls, TlsClients};

pub(crate) const USER_AGENT_VALUE: &str = concat!("webhookd/", env!("CARGO_PKG_VERSION"));

/// Where and how one webhook is delivered.
#[derive(Debug, Clone)]
pub struct Target {
    /// Parsed once per target; an unparsable URL (only a row edited by hand
    /// holds one) fails the attempt with this message.
    pub(crate) url: Result<reqwest::Url, String>,
    /// The URL's host, lower-cased: the per-host metrics' label.
    pub(crate) host: String,
    pub(crate) signer: Signer,
    /// The secret a rotation replaced, while its grace period runs: requests
    /// carry its signatures too, so receivers can switch keys at their pace.
    pub(crate) previous_signer: Option<Signer>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) template: Option<Template>,
    pub(crate) timeout: Duration,
    /// How requests authenticate to the receiver (SPEC §14); an OAuth2
    /// token cached here serves this webhook version's deliveries.
    pub(crate) auth: TargetAuth,
}

/// A webhook's stored delivery settings, as its row holds them (secrets
/// sealed when keys are configured, SPEC §15). Its `Debug` hides the
/// secrets.
#[derive(Clone, Copy)]
pub struct TargetRow<'a> {
    /// What the sealed secrets are bound to.
    pub webhook_id: i64,
    pub url: &'a str,
    pub secret: &'a str,
    pub previous_secret: Option<&'a str>,
    pub headers: &'a serde_json::Value,
    pub template: Option<&'a str>,
    pub timeout_ms: Option<i32>,
    pub auth: Option<&'a StoredAuth>,
}

impl fmt::Debug for TargetRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetRow")
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .field("secret", &format_args!("[redacted]"))
            .field(
                "previous_secret",
                &self.previous_secret.map(|_| format_args!("[redacted]")),
            )
            .field("headers", &self.headers)
            .field("template", &self.template)
            .field("timeout_ms", &self.timeout_ms)
            .field("auth", &self.auth)
            .finish()
    }
}

impl Target {
    /// Builds the target of real and test deliveries alike, opening the
    /// sealed secrets with `keys`: the one place a delivery reads them in
    /// clear, once per webhook version thanks to the target cache. Fails for
    /// a secret no configured key opens, or a template or an `auth` that no
    /// longer parses (they are validated when saved).
    pub fn from_row(
        row: TargetRow<'_>,
        default_timeout: Duration,
        keys: &SecretKeys,
    ) -> Result<Target, String> {
        let unreadable = |e: webhookd_events::SecretBoxError| format!("unreadable secret: {e}");
        let secret = open_signing(keys, row.webhook_id, row.secret)
            .map(SecretString::from)
            .map_err(unreadable)?;
        let previous_secret = row
            .previous_secret
            .map(|stored| open_signing(keys, row.webhook_id, stored).map(SecretString::from))
            .transpose()
            .map_err(unreadable)?;
        let auth = row
            .auth
            .map(|stored| open_auth(keys, row.webhook_id, stored))
            .transpose()
            .map_err(unreadable)?;
        let template = row
            .template
            .map(|text| Template::parse(text).map_err(|e| format!("invalid template: {e}")))
            .transpose()?;
        let headers = match row.headers {
            serde_json::Value::Object(map) => map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect(),
            _ => Vec::new(),
        };
        let timeout = row
            .timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(default_timeout, Duration::from_millis);
        let auth = auth
            .as_ref()
            .map(TargetAuth::from_stored)
            .transpose()?
            .unwrap_or_default();
        let url = reqwest::Url::parse(row.url).map_err(|e| format!("invalid URL: {e}"));
        let host = url
            .as_ref()
            .ok()
            .and_then(|u| u.host_str())
            .map_or_else(|| "invalid".to_owned(), str::to_ascii_lowercase);
        Ok(Target {
            url,
            host,
            signer: Signer::new(secret.expose_secret()),
            previous_signer: previous_secret.map(|s| Signer::new(s.expose_secret())),
            headers,
            template,
            timeout,
            auth,
        })
    }
}

/// What happened to one attempt.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub verdict: Verdict,
    pub status_code: Option<u16>,
    pub elapsed: Duration,
    /// The response body, cut at the configured cap.
    pub response: Option<String>,
    pub error: Option<String>,
    /// `Retry-After` of a 429 or 503.
    pub retry_after: Option<Duration>,
    /// The headers sent and received, for the log ([`header_log`]).
    pub request_headers: Option<String>,
    pub response_headers: Option<String>,
    /// The oauth2 token requests the attempt made.
    pub(crate) token_requests: TokenRequests,
}

impl AttemptOutcome {
    /// A failure with no response at all (refused before sending, or the
    /// request never got an answer), `elapsed` after the start.
    pub fn without_response(error: String, elapsed: Duration) -> Self {
        AttemptOutcome {
            verdict: Verdict::Failure,
            status_code: None,
            elapsed,
            response: None,
            error: Some(error),
            retry_after: None,
            request_headers: None,
            response_headers: None,
            token_requests: TokenRequests::default(),
        }
    }

    /// The rendered body was over its cap: nothing was sent, and no retry
    /// would render less.
    pub fn refused(too_large: RenderTooLarge) -> Self {
        AttemptOutcome {
            verdict: Verdict::Refused,
            ..Self::without_response(too_large.to_string(), Duration::ZERO)
        }
    }
}

/// `limits.max_rendered_body_bytes`'s default.
pub const DEFAULT_MAX_RENDERED_BODY_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct Deliverer {
    clients: TlsClients,
    allow_private: bool,
    max_response_bytes: usize,
    max_rendered_body_bytes: usize,
    ports: PortPolicy,
}

impl Deliverer {
    pub fn new(allow_private: bool, max_response_bytes: usize) -> Result<Self, reqwest::Error> {
        Self::with_tls(allow_private, max_response_bytes, DeliveryTls::default())
    }

    /// A deliverer whose clients trust `tls`'s extra roots and keep at most
    /// its number of client-certificate clients (`tls_clients.rs`).
    pub fn with_tls(
        allow_private: bool,
        max_response_bytes: usize,
        tls: DeliveryTls,
    ) -> Result<Self, reqwest::Error> {
        Ok(Deliverer {
            clients: TlsClients::new(allow_private, tls)?,
            allow_private,
            max_response_bytes,
            max_rendered_body_bytes: DEFAULT_MAX_RENDERED_BODY_BYTES,
            ports: PortPolicy::default(),
        })
    }

    /// This deliverer limited to `ports` (`delivery.allowed_ports`).
    #[must_use]
    pub fn with_allowed_ports(self, ports: PortPolicy) -> Self {
        Deliverer { ports, ..self }
    }

    /// This deliverer with templates' output capped at `bytes`
    /// (`limits.max_rendered_body_bytes`).
    #[must_use]
    pub fn with_max_rendered_body_bytes(self, bytes: usize) -> Self {
        Deliverer {
            max_rendered_body_bytes: bytes,
            ..self
        }
    }

    /// A deliverer configured as this one with a client (and connection
    /// pool) of its own: a consumer shard's (`shards.rs`), so the tasks of
    /// the connections its attempts open run on the shard's thread, and an
    /// attempt made there never waits for another thread to be woken.
    pub(crate) fn with_own_client(&self) -> Result<Self, reqwest::Error> {
        Ok(Deliverer {
            clients: self.clients.with_own_shared()?,
            ..self.clone()
        })
    }

    /// The body a target receives for an envelope: the envelope itself
    /// (shared, not copied: one event's deliveries, their requests and their
    /// log rows all point at the same bytes), or the webhook's template
    /// rendered from it, refused once it would exceed the cap.
    pub fn render_body(
        &self,
        target: &Target,
        envelope: &Arc<str>,
    ) -> Result<Arc<str>, RenderTooLarge> {
        match &target.template {
            None => Ok(envelope.clone()),
            Some(template) => {
                let value: serde_json::Value =
                    serde_json::from_str(envelope).unwrap_or(serde_json::Value::Null);
                Ok(template
                    .render_capped(&value, self.max_rendered_body_bytes)?
                    .into())
            }
        }
    }

    /// Sends `body` once, signed for this attempt. `batch_size`: the body is
    /// a batch of that many events (SPEC §11).
    pub async fn attempt(
        &self,
        target: &Target,
        delivery_id: Uuid,
        event: &str,
        attempt: i32,
        batch_size: Option<i32>,
        body: &Arc<str>,
    ) -> AttemptOutcome {
        let started = Instant::now();
        let failure = |error: String| AttemptOutcome::without_response(error, started.elapsed());
        let url = match &target.url {
            Ok(url) => url.clone(),
            Err(e) => return failure(e.clone()),
        };
        if let Err(refused) = check_literal_host(&url, self.allow_private) {
            return failure(refused.to_string());
        }
        if let Err(refused) = self.ports.check(&url) {
            return failure(refused.to_string());
        }
        let headers = match signed_headers(target, delivery_id, event, attempt, batch_size, body) {
            Ok(h) => h,
            Err(e) => return failure(e),
        };
        let request_headers = header_log(&headers);
        let bytes = Bytes::from_owner(SharedBody(body.clone()));
        let mut token_requests = TokenRequests::default();
        let sent = send_authorized(
            &self.clients,
            &target.auth,
            url,
            headers,
            target.timeout,
            &bytes,
            &mut token_requests,
        )
        .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                return AttemptOutcome {
                    request_headers: Some(request_headers),
                    token_requests,
                    ..failure(e)
                }
            }
        };
        let status = response.status();
        let response_headers = header_log(response.headers());
        let retry_after = match status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                parse_retry_after(response.headers().get(RETRY_AFTER))
            }
            _ => None,
        };
        // The status decides the outcome; a body cut off afterwards (reset,
        // timeout) is noted in the error but does not turn a 2xx into a
        // failure: the receiver has already accepted the delivery.
        let (text, read_error) =
            read_capped(&mut response, self.max_response_bytes, target.timeout).await;
        let verdict = if status.is_success() {
            Verdict::Success
        } else if status == StatusCode::GONE {
            Verdict::Gone
        } else {
            Verdict::Failure
        };
        let error = match verdict {
            Verdict::Success => None,
            Verdict::Gone => Some("HTTP 410 Gone: the webhook is disabled".to_owned()),
            // Never judged from a response: only `refused` sets it.
            Verdict::Refused => None,
            Verdict::Failure if status.is_redirection() => Some(format!(
                "HTTP {}: redirects are not followed{}",
                status.as_u16(),
                response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .map(|l| format!(" (Location: {})", l.chars().take(200).collect::<String>()))
                    .unwrap_or_default()
            )),
            Verdict::Failure => Some(format!("HTTP {}", status.as_u16())),
        };
        AttemptOutcome {
            verdict,
            status_code: Some(status.as_u16()),
            elapsed: started.elapsed(),
            response: Some(text),
            error: error.or(read_error),
            retry_after,
            request_headers: Some(request_headers),
            response_headers: Some(response_headers),
            token_requests,
        }
    }
}

/// A shared body as the request's bytes, without a copy.
struct SharedBody(Arc<str>);

impl AsRef<[u8]> for SharedBody {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

fn signed_headers(
    target: &Target,
    delivery_id: Uuid,
    event: &str,
    attempt: i32,
    batch_size: Option<i32>,
    body: &str,
) -> Result<HeaderMap, String> {
    let timestamp = chrono::Utc::now().timestamp();
    let id = delivery_id.to_string();
    let mut headers = HeaderMap::with_capacity(12 + target.headers.len());
    // Custom headers first, so the daemon's own always win.
    for (name, value) in &target.headers {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| format!("invalid custom header name {name:?}"))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|_| format!("invalid value for custom header {name}"))?;
        headers.insert(name, value);
    }
    let body_bytes = body.as_bytes();
    let mut standard = target.signer.sign_standard(&id, timestamp, body_bytes);
    if let Some(previous) = &target.previous_signer {
        // Standard Webhooks receivers accept any of several space-separated
        // signatures; the seed's header holds one, so the old one gets its own.
        standard.push(' ');
        standard.push_str(&previous.sign_standard(&id, timestamp, body_bytes));
        let old = HeaderValue::try_from(previous.sign_seed(body_bytes))
            .map_err(|_| "invalid previous signature value".to_owned())?;
        headers.insert(HeaderName::from_static("x-webhook-signature-previous"), old);
    }
    let fixed = [
        ("x-webhook-event", event.to_owned()),
        ("x-webhook-timestamp", timestamp.to_string()),
        ("x-webhook-signature", target.signer.sign_seed(body_bytes)),
        ("x-webhook-id", id.clone()),
        ("x-webhook-attempt", attempt.to_string()),
        ("webhook-signature", standard),
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    for (name, value) in fixed {
        let value = HeaderValue::try_from(value).map_err(|_| format!("invalid {name} value"))?;
        headers.insert(HeaderName::from_static(name), value);
    }
    if let Some(size) = batch_size {
        headers.insert(
            HeaderName::from_static("x-webhook-batch-size"),
            HeaderValue::from(size),
        );
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    Ok(headers)
}

/// Reads at most `cap` bytes of the body; the rest is never downloaded.
async fn read_capped(
    response: &mut reqwest::Response,
    cap: usize,
    timeout: Duration,
) -> (String, Option<String>) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= cap {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let text = String::from_utf8_lossy(&body).into_owned();
                let problem = if e.is_timeout() {
                    format!(
                        "reading the response timed out after {} ms",
                        timeout.as_millis()
                    )
                } else {
                    format!("reading the response failed: {}", chain(&e))
                };
                return (text, Some(problem));
            }
        }
    }
    (String::from_utf8_lossy(&body).into_owned(), None)
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_for(url: &str) -> Target {
        let row = TargetRow {
            webhook_id: 1,
            url,
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            previous_secret: None,
            headers: &serde_json::Value::Null,
            template: None,
            timeout_ms: None,
            auth: None,
        };
        Target::from_row(row, Duration::from_secs(10), &SecretKeys::none()).unwrap()
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let row = TargetRow {
            webhook_id: 1,
            url: "https://example.com/hook",
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            previous_secret: Some("whsec_previous_secret_value"),
            headers: &serde_json::Value::Null,
            template: None,
            timeout_ms: None,
            auth: None,
        };
        let target = Target::from_row(row, Duration::from_secs(10), &SecretKeys::none()).unwrap();
        for shown in [format!("{row:?}"), format!("{target:?}")] {
            assert!(!shown.contains("whsec_"), "{shown}");
            assert!(shown.contains("example.com"), "{shown}");
        }
        // Receiver credentials neither, whatever their type.
        let auths = [
            serde_json::json!({"type": "basic", "username": "u", "password": "whsec_pw"}),
            serde_json::json!({"type": "bearer", "token": "whsec_token"}),
            serde_json::json!({"type": "oauth2", "token_url": "https://a.example/t",
                               "client_id": "c", "client_secret": "whsec_client"}),
            serde_json::json!({"type": "mtls", "client_cert_pem": "CERT",
                               "client_key_pem": "whsec_key"}),
        ];
        for auth in auths {
            let stored = StoredAuth::new(auth);
            let row = TargetRow {
                auth: Some(&stored),
                ..row
            };
            let target =
                Target::from_row(row, Duration::from_secs(10), &SecretKeys::none()).unwrap();
            for shown in [format!("{row:?}"), format!("{target:?}")] {
                assert!(!shown.contains("whsec_"), "{shown}");
                // base64 of "u:whsec_pw" starts so.
                assert!(!shown.contains("dTp3aHNlY1"), "{shown}");
            }
        }
    }

    #[test]
    fn a_target_parses_its_url_once_and_labels_by_host_only() {
        let target = target_for("https://user:pw@Hooks.Example.COM:8443/path?token=secret");
        assert_eq!(target.host, "hooks.example.com");
        assert_eq!(target.url.as_ref().map(reqwest::Url::path), Ok("/path"),);
        let broken = target_for("not a url");
        assert_eq!(broken.host, "invalid");
        assert!(broken.url.unwrap_err().starts_with("invalid URL: "));
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let secs = HeaderValue::from_static("120");
        assert_eq!(
            parse_retry_after(Some(&secs)),
            Some(Duration::from_secs(120))
        );
        let past = HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&past)), Some(Duration::ZERO));
        let future = (chrono::Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let future = HeaderValue::try_from(future).unwrap();
        let wait = parse_retry_after(Some(&future)).unwrap();
        assert!(wait <= Duration::from_secs(90) && wait >= Duration::from_secs(80));
        for junk in ["soon", "-5", "1.5", ""] {
            assert_eq!(
                parse_retry_after(Some(&HeaderValue::from_static(junk))),
                None
            );
        }
        assert_eq!(parse_retry_after(None), None);
    }
}
