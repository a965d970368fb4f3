//! The in-flight window: the deliveries this process holds, from claim to
//! durable outcome, and the one cap on how many.
//!
//! A delivery is held from the moment the consumer or the scheduler has
//! claimed it (its lease runs) until its outcome is committed: the record of
//! its attempt (or of its hand-back) is written to Postgres. Two things follow:
//!
//! - At most `max_in_flight` held deliveries are ever handed to the
//!   dispatcher. So the attempts a `kill -9` can leave made but unrecorded,
//!   which another worker repeats once their leases run out, are at most
//!   `max_in_flight`: that bounds the duplicates a crash causes.
//! - While held, its lease is renewed ([`renew_leases`]), so a lease only
//!   runs out when its worker is gone: a slow attempt, a long wait behind a
//!   busy endpoint or a starved machine never make another worker repeat a
//!   delivery that is still in hand. Leases can then be short, and a dead
//!   worker's deliveries come back quickly.
//! - What is still held when the grace period ends was never attempted, or
//!   its attempt did not finish in time: shutdown releases it to the other
//!   workers at once instead of leaving it to its lease.
//!
//! A delivery leaves the window when its outcome is committed: by the
//! recorder (`record.rs`) or by the fan-out's commit (`commit.rs`), each of
//! which settles what it wrote.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhookd_events::delivery::{ClaimedDelivery, Lease, Record};
use webhookd_store::handback;

use crate::deliver::Deliverer;
use crate::dispatch::Dispatcher;
use crate::metrics::events::{StorageFailed, Then};
use crate::metrics::Metrics;

/// The deliveries this process holds: claimed ones waiting to be dispatched
/// (no window slot yet), and dispatched ones with their slot.
pub struct Held {
    window: Arc<Semaphore>,
    deliveries: Mutex<HashMap<Uuid, Holding>>,
}

struct Holding {
    /// Attempts recorded when it was claimed: once one more is recorded, the
    /// lease is no longer this process's to renew.
    attempts: i32,
    slot: Option<OwnedSemaphorePermit>,
}

impl Held {
    /// `window`: how many held deliveries may be in the dispatcher at once.
    pub fn new(window: usize) -> Self {
        Held {
            window: Arc::new(Semaphore::new(window)),
            deliveries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Holding>> {
        // Plain values: the map stays usable whatever a panicking holder did.
        self.deliveries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes a claim; false for a delivery that is already waiting here to
    /// be dispatched.
    fn claim(&self, id: Uuid, attempts: i32) -> bool {
        let mut deliveries = self.lock();
        match deliveries.get(&id) {
            Some(Holding { slot: None, .. }) => false,
            // Dispatched before: the claim replaces it (see `dispatch`).
            Some(Holding { slot: Some(_), .. }) => true,
            None => {
                let holding = Holding {
                    attempts,
                    slot: None,
                };
                deliveries.insert(id, holding);
                true
            }
        }
    }

    fn dispatching(&self, id: Uuid, attempts: i32, slot: OwnedSemaphorePermit) {
        let holding = Holding {
            attempts,
            slot: Some(slot),
        };
        self.lock().insert(id, holding);
    }

    /// The outcomes are committed: the deliveries, and their slots, are free.
    pub(crate) fn settle(&self, ids: &[Uuid]) {
        let mut deliveries = self.lock();
        for id in ids {
            deliveries.remove(id);
        }
    }

    /// The deliveries held right now, with their attempts when claimed.
    pub(crate) fn leases(&self) -> Vec<(Uuid, i32)> {
        self.lock()
            .iter()
            .map(|(id, holding)| (*id, holding.attempts))
            .collect()
    }

    /// Empties the set and returns the ids it held.
    pub fn take_all(&self) -> Vec<Uuid> {
        self.lock().drain().map(|(id, _)| id).collect()
    }
}

/// The window as the fan-out and the scheduler see it: it holds their
/// deliveries, hands them to the dispatcher within the cap, and stops taking
/// work when shutdown begins.
#[derive(Clone)]
pub struct Window {
    dispatcher: Dispatcher,
    held: Arc<Held>,
    /// The HTTP client of the attempts dispatched through this handle.
    deliverer: Deliverer,
}

impl Window {
    pub fn new(dispatcher: Dispatcher, held: Arc<Held>, deliverer: Deliverer) -> Self {
        Window {
            dispatcher,
            held,
            deliverer,
        }
    }

    /// The same window, its attempts made with `deliverer` (a consumer
    /// shard's own client, whose connections live on the shard's runtime).
    pub(crate) fn with_deliverer(&self, deliverer: Deliverer) -> Self {
        Window {
            deliverer,
            ..self.clone()
        }
    }

    /// How many more deliveries are taken without waiting.
    pub(crate) fn capacity(&self) -> usize {
        self.held.window.available_permits()
    }

    /// Hands claimed deliveries to the dispatcher, each once it has a slot in
    /// the window, until `cancel` fires. Those not handed over by then stay
    /// held, and shutdown releases them.
    ///
    /// A delivery already waiting here is not dispatched twice: its lease
    /// ran out while it waited for a slot, and claiming it again only renewed
    /// the lease. One already dispatched is, as on any other worker: the
    /// lease is the safety net for an attempt that never reports back, and its
    /// old slot is freed.
    ///
    /// Records go to `report` when given, else to the writer.
    pub(crate) async fn dispatch(
        &self,
        deliveries: Vec<(ClaimedDelivery, Arc<str>)>,
        cancel: &CancellationToken,
        report: Option<&mpsc::Sender<Record>>,
    ) {
        self.dispatch_with(deliveries, cancel, report, None).await;
    }

    /// Reserves room in the window for up to `wanted` deliveries at once:
    /// as much as is free now, or, when none is, one slot as soon as it
    /// frees up. `None` when cancelled first.
    ///
    /// For a batch whose slots are only freed once the whole batch is
    /// written: taken one by one, a batch larger than the room left would
    /// wait for itself.
    pub(crate) async fn reserve(
        &self,
        wanted: usize,
        cancel: &CancellationToken,
    ) -> Option<Reserved> {
        if wanted == 0 {
            return Some(Reserved(None));
        }
        let n = wanted.min(self.held.window.available_permits()).max(1);
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            slots = self.held.window.clone().acquire_many_owned(n) => slots.ok().map(|s| Reserved(Some(s))),
        }
    }

    /// As [`Window::dispatch`], in slots reserved beforehand: never waits
    /// for the window. Deliveries beyond the reservation are not dispatched;
    /// the caller writes them due for the scheduler.
    pub(crate) async fn dispatch_reserved(
        &self,
        deliveries: Vec<(ClaimedDelivery, Arc<str>)>,
        reserved: Reserved,
        cancel: &CancellationToken,
        report: &mpsc::Sender<Record>,
    ) {
        self.dispatch_with(deliveries, cancel, Some(report), reserved.0)
            .await;
    }

    async fn dispatch_with(
        &self,
        deliveries: Vec<(ClaimedDelivery, Arc<str>)>,
        cancel: &CancellationToken,
        report: Option<&mpsc::Sender<Record>>,
        mut reserved: Option<OwnedSemaphorePermit>,
    ) {
        let fresh: Vec<_> = deliveries
            .into_iter()
            .filter(|(claimed, _)| self.held.claim(claimed.delivery_id, claimed.attempts))
            .collect();
        for (claimed, envelope) in fresh {
            let slot = match reserved.as_mut() {
                Some(reserved) => match reserved.split(1) {
                    Some(slot) => slot,
                    None => return,
                },
                None => {
                    let slot = tokio::select! {
                        biased;
                        () = cancel.cancelled() => return,
                        slot = self.held.window.clone().acquire_owned() => slot,
                    };
                    let Ok(slot) = slot else { return }; // never closed
                    slot
                }
            };
            self.held
                .dispatching(claimed.delivery_id, claimed.attempts, slot);
            // `dispatch` may wait for room; dropping it then leaves the
            // delivery not started, so it is safe to abandon.
            tokio::select! {
                biased;
                () = cancel.cancelled() => return,
                () = self.dispatcher.dispatch(claimed, envelope, report.cloned(), &self.deliverer) => {}
            }
        }
    }
}

/// Window slots reserved for one batch ([`Window::reserve`]).
pub(crate) struct Reserved(Option<OwnedSemaphorePermit>);

impl Reserved {
    /// How many deliveries it has room for.
    pub(crate) fn room(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

impl Window {
    /// The outcomes of `ids` are committed: they are no longer held.
    pub(crate) fn settle(&self, ids: &[Uuid]) {
        self.held.settle(ids);
    }

    /// Passes the records still to come on `records` to the recorder, in
    /// the background: their deliveries' rows now exist.
    pub(crate) fn forward_to_recorder(&self, records: mpsc::Receiver<Record>) {
        self.dispatcher.forward(records);
    }
}

/// Renews the leases of the held deliveries twice per lease margin, the
/// shortest a lease can be beyond its attempt's timeout, until `stop`.
pub async fn renew_leases(
    held: Arc<Held>,
    pool: PgPool,
    lease: Lease,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let margin = Duration::from_millis(u64::try_from(lease.margin_ms).unwrap_or(0));
    let every = (margin / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let leases = held.leases();
        if let Err(error) = handback::renew_leases(&pool, &leases, lease).await {
            StorageFailed {
                operation: "renew_leases",
                error: &error,
                then: Then::RenewLater {
                    deliveries: leases.len(),
                },
            }
            .emit(&metrics);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_waiting_for_a_slot_is_claimed_once_but_a_dispatched_one_again() {
        let held = Held::new(2);
        let id = Uuid::new_v4();
        assert!(held.claim(id, 2));
        assert!(!held.claim(id, 2), "still waiting here: not twice");
        let slot = held.window.clone().try_acquire_owned().unwrap();
        held.dispatching(id, 2, slot);
        assert!(held.claim(id, 2), "dispatched: its lease decides");
        assert_eq!(held.leases(), vec![(id, 2)]);
        assert_eq!(held.take_all(), vec![id]);
        assert_eq!(held.window.available_permits(), 2, "taking frees the slot");
    }

    #[tokio::test]
    async fn a_batch_reserves_what_is_free_now_or_waits_for_one_slot() {
        let (recorder, _records) = mpsc::channel(1);
        let held = Arc::new(Held::new(4));
        let window = Window::new(
            Dispatcher::for_tests(recorder),
            held,
            Deliverer::new(true, 1024).unwrap(),
        );
        let cancel = CancellationToken::new();
        let nothing = window.reserve(0, &cancel).await.expect("not cancelled");
        assert_eq!(nothing.room(), 0);
        let one = window.reserve(1, &cancel).await.expect("not cancelled");
        assert_eq!(one.room(), 1);
        let rest = window.reserve(10, &cancel).await.expect("not cancelled");
        assert_eq!(rest.room(), 3, "what is free, not more than the window");

        // Nothing free: waits, then takes one slot (not all it wanted).
        let waiting = window.reserve(5, &cancel);
        tokio::pin!(waiting);
        assert!(futures_util::poll!(waiting.as_mut()).is_pending());
        drop(rest);
        let later = waiting.await.expect("not cancelled");
        assert_eq!(later.room(), 1);

        let cancelled = CancellationToken::new();
        cancelled.cancel();
        drop(later);
        let taken = window.reserve(4, &cancel).await.expect("not cancelled");
        assert_eq!(taken.room(), 3);
        assert!(window.reserve(1, &cancelled).await.is_none());
        drop((one, taken));
    }

    #[test]
    fn settling_frees_the_slot_and_only_unsettled_deliveries_stay_held() {
        let held = Held::new(2);
        let (done, running) = (Uuid::new_v4(), Uuid::new_v4());
        for id in [done, running] {
            assert!(held.claim(id, 0));
            let slot = held.window.clone().try_acquire_owned().unwrap();
            held.dispatching(id, 0, slot);
        }
        assert_eq!(held.window.available_permits(), 0);
        held.settle(&[done]);
        assert_eq!(held.window.available_permits(), 1);
        assert_eq!(held.take_all(), vec![running]);
    }
}
