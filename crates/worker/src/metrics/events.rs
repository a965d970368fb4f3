//! The pipeline's notable occurrences, one type each. Emitting one writes its
//! log line and moves its metrics together, so logs and metrics never
//! disagree, and each metric is moved from one place only: the fields of
//! [`Metrics`] are private to this module and its parent.
//!
//! Field names in log lines: `event_id`, `delivery_id`, `webhook_id`,
//! `error`, `operation`, counts by what they count. Never a secret, a
//! signature or a payload.

use std::fmt::Display;
use std::time::Duration;

use prometheus::IntGauge;
use tracing::{debug, error, info, warn};
use uuid::Uuid;
use webhookd_events::delivery::NextStep;
use webhookd_events::NewEvent;

use super::Metrics;

/// A broker message refused as malformed; it was dead-lettered with its
/// reason.
pub(crate) struct MessageRejected<'a> {
    pub(crate) reason: &'static str,
    pub(crate) error: &'a dyn Display,
    pub(crate) bytes: usize,
}

impl MessageRejected<'_> {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics
            .events_rejected
            .with_label_values(&[self.reason])
            .inc();
        warn!(reason = self.reason, error = %self.error, bytes = self.bytes, "message rejected and dead-lettered");
    }
}

/// Events whose fan-out is committed (and whose messages are acked next).
pub(crate) struct EventsConsumed<'a> {
    pub(crate) events: &'a [NewEvent],
}

impl EventsConsumed<'_> {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        for event in self.events {
            metrics
                .events_consumed
                .with_label_values(&[event.event])
                .inc();
        }
    }
}

/// Deliveries written by the fan-out, by where their first attempt was.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FanoutWritten {
    /// Written with the first attempt's outcome.
    pub(crate) ended: u64,
    /// The first attempt outlasted the window; its outcome is written later.
    pub(crate) running: u64,
    /// Written due for the scheduler: no room, a full webhook queue, a
    /// redelivered message, or no first-attempt window.
    pub(crate) not_started: u64,
}

impl FanoutWritten {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        let counted = [
            ("ended", self.ended),
            ("running", self.running),
            ("not_started", self.not_started),
        ];
        for (state, count) in counted {
            metrics
                .fanout_written
                .with_label_values(&[state])
                .inc_by(count);
        }
    }
}

/// A request to a receiver is under way; dropped or [`InFlight::finished`],
/// it is no longer counted in flight.
pub(crate) struct InFlight<'m> {
    metrics: &'m Metrics,
}

impl<'m> InFlight<'m> {
    pub(crate) fn start(metrics: &'m Metrics) -> Self {
        metrics.deliveries_in_flight.inc();
        InFlight { metrics }
    }

    /// The request ended: a response with `status`, or none, after `elapsed`.
    pub(crate) fn finished(self, host: &str, status: Option<u16>, elapsed: Duration) {
        let metrics = self.metrics;
        metrics.delivery_duration.observe(elapsed.as_secs_f64());
        metrics.observe_response(status);
        metrics.observe_endpoint(host, status);
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.deliveries_in_flight.dec();
    }
}

/// An attempt judged: delivered, to be retried, or failed for good.
pub(crate) struct AttemptJudged<'a> {
    pub(crate) event: &'a str,
    pub(crate) next: NextStep,
    pub(crate) status: Option<u16>,
    pub(crate) elapsed: Duration,
    pub(crate) error: Option<&'a str>,
}

impl AttemptJudged<'_> {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics
            .deliveries
            .with_label_values(&[self.event, self.next.outcome()])
            .inc();
        let (status, error) = (self.status, self.error.unwrap_or(""));
        match self.next {
            NextStep::Succeeded => {
                debug!(status, ms = self.elapsed.as_millis() as u64, "delivered");
            }
            NextStep::RetryIn(delay) => {
                metrics.retries_scheduled.inc();
                info!(
                    status,
                    error,
                    retry_in_ms = delay.as_millis() as u64,
                    "attempt failed; retry scheduled"
                );
            }
            NextStep::Failed => warn!(status, error, "delivery failed for good"),
        }
    }
}

/// An attempt asked its webhook's oauth2 token endpoint for a token (once
/// per token lifetime and webhook version, or after a 401).
pub(crate) struct TokenRequested {
    pub(crate) webhook_id: i64,
    pub(crate) fetched: u32,
    pub(crate) failed: u32,
}

impl TokenRequested {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        let counters = &metrics.oauth2_token_requests;
        counters
            .with_label_values(&["fetched"])
            .inc_by(u64::from(self.fetched));
        counters
            .with_label_values(&["failed"])
            .inc_by(u64::from(self.failed));
        if self.failed > 0 {
            // The cause is the attempt's error, logged and recorded with it.
            warn!(webhook_id = self.webhook_id, "oauth2 token request failed");
        } else if self.fetched > 0 {
            debug!(webhook_id = self.webhook_id, "oauth2 token fetched");
        }
    }
}

/// A delivery waits in memory for one of its webhook's request slots; it
/// stops being counted when this is dropped.
pub(crate) struct Waiting {
    // The one gauge, not the whole registry: a clone of `Metrics` is two
    // dozen reference counts, per queued delivery.
    gauge: IntGauge,
}

impl Waiting {
    pub(crate) fn start(metrics: &Metrics) -> Self {
        metrics.deliveries_waiting.inc();
        Waiting {
            gauge: metrics.deliveries_waiting.clone(),
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A delivery given back to the schedule unattempted: its webhook's queue in
/// this process was full.
pub(crate) struct HandedBack {
    pub(crate) delivery_id: Uuid,
    pub(crate) webhook_id: i64,
    pub(crate) delay: Duration,
}

impl HandedBack {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics.deliveries_handed_back.inc();
        debug!(
            delivery_id = %self.delivery_id,
            webhook_id = self.webhook_id,
            delay_ms = self.delay.as_millis() as u64,
            "webhook queue full; delivery handed back"
        );
    }
}

/// A batching webhook's collected events became one batch, due at once.
pub(crate) struct BatchFormed {
    pub(crate) webhook_id: i64,
    pub(crate) batch_id: Uuid,
    pub(crate) size: usize,
}

impl BatchFormed {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics.batch_size.observe(self.size as f64);
        debug!(
            webhook_id = self.webhook_id,
            batch_id = %self.batch_id,
            size = self.size,
            "batch formed"
        );
    }
}

/// Collected events of a webhook that no longer batches went back to being
/// delivered one by one.
pub(crate) struct CollectedReleased {
    pub(crate) webhook_id: i64,
    pub(crate) deliveries: u64,
}

impl CollectedReleased {
    pub(crate) fn emit(&self) {
        info!(
            webhook_id = self.webhook_id,
            deliveries = self.deliveries,
            "webhook stopped batching; its collected events are delivered one by one"
        );
    }
}

/// A webhook's stored filter no longer parses (written under other rules):
/// it matches nothing until its owner saves a valid one. Said once per
/// webhook version.
pub(crate) struct FilterUnusable<'a> {
    pub(crate) webhook_id: i64,
    pub(crate) error: &'a webhookd_events::FilterError,
}

impl FilterUnusable<'_> {
    pub(crate) fn emit(&self) {
        warn!(
            webhook_id = self.webhook_id,
            error = %self.error,
            "the webhook's filter does not parse; it gets no events until it is fixed"
        );
    }
}

/// Queued deliveries of webhooks that no longer deliver in order (or are
/// switched off) were let go all at once.
pub(crate) struct QueueReleased {
    pub(crate) deliveries: i64,
}

impl QueueReleased {
    pub(crate) fn emit(&self) {
        info!(
            deliveries = self.deliveries,
            "queued deliveries of webhooks no longer FIFO (or switched off) let go at once"
        );
    }
}

/// The database switched a webhook off (410 Gone, or failing for too long).
/// It reports each switch-off once, however many attempts failed at once.
pub(crate) struct WebhookDisabled<'a> {
    pub(crate) webhook_id: i64,
    pub(crate) reason: &'a str,
}

impl WebhookDisabled<'_> {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics.webhooks_disabled.inc();
        warn!(
            webhook_id = self.webhook_id,
            reason = %self.reason,
            "webhook disabled"
        );
    }
}

/// What is done about a failed statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Then {
    /// A fan-out statement over this many events, retried while their broker
    /// messages stay unacked.
    HoldMessages { events: usize },
    /// Delivery state, retried until written.
    Retry,
    /// Lease renewal of this many deliveries; tried again at the next
    /// renewal.
    RenewLater { deliveries: usize },
    /// Claiming due deliveries; tried again at the next poll.
    ClaimLater,
    /// Collecting a batching webhook's events; tried again shortly.
    CollectLater,
    /// Reading or emptying the outbox; its rows wait for the next pass.
    PublishLater,
    /// Letting FIFO webhooks' next deliveries go; tried again shortly.
    AdvanceLater,
}

/// A database statement failed.
pub(crate) struct StorageFailed<'a> {
    pub(crate) operation: &'static str,
    pub(crate) error: &'a dyn Display,
    pub(crate) then: Then,
}

impl StorageFailed<'_> {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics
            .storage_errors
            .with_label_values(&[self.operation])
            .inc();
        let (operation, error) = (self.operation, self.error);
        match self.then {
            Then::HoldMessages { events } => error!(
                error = %error,
                operation,
                events,
                "a fan-out statement failed; holding its messages and retrying"
            ),
            Then::Retry => error!(
                error = %error,
                operation,
                "writing delivery state failed; retrying"
            ),
            Then::RenewLater { deliveries } => warn!(
                error = %error,
                operation,
                deliveries,
                "renewing leases failed; they may run out and be repeated by another worker"
            ),
            Then::ClaimLater => error!(
                error = %error,
                operation,
                "claiming due deliveries failed"
            ),
            Then::CollectLater => error!(
                error = %error,
                operation,
                "collecting events into batches failed; trying again shortly"
            ),
            Then::PublishLater => warn!(
                error = %error,
                operation,
                "reading the outbox failed; its operational events wait for the next pass"
            ),
            Then::AdvanceLater => error!(
                error = %error,
                operation,
                "letting FIFO webhooks' next deliveries go failed; trying again shortly"
            ),
        }
    }
}

/// One retention pass deleted rows.
pub(crate) struct Purged {
    /// Estimated from the dropped partitions' statistics.
    pub logs: u64,
    pub partitions: u64,
    pub events: u64,
    pub sessions: u64,
}

impl Purged {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        // Counted per replica: the sum over replicas is what was deleted,
        // as only the lock holder deletes anything.
        metrics.logs_deleted.inc_by(self.logs);
        metrics.events_deleted.inc_by(self.events);
        info!(
            logs = self.logs,
            partitions = self.partitions,
            events = self.events,
            sessions = self.sessions,
            "retention: deleted old rows"
        );
    }
}

/// A statistics rollup pass that rolled up `hours` hours (`rows` summaries)
/// and left the rollup `lag_secs` behind (`None`: it never ran).
pub(crate) struct StatsRolledUp {
    pub(crate) hours: i64,
    pub(crate) rows: u64,
    pub(crate) windows: u64,
    pub(crate) lag_secs: Option<f64>,
}

impl StatsRolledUp {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        if let Some(lag) = self.lag_secs {
            metrics.stats_rollup_lag.set(lag);
        }
        if self.hours > 0 || self.windows > 0 {
            info!(
                hours = self.hours,
                rows = self.rows,
                windows = self.windows,
                "statistics rolled up"
            );
        }
    }
}

/// The database pool's connections, sampled.
pub(crate) struct PoolSampled {
    pub(crate) size: u32,
    pub(crate) idle: usize,
}

impl PoolSampled {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        let idle = i64::try_from(self.idle).unwrap_or(i64::MAX);
        let gauges = &metrics.db_pool_connections;
        gauges.with_label_values(&["idle"]).set(idle);
        gauges
            .with_label_values(&["active"])
            .set(i64::from(self.size).saturating_sub(idle));
    }
}

/// The unfinished deliveries, sampled.
pub(crate) struct BacklogSampled {
    pub(crate) pending: i64,
    /// Age of the oldest, in seconds; `None` when nothing is pending.
    pub(crate) oldest_secs: Option<f64>,
}

impl BacklogSampled {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics.deliveries_pending.set(self.pending);
        metrics
            .oldest_pending_delivery
            .set(self.oldest_secs.unwrap_or(0.0));
    }
}

/// The broker's event queue, sampled.
pub(crate) struct QueueSampled {
    pub(crate) ready: u32,
}

impl QueueSampled {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics
            .broker_queue_messages
            .with_label_values(&["ready"])
            .set(i64::from(self.ready));
    }
}

/// Acking written messages failed (the broker went away). Nothing is lost:
/// they are redelivered and find their rows.
pub(crate) struct AckFailed<'a> {
    pub(crate) error: &'a dyn Display,
    pub(crate) messages: usize,
}

impl AckFailed<'_> {
    pub(crate) fn emit(&self) {
        warn!(error = %self.error, messages = self.messages, "acking written batches failed");
    }
}

/// Operational events published from the outbox and confirmed by the
/// broker (their rows are deleted next).
pub(crate) struct OutboxPublished<'a> {
    pub(crate) events: &'a [&'a str],
}

impl OutboxPublished<'_> {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        for event in self.events {
            metrics.outbox_published.with_label_values(&[event]).inc();
        }
        debug!(events = self.events.len(), "operational events published");
    }
}

/// Publishing operational events failed (the broker is away or refused
/// them). Nothing is lost: their rows stay in the outbox and are published
/// on a later pass.
pub(crate) struct OutboxPublishFailed<'a> {
    pub(crate) error: &'a dyn Display,
    pub(crate) events: usize,
}

impl OutboxPublishFailed<'_> {
    pub(crate) fn emit(&self) {
        warn!(
            error = %self.error,
            events = self.events,
            "publishing operational events failed; they stay in the outbox"
        );
    }
}

/// An outbox row that cannot be made a broker message (unknown event, or
/// `data` that is not a JSON object); dropped so it cannot block the rows
/// behind it. The migration's triggers never write one.
pub(crate) struct OutboxRowDropped<'a> {
    pub(crate) event_id: Uuid,
    pub(crate) error: &'a dyn Display,
}

impl OutboxRowDropped<'_> {
    pub(crate) fn emit(&self) {
        error!(event_id = %self.event_id, error = %self.error, "outbox row dropped");
    }
}

/// The outbox's backlog, sampled by the relay.
pub(crate) struct OutboxSampled {
    pub(crate) backlog: i64,
}

impl OutboxSampled {
    pub(crate) fn emit(&self, metrics: &Metrics) {
        metrics.outbox_backlog.set(self.backlog);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(metrics: &Metrics, line_start: &str) -> Option<f64> {
        metrics
            .render()
            .lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn an_attempt_is_in_flight_until_it_finishes_or_is_dropped() {
        let metrics = Metrics::new().unwrap();
        let first = InFlight::start(&metrics);
        let second = InFlight::start(&metrics);
        assert_eq!(
            sample(&metrics, "webhookd_deliveries_in_flight "),
            Some(2.0)
        );
        first.finished("h.example", Some(204), Duration::from_millis(3));
        drop(second);
        assert_eq!(
            sample(&metrics, "webhookd_deliveries_in_flight "),
            Some(0.0)
        );
        assert_eq!(
            sample(&metrics, r#"webhookd_http_responses_total{class="2xx"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&metrics, "webhookd_delivery_duration_seconds_count"),
            Some(1.0),
            "a dropped attempt has no duration"
        );
    }

    #[test]
    fn a_judged_retry_counts_the_outcome_and_the_scheduled_retry() {
        let metrics = Metrics::new().unwrap();
        let judged = |next| AttemptJudged {
            event: "deal.won",
            next,
            status: Some(503),
            elapsed: Duration::ZERO,
            error: Some("HTTP 503"),
        };
        judged(NextStep::RetryIn(Duration::from_secs(1))).emit(&metrics);
        judged(NextStep::Failed).emit(&metrics);
        let counted = |outcome: &str| {
            sample(
                &metrics,
                &format!(r#"webhookd_deliveries_total{{event="deal.won",outcome="{outcome}"}}"#),
            )
        };
        assert_eq!(counted("retry"), Some(1.0));
        assert_eq!(counted("failed"), Some(1.0));
        assert_eq!(
            sample(&metrics, "webhookd_retries_scheduled_total"),
            Some(1.0)
        );
    }

    #[test]
    fn a_waiting_delivery_is_counted_while_it_waits() {
        let metrics = Metrics::new().unwrap();
        let waiting = Waiting::start(&metrics);
        assert_eq!(sample(&metrics, "webhookd_deliveries_waiting "), Some(1.0));
        drop(waiting);
        assert_eq!(sample(&metrics, "webhookd_deliveries_waiting "), Some(0.0));
    }

    #[test]
    fn fanout_writes_are_counted_by_first_attempt_state() {
        let metrics = Metrics::new().unwrap();
        FanoutWritten {
            ended: 3,
            running: 2,
            not_started: 1,
        }
        .emit(&metrics);
        for (state, n) in [("ended", 3.0), ("running", 2.0), ("not_started", 1.0)] {
            let line = format!(r#"webhookd_fanout_written_total{{first_attempt="{state}"}}"#);
            assert_eq!(sample(&metrics, &line), Some(n), "{state}");
        }
    }
}
