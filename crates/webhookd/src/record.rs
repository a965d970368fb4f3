//! Writes attempt outcomes to Postgres in batches: one transaction for many
//! attempts keeps the database cost per delivery low at full speed. Also
//! writes hand-backs (deliveries the dispatcher chose not to hold) and reports
//! the webhooks the database switched off.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::storage::deliveries::{
    hand_back, record_attempts, AttemptRecord, DisabledWebhook, NextStep,
};
use crate::storage::StorageError;

const MAX_BATCH: usize = 500;
const CHANNEL_CAPACITY: usize = 4096;

/// What the dispatcher sends the recorder.
#[derive(Debug)]
pub enum Record {
    /// An attempt was made: log it and move the delivery on.
    Attempt(AttemptRecord),
    /// A delivery was not attempted (its webhook's queue in this process is
    /// full): make it due again after `delay`, counting no attempt.
    HandBack { delivery_id: Uuid, delay: Duration },
}

/// Starts the recorder. It runs until every sender is dropped and the queue is
/// written, or until `abandon` fires (the grace period is over: unwritten
/// attempts are redone when their leases run out). `disable_after` switches
/// off webhooks failing for longer than it (`None`: never).
pub fn spawn_recorder(
    pool: PgPool,
    metrics: Metrics,
    retry_wake: Arc<Notify>,
    abandon: CancellationToken,
    disable_after: Option<Duration>,
) -> (mpsc::Sender<Record>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Record>(CHANNEL_CAPACITY);
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
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
            let wake = !handed_back.is_empty()
                || attempts
                    .iter()
                    .any(|r| matches!(r.next, NextStep::RetryIn(_)));
            let written = write_until_done(&metrics, "record_attempts", &abandon, || {
                record_attempts(&pool, &attempts, disable_after)
            })
            .await;
            let Some(disabled) = written else { return };
            for webhook in &disabled {
                report_disabled(&metrics, webhook);
            }
            let written = write_until_done(&metrics, "hand_back", &abandon, || {
                hand_back(&pool, &handed_back)
            })
            .await;
            if written.is_none() {
                return;
            }
            if wake {
                retry_wake.notify_one();
            }
        }
    });
    (tx, handle)
}

/// Retries until written: a record is never dropped while the database is
/// briefly away. `None` when abandoned.
async fn write_until_done<T, F, Fut>(
    metrics: &Metrics,
    operation: &'static str,
    abandon: &CancellationToken,
    mut write: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StorageError>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(value) => return Some(value),
            Err(e) => {
                metrics.storage_errors.with_label_values(&[operation]).inc();
                error!(error = %e, operation, "writing delivery state failed; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = abandon.cancelled() => return None,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The log line and the metric together, so they never disagree. The database
/// reports each switch-off once, however many attempts were failing at once.
fn report_disabled(metrics: &Metrics, webhook: &DisabledWebhook) {
    metrics.webhooks_disabled.inc();
    warn!(
        webhook_id = webhook.webhook_id,
        reason = %webhook.reason,
        "webhook disabled"
    );
}
