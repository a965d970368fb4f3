//! First attempts before the fan-out is written.
//!
//! The consumer reads which webhooks a batch of events goes to (nothing is
//! written, nothing locked), hands those deliveries to the dispatcher at once
//! and passes the batch, its broker messages still unacked, to this
//! session's batch writer. The writer waits until every first attempt of the
//! batch has ended or `delivery.first_attempt_window_ms` has passed, then
//! writes the events, each delivery in the state its first attempt left it
//! in and each attempt's `webhook_logs` row in one statement, and only then
//! acks the messages. A delivery that succeeds at once thus costs one row
//! written, not a row inserted and then updated, and reaches its receiver
//! without waiting for a commit.
//!
//! Deliveries still running at the deadline are written pending with a lease,
//! and their records go to the ordinary writer afterwards, as the scheduler's
//! do. Why it stays at least once: nothing is acked before its batch is
//! committed; a worker that dies before that leaves its messages unacked, the
//! broker redelivers them, and the repeated attempts carry the same delivery
//! ids (they come from the event and the webhook), so receivers can drop
//! them. Attempts made but not yet written are held (`app::handoff`), within
//! `max_in_flight`, which bounds those repeats as before.
//!
//! Batches are written and acked in the order they were consumed, so one ack
//! of the batch's last message (`multiple`) never covers an unwritten one.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use uuid::Uuid;

use crate::app::Handoff;
use crate::metrics::{Metrics, FIRST_ATTEMPT_STATES};
use crate::record::{report_disabled, Record};
use crate::storage::dedicated::DedicatedConnection;
use crate::storage::deliveries::{ClaimedDelivery, DisabledWebhook, Lease};
use crate::storage::fanout::{subscribers, write_fanout, FanoutRow, FirstAttempt, NewEvent};
use crate::storage::StorageError;

/// Batches waiting for the writer, at most. Each holds its broker messages
/// unacked, so the prefetch bounds them too.
const OPEN_BATCHES: usize = 16;
/// Written batches are acked together, at most this long after the first
/// of them was written: at a low rate each ack was a round of thread
/// wake-ups in webhookd and work in RabbitMQ for a single message. A crash
/// meanwhile only has the broker redeliver written messages, which find
/// their rows and are not attempted again.
const ACK_DELAY: Duration = Duration::from_millis(20);

/// What the first-attempts pipeline needs; one per worker.
#[derive(Clone)]
pub struct FirstAttempts {
    /// How long a batch's first attempts may run before it is written.
    pub window: Duration,
    pub handoff: Handoff,
    pub pool: PgPool,
    pub metrics: Metrics,
    pub lease: Lease,
    pub disable_after: Option<Duration>,
    /// Wakes this worker's scheduler when a retry or a hand-back is written.
    pub retry_wake: Arc<Notify>,
    /// Written messages acked at once, at least (half the prefetch, so the
    /// broker never waits for an ack to send more).
    pub ack_every: usize,
    /// Events taken by a consumer of this worker and not written yet, shared
    /// by all its consumers: a second copy of one of them (the publisher
    /// sent it twice) is acked with its batch, not attempted again, even
    /// when another consumer took the first copy.
    pub unwritten: Arc<Mutex<HashSet<Uuid>>>,
}

impl FirstAttempts {
    /// Starts one broker session's batch writer.
    pub fn start(&self, cancel: &CancellationToken) -> Pipeline {
        let (open, batches) = mpsc::channel(OPEN_BATCHES);
        let unwritten = self.unwritten.clone();
        let writer = BatchWriter {
            first: self.clone(),
            db: DedicatedConnection::new(self.pool.clone()),
            unwritten: unwritten.clone(),
            unacked: None,
            gave_up: false,
        };
        Pipeline {
            first: self.clone(),
            open,
            unwritten,
            writer: tokio::spawn(writer.run(batches, cancel.clone())),
        }
    }
}

/// One broker session's batches between consumption and ack.
pub struct Pipeline {
    first: FirstAttempts,
    open: mpsc::Sender<OpenBatch>,
    /// [`FirstAttempts::unwritten`].
    unwritten: Arc<Mutex<HashSet<Uuid>>>,
    writer: JoinHandle<()>,
}

/// A batch whose first attempts run: its messages are unacked and nothing of
/// it is written yet.
struct OpenBatch {
    /// Acking it (`multiple`) acks the whole batch.
    last: Option<Delivery>,
    /// Broker messages in the batch, rejected ones included.
    messages: usize,
    events: Vec<NewEvent>,
    deliveries: Vec<Planned>,
    outcomes: mpsc::Receiver<Record>,
    deadline: Instant,
}

/// A delivery of an open batch.
struct Planned {
    delivery_id: Uuid,
    event_id: Uuid,
    webhook_id: i64,
    webhook_failing: bool,
    /// When it is due if written before its attempt ended: its lease, or
    /// now for one not dispatched.
    unfinished_due_in: Duration,
}

fn lock(set: &Mutex<HashSet<Uuid>>) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
    // A plain set: usable whatever a panicking holder was doing.
    set.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Pipeline {
    /// Starts the first attempts of `events` and queues the batch for its
    /// write and ack (`last` is the last of its `messages`). False when
    /// cancelled before the batch was queued: its messages are redelivered.
    pub async fn begin(
        &self,
        db: &mut DedicatedConnection,
        mut events: Vec<NewEvent>,
        last: Option<Delivery>,
        messages: usize,
        cancel: &CancellationToken,
    ) -> bool {
        // Taken at once, so two consumers cannot both take one event.
        events.retain(|e| lock(&self.unwritten).insert(e.id));
        let Some(mut claims) = self.subscribers(db, &events, cancel).await else {
            self.forget(&events);
            return false;
        };
        let Some(reserved) = self.first.handoff.reserve(claims.len(), cancel).await else {
            self.forget(&events);
            return false;
        };
        // More deliveries than the window has room for now: the rest are
        // written due now, for the scheduler.
        let room = reserved.room();
        let deliveries: Vec<Planned> = claims
            .iter()
            .enumerate()
            .map(|(i, c)| Planned {
                delivery_id: c.delivery_id,
                event_id: c.event_id,
                webhook_id: c.webhook_id,
                webhook_failing: c.failing,
                unfinished_due_in: if i < room {
                    self.first.lease.of(c.timeout_ms)
                } else {
                    Duration::ZERO
                },
            })
            .collect();
        claims.truncate(room);
        let claims = with_envelopes(claims, &events);
        let (report, outcomes) = mpsc::channel(room.max(1));
        self.first
            .handoff
            .dispatch_reserved(claims, reserved, cancel, &report)
            .await;
        drop(report);
        let batch = OpenBatch {
            last,
            messages,
            events,
            deliveries,
            outcomes,
            deadline: Instant::now() + self.first.window,
        };
        // The writer only stops once `open` is closed.
        match self.open.send(batch).await {
            Ok(()) => true,
            Err(unsent) => {
                self.forget(&unsent.0.events);
                false
            }
        }
    }

    /// Events of a batch that will not be written here: a copy another
    /// consumer takes is attempted (their messages are redelivered anyway).
    fn forget(&self, events: &[NewEvent]) {
        let mut unwritten = lock(&self.unwritten);
        for event in events {
            unwritten.remove(&event.id);
        }
    }

    /// Which webhooks get `events`, retrying while the database is away;
    /// `None` when cancelled first.
    async fn subscribers(
        &self,
        db: &mut DedicatedConnection,
        events: &[NewEvent],
        cancel: &CancellationToken,
    ) -> Option<Vec<ClaimedDelivery>> {
        let failed = holding_messages(&self.first.metrics, "subscribers", events.len());
        db.until_done(cancel, failed, |conn, _| {
            Box::pin(subscribers(conn, events))
        })
        .await
    }

    /// Writes and acks every batch queued so far (at once when cancelled),
    /// then ends the writer.
    pub async fn close(self) {
        drop(self.open);
        if let Err(e) = self.writer.await {
            error!(error = %e, "the batch writer ended abnormally");
        }
    }
}

/// Writes open batches in order and acks them.
struct BatchWriter {
    first: FirstAttempts,
    db: DedicatedConnection,
    unwritten: Arc<Mutex<HashSet<Uuid>>>,
    /// Written but not acked yet: the last message, how many messages, and
    /// when the ack is due at the latest.
    unacked: Option<(Delivery, usize, Instant)>,
    /// A batch could not be written: later ones are left unacked too.
    gave_up: bool,
}

impl BatchWriter {
    async fn run(mut self, mut batches: mpsc::Receiver<OpenBatch>, cancel: CancellationToken) {
        loop {
            let next = match self.unacked.as_ref().map(|(_, _, due)| *due) {
                None => batches.recv().await,
                Some(due) => tokio::select! {
                    biased;
                    batch = batches.recv() => batch,
                    () = tokio::time::sleep_until(due) => {
                        self.ack().await;
                        continue;
                    }
                },
            };
            let Some(batch) = next else { break };
            if !self.gave_up {
                self.finish(batch, &cancel).await;
            }
        }
        self.ack().await;
    }

    /// Notes a written batch for the next ack, and acks at once when enough
    /// messages wait for it.
    async fn written(&mut self, last: Option<Delivery>, messages: usize) {
        let Some(last) = last else { return };
        let (count, due) = match self.unacked.take() {
            Some((_, count, due)) => (count + messages, due),
            None => (messages, Instant::now() + ACK_DELAY),
        };
        self.unacked = Some((last, count, due));
        if count >= self.first.ack_every {
            self.ack().await;
        }
    }

    /// Acks every written batch (`multiple`: batches are written in order).
    async fn ack(&mut self) {
        if let Some((last, _, _)) = self.unacked.take() {
            if let Err(e) = last.ack(BasicAckOptions { multiple: true }).await {
                // Written: the redelivered messages will find their rows.
                warn!(error = %e, "acking written batches failed");
            }
        }
    }

    async fn finish(&mut self, mut batch: OpenBatch, cancel: &CancellationToken) {
        let expected = batch.deliveries.len();
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
        let rows: Vec<FanoutRow<'_>> = batch
            .deliveries
            .iter()
            .map(|planned| FanoutRow {
                delivery_id: planned.delivery_id,
                event_id: planned.event_id,
                webhook_id: planned.webhook_id,
                webhook_failing: planned.webhook_failing,
                first: match records.get(&planned.delivery_id) {
                    Some(Record::Attempt(attempt)) => FirstAttempt::Made(attempt),
                    Some(Record::HandBack { delay, .. }) => FirstAttempt::NotYet { due_in: *delay },
                    None => FirstAttempt::NotYet {
                        due_in: planned.unfinished_due_in,
                    },
                },
            })
            .collect();
        let Some(disabled) = self.write(&batch.events, &rows, cancel).await else {
            // Given up at shutdown: unacked, so the broker redelivers them.
            // The batches written before are acked (that covers none of
            // these); nothing after is written or acked, as an ack of a
            // later batch would cover these messages too.
            self.ack().await;
            self.gave_up = true;
            return;
        };
        drop(rows);
        let settled: Vec<Uuid> = records.keys().copied().collect();
        self.first.handoff.settle(&settled);
        for webhook in &disabled {
            report_disabled(&self.first.metrics, webhook);
        }
        let mut counts = [0_u64; 3];
        for planned in &batch.deliveries {
            let state = match records.get(&planned.delivery_id) {
                Some(Record::Attempt(_)) => 0,
                Some(Record::HandBack { .. }) => 2,
                None if planned.unfinished_due_in.is_zero() => 2,
                None => 1,
            };
            counts[state] += 1;
        }
        for (state, count) in FIRST_ATTEMPT_STATES.iter().zip(counts) {
            self.first
                .metrics
                .fanout_written
                .with_label_values(&[*state])
                .inc_by(count);
        }
        // Not started (handed back, or written due now) or a retry: the
        // scheduler has work.
        let not_started = counts[2];
        if not_started > 0 || records.values().any(Record::schedules_a_retry) {
            self.first.retry_wake.notify_one();
        }
        for event in &batch.events {
            self.first
                .metrics
                .events_consumed
                .with_label_values(&[event.event])
                .inc();
        }
        self.written(batch.last.take(), batch.messages).await;
        {
            let mut unwritten = lock(&self.unwritten);
            for event in &batch.events {
                unwritten.remove(&event.id);
            }
        }
        if records.len() < expected {
            self.first.handoff.forward_to_writer(batch.outcomes);
        }
    }

    /// Writes a batch, retrying while the database is away; `None` when
    /// cancelled while it could not be written.
    async fn write(
        &mut self,
        events: &[NewEvent],
        rows: &[FanoutRow<'_>],
        cancel: &CancellationToken,
    ) -> Option<Vec<DisabledWebhook>> {
        let failed = holding_messages(&self.first.metrics, "write_fanout", events.len());
        let disable_after = self.first.disable_after;
        self.db
            .until_done(cancel, failed, |conn, _| {
                Box::pin(write_fanout(conn, events, rows, disable_after))
            })
            .await
    }
}

/// `until_done`'s report of a failed statement over a batch of `events`
/// messages, which stay unacked while it is retried: counted under
/// `operation` and logged.
pub fn holding_messages<'m>(
    metrics: &'m Metrics,
    operation: &'static str,
    events: usize,
) -> impl Fn(&StorageError) + 'm {
    move |e| {
        metrics.storage_failed(operation);
        error!(error = %e, operation, events, "a fan-out statement failed; holding its messages and retrying");
    }
}

/// Pairs claims with their event's envelope.
pub fn with_envelopes(
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
