//! The fan-out's commit: one task per broker session takes the consumed
//! batches in consumption order, writes each (through `record`) and only
//! then acks its messages (through `ack`).
//!
//! A batch arrives in one of two states:
//! - open: its first attempts are running and nothing of it is written. The
//!   writer waits until every first attempt has ended or the batch's window
//!   (`delivery.first_attempt_window_ms`) has passed, then writes the events,
//!   each delivery in the state its first attempt left it in and each
//!   attempt's `webhook_logs` row, in one statement. Attempts still running
//!   then are written pending with a lease; their records go to the
//!   recorder afterwards, as the scheduler's do.
//! - written: the fan-out wrote it before any attempt (a redelivered message,
//!   or no window). It only waits here for its turn to be acked.
//!
//! Because batches are committed in order, one ack of a batch's last message
//! (`multiple`) never covers an unwritten one. Once a batch cannot be written
//! (the grace period ran out with the database away), nothing after it is
//! acked: an ack would cover its messages, which must be redelivered.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::message::Delivery;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhookd_events::delivery::{ClaimedDelivery, Record};
use webhookd_events::NewEvent;
use webhookd_store::fanout::{FanoutRow, FirstAttempt};

use crate::ack::Acks;
use crate::metrics::events::{EventsConsumed, FanoutWritten};
use crate::metrics::Metrics;
use crate::record::Recorder;
use crate::window::Window;

/// A consumed batch on its way to being committed.
pub(crate) enum Batch {
    Open(OpenBatch),
    Written(WrittenBatch),
}

/// Broker messages of one batch: acking the last (`multiple`) acks them all.
pub(crate) struct Messages {
    pub(crate) last: Option<Delivery>,
    /// Broker messages in the batch, rejected ones included.
    pub(crate) count: usize,
}

/// A batch whose first attempts run: its messages are unacked and nothing of
/// it is written yet.
pub(crate) struct OpenBatch {
    pub(crate) messages: Messages,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) deliveries: Vec<Planned>,
    pub(crate) outcomes: mpsc::Receiver<Record>,
    pub(crate) deadline: Instant,
}

/// A batch the fan-out wrote before attempting it.
pub(crate) struct WrittenBatch {
    pub(crate) messages: Messages,
    pub(crate) events: Vec<NewEvent>,
    /// Deliveries it wrote (all due for their first attempt).
    pub(crate) deliveries: usize,
}

/// A delivery of an open batch.
pub(crate) struct Planned {
    pub(crate) delivery_id: Uuid,
    pub(crate) event_id: Uuid,
    pub(crate) webhook_id: i64,
    pub(crate) webhook_failing: bool,
    /// When it is due if written before its attempt ended: its lease, or
    /// now for one not dispatched.
    pub(crate) unfinished_due_in: Duration,
    /// Not attempted on its own: written collecting, for the batcher.
    pub(crate) collect: bool,
    /// Not attempted now: written queued, for its FIFO webhook's sequencer.
    pub(crate) queue: bool,
    /// Not attempted: its webhook's breaker is open, it is written parked.
    pub(crate) parked: bool,
}

impl Planned {
    /// The plan for a claim; a batching webhook's is collected and a FIFO
    /// webhook's queued, neither attempted now.
    pub(crate) fn of(claim: &ClaimedDelivery, unfinished_due_in: Duration) -> Self {
        Planned {
            delivery_id: claim.delivery_id,
            event_id: claim.event_id,
            webhook_id: claim.webhook_id,
            webhook_failing: claim.failing,
            unfinished_due_in,
            collect: claim.batching,
            queue: claim.fifo && !claim.batching,
            parked: claim.breaker_open && !claim.batching && !claim.fifo,
        }
    }

    /// Attempted with the batch's first attempts.
    pub(crate) fn attempted_first(&self) -> bool {
        !self.collect && !self.queue && !self.parked
    }
}

/// Events taken by a worker's consumers and not committed yet, shared by
/// all of them: a second copy of one (the publisher sent it twice) is acked
/// with its batch, not attempted again, even when another consumer took the
/// first copy.
#[derive(Clone, Default)]
pub(crate) struct Uncommitted(Arc<Mutex<HashSet<Uuid>>>);

impl Uncommitted {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        // A plain set: usable whatever a panicking holder was doing.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes an event; false when a copy of it is already uncommitted.
    pub(crate) fn take(&self, id: Uuid) -> bool {
        self.lock().insert(id)
    }

    /// Lets go of events, committed or abandoned (a copy another consumer
    /// takes is then attempted: their messages are redelivered anyway).
    pub(crate) fn release(&self, events: &[NewEvent]) {
        let mut set = self.lock();
        for event in events {
            set.remove(&event.id);
        }
    }
}

/// Commits one broker session's batches in order.
pub(crate) struct BatchWriter {
    pub(crate) recorder: Recorder,
    pub(crate) window: Window,
    pub(crate) acks: Acks,
    pub(crate) uncommitted: Uncommitted,
    pub(crate) metrics: Metrics,
    /// A batch could not be written: later ones are left unacked too.
    pub(crate) gave_up: bool,
    /// Wakes the batcher when a batch wrote rows for it to collect.
    pub(crate) collect_wake: Arc<Notify>,
    /// Wakes the sequencer when a batch queued rows for FIFO webhooks.
    pub(crate) queue_wake: Arc<Notify>,
}

impl BatchWriter {
    pub(crate) async fn run(
        mut self,
        mut batches: mpsc::Receiver<Batch>,
        cancel: CancellationToken,
    ) {
        loop {
            let next = match self.acks.due() {
                None => batches.recv().await,
                Some(due) => tokio::select! {
                    biased;
                    batch = batches.recv() => batch,
                    () = tokio::time::sleep_until(due) => {
                        self.acks.flush().await;
                        continue;
                    }
                },
            };
            let Some(batch) = next else { break };
            if self.gave_up {
                continue;
            }
            match batch {
                Batch::Open(batch) => self.commit_open(batch, &cancel).await,
                Batch::Written(batch) => {
                    let written = FanoutWritten {
                        not_started: batch.deliveries as u64,
                        ..FanoutWritten::default()
                    };
                    written.emit(&self.metrics);
                    // Written first, its events were never taken: a copy
                    // another consumer holds stays guarded.
                    self.committed(batch.messages, &batch.events, false).await;
                }
            }
        }
        self.acks.flush().await;
    }

    /// Counts the batch's events and notes its messages for the next ack;
    /// `taken`: its events were taken from the uncommitted set, and are let
    /// go now.
    async fn committed(&mut self, messages: Messages, events: &[NewEvent], taken: bool) {
        EventsConsumed { events }.emit(&self.metrics);
        self.acks.written(messages.last, messages.count).await;
        if taken {
            self.uncommitted.release(events);
        }
    }

    async fn commit_open(&mut self, mut batch: OpenBatch, cancel: &CancellationToken) {
        let expected = batch
            .deliveries
            .iter()
            .filter(|p| p.attempted_first())
            .count();
        let mut records: HashMap<Uuid, Record> = HashMap::with_capacity(expected);
        // Once cancelled, no waiting: what has ended is written now.
        while records.len() < expected && !cancel.is_cancelled() {
            tokio::select! {
                biased;
                record = batch.outcomes.recv() => match record {
                    Some(record) => { records.insert(record.delivery_id(), record); }
                    None => break,
                },
                () = tokio::time::sleep_until(batch.deadline) => break,
                () = cancel.cancelled() => break,
            }
        }
        while let Ok(record) = batch.outcomes.try_recv() {
            records.insert(record.delivery_id(), record);
        }
        let mut written = FanoutWritten::default();
        let rows: Vec<FanoutRow<'_>> = batch
            .deliveries
            .iter()
            .map(|planned| {
                let first = match records.get(&planned.delivery_id) {
                    None if planned.collect => FirstAttempt::Collect,
                    None if planned.queue => FirstAttempt::Queue,
                    Some(Record::Attempt(attempt)) => {
                        written.ended += 1;
                        FirstAttempt::Made(attempt)
                    }
                    Some(Record::HandBack { delay, .. }) => {
                        written.not_started += 1;
                        FirstAttempt::NotYet { due_in: *delay }
                    }
                    None if planned.unfinished_due_in.is_zero() => {
                        written.not_started += 1;
                        FirstAttempt::NotYet {
                            due_in: Duration::ZERO,
                        }
                    }
                    None => {
                        written.running += 1;
                        FirstAttempt::NotYet {
                            due_in: planned.unfinished_due_in,
                        }
                    }
                };
                FanoutRow {
                    delivery_id: planned.delivery_id,
                    event_id: planned.event_id,
                    webhook_id: planned.webhook_id,
                    webhook_failing: planned.webhook_failing,
                    first,
                }
            })
            .collect();
        // Not started (handed back, or written due now) or a retry: the
        // scheduler has work.
        let wake = written.not_started > 0 || records.values().any(Record::schedules_a_retry);
        let committed = self
            .recorder
            .write_fanout(&batch.events, &rows, written, wake, cancel)
            .await;
        drop(rows);
        if !committed {
            // Given up at shutdown: unacked, so the broker redelivers them.
            // The batches written before are acked (that covers none of
            // these); nothing after is written or acked.
            self.acks.flush().await;
            self.gave_up = true;
            return;
        }
        let settled: Vec<Uuid> = records.keys().copied().collect();
        self.window.settle(&settled);
        if batch.deliveries.iter().any(|p| p.collect) {
            self.collect_wake.notify_one();
        }
        if batch.deliveries.iter().any(|p| p.queue) {
            self.queue_wake.notify_one();
        }
        self.committed(batch.messages, &batch.events, true).await;
        if records.len() < expected {
            self.window.forward_to_recorder(batch.outcomes);
        }
    }
}
