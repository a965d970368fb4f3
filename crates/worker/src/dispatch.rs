//! Runs delivery attempts concurrently: admits each delivery per webhook (a
//! cap on requests in flight to one webhook, so one slow endpoint cannot take
//! every connection) and caps the HTTP requests in flight overall. How many
//! deliveries this process holds is not capped here: that is the in-flight
//! window's cap (`window.rs`, `delivery.max_in_flight`), which gives the
//! consumer and the scheduler their backpressure.
//!
//! No head-of-line blocking: a delivery whose webhook has every request slot
//! busy may wait in memory only while that webhook has fewer than
//! `per_endpoint_queue` waiting (and all webhooks together fewer than half of
//! `max_in_flight`); otherwise it is handed back to Postgres to be claimed
//! again later. So a slow or dead endpoint holds a bounded share of memory and
//! never makes the consumer wait, and healthy endpoints keep their pace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tracing::{warn, Instrument};
use webhookd_events::delivery::{AttemptRecord, ClaimedDelivery, NextStep, Record, Verdict};
use webhookd_events::{RetryPolicy, SecretKeys};

use crate::deliver::{AttemptOutcome, Deliverer, Target, TargetRow};
use crate::metrics::events::{AttemptJudged, HandedBack, InFlight, TokenRequested, Waiting};
use crate::metrics::Metrics;
use crate::oauth2::TokenRequests;
use crate::rate_limit::{Paced, RateGate};
use crate::target_cache::CachedTarget;

/// Bounds of the delay before a handed-back delivery is due again. The delay
/// is the time the webhook needs to work through what it already has (from
/// its mean attempt duration): about a second for a busy fast endpoint, up to
/// a minute for a dead one, so a dead endpoint's backlog is not re-claimed
/// and handed back in a tight loop.
const HAND_BACK_MIN: Duration = Duration::from_secs(1);
const HAND_BACK_MAX: Duration = Duration::from_secs(60);
/// Weight of the newest attempt in a webhook's mean duration.
const LATENCY_WEIGHT: f64 = 0.2;
/// Webhooks tracked before idle ones (nothing waiting, every slot free) are
/// forgotten, so memory does not grow with every webhook ever delivered to.
/// A forgotten webhook only loses its mean duration (hand-back delays) and
/// its cached target (rebuilt on its next delivery).
const ENDPOINTS_KEPT: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deliveries held by this process, waiting or in flight (the window's
    /// cap): half of them at most wait for a request slot.
    pub max_in_flight: usize,
    /// HTTP requests in flight.
    pub concurrency: usize,
    /// HTTP requests in flight to one webhook.
    pub per_endpoint: usize,
    /// Deliveries of one webhook waiting for one of its request slots; more
    /// are handed back to Postgres.
    pub per_endpoint_queue: usize,
}

#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    policy: RetryPolicy,
    default_timeout: Duration,
    metrics: Metrics,
    recorder: mpsc::Sender<Record>,
    requests: Arc<Semaphore>,
    per_endpoint: usize,
    per_endpoint_queue: usize,
    /// Waiting deliveries of all webhooks together: half of `max_in_flight`,
    /// so several dead endpoints cannot fill it and stall the healthy ones.
    max_waiting: usize,
    endpoints: Mutex<Endpoints>,
    tracker: TaskTracker,
    /// Send slots of rate-limited webhooks (`rate_limit.rs`).
    rates: RateGate,
    /// Open the webhooks' sealed secrets (SPEC §15).
    keys: SecretKeys,
}

#[derive(Default)]
struct Endpoints {
    by_webhook: HashMap<i64, Endpoint>,
    /// Deliveries waiting for a request slot, all webhooks together.
    waiting: usize,
    /// Size at which idle endpoints are next dropped.
    prune_at: usize,
}

impl Endpoints {
    /// Drops idle endpoints once there are `keep` or more. The next pass
    /// waits until the map has doubled again, so a map of busy endpoints is
    /// not scanned on every new delivery.
    fn prune_idle(&mut self, per_endpoint: usize, keep: usize) {
        if self.by_webhook.len() < self.prune_at.max(keep) {
            return;
        }
        self.by_webhook
            .retain(|_, e| e.waiting > 0 || e.slots.available_permits() < per_endpoint);
        self.prune_at = self.by_webhook.len().saturating_mul(2);
    }
}

struct Endpoint {
    /// Request slots (`per_endpoint`).
    slots: Arc<Semaphore>,
    /// Deliveries held in memory waiting for a slot.
    waiting: usize,
    /// Moving mean of attempt durations; `None` until one has finished.
    mean_latency: Option<Duration>,
    /// The target last built for this webhook (`target_cache.rs`).
    target: Option<CachedTarget>,
}

/// What a new delivery gets from its webhook.
enum Admission {
    /// A request slot, free now.
    Ready(OwnedSemaphorePermit),
    /// A place in the webhook's queue.
    Queued(QueueTicket),
    /// Neither: give the delivery back, due again after this delay.
    HandBack(Duration),
}

/// A place in a webhook's queue; given up when dropped (the slot was obtained,
/// or the task ended), so the counts cannot drift.
struct QueueTicket {
    inner: Arc<Inner>,
    webhook_id: i64,
    slots: Arc<Semaphore>,
    _waiting: Waiting,
}

impl Drop for QueueTicket {
    fn drop(&mut self) {
        let mut endpoints = self.inner.lock_endpoints();
        endpoints.waiting = endpoints.waiting.saturating_sub(1);
        if let Some(endpoint) = endpoints.by_webhook.get_mut(&self.webhook_id) {
            endpoint.waiting = endpoint.waiting.saturating_sub(1);
        }
    }
}

impl Dispatcher {
    pub fn new(
        policy: RetryPolicy,
        default_timeout: Duration,
        limits: Limits,
        metrics: Metrics,
        recorder: mpsc::Sender<Record>,
        budgets: sqlx::PgPool,
        keys: SecretKeys,
    ) -> Self {
        Dispatcher {
            inner: Arc::new(Inner {
                policy,
                default_timeout,
                metrics: metrics.clone(),
                recorder,
                requests: Arc::new(Semaphore::new(limits.concurrency)),
                per_endpoint: limits.per_endpoint,
                per_endpoint_queue: limits.per_endpoint_queue,
                max_waiting: limits.max_in_flight / 2,
                endpoints: Mutex::new(Endpoints::default()),
                tracker: TaskTracker::new(),
                rates: RateGate::new(budgets, metrics.clone()),
                keys,
            }),
        }
    }

    /// Starts attempting a claimed delivery (the window has counted it),
    /// with `deliverer`'s client. A delivery whose webhook already has its
    /// queue full is handed back to Postgres at once instead. Its record
    /// (attempt or hand-back) goes to `report`, or else to the recorder.
    pub(crate) async fn dispatch(
        &self,
        claimed: ClaimedDelivery,
        envelope: Arc<str>,
        report: Option<mpsc::Sender<Record>>,
        deliverer: &Deliverer,
    ) {
        let report = report.unwrap_or_else(|| self.inner.recorder.clone());
        let slot = match self.inner.admit(claimed.webhook_id) {
            Admission::Ready(permit) => Slot::Ready(permit),
            Admission::Queued(ticket) => Slot::Queued(ticket),
            Admission::HandBack(delay) => {
                self.inner.hand_back(&claimed, delay, &report).await;
                return;
            }
        };
        let inner = self.inner.clone();
        let deliverer = deliverer.clone();
        let span = tracing::info_span!(
            "delivery",
            delivery_id = %claimed.delivery_id,
            event_id = %claimed.event_id,
            webhook_id = claimed.webhook_id,
            attempt = claimed.attempts + 1,
        );
        self.inner.tracker.spawn(
            async move { inner.run(claimed, envelope, slot, &deliverer, report).await }
                .instrument(span),
        );
    }

    /// Passes the records still to come on `records` to the recorder, in a
    /// task [`Dispatcher::drain`] waits for like an attempt: a record is
    /// never left behind in `records` when the recorder stops.
    pub(crate) fn forward(&self, mut records: mpsc::Receiver<Record>) {
        let recorder = self.inner.recorder.clone();
        self.inner.tracker.spawn(async move {
            while let Some(record) = records.recv().await {
                if recorder.send(record).await.is_err() {
                    warn!("attempt not recorded: the recorder has stopped; shutdown gives the delivery back");
                    return;
                }
            }
        });
    }

    /// Stops taking work and waits for attempts in flight, at most `grace`.
    /// Returns how many were still running (shutdown gives them back to the
    /// other workers; after a crash their leases do).
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

#[cfg(test)]
impl Dispatcher {
    /// A dispatcher with small limits, for unit tests that connect nowhere.
    pub(crate) fn for_tests(recorder: mpsc::Sender<Record>) -> Self {
        Dispatcher::new(
            RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(10),
                jitter: webhookd_events::Jitter::None,
            },
            Duration::from_secs(5),
            Limits {
                max_in_flight: 8,
                concurrency: 8,
                per_endpoint: 2,
                per_endpoint_queue: 2,
            },
            Metrics::new().expect("metrics"),
            recorder,
            // Never connected: no maintenance task, so no runtime needed.
            sqlx::postgres::PgPoolOptions::new()
                .max_lifetime(None)
                .idle_timeout(None)
                .connect_lazy("postgres://127.0.0.1:9/unused")
                .expect("a valid URL"),
            SecretKeys::none(),
        )
    }
}

/// A delivery's claim on its webhook's request slots.
enum Slot {
    Ready(OwnedSemaphorePermit),
    Queued(QueueTicket),
}

impl Inner {
    fn lock_endpoints(&self) -> std::sync::MutexGuard<'_, Endpoints> {
        // The counts stay consistent even if a holder panicked: every change
        // is a single field update.
        self.endpoints
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decides, without waiting, whether a delivery to `webhook_id` starts
    /// now, waits in memory, or goes back to Postgres.
    fn admit(self: &Arc<Self>, webhook_id: i64) -> Admission {
        let mut endpoints = self.lock_endpoints();
        endpoints.prune_idle(self.per_endpoint, ENDPOINTS_KEPT);
        let total_waiting = endpoints.waiting;
        let endpoint = endpoints
            .by_webhook
            .entry(webhook_id)
            .or_insert_with(|| Endpoint {
                slots: Arc::new(Semaphore::new(self.per_endpoint)),
                waiting: 0,
                mean_latency: None,
                target: None,
            });
        // Fails while others wait for a slot too (tokio's semaphore is fair),
        // so a new delivery never overtakes the queue.
        if let Ok(permit) = endpoint.slots.clone().try_acquire_owned() {
            return Admission::Ready(permit);
        }
        if endpoint.waiting < self.per_endpoint_queue && total_waiting < self.max_waiting {
            endpoint.waiting += 1;
            let slots = endpoint.slots.clone();
            endpoints.waiting += 1;
            return Admission::Queued(QueueTicket {
                inner: self.clone(),
                webhook_id,
                slots,
                _waiting: Waiting::start(&self.metrics),
            });
        }
        Admission::HandBack(hand_back_delay(endpoint, self.per_endpoint))
    }

    async fn hand_back(
        &self,
        claimed: &ClaimedDelivery,
        delay: Duration,
        report: &mpsc::Sender<Record>,
    ) {
        HandedBack {
            delivery_id: claimed.delivery_id,
            webhook_id: claimed.webhook_id,
            delay,
        }
        .emit(&self.metrics);
        self.give_back(claimed, delay, report).await;
    }

    /// Writes the delivery due again after `delay`, with no attempt counted.
    async fn give_back(
        &self,
        claimed: &ClaimedDelivery,
        delay: Duration,
        report: &mpsc::Sender<Record>,
    ) {
        let record = Record::HandBack {
            delivery_id: claimed.delivery_id,
            delay,
        };
        if report.send(record).await.is_err() {
            warn!("hand-back not recorded: the recorder has stopped; shutdown gives the delivery back to the other workers");
        }
    }

    fn observe_latency(&self, webhook_id: i64, elapsed: Duration) {
        let mut endpoints = self.lock_endpoints();
        if let Some(endpoint) = endpoints.by_webhook.get_mut(&webhook_id) {
            endpoint.mean_latency = Some(match endpoint.mean_latency {
                None => elapsed,
                Some(mean) => mean
                    .mul_f64(1.0 - LATENCY_WEIGHT)
                    .saturating_add(elapsed.mul_f64(LATENCY_WEIGHT)),
            });
        }
    }

    async fn run(
        &self,
        claimed: ClaimedDelivery,
        envelope: Arc<str>,
        slot: Slot,
        deliverer: &Deliverer,
        report: mpsc::Sender<Record>,
    ) {
        // The slots first, holding only the claimed row: a queued delivery
        // then costs its row, not a rendered body and a boxed HTTP future
        // (several KiB each), which keeps memory flat with thousands held.
        // The webhook's own slot before a shared request slot, so a slow
        // endpoint waits on its own semaphore without holding shared ones.
        let record = {
            let _endpoint = match slot {
                Slot::Ready(permit) => Some(permit),
                Slot::Queued(ticket) => ticket.slots.clone().acquire_owned().await.ok(),
            };
            // A rate-limited webhook's turn comes before a shared slot is taken.
            let _request = match claimed.rate_limit_per_s {
                None => self.requests.clone().acquire_owned().await,
                Some(limit) => match self
                    .rates
                    .request_slot(&claimed, limit, &self.requests)
                    .await
                {
                    Paced::Go(permit) => permit,
                    Paced::Defer(delay) => {
                        self.give_back(&claimed, delay, &report).await;
                        return;
                    }
                },
            };
            Box::pin(self.attempt_and_judge(&claimed, &envelope, deliverer)).await
        };
        if report.send(Record::Attempt(record)).await.is_err() {
            warn!("attempt not recorded: the recorder has stopped; shutdown gives the delivery back and it is attempted again");
        }
    }

    async fn attempt_and_judge(
        &self,
        claimed: &ClaimedDelivery,
        envelope: &Arc<str>,
        deliverer: &Deliverer,
    ) -> AttemptRecord {
        let attempt = claimed.attempts + 1;
        match self.target(claimed) {
            Ok(target) => {
                // A batch body is fixed (SPEC §11): no template shapes it.
                let body = match claimed.batch_size {
                    Some(_) => Ok(envelope.clone()),
                    None => deliverer.render_body(&target, envelope),
                };
                match body {
                    Ok(body) => {
                        let outcome = self
                            .attempt(deliverer, &target, claimed, attempt, &body)
                            .await;
                        self.judge(claimed, attempt, body, outcome)
                    }
                    // The log row keeps the envelope, never a part of the
                    // oversized body.
                    Err(too_large) => self.judge(
                        claimed,
                        attempt,
                        envelope.clone(),
                        AttemptOutcome::refused(too_large),
                    ),
                }
            }
            // Validated when saved, so only a row edited by hand lands here.
            Err(problem) => {
                let outcome = AttemptOutcome::without_response(problem, Duration::ZERO);
                self.judge(claimed, attempt, envelope.clone(), outcome)
            }
        }
    }

    fn target(&self, c: &ClaimedDelivery) -> Result<Arc<Target>, String> {
        let row = TargetRow {
            webhook_id: c.webhook_id,
            url: &c.url,
            secret: c.secret.expose_secret(),
            previous_secret: c.previous_secret.as_ref().map(ExposeSecret::expose_secret),
            headers: &c.headers,
            template: c.template.as_deref(),
            timeout_ms: c.timeout_ms,
            auth: c.auth.as_ref(),
        };
        // The endpoint exists: its delivery holds one of its slots.
        if let Some(cached) = self
            .lock_endpoints()
            .by_webhook
            .get(&c.webhook_id)
            .and_then(|endpoint| endpoint.target.as_ref())
        {
            if cached.built_from(&row) {
                return Ok(cached.target().clone());
            }
        }
        let built = CachedTarget::build(row, self.default_timeout, &self.keys)?;
        let target = built.target().clone();
        if let Some(endpoint) = self.lock_endpoints().by_webhook.get_mut(&c.webhook_id) {
            endpoint.target = Some(built);
        }
        Ok(target)
    }

    async fn attempt(
        &self,
        deliverer: &Deliverer,
        target: &Target,
        c: &ClaimedDelivery,
        attempt: i32,
        body: &Arc<str>,
    ) -> AttemptOutcome {
        let in_flight = InFlight::start(&self.metrics);
        let outcome = deliverer
            .attempt(target, c.delivery_id, &c.event, attempt, c.batch_size, body)
            .await;
        in_flight.finished(&target.host, outcome.status_code, outcome.elapsed);
        self.observe_latency(c.webhook_id, outcome.elapsed);
        let requests = outcome.token_requests;
        if requests != TokenRequests::default() {
            TokenRequested {
                webhook_id: c.webhook_id,
                fetched: requests.fetched,
                failed: requests.failed,
            }
            .emit(&self.metrics);
        }
        outcome
    }

    fn judge(
        &self,
        c: &ClaimedDelivery,
        attempt: i32,
        payload: Arc<str>,
        outcome: AttemptOutcome,
    ) -> AttemptRecord {
        let next = NextStep::after(
            outcome.verdict,
            attempt,
            &self.policy,
            c.retry_schedule.as_ref(),
            rand::random::<f64>(),
            outcome.retry_after,
        );
        AttemptJudged {
            event: &c.event,
            next,
            status: outcome.status_code,
            elapsed: outcome.elapsed,
            error: outcome.error.as_deref(),
        }
        .emit(&self.metrics);
        // Counted and logged by the recorder once the database has switched
        // the webhook off: many attempts may see the 410 at once.
        let gone = outcome.verdict == Verdict::Gone;
        AttemptRecord {
            delivery_id: c.delivery_id,
            webhook_id: c.webhook_id,
            event: c.event.clone(),
            attempt,
            status_code: outcome.status_code.map(i32::from),
            response_time_ms: i32::try_from(outcome.elapsed.as_millis()).unwrap_or(i32::MAX),
            is_success: outcome.verdict == Verdict::Success,
            payload,
            response: outcome.response,
            error_message: outcome.error,
            request_headers: outcome.request_headers,
            response_headers: outcome.response_headers,
            next,
            disable_webhook: gone,
            fifo: c.fifo,
            probe: c.probe,
        }
    }
}

/// How long a handed-back delivery waits before it is due again: the time the
/// webhook needs for what is ahead of it (its queue and its requests in
/// flight) at its mean attempt duration, within bounds, plus up to half again
/// at random so the returns spread out instead of arriving together.
fn hand_back_delay(endpoint: &Endpoint, per_endpoint: usize) -> Duration {
    let ahead = endpoint.waiting.saturating_add(per_endpoint) as f64 / per_endpoint.max(1) as f64;
    let drain = match endpoint.mean_latency {
        None => Duration::ZERO,
        Some(mean) => {
            Duration::try_from_secs_f64(mean.as_secs_f64() * ahead).unwrap_or(HAND_BACK_MAX)
        }
    };
    let base = drain.clamp(HAND_BACK_MIN, HAND_BACK_MAX);
    let spread = 1.0 + 0.5 * rand::random::<f64>();
    Duration::try_from_secs_f64(base.as_secs_f64() * spread).unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(waiting: usize, mean_ms: Option<u64>) -> Endpoint {
        Endpoint {
            slots: Arc::new(Semaphore::new(2)),
            waiting,
            mean_latency: mean_ms.map(Duration::from_millis),
            target: None,
        }
    }

    fn within(d: Duration, low: Duration) -> bool {
        d >= low && d <= low.mul_f64(1.5)
    }

    fn claimed(webhook_id: i64, secret: &str) -> ClaimedDelivery {
        ClaimedDelivery {
            delivery_id: uuid::Uuid::now_v7(),
            event_id: uuid::Uuid::now_v7(),
            event: "task.created".into(),
            attempts: 0,
            body: None,
            webhook_id,
            url: "http://127.0.0.1:9/hook".into(),
            secret: secret.into(),
            previous_secret: None,
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
        }
    }

    #[test]
    fn a_webhooks_target_is_built_once_while_its_row_is_unchanged() {
        let (recorder, _records) = mpsc::channel(1);
        let dispatcher = Dispatcher::for_tests(recorder);
        let inner = &dispatcher.inner;
        let Admission::Ready(_slot) = inner.admit(1) else {
            panic!("a free slot");
        };
        let first = inner.target(&claimed(1, "s1")).expect("target");
        let again = inner.target(&claimed(1, "s1")).expect("target");
        assert!(Arc::ptr_eq(&first, &again), "reused");
        let rotated = inner.target(&claimed(1, "s2")).expect("target");
        assert!(!Arc::ptr_eq(&first, &rotated), "rebuilt for a new secret");
        let after = inner.target(&claimed(1, "s2")).expect("target");
        assert!(Arc::ptr_eq(&rotated, &after), "the new one is kept");
    }

    #[test]
    fn idle_endpoints_are_forgotten_past_the_cap_busy_ones_never() {
        let mut endpoints = Endpoints::default();
        for id in 0..10 {
            endpoints.by_webhook.insert(id, endpoint(0, Some(5)));
        }
        let queued = 3;
        endpoints
            .by_webhook
            .get_mut(&queued)
            .expect("added")
            .waiting = 1;
        let sending = 7;
        let permit = endpoints.by_webhook[&sending]
            .slots
            .clone()
            .try_acquire_owned()
            .expect("a free slot");

        endpoints.prune_idle(2, 11);
        assert_eq!(endpoints.by_webhook.len(), 10, "under the cap: kept");
        endpoints.prune_idle(2, 10);
        let mut left: Vec<i64> = endpoints.by_webhook.keys().copied().collect();
        left.sort_unstable();
        assert_eq!(left, [queued, sending]);

        // The next pass waits for the map to double (to 4 here).
        endpoints.by_webhook.insert(100, endpoint(0, None));
        endpoints.prune_idle(2, 1);
        assert_eq!(endpoints.by_webhook.len(), 3);
        drop(permit);
        endpoints.by_webhook.insert(101, endpoint(0, None));
        endpoints.prune_idle(2, 1);
        assert_eq!(
            endpoints.by_webhook.keys().copied().collect::<Vec<_>>(),
            [queued]
        );
    }

    #[test]
    fn a_fast_or_unknown_endpoint_gets_its_deliveries_back_after_about_a_second() {
        for e in [
            endpoint(5, None),
            endpoint(5, Some(3)),
            endpoint(0, Some(0)),
        ] {
            let d = hand_back_delay(&e, 2);
            assert!(within(d, HAND_BACK_MIN), "{d:?}");
        }
    }

    #[test]
    fn the_delay_follows_the_time_to_work_through_the_queue_up_to_a_minute() {
        // 8 waiting + 2 in flight, 2 at a time, 1 s each: 5 s.
        let d = hand_back_delay(&endpoint(8, Some(1000)), 2);
        assert!(within(d, Duration::from_secs(5)), "{d:?}");
        let dead = hand_back_delay(&endpoint(1000, Some(10_000)), 2);
        assert!(within(dead, HAND_BACK_MAX), "{dead:?}");
        let absurd = hand_back_delay(&endpoint(usize::MAX, Some(u64::MAX)), 1);
        assert!(within(absurd, HAND_BACK_MAX), "{absurd:?}");
    }
}
