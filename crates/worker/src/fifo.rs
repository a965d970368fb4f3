//! The sequencer: lets a FIFO webhook's deliveries go one at a time
//! (SPEC §13). The fan-out writes them `queued` and wakes it; the recorder
//! wakes it when a FIFO webhook's head has succeeded or failed for good. It
//! then lets each webhook's next delivery go, due now, and wakes the
//! scheduler, which claims and attempts it like any retry.
//!
//! Every worker runs one. What is queued and whether a head has ended are
//! read from Postgres (`store::fifo`), so the rows another worker wrote or
//! finished are moved along as well, and two sequencers at once still let
//! one delivery of a webhook go, never two.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use webhookd_store::fifo::advance_queues;

use crate::metrics::events::{QueueReleased, StorageFailed, Then};
use crate::metrics::Metrics;

/// The longest a sequencer sleeps: it then looks for heads that ended in
/// another worker, and for rows queued by one (or retried in the API).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// One worker's sequencer.
pub struct Sequencer {
    pub pool: PgPool,
    pub metrics: Metrics,
    /// Woken by the fan-out (rows queued) and the recorder (a head ended).
    pub wake: Arc<Notify>,
    /// This worker's scheduler, woken when a delivery was let go.
    pub due_wake: Arc<Notify>,
}

impl Sequencer {
    pub async fn run(self, cancel: CancellationToken) {
        loop {
            match advance_queues(&self.pool).await {
                Ok(advanced) => {
                    if advanced.released > 0 {
                        QueueReleased {
                            deliveries: advanced.released,
                        }
                        .emit();
                    }
                    if advanced.any() {
                        self.due_wake.notify_one();
                    }
                }
                Err(error) => StorageFailed {
                    operation: "advance_queues",
                    error: &error,
                    then: Then::AdvanceLater,
                }
                .emit(&self.metrics),
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
    }
}
