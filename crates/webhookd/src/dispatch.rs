//! Runs delivery attempts concurrently within limits: a cap on deliveries held
//! in memory (backpressure to the consumer and the scheduler), a cap on
//! requests in flight, and a cap per webhook so one slow endpoint cannot take
//! every connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};
use webhookd_events::{RetryDecision, RetryPolicy, Template};
use webhookd_signing::Signer;

use crate::deliver::{AttemptOutcome, Deliverer, Target, Verdict};
use crate::metrics::Metrics;
use crate::storage::deliveries::{AttemptRecord, ClaimedDelivery, NextStep};

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deliveries held by this process, waiting or in flight.
    pub max_in_flight: usize,
    /// HTTP requests in flight.
    pub concurrency: usize,
    /// HTTP requests in flight to one webhook.
    pub per_endpoint: usize,
}

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    deliverer: Deliverer,
    policy: RetryPolicy,
    default_timeout: Duration,
    metrics: Metrics,
    recorder: mpsc::Sender<AttemptRecord>,
    held: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    per_endpoint: usize,
    endpoints: Mutex<HashMap<i64, Arc<Semaphore>>>,
    tracker: TaskTracker,
}

impl Dispatcher {
    pub fn new(
        deliverer: Deliverer,
        policy: RetryPolicy,
        default_timeout: Duration,
        limits: Limits,
        metrics: Metrics,
        recorder: mpsc::Sender<AttemptRecord>,
    ) -> Self {
        Dispatcher {
            inner: Arc::new(Inner {
                deliverer,
                policy,
                default_timeout,
                metrics,
                recorder,
                held: Arc::new(Semaphore::new(limits.max_in_flight)),
                requests: Arc::new(Semaphore::new(limits.concurrency)),
                per_endpoint: limits.per_endpoint,
                endpoints: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
            }),
        }
    }

    /// How many more deliveries can be taken without waiting.
    pub fn capacity(&self) -> usize {
        self.inner.held.available_permits()
    }

    /// Starts attempting a claimed delivery; waits while the process already
    /// holds `max_in_flight` deliveries.
    pub async fn dispatch(&self, claimed: ClaimedDelivery, envelope: Arc<str>) {
        let Ok(permit) = self.inner.held.clone().acquire_owned().await else {
            return; // closed only at shutdown; the lease hands the delivery back
        };
        let inner = self.inner.clone();
        let span = tracing::info_span!(
            "delivery",
            delivery_id = %claimed.delivery_id,
            event_id = %claimed.event_id,
            webhook_id = claimed.webhook_id,
            attempt = claimed.attempts + 1,
        );
        self.inner
            .tracker
            .spawn(async move { inner.run(claimed, envelope, permit).await }.instrument(span));
    }

    /// Stops taking work and waits for attempts in flight, at most `grace`.
    /// Returns how many were still running (their leases hand them back).
    pub async fn drain(&self, grace: Duration) -> usize {
        self.inner.tracker.close();
        if tokio::time::timeout(grace, self.inner.tracker.wait())
            .await
            .is_err()
        {
            return self.inner.tracker.len();
        }
        0
    }
}

impl Inner {
    fn endpoint(&self, webhook_id: i64) -> Arc<Semaphore> {
        let mut map = self
            .endpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(webhook_id)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint)))
            .clone()
    }

    async fn run(&self, claimed: ClaimedDelivery, envelope: Arc<str>, _held: OwnedSemaphorePermit) {
        let attempt = claimed.attempts + 1;
        let record = match self.target(&claimed) {
            Ok(target) => {
                let body = Deliverer::render_body(&target, &envelope);
                let outcome = self.attempt(&target, &claimed, attempt, &body).await;
                self.judge(&claimed, attempt, body, outcome)
            }
            // Validated when saved, so only a row edited by hand lands here.
            Err(problem) => {
                let outcome = AttemptOutcome {
                    verdict: Verdict::Failure,
                    status_code: None,
                    elapsed: Duration::ZERO,
                    response: None,
                    error: Some(problem),
                    retry_after: None,
                };
                self.judge(&claimed, attempt, envelope.to_string(), outcome)
            }
        };
        if self.recorder.send(record).await.is_err() {
            warn!("attempt not recorded: the recorder has stopped; the lease will hand the delivery back");
        }
    }

    fn target(&self, c: &ClaimedDelivery) -> Result<Target, String> {
        let template = match &c.template {
            Some(text) => {
                Some(Template::parse(text).map_err(|e| format!("invalid template: {e}"))?)
            }
            None => None,
        };
        let headers = match &c.headers.0 {
            serde_json::Value::Object(map) => map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect(),
            _ => Vec::new(),
        };
        let timeout = c
            .timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(self.default_timeout, Duration::from_millis);
        Ok(Target {
            webhook_id: c.webhook_id,
            url: c.url.clone(),
            signer: Signer::new(&c.secret),
            headers,
            template,
            timeout,
        })
    }

    async fn attempt(
        &self,
        target: &Target,
        c: &ClaimedDelivery,
        attempt: i32,
        body: &str,
    ) -> AttemptOutcome {
        let endpoint = self.endpoint(c.webhook_id);
        let _endpoint = endpoint.acquire_owned().await;
        let _request = self.requests.clone().acquire_owned().await;
        self.metrics.deliveries_in_flight.inc();
        let outcome = self
            .deliverer
            .attempt(target, c.delivery_id, &c.event, attempt, body)
            .await;
        self.metrics.deliveries_in_flight.dec();
        self.metrics
            .delivery_duration
            .observe(outcome.elapsed.as_secs_f64());
        outcome
    }

    fn judge(
        &self,
        c: &ClaimedDelivery,
        attempt: i32,
        payload: String,
        outcome: AttemptOutcome,
    ) -> AttemptRecord {
        let next = match outcome.verdict {
            Verdict::Success => NextStep::Succeeded,
            Verdict::Gone => NextStep::Failed,
            Verdict::Failure => {
                let attempt_no = u32::try_from(attempt).unwrap_or(u32::MAX);
                match self.policy.after_failure(
                    attempt_no,
                    rand::random::<f64>(),
                    outcome.retry_after,
                ) {
                    RetryDecision::RetryAfter(delay) => NextStep::RetryIn(delay),
                    RetryDecision::GiveUp => NextStep::Failed,
                }
            }
        };
        let label = match next {
            NextStep::Succeeded => "success",
            NextStep::RetryIn(_) => "retry",
            NextStep::Failed => "failed",
        };
        self.metrics
            .deliveries
            .with_label_values(&[c.event.as_str(), label])
            .inc();
        let status = outcome.status_code;
        let error = outcome.error.as_deref().unwrap_or("");
        match next {
            NextStep::Succeeded => {
                debug!(status, ms = outcome.elapsed.as_millis() as u64, "delivered")
            }
            NextStep::RetryIn(delay) => {
                self.metrics.retries_scheduled.inc();
                info!(
                    status,
                    error,
                    retry_in_ms = delay.as_millis() as u64,
                    "attempt failed; retry scheduled"
                );
            }
            NextStep::Failed => warn!(status, error, "delivery failed for good"),
        }
        let gone = outcome.verdict == Verdict::Gone;
        if gone {
            self.metrics.webhooks_disabled.inc();
            warn!("receiver answered 410 Gone; disabling the webhook");
        }
        AttemptRecord {
            delivery_id: c.delivery_id,
            webhook_id: c.webhook_id,
            event: c.event.clone(),
            attempt,
            status_code: status.map(i32::from),
            response_time_ms: i32::try_from(outcome.elapsed.as_millis()).unwrap_or(i32::MAX),
            is_success: outcome.verdict == Verdict::Success,
            payload,
            response: outcome.response,
            error_message: outcome.error,
            next,
            disable_webhook: gone,
        }
    }
}
