//! The admin side's Prometheus metrics: GraphQL subscriptions. They live in
//! a registry of their own, rendered after the pipeline's by `/metrics`.
//!
//! As in the pipeline (`webhookd_worker::metrics`), each metric is moved by
//! one notable occurrence, a type below whose `emit` also writes the log
//! line, so logs and metrics never disagree. Labels come from fixed sets.

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use tracing::{debug, info, warn};

/// What a subscription streams: the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Events,
    DeliveryAttempts,
}

impl Kind {
    const ALL: [Kind; 2] = [Kind::Events, Kind::DeliveryAttempts];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::DeliveryAttempts => "delivery_attempts",
        }
    }
}

/// Why the server ended a subscriber's connection (`reason` label).
const DISCONNECT_REASONS: &[&str] = &["slow"];

#[derive(Clone)]
pub struct GraphqlMetrics {
    registry: Registry,
    subscriptions: IntGaugeVec,
    streamed: IntCounterVec,
    disconnected: IntCounterVec,
    refused: IntCounterVec,
    skipped: IntCounterVec,
}

impl GraphqlMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let subscriptions = IntGaugeVec::new(
            Opts::new(
                "webhookd_graphql_subscriptions",
                "GraphQL subscriptions open on this process, by kind (events, delivery_attempts)",
            ),
            &["kind"],
        )?;
        let streamed = IntCounterVec::new(
            Opts::new(
                "webhookd_graphql_streamed_total",
                "Items (events or delivery attempts) handed to GraphQL subscribers, by kind",
            ),
            &["kind"],
        )?;
        let disconnected = IntCounterVec::new(
            Opts::new(
                "webhookd_graphql_disconnected_total",
                "GraphQL WebSocket connections ended by the server, by reason (slow: a subscriber's buffer was full)",
            ),
            &["reason"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "webhookd_graphql_subscriptions_refused_total",
                "Subscriptions refused because their user had graphql.max_subscriptions_per_user open, by kind",
            ),
            &["kind"],
        )?;
        let skipped = IntCounterVec::new(
            Opts::new(
                "webhookd_graphql_messages_skipped_total",
                "Broker messages the event stream skipped as malformed, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(subscriptions.clone()))?;
        registry.register(Box::new(streamed.clone()))?;
        registry.register(Box::new(disconnected.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(skipped.clone()))?;
        // Every series exists at 0 from start-up, so rates and alerts work
        // before the first subscriber.
        for feed in Kind::ALL {
            subscriptions.with_label_values(&[feed.label()]);
            streamed.with_label_values(&[feed.label()]);
            refused.with_label_values(&[feed.label()]);
        }
        for reason in DISCONNECT_REASONS {
            disconnected.with_label_values(&[*reason]);
        }
        for reason in webhookd_events::MessageError::REASONS {
            skipped.with_label_values(&[*reason]);
        }
        Ok(GraphqlMetrics {
            registry,
            subscriptions,
            streamed,
            disconnected,
            refused,
            skipped,
        })
    }

    /// The registry `/metrics` renders after the pipeline's: the HTTP
    /// ingest's metrics (`api/ingest_metrics.rs`) register here too.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of these metrics.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only for a family without samples'
        // type, which this registry cannot hold.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A subscription started streaming.
pub(crate) struct SubscriptionOpened {
    pub(crate) feed: Kind,
    pub(crate) user_id: i64,
}

impl SubscriptionOpened {
    pub(crate) fn emit(&self, metrics: &GraphqlMetrics) {
        metrics
            .subscriptions
            .with_label_values(&[self.feed.label()])
            .inc();
        debug!(
            kind = self.feed.label(),
            user_id = self.user_id,
            "subscription opened"
        );
    }
}

/// A subscription that had opened ended (completed, the client left, or it
/// was cut off).
pub(crate) struct SubscriptionClosed {
    pub(crate) feed: Kind,
    pub(crate) user_id: i64,
}

impl SubscriptionClosed {
    pub(crate) fn emit(&self, metrics: &GraphqlMetrics) {
        metrics
            .subscriptions
            .with_label_values(&[self.feed.label()])
            .dec();
        debug!(
            kind = self.feed.label(),
            user_id = self.user_id,
            "subscription closed"
        );
    }
}

/// Items handed to one subscriber's buffer. Not logged: one a line per
/// event would drown the log.
pub(crate) struct ItemsStreamed {
    pub(crate) feed: Kind,
    pub(crate) count: u64,
}

impl ItemsStreamed {
    pub(crate) fn emit(&self, metrics: &GraphqlMetrics) {
        metrics
            .streamed
            .with_label_values(&[self.feed.label()])
            .inc_by(self.count);
    }
}

/// A subscriber's buffer was full: it stopped reading, or reads slower than
/// items come. Its connection is closed so it holds nothing back.
pub(crate) struct SubscriberTooSlow {
    pub(crate) feed: Kind,
    pub(crate) user_id: i64,
    pub(crate) buffer: usize,
}

impl SubscriberTooSlow {
    pub(crate) fn emit(&self, metrics: &GraphqlMetrics) {
        metrics.disconnected.with_label_values(&["slow"]).inc();
        warn!(
            kind = self.feed.label(),
            user_id = self.user_id,
            buffer = self.buffer,
            "subscriber too slow: its buffer is full; closing its connection"
        );
    }
}

/// A subscription refused: its user has as many open as allowed.
pub(crate) struct SubscriptionRefused {
    pub(crate) feed: Kind,
    pub(crate) user_id: i64,
    pub(crate) limit: usize,
}

impl SubscriptionRefused {
    pub(crate) fn emit(&self, metrics: &GraphqlMetrics) {
        metrics
            .refused
            .with_label_values(&[self.feed.label()])
            .inc();
        info!(
            kind = self.feed.label(),
            user_id = self.user_id,
            limit = self.limit,
            "subscription refused: too many open for this user"
        );
    }
}

/// A broker message the event stream could not read; the workers
/// dead-letter their own copy, this one is only skipped.
pub(crate) struct MessageSkipped<'a> {
    pub(crate) reason: &'static str,
    pub(crate) error: &'a dyn std::fmt::Display,
    pub(crate) bytes: usize,
}

impl MessageSkipped<'_> {
    pub(crate) fn emit(&self, metrics: &GraphqlMetrics) {
        metrics.skipped.with_label_values(&[self.reason]).inc();
        warn!(reason = self.reason, error = %self.error, bytes = self.bytes, "event stream skipped a malformed message");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_exported_at_zero_and_moves_with_its_occurrence() {
        let metrics = GraphqlMetrics::new().unwrap();
        let text = metrics.render();
        for sample in [
            r#"webhookd_graphql_subscriptions{kind="events"} 0"#,
            r#"webhookd_graphql_streamed_total{kind="delivery_attempts"} 0"#,
            r#"webhookd_graphql_disconnected_total{reason="slow"} 0"#,
            r#"webhookd_graphql_messages_skipped_total{reason="invalid_json"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == sample), "missing {sample}");
        }
        SubscriptionOpened {
            feed: Kind::Events,
            user_id: 1,
        }
        .emit(&metrics);
        ItemsStreamed {
            feed: Kind::Events,
            count: 3,
        }
        .emit(&metrics);
        let text = metrics.render();
        assert!(text.contains(r#"webhookd_graphql_subscriptions{kind="events"} 1"#));
        assert!(text.contains(r#"webhookd_graphql_streamed_total{kind="events"} 3"#));
    }
}
