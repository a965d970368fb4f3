//! Prometheus metrics. Labels are low-cardinality by construction: event names
//! come from the catalogue, reasons and outcomes from fixed sets; never a URL,
//! webhook id or event id.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Buckets from 5 ms to 30 s: webhook receivers range from local services to
/// slow third-party APIs.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub events_consumed: IntCounterVec,
    pub events_rejected: IntCounterVec,
    pub deliveries: IntCounterVec,
    pub delivery_duration: Histogram,
    pub deliveries_in_flight: IntGauge,
    pub deliveries_waiting: IntGauge,
    pub deliveries_handed_back: IntCounter,
    pub retries_scheduled: IntCounter,
    pub webhooks_disabled: IntCounter,
    pub storage_errors: IntCounterVec,
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
        registry.register(Box::new(events_consumed.clone()))?;
        registry.register(Box::new(events_rejected.clone()))?;
        registry.register(Box::new(deliveries.clone()))?;
        registry.register(Box::new(delivery_duration.clone()))?;
        registry.register(Box::new(deliveries_in_flight.clone()))?;
        registry.register(Box::new(deliveries_waiting.clone()))?;
        registry.register(Box::new(deliveries_handed_back.clone()))?;
        registry.register(Box::new(retries_scheduled.clone()))?;
        registry.register(Box::new(webhooks_disabled.clone()))?;
        registry.register(Box::new(storage_errors.clone()))?;
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
        Ok(Metrics {
            registry,
            events_consumed,
            events_rejected,
            deliveries,
            delivery_duration,
            deliveries_in_flight,
            deliveries_waiting,
            deliveries_handed_back,
            retries_scheduled,
            webhooks_disabled,
            storage_errors,
        })
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
}
