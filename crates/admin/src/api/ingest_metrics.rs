//! The HTTP ingest's metrics (`POST /api/v1/events`). As elsewhere, each
//! metric is moved by one occurrence, a type below whose `emit` also writes
//! the log line, so logs and metrics never disagree. Registered in the admin
//! side's registry, which `/metrics` renders.

use prometheus::{IntCounterVec, Opts, Registry};
use tracing::{debug, info, warn};
use uuid::Uuid;
use webhookd_events::MessageError;

/// The `outcome` label of `webhookd_ingest_requests_total`.
const OUTCOMES: &[&str] = &["accepted", "invalid", "forbidden", "unavailable"];

#[derive(Clone)]
pub(crate) struct IngestMetrics {
    requests: IntCounterVec,
    invalid: IntCounterVec,
}

impl IngestMetrics {
    pub(crate) fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "webhookd_ingest_requests_total",
                "POST /api/v1/events requests by outcome (accepted: published and confirmed; \
                 invalid: refused as the consumer would; forbidden: not a publisher; \
                 unavailable: the broker could not take it, answered 503)",
            ),
            &["outcome"],
        )?;
        let invalid = IntCounterVec::new(
            Opts::new(
                "webhookd_ingest_invalid_total",
                "Events refused by POST /api/v1/events, by reason (the labels of \
                 webhookd_events_rejected_total)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(invalid.clone()))?;
        // Every series exists at 0 from start-up, so rates and alerts work
        // before the first request.
        for outcome in OUTCOMES {
            requests.with_label_values(&[*outcome]);
        }
        for reason in MessageError::REASONS {
            invalid.with_label_values(&[*reason]);
        }
        Ok(IngestMetrics { requests, invalid })
    }
}

/// An event published and confirmed by the broker.
pub(crate) struct EventAccepted<'a> {
    pub(crate) id: Uuid,
    pub(crate) event: &'a str,
    pub(crate) publisher: i64,
}

impl EventAccepted<'_> {
    pub(crate) fn emit(&self, metrics: &IngestMetrics) {
        metrics.requests.with_label_values(&["accepted"]).inc();
        debug!(id = %self.id, event = self.event, publisher = self.publisher, "event accepted over HTTP");
    }
}

/// A message refused for the reason the consumer would have dead-lettered it.
pub(crate) struct EventInvalid<'a> {
    pub(crate) error: &'a MessageError,
    pub(crate) publisher: i64,
}

impl EventInvalid<'_> {
    pub(crate) fn emit(&self, metrics: &IngestMetrics) {
        metrics.requests.with_label_values(&["invalid"]).inc();
        metrics
            .invalid
            .with_label_values(&[self.error.reason()])
            .inc();
        info!(reason = self.error.reason(), error = %self.error, publisher = self.publisher, "event refused over HTTP");
    }
}

/// A valid token whose user may not publish.
pub(crate) struct PublishForbidden {
    pub(crate) user_id: i64,
}

impl PublishForbidden {
    pub(crate) fn emit(&self, metrics: &IngestMetrics) {
        metrics.requests.with_label_values(&["forbidden"]).inc();
        info!(
            user_id = self.user_id,
            "event refused over HTTP: the user is not a publisher"
        );
    }
}

/// The broker could not take the event (unreachable, or no confirm in
/// time): the client was told to retry.
pub(crate) struct IngestUnavailable<'a> {
    pub(crate) id: Uuid,
    pub(crate) error: &'a dyn std::fmt::Display,
}

impl IngestUnavailable<'_> {
    pub(crate) fn emit(&self, metrics: &IngestMetrics) {
        metrics.requests.with_label_values(&["unavailable"]).inc();
        warn!(id = %self.id, error = %self.error, "event not accepted over HTTP: the broker is unavailable; answered 503");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::{Encoder, TextEncoder};

    fn render(registry: &Registry) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_series_starts_at_zero_and_moves_with_its_occurrence() {
        let registry = Registry::new();
        let metrics = IngestMetrics::register(&registry).unwrap();
        let text = render(&registry);
        for sample in [
            r#"webhookd_ingest_requests_total{outcome="accepted"} 0"#,
            r#"webhookd_ingest_requests_total{outcome="unavailable"} 0"#,
            r#"webhookd_ingest_invalid_total{reason="unknown_event"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == sample), "missing {sample}");
        }
        EventInvalid {
            error: &MessageError::MissingField("data"),
            publisher: 1,
        }
        .emit(&metrics);
        PublishForbidden { user_id: 2 }.emit(&metrics);
        let text = render(&registry);
        for sample in [
            r#"webhookd_ingest_requests_total{outcome="invalid"} 1"#,
            r#"webhookd_ingest_requests_total{outcome="forbidden"} 1"#,
            r#"webhookd_ingest_invalid_total{reason="missing_field"} 1"#,
            r#"webhookd_ingest_requests_total{outcome="accepted"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == sample), "missing {sample}");
        }
    }
}
