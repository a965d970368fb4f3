//! Recording outcomes: the only way an attempt's outcome reaches Postgres.
//!
//! Two statements, one owner: [`Recorder::write_records`] writes attempts
//! made after their delivery's row exists (retries, first attempts that
//! outlasted their window, write-first deliveries) and hand-backs, in
//! batches from the recorder's queue ([`spawn_writer`]);
//! [`Recorder::write_fanout`] writes a consumed batch's events with each
//! delivery in the state its first attempt left it in (for `commit.rs`). One
//! transaction for many outcomes keeps the database cost per delivery low at
//! full speed. Each write is retried while the database is away, reports the
//! webhooks the database switched off, and wakes the scheduler when it left
//! something due.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhookd_events::delivery::{AttemptRecord, NextStep, Record};
use webhookd_events::BreakerPolicy;
use webhookd_events::NewEvent;
use webhookd_store::dedicated::DedicatedConnection;
use webhookd_store::deliveries::{hand_back, record_attempts_under, Recorded, Rules};
use webhookd_store::fanout::{write_fanout_under, FanoutRow};

use crate::metrics::breaker_events::BreakerMoved;
use crate::metrics::events::{FanoutWritten, StorageFailed, Then, WebhookDisabled};
use crate::metrics::Metrics;
use crate::window::Held;

/// Records written in one transaction, at most.
const MAX_BATCH: usize = 500;

/// Writes outcomes on a connection of its own (no pool round trip per
/// batch).
pub struct Recorder {
    db: DedicatedConnection,
    metrics: Metrics,
    retry_wake: Arc<Notify>,
    disable_after: Option<Duration>,
    /// Wakes this worker's sequencer when a FIFO webhook's head has ended.
    queue_wake: Option<Arc<Notify>>,
    /// The webhooks' circuit breakers (`delivery.breaker_*`).
    breaker: BreakerPolicy,
}

/// One of the recorder's statements.
#[derive(Clone, Copy)]
enum Write<'a> {
    Attempts(&'a [AttemptRecord]),
    HandBacks(&'a [(Uuid, Duration)]),
    Fanout(&'a [NewEvent], &'a [FanoutRow<'a>]),
}

impl Write<'_> {
    fn operation(self) -> &'static str {
        match self {
            Write::Attempts(_) => "record_attempts",
            Write::HandBacks(_) => "hand_back",
            Write::Fanout(..) => "write_fanout",
        }
    }

    /// What is done while it fails.
    fn then(self) -> Then {
        match self {
            Write::Attempts(_) | Write::HandBacks(_) => Then::Retry,
            Write::Fanout(events, _) => Then::HoldMessages {
                events: events.len(),
            },
        }
    }
}

impl Recorder {
    /// `retry_wake` wakes this worker's scheduler when a write leaves a
    /// delivery due; `disable_after` switches off webhooks failing for
    /// longer than it (`None`: never).
    pub fn new(
        pool: PgPool,
        metrics: Metrics,
        retry_wake: Arc<Notify>,
        disable_after: Option<Duration>,
    ) -> Self {
        Self {
            db: DedicatedConnection::new(pool),
            metrics,
            retry_wake,
            disable_after,
            queue_wake: None,
            breaker: BreakerPolicy::default(),
        }
    }

    /// Moves the webhooks' circuit breakers under `breaker`.
    pub fn with_breaker(self, breaker: BreakerPolicy) -> Self {
        Self { breaker, ..self }
    }

    /// Wakes `queue_wake` whenever a FIFO webhook's head is written as
    /// ended, so the next delivery goes without waiting for a poll.
    pub fn waking_sequencer(self, queue_wake: Arc<Notify>) -> Self {
        Self {
            queue_wake: Some(queue_wake),
            ..self
        }
    }

    /// Writes `batch` (emptying it), retrying while the database is away.
    /// False when `stop` fired before everything was written.
    pub(crate) async fn write_records(
        &mut self,
        batch: &mut Vec<Record>,
        stop: &CancellationToken,
    ) -> bool {
        let wake = batch.iter().any(Record::schedules_a_retry);
        let head_ended = batch.iter().any(|record| match record {
            Record::Attempt(a) => a.fifo && !matches!(a.next, NextStep::RetryIn(_)),
            Record::HandBack { .. } => false,
        });
        let mut attempts = Vec::with_capacity(batch.len());
        let mut handed_back = Vec::new();
        for record in batch.drain(..) {
            match record {
                Record::Attempt(a) => attempts.push(a),
                Record::HandBack { delivery_id, delay } => {
                    handed_back.push((delivery_id, delay));
                }
            }
        }
        if !self.write(Write::Attempts(&attempts), stop).await {
            return false;
        }
        if !handed_back.is_empty() && !self.write(Write::HandBacks(&handed_back), stop).await {
            return false;
        }
        if wake {
            self.retry_wake.notify_one();
        }
        if let (true, Some(queue_wake)) = (head_ended, &self.queue_wake) {
            queue_wake.notify_one();
        }
        true
    }

    /// Writes a consumed batch's events and deliveries with their first
    /// attempts (`rows`, counted as `written`), retrying while the database
    /// is away; `wake`: it leaves something due. False when `stop` fired
    /// before it was written.
    pub(crate) async fn write_fanout(
        &mut self,
        events: &[NewEvent],
        rows: &[FanoutRow<'_>],
        written: FanoutWritten,
        wake: bool,
        stop: &CancellationToken,
    ) -> bool {
        if !self.write(Write::Fanout(events, rows), stop).await {
            return false;
        }
        written.emit(&self.metrics);
        if wake {
            self.retry_wake.notify_one();
        }
        true
    }

    /// Runs `write` until it succeeds, so an outcome is never dropped while
    /// the database is briefly away, and reports the webhooks it switched
    /// off. False when `stop` fired first.
    async fn write(&mut self, write: Write<'_>, stop: &CancellationToken) -> bool {
        let metrics = &self.metrics;
        let failed = |error: &webhookd_store::StorageError| {
            StorageFailed {
                operation: write.operation(),
                error,
                then: write.then(),
            }
            .emit(metrics);
        };
        let rules = Rules {
            disable_after: self.disable_after,
            breaker: self.breaker,
        };
        let rules = &rules;
        let recorded: Option<Recorded> = self
            .db
            .until_done(stop, failed, |conn, _| match write {
                Write::Attempts(attempts) => Box::pin(record_attempts_under(conn, attempts, rules)),
                Write::HandBacks(deliveries) => Box::pin(async move {
                    hand_back(conn, deliveries)
                        .await
                        .map(|()| Recorded::default())
                }),
                Write::Fanout(events, rows) => {
                    Box::pin(write_fanout_under(conn, events, rows, rules))
                }
            })
            .await;
        let Some(recorded) = recorded else {
            return false;
        };
        for webhook in &recorded.disabled {
            WebhookDisabled {
                webhook_id: webhook.webhook_id,
                reason: &webhook.reason,
            }
            .emit(&self.metrics);
        }
        for moved in &recorded.breakers {
            BreakerMoved {
                webhook_id: moved.webhook_id,
                to: moved.to,
            }
            .emit(&self.metrics);
        }
        true
    }
}

/// Starts the recorder's writer: it writes the records sent to it in
/// batches and lets go of a batch's deliveries in the window (`held`) once
/// the batch is committed.
///
/// Until `stop` fires every record is written; then what is already queued
/// is written and the queue closes, so records of attempts that finish later
/// are refused and their deliveries stay held (shutdown releases them).
/// `abandon` ends a write that cannot succeed (the grace period is over).
pub fn spawn_writer(
    held: Arc<Held>,
    mut recorder: Recorder,
    stop: CancellationToken,
    abandon: CancellationToken,
) -> (mpsc::Sender<Record>, JoinHandle<()>) {
    // The window bounds the records outstanding, so this rarely fills.
    let (tx, mut from) = mpsc::channel::<Record>(MAX_BATCH);
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let received = tokio::select! {
                biased;
                () = stop.cancelled() => break,
                received = from.recv_many(&mut batch, MAX_BATCH) => received,
            };
            if received == 0 {
                return; // every sender is gone
            }
            if !write_and_settle(&held, &mut recorder, &mut batch, &abandon).await {
                return;
            }
        }
        from.close();
        while from.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if !write_and_settle(&held, &mut recorder, &mut batch, &abandon).await {
                return;
            }
        }
    });
    (tx, handle)
}

/// Writes one batch and lets go of its deliveries once it is committed.
/// False when abandoned: the batch's deliveries stay held, so shutdown
/// releases them.
async fn write_and_settle(
    held: &Held,
    recorder: &mut Recorder,
    batch: &mut Vec<Record>,
    abandon: &CancellationToken,
) -> bool {
    let ids: Vec<Uuid> = batch.iter().map(Record::delivery_id).collect();
    let written = recorder.write_records(batch, abandon).await;
    if written {
        held.settle(&ids);
    }
    written
}
