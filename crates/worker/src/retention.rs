//! Keeps `webhook_logs`'s daily partitions created
//! `retention.partitions_ahead_days` ahead, drops the partitions older than
//! `retention.logs_days`, and deletes events whose deliveries are all
//! finished and expired web UI sessions, in small batches so the tables stay
//! online. One replica at a time, under transaction-scoped Postgres advisory
//! locks. The statements are the store's (`webhookd_store::retention`,
//! `webhookd_store::partitions`); this module runs them every
//! `retention.interval_secs` and counts what they removed.

use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::events;
use crate::metrics::Metrics;
use webhookd_store::{partitions, retention};

/// The `[retention]` settings.
#[derive(Debug, Clone, Deserialize)]
pub struct RetentionSettings {
    pub logs_days: u32,
    pub batch_size: i64,
    pub interval_secs: u64,
    /// Days of `webhook_logs` partitions kept created beyond today (at least
    /// 2, so a missed pass or two never leaves tomorrow without one).
    #[serde(default = "default_partitions_ahead_days")]
    pub partitions_ahead_days: u32,
}

fn default_partitions_ahead_days() -> u32 {
    7
}

/// The defaults of `config/default.toml`; lets code that builds settings
/// name only the keys it cares about (`..RetentionSettings::default()`).
impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            logs_days: 30,
            batch_size: 1000,
            interval_secs: 3600,
            partitions_ahead_days: default_partitions_ahead_days(),
        }
    }
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
                partitions,
                events,
                sessions,
            }) => events::Purged {
                logs,
                partitions,
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

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    /// Attempt logs in the dropped partitions: the planner's estimate
    /// (`pg_class.reltuples`), not a count.
    pub logs: u64,
    /// `webhook_logs` partitions dropped.
    pub partitions: u64,
    pub events: u64,
    /// Expired web UI sessions. Sign-in deletes a few too, but without
    /// sign-ins nothing else would.
    pub sessions: u64,
}

/// One pass: creates the partitions of the days ahead (unless another
/// replica is creating them; a failure there is logged), then removes what
/// is old; removes nothing when another replica holds the lock.
pub async fn purge_once(
    pool: &PgPool,
    settings: &RetentionSettings,
) -> Result<Purged, sqlx::Error> {
    // Logged rather than returned: old days are dropped all the same.
    if let Err(e) = partitions::ensure_ahead_if_free(pool, settings.partitions_ahead_days).await {
        warn!(error = %e, "retention: creating the webhook_logs partitions ahead failed");
    }
    let retention::Deleted {
        logs,
        partitions,
        events,
        sessions,
        ..
    } = retention::purge(pool, LOCK_KEY, settings.logs_days, settings.batch_size).await?;
    Ok(Purged {
        logs,
        partitions,
        events,
        sessions,
    })
}

/// How long start-up waits for a connection to create partitions.
const REACH_LIMIT: Duration = Duration::from_secs(10);

/// Creates today's partition of `webhook_logs` and those of the
/// `partitions_ahead_days` days after it, waiting for another replica doing
/// the same; returns how many it created. Run at start-up, before anything
/// is consumed: an error is the database refusing (a table in the way, no
/// right to create tables) and should stop start-up.
///
/// `None` when the database cannot be reached at all: the daemon starts
/// anyway, as it does for every other use of the database, since a writer
/// whose day has no partition creates it and every retention pass tries
/// again.
pub async fn prepare_partitions(
    pool: &PgPool,
    settings: &RetentionSettings,
) -> Result<Option<i32>, sqlx::Error> {
    let mut conn = match tokio::time::timeout(REACH_LIMIT, pool.acquire()).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            warn!(error = %e, "could not reach the database to create the webhook_logs partitions ahead at start; going on");
            return Ok(None);
        }
        Err(_) => {
            warn!("the database did not answer in time to create the webhook_logs partitions ahead at start; going on");
            return Ok(None);
        }
    };
    partitions::ensure_ahead(&mut conn, settings.partitions_ahead_days)
        .await
        .map(Some)
}
