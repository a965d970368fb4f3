//! Deletes attempt logs older than `retention.logs_days`, events whose
//! deliveries are all finished, and expired web UI sessions, in small
//! batches so the tables stay online. One replica at a time, under a
//! Postgres advisory lock. The statements are the store's
//! (`webhookd_store::retention`); this module runs them every
//! `retention.interval_secs` and counts what they deleted.

use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::events;
use crate::metrics::Metrics;
use webhookd_store::retention;

/// The `[retention]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub logs_days: u32,
    pub batch_size: i64,
    pub interval_secs: u64,
}

/// Arbitrary, fixed: the advisory lock key of the retention job. Public so
/// tests (and operators, in `pg_locks`) can recognise it.
pub const LOCK_KEY: i64 = 0x7765_6268_6f6f_6b01;

pub async fn run_retention(
    pool: PgPool,
    settings: RetentionSettings,
    metrics: Metrics,
    cancel: CancellationToken,
) {
    let interval = Duration::from_secs(settings.interval_secs);
    loop {
        match purge_once(&pool, &settings).await {
            Ok(purged) if purged == Purged::default() => {}
            Ok(Purged {
                logs,
                events,
                sessions,
            }) => events::Purged {
                logs,
                events,
                sessions,
            }
            .emit(&metrics),
            Err(e) => warn!(error = %e, "retention pass failed"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// Rows deleted by one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub logs: u64,
    pub events: u64,
    /// Expired web UI sessions. Sign-in deletes a few too, but without
    /// sign-ins nothing else would.
    pub sessions: u64,
}

/// One pass; deletes nothing when another replica holds the lock.
pub async fn purge_once(
    pool: &PgPool,
    settings: &RetentionSettings,
) -> Result<Purged, sqlx::Error> {
    let retention::Deleted {
        logs,
        events,
        sessions,
    } = retention::purge(pool, LOCK_KEY, settings.logs_days, settings.batch_size).await?;
    Ok(Purged {
        logs,
        events,
        sessions,
    })
}
