//! A delivery as the pipeline handles it: claimed by a worker, attempted,
//! judged, and recorded. Plain data and pure rules: storage reads and writes
//! these types, the pipeline passes them along, neither owns them.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use uuid::Uuid;

use crate::receiver_auth::StoredAuth;
use crate::retry::{RetryDecision, RetryPolicy, RetrySchedule};

/// The event name of a batch's attempts (`X-Webhook-Event`, `webhook_logs`),
/// never a catalogue event's (SPEC §11).
pub const BATCH_EVENT: &str = "batch";

/// An event accepted from the broker, ready for its fan-out.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub event: &'static str,
    pub user_id: Option<i64>,
    /// The envelope exactly as delivered, shared with its deliveries.
    pub body: Arc<str>,
    /// Every subscription pattern that matches `event`.
    pub patterns: [String; 3],
}

/// A delivery this worker now owns (its lease is running) and should attempt,
/// with what its webhook's row says about where and how to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The envelope; absent for fresh fan-out rows, whose body the caller has.
    pub body: Option<String>,
    pub webhook_id: i64,
    pub url: String,
    pub secret: SecretString,
    /// The rotated-out secret while its grace period runs.
    pub previous_secret: Option<SecretString>,
    pub headers: serde_json::Value,
    pub template: Option<String>,
    pub timeout_ms: Option<i32>,
    pub is_active: bool,
    /// The webhook has failed every attempt since some time.
    pub failing: bool,
    /// The webhook gets its events in batches: a fresh fan-out row of it
    /// waits to be collected into one, it is never attempted on its own.
    pub batching: bool,
    /// This delivery is a batch of that many events (its body is the batch
    /// body, SPEC §11).
    pub batch_size: Option<i32>,
    /// The webhook's own retry delays; `None`: the global policy.
    pub retry_schedule: Option<RetrySchedule>,
    /// The webhook takes one delivery at a time, in order (SPEC §13): a
    /// fresh fan-out row of it waits `queued` for its turn, never attempted
    /// at once; a claimed one is its webhook's head.
    pub fifo: bool,
    /// How the request authenticates to the receiver (SPEC §14), secrets
    /// included; `None`: only the signature.
    pub auth: Option<StoredAuth>,
    /// Requests per second at most to the webhook, across every replica
    /// (SPEC §14); `None`: unlimited.
    pub rate_limit_per_s: Option<i32>,
    /// The webhook's circuit breaker is open (`breaker.rs`): a fresh fan-out
    /// row of it is written parked, never attempted at once.
    pub breaker_open: bool,
    /// This delivery is the open breaker's probe: its outcome closes the
    /// breaker or keeps it open.
    pub probe: bool,
}

/// How one attempt ended, as far as the retry rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Success,
    Failure,
    /// 410 Gone: the receiver asks never to be called again.
    Gone,
    /// Nothing was sent and no later attempt could do better (the rendered
    /// body is over its cap): failed for good, the webhook left as it is.
    Refused,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    RetryIn(Duration),
    Failed,
}

impl NextStep {
    /// The retry judgement, in one place: a success ends the delivery, a 410
    /// ends it for good, any other failure is retried on the webhook's own
    /// `schedule` or else `policy`'s (`Retry-After` honoured within it) until
    /// its attempts run out.
    /// `attempt` is the attempt just made (1-based); `sample` is uniform in
    /// `[0, 1)` and draws the jitter.
    pub fn after(
        verdict: Verdict,
        attempt: i32,
        policy: &RetryPolicy,
        schedule: Option<&RetrySchedule>,
        sample: f64,
        retry_after: Option<Duration>,
    ) -> NextStep {
        match verdict {
            Verdict::Success => NextStep::Succeeded,
            Verdict::Gone | Verdict::Refused => NextStep::Failed,
            Verdict::Failure => {
                let attempt = u32::try_from(attempt).unwrap_or(0);
                match policy.decide(schedule, attempt, sample, retry_after) {
                    RetryDecision::RetryAfter(delay) => NextStep::RetryIn(delay),
                    RetryDecision::GiveUp => NextStep::Failed,
                }
            }
        }
    }

    /// The next attempt's delay, in milliseconds (0 when there is none).
    pub fn delay_ms(self) -> i64 {
        match self {
            NextStep::RetryIn(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            NextStep::Succeeded | NextStep::Failed => 0,
        }
    }

    /// The delivery's status afterwards (`deliveries.status`).
    pub fn status(self) -> &'static str {
        match self {
            NextStep::Succeeded => "succeeded",
            NextStep::RetryIn(_) => "pending",
            NextStep::Failed => "failed",
        }
    }

    /// The `outcome` label of `webhookd_deliveries_total`.
    pub fn outcome(self) -> &'static str {
        match self {
            NextStep::Succeeded => "success",
            NextStep::RetryIn(_) => "retry",
            NextStep::Failed => "failed",
        }
    }
}

/// The end state of one attempt, as written back.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: Uuid,
    pub webhook_id: i64,
    pub event: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub response_time_ms: i32,
    pub is_success: bool,
    /// The body sent, shared with the request (and, without a template,
    /// with the event's other deliveries).
    pub payload: Arc<str>,
    pub response: Option<String>,
    pub error_message: Option<String>,
    /// The headers sent and received, each a JSON array of `[name, value]`
    /// pairs, bounded and with credentials masked (the attempt's page).
    pub request_headers: Option<String>,
    pub response_headers: Option<String>,
    pub next: NextStep,
    /// The receiver answered 410 Gone: the webhook is switched off.
    pub disable_webhook: bool,
    /// The delivery is a FIFO webhook's head: once it has succeeded or
    /// failed for good, the next one may go.
    pub fifo: bool,
    /// The attempt was its webhook's breaker probe.
    pub probe: bool,
}

/// What becomes of a delivery the dispatcher took: an attempt to record, or
/// a delivery given back unattempted.
#[derive(Debug)]
pub enum Record {
    /// An attempt was made: log it and move the delivery on.
    Attempt(AttemptRecord),
    /// A delivery was not attempted (its webhook's queue in this process is
    /// full): make it due again after `delay`, counting no attempt.
    HandBack { delivery_id: Uuid, delay: Duration },
}

impl Record {
    /// The delivery the record is about.
    pub fn delivery_id(&self) -> Uuid {
        match self {
            Record::Attempt(attempt) => attempt.delivery_id,
            Record::HandBack { delivery_id, .. } => *delivery_id,
        }
    }

    /// Whether it leaves the delivery due again at some point.
    pub fn schedules_a_retry(&self) -> bool {
        match self {
            Record::Attempt(attempt) => matches!(attempt.next, NextStep::RetryIn(_)),
            Record::HandBack { .. } => true,
        }
    }
}

/// How long a claimed delivery is this worker's: its webhook's timeout plus
/// a margin. Lease lengths are also computed in SQL from each webhook's own
/// timeout, with these two numbers.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub default_timeout_ms: i64,
    pub margin_ms: i64,
}

impl Lease {
    /// The lease of a delivery to a webhook with this timeout override.
    pub fn of(&self, timeout_ms: Option<i32>) -> Duration {
        let timeout = timeout_ms.map_or(self.default_timeout_ms, i64::from);
        let ms = timeout.saturating_add(self.margin_ms).max(0);
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Jitter;
    use secrecy::ExposeSecret;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        jitter: Jitter::None,
    };

    #[test]
    fn a_success_ends_the_delivery_whatever_the_attempt() {
        for attempt in [1, 3, 99] {
            let next = NextStep::after(Verdict::Success, attempt, &POLICY, None, 0.5, None);
            assert_eq!(next, NextStep::Succeeded);
            assert_eq!((next.status(), next.outcome()), ("succeeded", "success"));
        }
    }

    #[test]
    fn gone_fails_for_good_even_with_attempts_left() {
        let next = NextStep::after(Verdict::Gone, 1, &POLICY, None, 0.5, None);
        assert_eq!(next, NextStep::Failed);
        assert_eq!((next.status(), next.delay_ms()), ("failed", 0));
    }

    #[test]
    fn a_refused_attempt_fails_for_good_even_with_attempts_left() {
        let next = NextStep::after(Verdict::Refused, 1, &POLICY, None, 0.5, None);
        assert_eq!(next, NextStep::Failed);
    }

    #[test]
    fn a_failure_is_retried_on_the_schedule_until_attempts_run_out() {
        let first = NextStep::after(Verdict::Failure, 1, &POLICY, None, 0.5, None);
        assert_eq!(first, NextStep::RetryIn(Duration::from_secs(1)));
        assert_eq!((first.status(), first.outcome()), ("pending", "retry"));
        assert_eq!(first.delay_ms(), 1000);
        let second = NextStep::after(Verdict::Failure, 2, &POLICY, None, 0.5, None);
        assert_eq!(second, NextStep::RetryIn(Duration::from_secs(2)));
        let last = NextStep::after(Verdict::Failure, 3, &POLICY, None, 0.5, None);
        assert_eq!(last, NextStep::Failed);
        assert_eq!(last.outcome(), "failed");
    }

    #[test]
    fn retry_after_is_honoured_but_clamped_to_the_longest_backoff() {
        let asked = Some(Duration::from_secs(30));
        let next = NextStep::after(Verdict::Failure, 1, &POLICY, None, 0.5, asked);
        assert_eq!(next, NextStep::RetryIn(Duration::from_secs(30)));
        let greedy = Some(Duration::from_secs(86_400));
        let next = NextStep::after(Verdict::Failure, 1, &POLICY, None, 0.5, greedy);
        assert_eq!(next, NextStep::RetryIn(POLICY.max_backoff));
        let last = NextStep::after(Verdict::Failure, 3, &POLICY, None, 0.5, asked);
        assert_eq!(
            last,
            NextStep::Failed,
            "no attempts left: Retry-After ignored"
        );
    }

    #[test]
    fn a_nonsensical_attempt_number_is_still_judged() {
        let next = NextStep::after(Verdict::Failure, -1, &POLICY, None, 0.5, None);
        assert!(matches!(next, NextStep::RetryIn(_)), "{next:?}");
    }

    #[test]
    fn a_lease_is_the_webhooks_timeout_plus_the_margin() {
        let lease = Lease {
            default_timeout_ms: 10_000,
            margin_ms: 5_000,
        };
        assert_eq!(lease.of(None), Duration::from_secs(15));
        assert_eq!(lease.of(Some(1_000)), Duration::from_secs(6));
        assert_eq!(lease.of(Some(i32::MIN)), Duration::ZERO);
    }

    #[test]
    fn a_claimed_deliverys_debug_output_hides_its_secrets() {
        let claimed = ClaimedDelivery {
            delivery_id: Uuid::nil(),
            event_id: Uuid::nil(),
            event: "task.created".into(),
            attempts: 0,
            body: None,
            webhook_id: 1,
            url: "http://127.0.0.1:9/hook".into(),
            secret: "whsec_current-secret".into(),
            previous_secret: Some("whsec_old-secret".into()),
            headers: serde_json::json!({}),
            template: None,
            timeout_ms: None,
            is_active: true,
            failing: false,
            batching: false,
            batch_size: None,
            retry_schedule: None,
            fifo: false,
            auth: None,
            rate_limit_per_s: None,
            breaker_open: false,
            probe: false,
        };
        let shown = format!("{claimed:?}");
        assert!(!shown.contains("current-secret"), "{shown}");
        assert!(!shown.contains("old-secret"), "{shown}");
        assert_eq!(claimed.secret.expose_secret(), "whsec_current-secret");
    }
}
