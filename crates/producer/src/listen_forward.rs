//! Forwards one live event to the developer's URL exactly as a webhookd
//! worker delivers it: the same envelope bytes, the same headers, the same
//! two signatures (made by the signing crate the workers use).

use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use reqwest::redirect::Policy;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;
use webhookd_events::render_envelope;
use webhookd_signing::Signer;

use crate::listen_tls::Trust;

/// What the workers send; this tool is part of the same release.
const USER_AGENT_VALUE: &str = concat!("webhookd/", env!("CARGO_PKG_VERSION"));
/// The delivery timeout's default.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// An event as the `events` subscription streams it.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveEvent {
    pub(crate) id: Uuid,
    pub(crate) event: String,
    pub(crate) timestamp: i64,
    /// Kept as the daemon wrote it, so the envelope holds the same bytes.
    pub(crate) data: Box<RawValue>,
}

impl LiveEvent {
    /// The body a worker would send for this event (no template).
    pub(crate) fn envelope(&self) -> String {
        render_envelope(&self.id, &self.event, self.timestamp, &self.data)
    }
}

/// How the local receiver answered one forward.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The HTTP status, or why there was none.
    pub(crate) answer: Result<u16, String>,
    pub(crate) latency: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub(crate) struct ClientError(#[from] reqwest::Error);

pub(crate) struct Forwarder {
    http: reqwest::Client,
    url: String,
    signer: Signer,
}

impl Forwarder {
    pub(crate) fn new(url: &str, secret: &str, trust: &Trust) -> Result<Forwarder, ClientError> {
        let http = trust
            .apply(reqwest::Client::builder())
            // As the workers: a 3xx is an answer, not somewhere to go.
            .redirect(Policy::none())
            .timeout(FORWARD_TIMEOUT)
            // The target is the developer's own machine; a proxy from the
            // environment would only get in the way.
            .no_proxy()
            .build()?;
        Ok(Forwarder {
            http,
            url: url.to_owned(),
            signer: Signer::new(secret),
        })
    }

    /// POSTs the event's envelope; never fails, the outcome says how it went.
    pub(crate) async fn forward(&self, event: &LiveEvent) -> Outcome {
        let body = event.envelope();
        let started = Instant::now();
        let answer = match self.headers(event, &body) {
            Err(error) => Err(error),
            Ok(headers) => self
                .http
                .post(&self.url)
                .headers(headers)
                .body(body)
                .send()
                .await
                .map(|response| response.status().as_u16())
                .map_err(|e| describe(&e)),
        };
        Outcome {
            answer,
            latency: started.elapsed(),
        }
    }

    /// The worker's header set for a first attempt. Each forward is its own
    /// delivery, so `X-Webhook-Id` is a fresh id (the event's id is in the
    /// body), as it is for each webhook a worker delivers to.
    fn headers(&self, event: &LiveEvent, body: &str) -> Result<HeaderMap, String> {
        let id = Uuid::now_v7().to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let body = body.as_bytes();
        let fixed = [
            ("x-webhook-event", event.event.clone()),
            ("x-webhook-timestamp", timestamp.to_string()),
            ("x-webhook-signature", self.signer.sign_seed(body)),
            ("x-webhook-id", id.clone()),
            ("x-webhook-attempt", "1".to_owned()),
            (
                "webhook-signature",
                self.signer.sign_standard(&id, timestamp, body),
            ),
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.to_string()),
        ];
        let mut headers = HeaderMap::with_capacity(fixed.len() + 2);
        for (name, value) in fixed {
            let value =
                HeaderValue::try_from(value).map_err(|_| format!("invalid {name} value"))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        Ok(headers)
    }
}

/// reqwest's top-level message is "error sending request for url (...)";
/// the useful part (connection refused, timed out) is in its sources.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("timed out after {}s", FORWARD_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> LiveEvent {
        serde_json::from_str(
            r#"{"id":"0193a1f2-0000-7000-8000-000000000001","event":"task.created",
                "timestamp":1708435200,"userId":null,"data":{"z":1,"a":"Сделка"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_envelope_keeps_the_data_bytes_in_the_daemons_key_order() {
        assert_eq!(
            event().envelope(),
            r#"{"id":"0193a1f2-0000-7000-8000-000000000001","event":"task.created","timestamp":1708435200,"data":{"z":1,"a":"Сделка"}}"#
        );
    }

    #[test]
    fn headers_carry_both_signatures_of_the_body() {
        let secret = webhookd_signing::generate_secret();
        let forwarder =
            Forwarder::new("http://127.0.0.1:1/hook", &secret, &Trust::default()).unwrap();
        let event = event();
        let body = event.envelope();
        let headers = forwarder.headers(&event, &body).unwrap();
        let get = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        webhookd_signing::verify_seed(&secret, body.as_bytes(), &get("x-webhook-signature"))
            .unwrap();
        let timestamp = get("webhook-timestamp");
        webhookd_signing::verify_standard(
            &secret,
            &get("webhook-id"),
            &timestamp,
            body.as_bytes(),
            &get("webhook-signature"),
            timestamp.parse().unwrap(),
            webhookd_signing::DEFAULT_TOLERANCE_SECS,
        )
        .unwrap();
        assert_eq!(get("x-webhook-id"), get("webhook-id"));
        assert_eq!(get("x-webhook-timestamp"), timestamp);
        assert_eq!(get("x-webhook-event"), "task.created");
        assert_eq!(get("x-webhook-attempt"), "1");
        assert_eq!(get("content-type"), "application/json");
        assert!(get("user-agent").starts_with("webhookd/"));
    }
}
