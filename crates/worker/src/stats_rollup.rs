//! Runs the hourly statistics rollup (`webhookd_store::stats_rollup`) every
//! [`INTERVAL`]: one replica at a time rolls up the hours that are complete,
//! and on its first pass over a database with history, the older ones
//! newest first. Every replica reports the lag it sees.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::events::StatsRolledUp;
use crate::metrics::Metrics;
use webhookd_store::stats_rollup;

/// How often a pass runs: an hour is rolled up at most this long after it
/// became complete.
pub const INTERVAL: Duration = Duration::from_secs(60);

/// How long after its end an hour is taken to be complete, besides no
/// transaction begun before its end still being open. A writer's transaction
/// lasts milliseconds; this covers a database that hides other sessions'
/// transactions from the rollup's role (`pg_stat_activity` shows them only
/// to the same role, superusers and `pg_read_all_stats`).
pub const MARGIN: Duration = Duration::from_secs(5 * 60);

/// Hours per rollup transaction, so a backfill of months commits as it goes
/// and a pass stopped midway keeps what it did.
pub const CHUNK_HOURS: u32 = 6;

pub async fn run_stats_rollup(pool: PgPool, metrics: Metrics, cancel: CancellationToken) {
    loop {
        if let Err(e) = pass(&pool, &metrics).await {
            warn!(error = %e, "statistics rollup pass failed");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(INTERVAL) => {}
        }
    }
}

async fn pass(pool: &PgPool, metrics: &Metrics) -> Result<(), sqlx::Error> {
    let margin = chrono::Duration::from_std(MARGIN).unwrap_or(chrono::Duration::zero());
    let rolled = stats_rollup::roll_up(pool, margin, CHUNK_HOURS).await?;
    StatsRolledUp {
        hours: rolled.hours,
        rows: rolled.rows,
        windows: rolled.windows,
        lag_secs: stats_rollup::lag(pool).await?,
    }
    .emit(metrics);
    Ok(())
}
