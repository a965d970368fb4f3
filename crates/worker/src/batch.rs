//! The batcher: turns what batching webhooks have collected into batches
//! (SPEC §11). The fan-out writes a batching webhook's deliveries
//! `collecting` and wakes it; it forms a batch when one is full or its
//! oldest event has waited `batch_max_wait_ms`, and the batch, a delivery
//! row due at once, goes to the scheduler like any retry: the window, the
//! per-webhook cap, the deliverer and the recorder handle it as one
//! delivery whose body is the batch.
//!
//! Every worker runs one. Whether a batch is due is read from Postgres, not
//! from what this process has seen, so the rows another worker wrote (or
//! left behind when it died) are batched as well, and workers racing for
//! the same rows never split them into small batches (`store::batches`).

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use webhookd_store::batches::{self, Collected};
use webhookd_store::StorageError;

use crate::metrics::events::{BatchFormed, CollectedReleased, StorageFailed, Then};
use crate::metrics::Metrics;

/// The longest a batcher sleeps: it then looks for rows written by workers
/// that did not wake it (another replica, one that died).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// A batch body grows to this at most, whatever `batch_max_events` says; an
/// event larger than it alone is still sent, alone.
pub const MAX_BATCH_BODY_BYTES: usize = 4 * 1024 * 1024;

/// One worker's batcher.
pub struct Batcher {
    pub pool: PgPool,
    pub metrics: Metrics,
    /// Woken by the fan-out when it wrote rows to collect.
    pub wake: Arc<Notify>,
    /// This worker's scheduler, woken when a batch is due.
    pub due_wake: Arc<Notify>,
    /// This worker's sequencer, woken when a batch may have been queued
    /// (its webhook is FIFO).
    pub queue_wake: Arc<Notify>,
}

impl Batcher {
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            let pause = match self.pass().await {
                Ok(pause) => pause,
                Err(error) => {
                    StorageFailed {
                        operation: "form_batches",
                        error: &error,
                        then: Then::CollectLater,
                    }
                    .emit(&self.metrics);
                    IDLE_POLL
                }
            };
            if pause.is_zero() {
                continue;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Forms every batch that is due; returns how long until the next one
    /// may be (zero: look again at once, something changed).
    async fn pass(&self) -> Result<Duration, StorageError> {
        let mut pause = IDLE_POLL;
        let mut formed = false;
        for collected in batches::collected(&self.pool).await? {
            match collected.batch_max_events {
                None => {
                    let released = batches::release(&self.pool, collected.webhook_id).await?;
                    if released > 0 {
                        CollectedReleased {
                            webhook_id: collected.webhook_id,
                            deliveries: released,
                        }
                        .emit();
                        formed = true;
                    }
                }
                Some(max_events) if collected.due() => {
                    formed |= self.form_due(&collected, max_events).await?;
                }
                Some(_) => pause = pause.min(collected.due_in()),
            }
        }
        if formed {
            self.due_wake.notify_one();
            self.queue_wake.notify_one();
            // What is left has its own deadline: read it afresh.
            return Ok(Duration::ZERO);
        }
        Ok(pause)
    }

    /// Forms batches of one webhook while they come out full; whether any
    /// was formed.
    async fn form_due(&self, collected: &Collected, max_events: i32) -> Result<bool, StorageError> {
        let max_wait =
            Duration::from_millis(u64::try_from(collected.batch_max_wait_ms).unwrap_or(0));
        let mut formed = false;
        while let Some(batch) = batches::form(
            &self.pool,
            collected.webhook_id,
            max_events,
            max_wait,
            MAX_BATCH_BODY_BYTES,
        )
        .await?
        {
            BatchFormed {
                webhook_id: collected.webhook_id,
                batch_id: batch.batch_id,
                size: batch.size,
            }
            .emit(&self.metrics);
            formed = true;
            if batch.size < usize::try_from(max_events).unwrap_or(usize::MAX) {
                break; // the rest is younger: not due yet
            }
        }
        Ok(formed)
    }
}
