//! The rate limiter's occurrences (`rate_limit.rs`), in the pattern of
//! [`super::events`]: each writes its log line and moves its metric together.

use std::fmt::Display;
use std::time::Duration;

use tracing::{debug, warn};
use uuid::Uuid;

use super::Metrics;

/// A delivery of a rate-limited webhook waited in memory for its send slot.
pub(crate) struct RateWaited {
    pub(crate) delivery_id: Uuid,
    pub(crate) webhook_id: i64,
    pub(crate) wait: Duration,
}

impl RateWaited {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics.rate_limited.with_label_values(&["waited"]).inc();
        debug!(
            delivery_id = %self.delivery_id,
            webhook_id = self.webhook_id,
            wait_ms = self.wait.as_millis() as u64,
            "rate limit: waited for a send slot"
        );
    }
}

/// A delivery of a rate-limited webhook found no send slot within the
/// horizon (or its budget could not be read) and was handed back, due later.
pub(crate) struct RateDeferred<'a> {
    pub(crate) delivery_id: Uuid,
    pub(crate) webhook_id: i64,
    pub(crate) delay: Duration,
    /// Why the budget could not be read, when that was the reason.
    pub(crate) error: Option<&'a dyn Display>,
}

impl RateDeferred<'_> {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics.rate_limited.with_label_values(&["deferred"]).inc();
        let delay_ms = self.delay.as_millis() as u64;
        match self.error {
            None => debug!(
                delivery_id = %self.delivery_id,
                webhook_id = self.webhook_id,
                delay_ms,
                "rate limit: no send slot within the horizon; delivery handed back"
            ),
            Some(error) => {
                metrics
                    .storage_errors
                    .with_label_values(&["reserve_send_slots"])
                    .inc();
                warn!(
                    delivery_id = %self.delivery_id,
                    webhook_id = self.webhook_id,
                    delay_ms,
                    error = %error,
                    "rate limit: reserving a send slot failed; delivery handed back"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(metrics: &Metrics, outcome: &str) -> Option<String> {
        let text = metrics.render();
        let prefix = format!(r#"webhookd_rate_limited_total{{outcome="{outcome}"}} "#);
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
    }

    #[test]
    fn waits_and_deferrals_are_counted_apart_from_start_up() {
        let metrics = Metrics::new().expect("metrics");
        assert_eq!(sample(&metrics, "waited").as_deref(), Some("0"));
        assert_eq!(sample(&metrics, "deferred").as_deref(), Some("0"));
        RateWaited {
            delivery_id: Uuid::nil(),
            webhook_id: 1,
            wait: Duration::from_millis(20),
        }
        .emit(&metrics);
        for _ in 0..2 {
            RateDeferred {
                delivery_id: Uuid::nil(),
                webhook_id: 1,
                delay: Duration::from_secs(2),
                error: None,
            }
            .emit(&metrics);
        }
        assert_eq!(sample(&metrics, "waited").as_deref(), Some("1"));
        assert_eq!(sample(&metrics, "deferred").as_deref(), Some("2"));
    }
}
