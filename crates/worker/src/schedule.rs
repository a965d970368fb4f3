//! The scheduler: claims due deliveries from Postgres (retries whose time has
//! come, and deliveries whose worker died mid-attempt) and dispatches them.
//!
//! Retries live only in the `deliveries` table, never in a worker's memory, so
//! they survive `kill -9` of every worker. The scheduler sleeps until the
//! earliest due delivery, woken early by this process's recorder or by a
//! `NOTIFY webhookd_due` from any process (e.g. a retry requested in the API),
//! with the poll interval as a fallback.
//!
//! `LISTEN` is session state: it lives on one server connection. Behind a
//! transaction-mode PgBouncer the pooled connections are lent to a server
//! connection only for a transaction, so notifications would reach a server
//! connection nobody listens on. The listener therefore takes its connection
//! from `listen_pool`, which connects to Postgres directly
//! (`database.direct_url`); without a pooler it is the ordinary pool.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use webhookd_events::delivery::Lease;
use webhookd_store::deliveries::{claim_due, fail_without_attempt, next_due_in};
use webhookd_store::notify::DUE_CHANNEL;

use crate::metrics::events::{StorageFailed, Then};
use crate::metrics::Metrics;
use crate::probes::{claim_due_probes, park_behind_open_breakers};
use crate::window::Window;

pub struct Scheduler {
    pub pool: PgPool,
    /// Where the `LISTEN` connection comes from: a direct connection to
    /// Postgres, never through a transaction pooler.
    pub listen_pool: PgPool,
    pub window: Window,
    pub metrics: Metrics,
    pub lease: Lease,
    pub batch_size: i64,
    pub poll_interval: Duration,
    pub wake: Arc<Notify>,
}

impl Scheduler {
    pub async fn run(self, cancel: CancellationToken) {
        let mut listener = self.listen(&cancel).await;
        while !cancel.is_cancelled() {
            let claimed = self.claim_and_dispatch(&cancel).await;
            if claimed.is_some_and(|n| n > 0 && n as i64 >= self.batch_size) {
                continue; // more may be due right now
            }
            let wait = match next_due_in(&self.pool).await {
                Ok(Some(due)) => due.min(self.poll_interval),
                Ok(None) => self.poll_interval,
                Err(_) => self.poll_interval,
            };
            // Room comes back as outcomes are written; re-check at least every poll.
            let wait = if self.window.capacity() == 0 {
                self.poll_interval.min(Duration::from_millis(50))
            } else {
                wait
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                notified = recv(&mut listener) => {
                    if !notified {
                        listener = None; // reconnected lazily on the next loop
                    }
                }
            }
            if listener.is_none() {
                listener = self.listen(&cancel).await;
            }
        }
    }

    /// `None` when the database is away (the poll interval covers for it) or
    /// shutdown began.
    async fn listen(&self, cancel: &CancellationToken) -> Option<PgListener> {
        let connect = async {
            let mut listener = PgListener::connect_with(&self.listen_pool).await.ok()?;
            listener.listen(DUE_CHANNEL).await.ok()?;
            Some(listener)
        };
        tokio::select! {
            () = cancel.cancelled() => None,
            listener = connect => listener,
        }
    }

    /// Claims what is due and fits in the dispatcher; `None` on a database
    /// error. The claim itself is not interrupted by `cancel`: claimed rows
    /// must reach the hand-off, which releases them at shutdown.
    async fn claim_and_dispatch(&self, cancel: &CancellationToken) -> Option<usize> {
        let room = i64::try_from(self.window.capacity()).unwrap_or(i64::MAX);
        let limit = self.batch_size.min(room);
        if limit == 0 {
            return Some(0);
        }
        let mut rows = match claim_due(&self.pool, limit, self.lease).await {
            Ok(rows) => rows,
            Err(error) => {
                StorageFailed {
                    operation: "claim_due",
                    error: &error,
                    then: Then::ClaimLater,
                }
                .emit(&self.metrics);
                return None;
            }
        };
        let count = rows.len();
        let room = limit.saturating_sub(i64::try_from(count).unwrap_or(i64::MAX));
        rows.extend(claim_due_probes(&self.pool, room, self.lease, &self.metrics).await);
        let rows = park_behind_open_breakers(&self.pool, rows).await;
        let (active, inactive): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.is_active);
        if !inactive.is_empty() {
            let ids: Vec<_> = inactive.iter().map(|r| r.delivery_id).collect();
            if let Err(e) = fail_without_attempt(&self.pool, &ids, "the webhook is inactive").await
            {
                warn!(error = %e, "ending deliveries of inactive webhooks failed");
            }
        }
        let deliveries = active
            .into_iter()
            .map(|row| {
                let envelope: Arc<str> = Arc::from(row.body.as_deref().unwrap_or_default());
                (row, envelope)
            })
            .collect();
        self.window.dispatch(deliveries, cancel, None).await;
        Some(count)
    }
}

/// Waits for a notification; false when the listener is gone or broke.
async fn recv(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}
