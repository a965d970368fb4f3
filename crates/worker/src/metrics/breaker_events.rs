//! The circuit breakers' notable occurrences (docs/ARCHITECTURE.md, "Circuit
//! breaker"), one type each, as in `events.rs`: emitting one writes its log
//! line and moves its metrics together.

use tracing::{info, warn};

use super::Metrics;

/// A webhook's breaker entered `to` (`open`, `half_open` or `closed`).
pub(crate) struct BreakerMoved {
    pub(crate) webhook_id: i64,
    pub(crate) to: &'static str,
}

impl BreakerMoved {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics
            .breaker_transitions
            .with_label_values(&[self.to])
            .inc();
        match self.to {
            "open" => warn!(
                webhook_id = self.webhook_id,
                to = self.to,
                "circuit breaker open: the webhook's deliveries are parked until a probe succeeds"
            ),
            _ => info!(
                webhook_id = self.webhook_id,
                to = self.to,
                "circuit breaker moved"
            ),
        }
    }
}

/// The webhooks whose breaker is open, sampled.
pub(crate) struct BreakersSampled {
    pub(crate) open: i64,
}

impl BreakersSampled {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics.breakers_open.set(self.open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_are_counted_by_the_state_entered_and_exported_from_zero() {
        let metrics = Metrics::new().expect("metrics");
        let before = metrics.render();
        assert!(before.contains(r#"webhookd_breaker_transitions_total{to="half_open"} 0"#));
        BreakerMoved {
            webhook_id: 1,
            to: "open",
        }
        .emit(&metrics);
        BreakersSampled { open: 3 }.emit(&metrics);
        let text = metrics.render();
        assert!(text.contains(r#"webhookd_breaker_transitions_total{to="open"} 1"#));
        assert!(text.contains("webhookd_breakers_open 3"));
    }
}
