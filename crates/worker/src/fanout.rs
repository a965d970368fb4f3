//! The fan-out: a consumed batch of events becomes one delivery per
//! subscribed webhook, handed to the in-flight window, and the batch goes on
//! to its commit (`commit.rs`), which writes it and acks its messages.
//!
//! Two strategies, chosen per batch:
//! - first attempts first (the default): the subscribers are read without
//!   writing or locking anything, the deliveries are dispatched at once, and
//!   the commit writes each delivery once, already in the state its first
//!   attempt left it in, when the attempts end or
//!   `delivery.first_attempt_window_ms` passes. A delivery that succeeds at
//!   once thus costs one row written, not a row inserted and then updated,
//!   and reaches its receiver without waiting for a commit.
//! - write first: every delivery is written (leased to this worker) before
//!   it is attempted (the subscribers are read first all the same: routing
//!   decides in Rust who gets what). Used without a window, and for messages the broker
//!   redelivers: such a message may have been written already by a worker
//!   that died before its ack, and writing first finds its existing
//!   deliveries instead of attempting them again.
//!
//! Why it stays at least once: nothing is acked before its batch is
//! committed; a worker that dies before that leaves its messages unacked,
//! the broker redelivers them, and the repeated attempts carry the same
//! delivery ids (they come from the event and the webhook), so receivers
//! can drop them. Attempts made but not yet written are held by the window,
//! within `max_in_flight`, which bounds those repeats.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::error;
use uuid::Uuid;
use webhookd_events::delivery::{ClaimedDelivery, Lease};
use webhookd_events::{BreakerPolicy, NewEvent};
use webhookd_store::dedicated::DedicatedConnection;
use webhookd_store::fanout::{filters, record_fanout, subscribers};
use webhookd_store::StorageError;

use crate::ack::Acks;
use crate::commit::{Batch, BatchWriter, Messages, OpenBatch, Planned, Uncommitted, WrittenBatch};
use crate::deliver::Deliverer;
use crate::metrics::events::{StorageFailed, Then};
use crate::metrics::Metrics;
use crate::record::Recorder;
use crate::routing::Router;
use crate::window::Window;

/// Batches waiting for their commit, at most. Each holds its broker
/// messages unacked, so the prefetch bounds them too.
const OPEN_BATCHES: usize = 16;

/// What the fan-out needs; one per worker, shared by its consumers.
#[derive(Clone)]
pub struct Fanout {
    window: Window,
    pool: PgPool,
    metrics: Metrics,
    lease: Lease,
    /// How long a batch's first attempts may run before it is written;
    /// `None`: every delivery is written before it is attempted.
    first_attempt_window: Option<Duration>,
    disable_after: Option<Duration>,
    /// Wakes this worker's scheduler when a batch leaves something due.
    retry_wake: Arc<Notify>,
    /// Written messages acked at once, at least.
    ack_every: usize,
    uncommitted: Uncommitted,
    /// Wakes the batcher when rows were written for it to collect.
    collect_wake: Arc<Notify>,
    router: Router,
    /// Wakes the sequencer when rows were queued for FIFO webhooks.
    queue_wake: Arc<Notify>,
    breaker: BreakerPolicy,
}

/// How a worker's fan-out is set up.
pub struct FanoutSettings {
    pub lease: Lease,
    pub first_attempt_window: Option<Duration>,
    pub disable_after: Option<Duration>,
    /// Wakes this worker's scheduler when a batch leaves something due.
    pub retry_wake: Arc<Notify>,
    /// The broker's prefetch: half of it is acked at once, so the broker
    /// never waits for an ack to send more.
    pub prefetch: u16,
    /// Wakes this worker's batcher when batching webhooks got events.
    pub collect_wake: Arc<Notify>,
    /// Wakes this worker's sequencer when FIFO webhooks got events.
    pub queue_wake: Arc<Notify>,
    /// The webhooks' circuit breakers (`delivery.breaker_*`).
    pub breaker: BreakerPolicy,
}

impl Fanout {
    pub fn new(window: Window, pool: PgPool, metrics: Metrics, settings: FanoutSettings) -> Self {
        Fanout {
            window,
            pool,
            metrics,
            lease: settings.lease,
            first_attempt_window: settings.first_attempt_window,
            disable_after: settings.disable_after,
            retry_wake: settings.retry_wake,
            ack_every: ack_every(settings.prefetch),
            uncommitted: Uncommitted::default(),
            collect_wake: settings.collect_wake,
            router: Router::default(),
            queue_wake: settings.queue_wake,
            breaker: settings.breaker,
        }
    }

    /// The same fan-out for a consumer shard: its own database pool, HTTP
    /// client and share of the prefetch; the window and the set of
    /// uncommitted events stay the worker's.
    pub(crate) fn for_shard(&self, pool: PgPool, deliverer: Deliverer, prefetch: u16) -> Self {
        Fanout {
            window: self.window.with_deliverer(deliverer),
            pool,
            ack_every: ack_every(prefetch),
            ..self.clone()
        }
    }

    /// Starts one broker session's fan-out, with its batch writer.
    pub(crate) fn start(&self, cancel: &CancellationToken) -> Pipeline {
        let (open, batches) = mpsc::channel(OPEN_BATCHES);
        let writer = BatchWriter {
            // The session's writer, on a connection of its own.
            recorder: Recorder::new(
                self.pool.clone(),
                self.metrics.clone(),
                self.retry_wake.clone(),
                self.disable_after,
            )
            .with_breaker(self.breaker),
            window: self.window.clone(),
            acks: Acks::new(self.ack_every),
            uncommitted: self.uncommitted.clone(),
            metrics: self.metrics.clone(),
            gave_up: false,
            collect_wake: self.collect_wake.clone(),
            queue_wake: self.queue_wake.clone(),
        };
        Pipeline {
            fanout: self.clone(),
            db: DedicatedConnection::new(self.pool.clone()),
            open,
            writer: tokio::spawn(writer.run(batches, cancel.clone())),
        }
    }
}

/// Half the prefetch, at least one.
fn ack_every(prefetch: u16) -> usize {
    usize::from(prefetch / 2).max(1)
}

/// One broker session's batches between consumption and commit.
pub(crate) struct Pipeline {
    fanout: Fanout,
    db: DedicatedConnection,
    open: mpsc::Sender<Batch>,
    writer: JoinHandle<()>,
}

impl Pipeline {
    /// Fans out a batch of `events` (from `messages`) and queues it for its
    /// commit. `redelivered`: one of its messages came back from the broker.
    /// Returns when its deliveries are in the window, or when cancelled
    /// first (then its messages are redelivered).
    pub(crate) async fn fan_out(
        &mut self,
        events: Vec<NewEvent>,
        messages: Messages,
        redelivered: bool,
        cancel: &CancellationToken,
    ) {
        match self.fanout.first_attempt_window {
            Some(window) if !redelivered => {
                self.attempt_first(events, messages, window, cancel).await;
            }
            _ => self.write_first(events, messages, cancel).await,
        }
    }

    /// Dispatches the deliveries of `events` before anything is written; the
    /// commit writes them with their outcomes.
    async fn attempt_first(
        &mut self,
        mut events: Vec<NewEvent>,
        messages: Messages,
        window: Duration,
        cancel: &CancellationToken,
    ) {
        let uncommitted = &self.fanout.uncommitted;
        // Taken at once, so two consumers cannot both take one event.
        events.retain(|e| uncommitted.take(e.id));
        let Some(claims) = self.read_subscribers(&events, cancel).await else {
            self.fanout.uncommitted.release(&events);
            return;
        };
        // A batching webhook's deliveries are written for the batcher, a
        // FIFO webhook's for the sequencer, an open breaker's parked; none
        // is attempted now.
        let (collected, mut claims): (Vec<_>, Vec<_>) = claims
            .into_iter()
            .partition(|c| c.batching || c.fifo || c.breaker_open);
        let Some(reserved) = self.fanout.window.reserve(claims.len(), cancel).await else {
            self.fanout.uncommitted.release(&events);
            return;
        };
        // More deliveries than the window has room for now: the rest are
        // written due now, for the scheduler.
        let room = reserved.room();
        let lease = self.fanout.lease;
        let deliveries: Vec<Planned> = claims
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let due_in = if i < room {
                    lease.of(c.timeout_ms)
                } else {
                    Duration::ZERO
                };
                Planned::of(c, due_in)
            })
            .chain(collected.iter().map(|c| Planned::of(c, Duration::ZERO)))
            .collect();
        claims.truncate(room);
        let claims = with_envelopes(claims, &events);
        let (report, outcomes) = mpsc::channel(room.max(1));
        self.fanout
            .window
            .dispatch_reserved(claims, reserved, cancel, &report)
            .await;
        drop(report);
        let batch = OpenBatch {
            messages,
            events,
            deliveries,
            outcomes,
            deadline: Instant::now() + window,
        };
        // The writer only stops once `open` is closed.
        if let Err(unsent) = self.open.send(Batch::Open(batch)).await {
            if let Batch::Open(batch) = unsent.0 {
                self.fanout.uncommitted.release(&batch.events);
            }
        }
    }

    /// Writes every delivery of `events`, queues the batch for its ack, then
    /// dispatches the deliveries.
    async fn write_first(
        &mut self,
        events: Vec<NewEvent>,
        messages: Messages,
        cancel: &CancellationToken,
    ) {
        let Some(routed) = self.read_subscribers(&events, cancel).await else {
            return; // shutting down: the unacked batch is redelivered
        };
        let Some(claimed) = self.record(&events, &routed, cancel).await else {
            return;
        };
        let (collected, claimed): (Vec<_>, Vec<_>) =
            claimed.into_iter().partition(|c| c.batching || c.fifo);
        // An open breaker's new deliveries were written parked.
        let claimed: Vec<_> = claimed.into_iter().filter(|c| !c.breaker_open).collect();
        if collected.iter().any(|c| c.batching) {
            self.fanout.collect_wake.notify_one();
        }
        if collected.iter().any(|c| c.fifo && !c.batching) {
            self.fanout.queue_wake.notify_one();
        }
        let deliveries = with_envelopes(claimed, &events);
        let written = WrittenBatch {
            messages,
            deliveries: deliveries.len(),
            events,
        };
        // Attempted even when the ack will fail (the broker went away): the
        // deliveries are recorded and leased to this process, and the
        // redelivered messages will not create them again.
        if self.open.send(Batch::Written(written)).await.is_err() {
            error!(
                "the batch writer has stopped; a written batch stays unacked and is redelivered"
            );
        }
        self.fanout.window.dispatch(deliveries, cancel, None).await;
    }

    /// Which webhooks get `events` (subscribed, then routed: filters and
    /// the rules of operational events), retrying while the database is
    /// away; `None` when cancelled first.
    async fn read_subscribers(
        &mut self,
        events: &[NewEvent],
        cancel: &CancellationToken,
    ) -> Option<Vec<ClaimedDelivery>> {
        let failed = holding_messages(&self.fanout.metrics, "subscribers", events.len());
        let router = &self.fanout.router;
        let (subscribed, fetched) = self
            .db
            .until_done(cancel, failed, |conn, _| {
                Box::pin(async move {
                    let subscribed = subscribers(conn, events).await?;
                    let missing = router.uncompiled(&subscribed);
                    let fetched = match missing.is_empty() {
                        true => Vec::new(),
                        false => filters(conn, &missing).await?,
                    };
                    Ok((subscribed, fetched))
                })
            })
            .await?;
        Some(self.fanout.router.route(events, subscribed, fetched))
    }

    /// Records the fan-out of `routed`, retrying while the database is away: messages
    /// stay unacked meanwhile, and the prefetch limit stops further
    /// deliveries from the broker. `None` when cancelled first.
    async fn record(
        &mut self,
        events: &[NewEvent],
        routed: &[ClaimedDelivery],
        cancel: &CancellationToken,
    ) -> Option<Vec<ClaimedDelivery>> {
        let failed = holding_messages(&self.fanout.metrics, "record_fanout", events.len());
        let lease = self.fanout.lease;
        self.db
            .until_done(cancel, failed, |conn, _| {
                Box::pin(record_fanout(conn, events, routed, lease))
            })
            .await
    }

    /// Commits and acks every batch queued so far (at once when cancelled),
    /// then ends the writer.
    pub(crate) async fn close(self) {
        drop(self.open);
        if let Err(e) = self.writer.await {
            error!(error = %e, "the batch writer ended abnormally");
        }
    }
}

/// `until_done`'s report of a failed fan-out statement over a batch of
/// `events` messages, which stay unacked while it is retried.
fn holding_messages<'m>(
    metrics: &'m Metrics,
    operation: &'static str,
    events: usize,
) -> impl Fn(&StorageError) + 'm {
    move |error| {
        StorageFailed {
            operation,
            error,
            then: Then::HoldMessages { events },
        }
        .emit(metrics);
    }
}

/// Pairs claims with their event's envelope.
fn with_envelopes(
    claims: Vec<ClaimedDelivery>,
    events: &[NewEvent],
) -> Vec<(ClaimedDelivery, Arc<str>)> {
    let envelopes: HashMap<Uuid, &Arc<str>> = events.iter().map(|e| (e.id, &e.body)).collect();
    claims
        .into_iter()
        .filter_map(|claim| {
            let envelope = Arc::clone(envelopes.get(&claim.event_id)?);
            Some((claim, envelope))
        })
        .collect()
}
