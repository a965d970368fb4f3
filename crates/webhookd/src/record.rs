//! Writes attempt outcomes to Postgres in batches: one transaction for many
//! attempts keeps the database cost per delivery low at full speed.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::metrics::Metrics;
use crate::storage::deliveries::{record_attempts, AttemptRecord, NextStep};

const MAX_BATCH: usize = 500;
const CHANNEL_CAPACITY: usize = 4096;

/// Starts the recorder. It runs until every sender is dropped and the queue is
/// written, or until `abandon` fires (the grace period is over: unwritten
/// attempts are redone when their leases run out).
pub fn spawn_recorder(
    pool: PgPool,
    metrics: Metrics,
    retry_wake: Arc<Notify>,
    abandon: CancellationToken,
) -> (mpsc::Sender<AttemptRecord>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<AttemptRecord>(CHANNEL_CAPACITY);
    let handle = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
            if !write_batch(&pool, &metrics, &batch, &abandon).await {
                return;
            }
            if batch.iter().any(|r| matches!(r.next, NextStep::RetryIn(_))) {
                retry_wake.notify_one();
            }
            batch.clear();
        }
    });
    (tx, handle)
}

/// Retries until written: an attempt's record is never dropped while the
/// database is briefly away. False when abandoned.
async fn write_batch(
    pool: &PgPool,
    metrics: &Metrics,
    batch: &[AttemptRecord],
    abandon: &CancellationToken,
) -> bool {
    let mut pause = Duration::from_millis(100);
    loop {
        match record_attempts(pool, batch).await {
            Ok(()) => return true,
            Err(e) => {
                metrics
                    .storage_errors
                    .with_label_values(&["record_attempts"])
                    .inc();
                error!(error = %e, attempts = batch.len(), "recording attempts failed; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = abandon.cancelled() => return false,
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
