//! Prometheus metrics. Labels are low-cardinality by construction: event names
//! come from the catalogue, reasons and outcomes from fixed sets, receiver
//! hosts capped at [`MAX_HOST_LABELS`]; never a URL, webhook id or event id.
//!
//! The metrics are moved only by the occurrences in [`events`], each of
//! which also writes its log line; the fields here are private to them.

pub(crate) mod breaker_events;
pub(crate) mod events;
pub(crate) mod rate_limited;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// The `class` label of `webhookd_http_responses_total`: a response's status
/// class, or `error` when there was no response (refused, reset, timeout).
const RESPONSE_CLASSES: &[&str] = &["2xx", "3xx", "4xx", "5xx", "error"];

/// Where a delivery's first attempt was when the fan-out wrote it
/// (`webhookd_fanout_written_total`).
const FIRST_ATTEMPT_STATES: &[&str] = &["ended", "running", "not_started"];

/// The `outcome` label of `webhookd_rate_limited_total` (`rate_limit.rs`).
const RATE_LIMITED_OUTCOMES: &[&str] = &["waited", "deferred"];

/// Distinct receiver hosts labelled by name per process; later ones share the
/// label `other`, so a flood of webhooks cannot blow up the series count.
pub(crate) const MAX_HOST_LABELS: usize = 100;

/// Buckets from 5 ms to 30 s: webhook receivers range from local services to
/// slow third-party APIs.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Batches hold 1 to 1000 events.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    events_consumed: IntCounterVec,
    events_rejected: IntCounterVec,
    deliveries: IntCounterVec,
    delivery_duration: Histogram,
    deliveries_in_flight: IntGauge,
    deliveries_waiting: IntGauge,
    deliveries_handed_back: IntCounter,
    fanout_written: IntCounterVec,
    retries_scheduled: IntCounter,
    webhooks_disabled: IntCounter,
    storage_errors: IntCounterVec,
    logs_deleted: IntCounter,
    events_deleted: IntCounter,
    http_responses: IntCounterVec,
    endpoint_requests: IntCounterVec,
    hosts: Arc<Mutex<HashSet<String>>>,
    db_pool_connections: IntGaugeVec,
    broker_queue_messages: IntGaugeVec,
    deliveries_pending: IntGauge,
    oldest_pending_delivery: Gauge,
    stats_rollup_lag: Gauge,
    batch_size: Histogram,
    outbox_published: IntCounterVec,
    outbox_backlog: IntGauge,
    rate_limited: IntCounterVec,
    breaker_transitions: IntCounterVec,
    breakers_open: IntGauge,
    oauth2_token_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let events_consumed = IntCounterVec::new(
            Opts::new(
                "webhookd_events_consumed_total",
                "Broker events accepted, by event",
            ),
            &["event"],
        )?;
        let events_rejected = IntCounterVec::new(
            Opts::new(
                "webhookd_events_rejected_total",
                "Broker messages rejected as malformed and dead-lettered, by reason",
            ),
            &["reason"],
        )?;
        let deliveries = IntCounterVec::new(
            Opts::new(
                "webhookd_deliveries_total",
                "Delivery attempts by event and outcome (success, retry, failed)",
            ),
            &["event", "outcome"],
        )?;
        let delivery_duration = Histogram::with_opts(
            HistogramOpts::new(
                "webhookd_delivery_duration_seconds",
                "Time from sending a request to its response or error",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
        )?;
        let deliveries_in_flight = IntGauge::new(
            "webhookd_deliveries_in_flight",
            "Deliveries being attempted by this process",
        )?;
        let deliveries_waiting = IntGauge::new(
            "webhookd_deliveries_waiting",
            "Deliveries held by this process waiting for a request slot of their webhook",
        )?;
        let deliveries_handed_back = IntCounter::new(
            "webhookd_deliveries_handed_back_total",
            "Deliveries given back to the schedule unattempted because their webhook's queue was full",
        )?;
        let fanout_written = IntCounterVec::new(
            Opts::new(
                "webhookd_fanout_written_total",
                "Deliveries written by the fan-out, by where their first attempt was: ended (written with its outcome), running (it outlasted delivery.first_attempt_window_ms), not_started (no room, a full webhook queue, a redelivered message, or a window of 0)",
            ),
            &["first_attempt"],
        )?;
        let retries_scheduled = IntCounter::new(
            "webhookd_retries_scheduled_total",
            "Failed attempts scheduled for a retry",
        )?;
        let webhooks_disabled = IntCounter::new(
            "webhookd_webhooks_disabled_total",
            "Webhooks switched off automatically (410 Gone or failing for too long)",
        )?;
        let storage_errors = IntCounterVec::new(
            Opts::new(
                "webhookd_storage_errors_total",
                "Database operations that failed, by operation",
            ),
            &["operation"],
        )?;
        let logs_deleted = IntCounter::new(
            "webhookd_logs_deleted_total",
            "Attempt logs (webhook_logs rows) deleted by the retention job",
        )?;
        let events_deleted = IntCounter::new(
            "webhookd_events_deleted_total",
            "Finished events deleted by the retention job",
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "webhookd_build_info",
                "Always 1; the version label tells which build runs",
            ),
            &["version"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let http_responses = IntCounterVec::new(
            Opts::new(
                "webhookd_http_responses_total",
                "Delivery attempts by response status class (2xx..5xx, or error without a response)",
            ),
            &["class"],
        )?;
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "webhookd_db_pool_connections",
                "Database pool connections by state (idle, active), sampled",
            ),
            &["state"],
        )?;
        let broker_queue_messages = IntGaugeVec::new(
            Opts::new(
                "webhookd_broker_queue_messages",
                "Messages in the broker's event queue by state (ready), sampled",
            ),
            &["queue_state"],
        )?;
        let deliveries_pending = IntGauge::new(
            "webhookd_deliveries_pending",
            "Deliveries not yet finished (first attempt or retry waiting), sampled",
        )?;
        let oldest_pending_delivery = Gauge::new(
            "webhookd_oldest_pending_delivery_seconds",
            "Age of the oldest unfinished delivery, 0 when none, sampled",
        )?;
        let stats_rollup_lag = Gauge::new(
            "webhookd_stats_rollup_lag_seconds",
            "From the end of the newest hour of statistics rolled up to now (about an hour when up to date), set by each rollup pass",
        )?;
        registry.register(Box::new(stats_rollup_lag.clone()))?;
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "webhookd_batch_size",
                "Events per batch formed for batching webhooks; its count is the batches formed",
            )
            .buckets(BATCH_SIZE_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(batch_size.clone()))?;
        registry.register(Box::new(build_info))?;
        let endpoint_requests = IntCounterVec::new(
            Opts::new(
                "webhookd_endpoint_requests_total",
                "Delivery attempts by receiver host and response class (hosts beyond the cap are `other`)",
            ),
            &["host", "class"],
        )?;
        registry.register(Box::new(http_responses.clone()))?;
        registry.register(Box::new(endpoint_requests.clone()))?;
        registry.register(Box::new(db_pool_connections.clone()))?;
        registry.register(Box::new(broker_queue_messages.clone()))?;
        registry.register(Box::new(deliveries_pending.clone()))?;
        registry.register(Box::new(oldest_pending_delivery.clone()))?;
        for class in RESPONSE_CLASSES {
            http_responses.with_label_values(&[*class]);
        }
        registry.register(Box::new(events_consumed.clone()))?;
        registry.register(Box::new(events_rejected.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(delivery_duration.clone()))?;
        registry.register(Box::new(deliveries_in_flight.clone()))?;
        registry.register(Box::new(deliveries_waiting.clone()))?;
        registry.register(Box::new(deliveries_handed_back.clone()))?;
        registry.register(Box::new(fanout_written.clone()))?;
        for state in FIRST_ATTEMPT_STATES {
            fanout_written.with_label_values(&[*state]);
        }
        registry.register(Box::new(retries_scheduled.clone()))?;
        registry.register(Box::new(webhooks_disabled.clone()))?;
        registry.register(Box::new(storage_errors.clone()))?;
        registry.register(Box::new(logs_deleted.clone()))?;
        registry.register(Box::new(events_deleted.clone()))?;
        // Every labelled series exists from start-up at 0, so rates and
        // `absent()`-style alerts work before the first event.
        for spec in webhookd_events::CATALOGUE {
            events_consumed.with_label_values(&[spec.name]);
            for outcome in ["success", "retry", "failed"] {
                deliveries.with_label_values(&[spec.name, outcome]);
            }
        }
        for reason in webhookd_events::MessageError::REASONS {
            events_rejected.with_label_values(&[*reason]);
        }
        let outbox_published = IntCounterVec::new(
            Opts::new(
                "webhookd_outbox_published_total",
                "Operational events published from the outbox to the broker and confirmed, by event",
            ),
            &["event"],
        )?;
        for event in webhookd_events::OPERATIONAL_EVENTS {
            outbox_published.with_label_values(&[*event]);
        }
        let outbox_backlog = IntGauge::new(
            "webhookd_outbox_backlog",
            "Operational events waiting in the outbox to be published (grows while the broker is away), sampled",
        )?;
        registry.register(Box::new(outbox_published.clone()))?;
        registry.register(Box::new(outbox_backlog.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "webhookd_rate_limited_total",
                "Deliveries held back by their webhook's rate_limit_per_s, by outcome: waited (sent once their send slot came, holding no connection) or deferred (handed back to the schedule, due at a later slot; no attempt counted)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        for outcome in RATE_LIMITED_OUTCOMES {
            rate_limited.with_label_values(&[*outcome]);
        }
        let breaker_transitions = IntCounterVec::new(
            Opts::new(
                "webhookd_breaker_transitions_total",
                "Circuit breaker transitions of webhooks, by the state entered (open, half_open, closed)",
            ),
            &["to"],
        )?;
        for to in ["open", "half_open", "closed"] {
            breaker_transitions.with_label_values(&[to]);
        }
        let breakers_open = IntGauge::new(
            "webhookd_breakers_open",
            "Webhooks whose circuit breaker is open (or half open): their deliveries are parked, sampled",
        )?;
        registry.register(Box::new(breaker_transitions.clone()))?;
        registry.register(Box::new(breakers_open.clone()))?;
        let oauth2_token_requests = IntCounterVec::new(
            Opts::new(
                "webhookd_oauth2_token_requests_total",
                "Requests to oauth2 webhooks' token endpoints made for attempts, by outcome (fetched, failed); a cached token makes none",
            ),
            &["outcome"],
        )?;
        for outcome in ["fetched", "failed"] {
            oauth2_token_requests.with_label_values(&[outcome]);
        }
        registry.register(Box::new(oauth2_token_requests.clone()))?;
        Ok(Metrics {
            registry,
            events_consumed,
            events_rejected,
            deliveries,
            delivery_duration,
            deliveries_in_flight,
            deliveries_waiting,
            deliveries_handed_back,
            fanout_written,
            retries_scheduled,
            webhooks_disabled,
            storage_errors,
            logs_deleted,
            events_deleted,
            http_responses,
            endpoint_requests,
            hosts: Arc::new(Mutex::new(HashSet::new())),
            db_pool_connections,
            broker_queue_messages,
            deliveries_pending,
            oldest_pending_delivery,
            stats_rollup_lag,
            batch_size,
            outbox_published,
            outbox_backlog,
            rate_limited,
            breaker_transitions,
            breakers_open,
            oauth2_token_requests,
        })
    }

    /// Counts one attempt under its receiver's host (see `Target::host`: never
    /// a URL, whose path or query may hold a token) and response class.
    fn observe_endpoint(&self, host: &str, status: Option<u16>) {
        let known = {
            let mut hosts = self
                .hosts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if hosts.contains(host) {
                true
            } else if hosts.len() < MAX_HOST_LABELS {
                hosts.insert(host.to_owned());
                true
            } else {
                false
            }
        };
        let label = if known { host } else { "other" };
        self.endpoint_requests
            .with_label_values(&[label, response_class(status)])
            .inc();
    }

    /// Counts one attempt under its response's status class.
    fn observe_response(&self, status: Option<u16>) {
        self.http_responses
            .with_label_values(&[response_class(status)])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec only fails on a metric family without samples'
        // type, which our registry cannot hold.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn response_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        // 1xx never ends an exchange and others are not HTTP: counted with
        // the failures that have no usable response.
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_labelled_series_is_exported_at_zero_from_start_up() {
        let text = Metrics::new().unwrap().render();
        for sample in [
            r#"webhookd_events_consumed_total{event="deal.won"} 0"#,
            r#"webhookd_deliveries_total{event="task.created",outcome="failed"} 0"#,
            r#"webhookd_events_rejected_total{reason="unknown_event"} 0"#,
        ] {
            assert!(text.lines().any(|l| l == sample), "missing {sample}");
        }
    }

    #[test]
    fn attempts_are_counted_by_status_class_and_no_response_as_error() {
        let metrics = Metrics::new().unwrap();
        for status in [Some(200), Some(204), Some(301), Some(410), Some(503), None] {
            metrics.observe_response(status);
        }
        let text = metrics.render();
        for sample in [
            r#"webhookd_http_responses_total{class="2xx"} 2"#,
            r#"webhookd_http_responses_total{class="3xx"} 1"#,
            r#"webhookd_http_responses_total{class="4xx"} 1"#,
            r#"webhookd_http_responses_total{class="5xx"} 1"#,
            r#"webhookd_http_responses_total{class="error"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == sample), "missing {sample}");
        }
    }

    #[test]
    fn receiver_hosts_are_labelled_up_to_the_cap_then_other() {
        let metrics = Metrics::new().unwrap();
        for i in 0..MAX_HOST_LABELS + 5 {
            metrics.observe_endpoint(&format!("h{i}.example"), Some(200));
        }
        metrics.observe_endpoint("h0.example", None);
        let text = metrics.render();
        assert!(
            text.contains(r#"webhookd_endpoint_requests_total{class="2xx",host="h0.example"} 1"#)
        );
        assert!(
            text.contains(r#"webhookd_endpoint_requests_total{class="error",host="h0.example"} 1"#)
        );
        assert!(text.contains(r#"webhookd_endpoint_requests_total{class="2xx",host="other"} 5"#));
        let hosts = text.matches("webhookd_endpoint_requests_total{").count();
        assert_eq!(hosts, MAX_HOST_LABELS + 2);
    }
}
