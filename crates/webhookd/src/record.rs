//! Writes attempt outcomes to Postgres in batches: one transaction for many
//! attempts keeps the database cost per delivery low at full speed. Also
//! writes hand-backs (deliveries the dispatcher chose not to hold) and reports
//! the webhooks the database switched off.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::storage::dedicated::DedicatedConnection;
use crate::storage::deliveries::{
    hand_back, record_attempts, AttemptRecord, DisabledWebhook, NextStep,
};
use crate::storage::StorageError;

/// What the dispatcher sends the recorder.
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

/// Writes the dispatcher's records on a connection of its own (no pool
/// round trip per batch). Owned by the writer in `app::handoff`, which calls
/// [`Recorder::write`] once per batch and knows the batch is committed when
/// it returns.
pub struct Recorder {
    db: DedicatedConnection,
    metrics: Metrics,
    retry_wake: Arc<Notify>,
    abandon: CancellationToken,
    disable_after: Option<Duration>,
}

/// One of the recorder's statements.
#[derive(Clone, Copy)]
enum Write<'a> {
    Attempts(&'a [AttemptRecord]),
    HandBacks(&'a [(Uuid, Duration)]),
}

impl Write<'_> {
    fn operation(self) -> &'static str {
        match self {
            Write::Attempts(_) => "record_attempts",
            Write::HandBacks(_) => "hand_back",
        }
    }
}

impl Recorder {
    /// `abandon` ends a write that cannot succeed (the grace period is over:
    /// the batch stays held, and shutdown gives its deliveries back).
    /// `disable_after` switches off webhooks failing for longer than it
    /// (`None`: never).
    pub fn new(
        pool: PgPool,
        metrics: Metrics,
        retry_wake: Arc<Notify>,
        abandon: CancellationToken,
        disable_after: Option<Duration>,
    ) -> Self {
        Self {
            db: DedicatedConnection::new(pool),
            metrics,
            retry_wake,
            abandon,
            disable_after,
        }
    }

    /// Writes `batch` (emptying it), retrying while the database is away.
    /// False when abandoned before everything was written.
    pub async fn write(&mut self, batch: &mut Vec<Record>) -> bool {
        let wake = batch.iter().any(Record::schedules_a_retry);
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
        let Some(disabled) = self.write_until_done(Write::Attempts(&attempts)).await else {
            return false;
        };
        for webhook in &disabled {
            report_disabled(&self.metrics, webhook);
        }
        if !handed_back.is_empty()
            && self
                .write_until_done(Write::HandBacks(&handed_back))
                .await
                .is_none()
        {
            return false;
        }
        if wake {
            self.retry_wake.notify_one();
        }
        true
    }

    /// Retries `write` until it succeeds: a record is never dropped while the
    /// database is briefly away. Returns the webhooks switched off (none for
    /// hand-backs); `None` when abandoned.
    async fn write_until_done(&mut self, write: Write<'_>) -> Option<Vec<DisabledWebhook>> {
        let metrics = &self.metrics;
        let operation = write.operation();
        let failed = |e: &StorageError| {
            metrics.storage_failed(operation);
            error!(error = %e, operation, "writing delivery state failed; retrying");
        };
        let disable_after = self.disable_after;
        self.db
            .until_done(&self.abandon, failed, |conn, _| match write {
                Write::Attempts(attempts) => {
                    Box::pin(record_attempts(conn, attempts, disable_after))
                }
                Write::HandBacks(deliveries) => {
                    Box::pin(async move { hand_back(conn, deliveries).await.map(|()| Vec::new()) })
                }
            })
            .await
    }
}

/// The log line and the metric together, so they never disagree. The database
/// reports each switch-off once, however many attempts were failing at once.
pub(crate) fn report_disabled(metrics: &Metrics, webhook: &DisabledWebhook) {
    metrics.webhooks_disabled.inc();
    warn!(
        webhook_id = webhook.webhook_id,
        reason = %webhook.reason,
        "webhook disabled"
    );
}
