//! Per-webhook rate limits shared by every worker replica (SPEC §14
//! `rate_limit_per_s`).
//!
//! The budget lives in Postgres (`store::rate_limits`): a virtual schedule per
//! webhook that every replica draws send slots from, one statement per run of
//! slots. A delivery takes the next slot this process holds for its webhook,
//! reserving a run when there is none, and sleeps until it (holding its
//! webhook's request slot, no connection and none of the shared request
//! slots). A slot further than [`MAX_AHEAD`] is not granted: the delivery is
//! handed back, due when the budget will have room, instead of sleeping.
//!
//! Tolerance: a request goes out between its slot and [`SLACK`] after it
//! (older slots are dropped unused), so any one-second window holds the
//! requests of slots within 1 s + `SLACK`: at most `limit * 1.05 + 1`.

use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use webhookd_events::delivery::ClaimedDelivery;
use webhookd_store::rate_limits::{reserve_send_slots, Reservation};
use webhookd_store::StorageError;

use crate::metrics::rate_limited::{RateDeferred, RateWaited};
use crate::metrics::Metrics;

/// The furthest ahead a slot is granted; a delivery that would wait longer is
/// handed back to Postgres rather than held in memory.
pub(crate) const MAX_AHEAD: Duration = Duration::from_secs(1);
/// How late after its slot a request may still go out (timer jitter, a
/// moment's wait for a shared request slot). A later one takes a new slot.
pub(crate) const SLACK: Duration = Duration::from_millis(50);
/// Runs per second of limit: one reservation covers at most a tenth of a
/// second of the webhook's budget, so slots a replica reserves and then
/// cannot use (its deliveries went elsewhere) cost the others little.
const RUNS_PER_SECOND: i64 = 10;
/// Deferral times from one reservation serve the deliveries waiting with it;
/// later ones reserve afresh (the budget has moved on).
const DEFERRALS_FRESH: Duration = Duration::from_millis(100);
/// Deferral delays are rounded down to this grain: deferred deliveries then
/// fall due together, a tenth of a second's worth per scheduler claim,
/// instead of one by one `1 / limit` apart (which cost a claim and a wake-up
/// per delivery). Coming back a little early, they get a slot and sleep.
const DEFER_GRAIN: Duration = Duration::from_millis(100);
/// A reservation whose first slot is at most this far ahead found the
/// budget unused (`next_free` in the past).
const UNBOUND_WITHIN: Duration = Duration::from_millis(5);
/// When reading the budget fails, the delivery is due again after this.
const UNAVAILABLE_DELAY: Duration = Duration::from_secs(1);
/// Slots a delivery may take in turn when each came and went while it
/// waited for a shared request slot; then it is handed back.
const PACING_RETRIES: usize = 3;
/// Limited webhooks remembered before idle ones are forgotten (they lose only
/// the slots they held).
const BUDGETS_KEPT: usize = 4096;

/// What the gate decided for one delivery.
#[derive(Debug)]
pub(crate) enum Pass {
    /// Its slot has come: send now, as long as it is by `slot + SLACK`.
    Send { slot: Instant, waited: Duration },
    /// No slot within [`MAX_AHEAD`]: give it back, due after `delay`.
    Defer {
        delay: Duration,
        error: Option<StorageError>,
    },
}

/// The send slots this process holds, per limited webhook.
pub(crate) struct RateGate {
    pool: PgPool,
    metrics: Metrics,
    budgets: Mutex<HashMap<i64, Arc<Budget>>>,
}

#[derive(Default)]
struct Budget {
    bank: tokio::sync::Mutex<Bank>,
    /// Deliveries in [`RateGate::pass`] without a slot yet: the size of the
    /// next run (up to a tenth of a second's worth).
    waiting: AtomicUsize,
    /// A run is being reserved ahead ([`RateGate::refill_ahead`]).
    refilling: std::sync::atomic::AtomicBool,
}

/// Slots and deferral times reserved and not yet taken, earliest first.
#[derive(Default, Debug)]
struct Bank {
    slots: VecDeque<Instant>,
    deferrals: VecDeque<Instant>,
    reserved_at: Option<Instant>,
    /// The last reservation was granted whole and started about now: the
    /// limit is not binding at present.
    unbound: bool,
    /// The next run's size when fewer deliveries wait: doubled each time a
    /// run was used up, halved when slots went stale unused, so a webhook
    /// with a steady flow reserves once per many deliveries, and one with a
    /// trickle wastes little of the budget.
    run: usize,
}

/// What one delivery takes from the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ticket {
    Slot(Instant),
    Defer(Instant),
}

impl Bank {
    /// Drops what can no longer be used at `now`: slots more than [`SLACK`]
    /// past (sending on them would bunch requests) and stale deferral times.
    /// Returns whether a slot went unused.
    fn drop_stale(&mut self, now: Instant) -> bool {
        let mut wasted = false;
        while self.slots.front().is_some_and(|s| *s + SLACK < now) {
            self.slots.pop_front();
            wasted = true;
        }
        if wasted {
            self.run /= 2;
        }
        if self
            .reserved_at
            .is_none_or(|at| now.saturating_duration_since(at) > DEFERRALS_FRESH)
        {
            self.deferrals.clear();
        }
        wasted
    }

    /// Slots to reserve now for `waiting` deliveries: see [`run_size`] and
    /// [`Bank::run`]. A run reserved after one went stale is not enlarged.
    fn next_run(&mut self, limit: i32, waiting: usize, wasted: bool) -> i32 {
        let n = run_size(limit, waiting.max(self.run));
        let n_usize = usize::try_from(n).unwrap_or(1);
        self.run = if wasted {
            n_usize
        } else {
            n_usize.saturating_mul(2)
        };
        n
    }

    fn take(&mut self) -> Option<Ticket> {
        self.slots
            .pop_front()
            .map(Ticket::Slot)
            .or_else(|| self.deferrals.pop_front().map(Ticket::Defer))
    }

    /// Adds a reservation whose offsets count from `at` (when its answer
    /// came: a little after the database's `now()`, so slots land late
    /// rather than early).
    fn fill(&mut self, at: Instant, reservation: &Reservation) {
        self.slots
            .extend(reservation.slots().map(|offset| at + offset));
        self.deferrals
            .extend(reservation.deferrals().map(|offset| at + offset));
        self.reserved_at = Some(at);
        self.unbound = reservation.granted == reservation.requested
            && reservation.first_slot_s <= UNBOUND_WITHIN.as_secs_f64();
    }

    /// Whether to reserve the next run before this one is used up: only
    /// while the limit does not bind (the last run was granted whole, from
    /// now), so no delivery waits for the round trip; a binding budget is
    /// never reserved ahead of need.
    fn wants_refill(&self) -> bool {
        self.unbound && self.slots.len() <= self.run / 4
    }
}

/// Counts a delivery as waiting for a slot while it lives.
struct Demand<'a>(&'a AtomicUsize);

impl<'a> Demand<'a> {
    fn start(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::Relaxed);
        Demand(waiting)
    }
}

impl Drop for Demand<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Slots to reserve at once: one per delivery waiting (or as many as the
/// webhook's recent flow took), at most a tenth of a second's budget, at
/// least one.
fn run_size(limit: i32, waiting: usize) -> i32 {
    let tenth = (i64::from(limit.max(1)) + RUNS_PER_SECOND - 1) / RUNS_PER_SECOND;
    let waiting = i64::try_from(waiting).unwrap_or(i64::MAX);
    i32::try_from(waiting.clamp(1, tenth)).unwrap_or(1)
}

impl RateGate {
    pub(crate) fn new(pool: PgPool, metrics: Metrics) -> Self {
        RateGate {
            pool,
            metrics,
            budgets: Mutex::new(HashMap::new()),
        }
    }

    fn budget(&self, webhook_id: i64) -> Arc<Budget> {
        // Plain values: the map stays usable whatever a panicking holder did.
        let mut budgets = self
            .budgets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if budgets.len() >= BUDGETS_KEPT {
            budgets.retain(|_, budget| Arc::strong_count(budget) > 1);
        }
        budgets.entry(webhook_id).or_default().clone()
    }

    /// Waits for a send slot of `webhook_id` at `limit` requests per second,
    /// or says to hand the delivery back.
    pub(crate) async fn pass(&self, webhook_id: i64, limit: i32) -> Pass {
        let budget = self.budget(webhook_id);
        let ticket = {
            let demand = Demand::start(&budget.waiting);
            let mut bank = budget.bank.lock().await;
            let wasted = bank.drop_stale(Instant::now());
            let ticket = match bank.take() {
                Some(ticket) => ticket,
                None => {
                    let waiting = budget.waiting.load(Ordering::Relaxed);
                    let n = bank.next_run(limit, waiting, wasted);
                    match reserve_send_slots(&self.pool, webhook_id, limit, n, MAX_AHEAD).await {
                        Ok(reservation) => {
                            bank.fill(Instant::now(), &reservation);
                            // A reservation grants or defers every slot asked.
                            bank.take().unwrap_or(Ticket::Defer(Instant::now()))
                        }
                        Err(error) => {
                            return Pass::Defer {
                                delay: UNAVAILABLE_DELAY,
                                error: Some(error),
                            }
                        }
                    }
                }
            };
            drop(demand);
            if matches!(ticket, Ticket::Slot(_)) && bank.wants_refill() {
                let n = bank.next_run(limit, 0, false);
                self.refill_ahead(webhook_id, limit, n, &budget);
            }
            ticket
        };
        let now = Instant::now();
        match ticket {
            // Local timing can put a granted slot a little past the horizon:
            // still worth the short sleep.
            Ticket::Slot(slot) => {
                tokio::time::sleep_until(slot).await;
                Pass::Send {
                    slot,
                    waited: slot.saturating_duration_since(now),
                }
            }
            Ticket::Defer(due) => Pass::Defer {
                delay: coarse(due.saturating_duration_since(now)),
                error: None,
            },
        }
    }
}

impl RateGate {
    /// Reserves `n` slots in the background and adds them to the bank, so
    /// the deliveries that come next find slots instead of waiting for the
    /// round trip (which made first attempts outlast the fan-out's window:
    /// a second write each). At most one such reservation per webhook.
    fn refill_ahead(&self, webhook_id: i64, limit: i32, n: i32, budget: &Arc<Budget>) {
        if budget.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.pool.clone();
        let budget = budget.clone();
        tokio::spawn(async move {
            // A failure is left to the next delivery's own reservation,
            // which reports it.
            if let Ok(reservation) =
                reserve_send_slots(&pool, webhook_id, limit, n, MAX_AHEAD).await
            {
                let at = Instant::now();
                budget.bank.lock().await.fill(at, &reservation);
            }
            budget.refilling.store(false, Ordering::Release);
        });
    }
}

/// A shared request slot obtained on time, or the delay after which the
/// delivery is due again.
pub(crate) enum Paced {
    Go(Result<OwnedSemaphorePermit, AcquireError>),
    Defer(Duration),
}

impl RateGate {
    /// Waits for `claimed`'s send slot (its webhook has `limit`), then for
    /// one of the shared `requests` slots: taken only once the send slot
    /// has come, so a delivery waiting for its turn holds none of them.
    pub(crate) async fn request_slot(
        &self,
        claimed: &ClaimedDelivery,
        limit: i32,
        requests: &Arc<Semaphore>,
    ) -> Paced {
        let mut waited = Duration::ZERO;
        for _ in 0..PACING_RETRIES {
            match self.pass(claimed.webhook_id, limit).await {
                Pass::Defer { delay, error } => {
                    self.deferred(claimed, delay, error.as_ref().map(|e| e as &dyn Display));
                    return Paced::Defer(delay);
                }
                Pass::Send { slot, waited: w } => {
                    waited += w;
                    let permit = requests.clone().acquire_owned().await;
                    if in_time(slot, Instant::now()) {
                        if !waited.is_zero() {
                            RateWaited {
                                delivery_id: claimed.delivery_id,
                                webhook_id: claimed.webhook_id,
                                wait: waited,
                            }
                            .emit(&self.metrics);
                        }
                        return Paced::Go(permit);
                    }
                }
            }
        }
        // Every shared request slot stays busy: Postgres keeps it meanwhile.
        self.deferred(claimed, MAX_AHEAD, None);
        Paced::Defer(MAX_AHEAD)
    }

    fn deferred(&self, claimed: &ClaimedDelivery, delay: Duration, error: Option<&dyn Display>) {
        RateDeferred {
            delivery_id: claimed.delivery_id,
            webhook_id: claimed.webhook_id,
            delay,
            error,
        }
        .emit(&self.metrics);
    }
}

/// `delay` rounded down to [`DEFER_GRAIN`], when it is longer than that.
fn coarse(delay: Duration) -> Duration {
    let grain = DEFER_GRAIN.as_millis().max(1);
    let ms = delay.as_millis();
    if ms < grain {
        return delay;
    }
    Duration::from_millis(u64::try_from(ms - ms % grain).unwrap_or(u64::MAX))
}

/// Whether a request on `slot` may still go out at `now`.
pub(crate) fn in_time(slot: Instant, now: Instant) -> bool {
    now <= slot + SLACK
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(granted: i32, requested: i32) -> Reservation {
        Reservation {
            limit: 50,
            requested,
            granted,
            first_slot_s: 0.1,
            first_deferred_s: 1.0,
        }
    }

    #[test]
    fn a_run_is_one_slot_per_waiting_delivery_up_to_a_tenth_of_a_second() {
        assert_eq!(run_size(50, 0), 1);
        assert_eq!(run_size(50, 3), 3);
        assert_eq!(run_size(50, 100), 5);
        assert_eq!(run_size(1, 100), 1);
        assert_eq!(run_size(200, 32), 20);
        assert_eq!(run_size(10_000, usize::MAX), 1000);
        assert_eq!(run_size(0, 7), 1);
    }

    #[test]
    fn runs_grow_while_they_are_used_up_and_shrink_when_slots_go_stale() {
        let mut bank = Bank::default();
        let sizes: Vec<i32> = (0..6).map(|_| bank.next_run(200, 1, false)).collect();
        assert_eq!(sizes, [1, 2, 4, 8, 16, 20], "up to a tenth of 200/s");
        assert_eq!(bank.next_run(200, 1, true), 20, "the run that went stale");
        bank.fill(Instant::now(), &reservation(4, 4));
        assert!(bank.drop_stale(Instant::now() + Duration::from_secs(1)));
        assert_eq!(bank.next_run(200, 1, true), 10, "halved");
        assert_eq!(bank.next_run(200, 15, false), 15, "or as many as wait");
    }

    #[test]
    fn only_a_budget_that_does_not_bind_is_reserved_ahead() {
        let mut bank = Bank::default();
        let at = Instant::now();
        let mut free = reservation(4, 4);
        free.first_slot_s = 0.0;
        bank.run = 8;
        bank.fill(at, &free);
        assert!(!bank.wants_refill(), "four left of a run of eight");
        for _ in 0..2 {
            bank.take();
        }
        assert!(bank.wants_refill(), "two left");
        let mut bank = Bank {
            run: 8,
            ..Bank::default()
        };
        bank.fill(at, &reservation(4, 4));
        bank.take();
        bank.take();
        assert!(!bank.wants_refill(), "its first slot was 100 ms ahead");
        let mut bank = Bank {
            run: 8,
            ..Bank::default()
        };
        let mut partly = reservation(2, 4);
        partly.first_slot_s = 0.0;
        bank.fill(at, &partly);
        assert!(!bank.wants_refill(), "not granted whole");
    }

    #[test]
    fn slots_are_taken_in_order_before_deferrals() {
        let mut bank = Bank::default();
        let at = Instant::now();
        bank.fill(at, &reservation(2, 3));
        let ms = Duration::from_millis;
        assert_eq!(bank.take(), Some(Ticket::Slot(at + ms(100))));
        assert_eq!(bank.take(), Some(Ticket::Slot(at + ms(120))));
        assert_eq!(bank.take(), Some(Ticket::Defer(at + ms(1000))));
        assert_eq!(bank.take(), None);
    }

    #[test]
    fn slots_past_the_slack_and_old_deferrals_are_dropped_unused() {
        let mut bank = Bank::default();
        let at = Instant::now();
        bank.fill(at, &reservation(3, 5));
        assert!(!bank.drop_stale(at + Duration::from_millis(50)));
        assert_eq!(bank.slots.len(), 3, "nothing stale yet");
        assert_eq!(bank.deferrals.len(), 2, "deferrals still fresh");
        // 100, 120, 140 ms; at 175 ms only the last is within the slack.
        assert!(bank.drop_stale(at + Duration::from_millis(175)));
        assert_eq!(
            bank.take(),
            Some(Ticket::Slot(at + Duration::from_millis(140)))
        );
        assert_eq!(bank.take(), None, "deferrals older than fresh are gone");
    }

    #[test]
    fn deferrals_fall_due_on_a_tenth_of_a_second_grid() {
        let ms = Duration::from_millis;
        assert_eq!(coarse(ms(1_234)), ms(1_200));
        assert_eq!(coarse(ms(1_299)), ms(1_200));
        assert_eq!(coarse(ms(100)), ms(100));
        assert_eq!(coarse(ms(99)), ms(99), "short ones as they are");
        assert_eq!(coarse(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_request_is_in_time_up_to_the_slack_after_its_slot() {
        let slot = Instant::now();
        assert!(in_time(slot, slot));
        assert!(in_time(slot, slot + SLACK));
        assert!(!in_time(slot, slot + SLACK + Duration::from_millis(1)));
    }
}
