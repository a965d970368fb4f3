//! The retention job's statements: attempt logs older than a number of days
//! (whole daily partitions of `webhook_logs`, detached and dropped) and
//! their hourly statistics summaries, events as old whose deliveries are
//! all finished, and expired web UI sessions,
//! deleted in small batches so the tables stay online.
//!
//! One replica at a time: the pass holds a transaction-scoped advisory lock
//! (`pg_try_advisory_xact_lock`) in a guard transaction on a connection of
//! its own, and does the work on others. A session-level lock would be
//! unsafe behind a transaction-mode pooler (the lock stays with a server
//! connection other clients then get), and the work cannot run inside the
//! guard transaction: `DETACH PARTITION ... CONCURRENTLY` refuses a
//! transaction block, and batched deletes should commit as they go.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres};

use crate::{advisory, partitions, stats_rollup, ui_sessions};

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Attempt logs in the dropped partitions (an estimate: see
    /// [`partitions::Dropped::rows`]).
    pub logs: u64,
    /// `webhook_logs` partitions dropped.
    pub partitions: u64,
    pub events: u64,
    pub sessions: u64,
    /// Hourly statistics summaries of the days whose logs were dropped.
    pub rollups: u64,
}

/// One pass under the advisory lock `lock_key`; removes nothing when another
/// session holds it. `batch` rows at most per delete statement.
pub async fn purge(
    pool: &PgPool,
    lock_key: i64,
    logs_days: u32,
    batch: i64,
) -> Result<Deleted, sqlx::Error> {
    let Some(guard) = advisory::begin_if_free(pool, lock_key).await? else {
        return Ok(Deleted::default());
    };
    let days = i32::try_from(logs_days).unwrap_or(i32::MAX);
    let result = async {
        let dropped = partitions::drop_expired(pool, logs_days).await?;
        let mut conn = pool.acquire().await?;
        let events = delete_in_batches(&mut conn, batch, |limit| {
            sqlx::query(
                "DELETE FROM events WHERE id IN (
                     SELECT e.id FROM events e
                     WHERE e.created_at < now() - make_interval(days => $1)
                       AND NOT EXISTS (SELECT 1 FROM deliveries d
                                       WHERE d.event_id = e.id AND d.status IN ('pending', 'collecting', 'queued'))
                     LIMIT $2)",
            )
            .bind(days)
            .bind(limit)
        })
        .await?;
        let sessions = delete_in_batches(&mut conn, batch, ui_sessions::delete_expired).await?;
        let rollups = stats_rollup::delete_expired(&mut conn, days, batch).await?;
        Ok::<_, sqlx::Error>(Deleted {
            logs: dropped.rows,
            partitions: dropped.partitions,
            events,
            sessions,
            rollups,
        })
    }
    .await;
    // Ending the guard releases the lock; if its connection was lost the
    // server has released it already, so a failure here changes nothing.
    let _ = guard.commit().await;
    result
}

/// Runs `delete(batch)` until it deletes fewer than `batch` rows; returns
/// the total.
async fn delete_in_batches<'q>(
    conn: &mut PgConnection,
    batch: i64,
    delete: impl Fn(i64) -> Query<'q, Postgres, PgArguments>,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let deleted = delete(batch).execute(&mut *conn).await?.rows_affected();
        total += deleted;
        if deleted < u64::try_from(batch).unwrap_or(u64::MAX) {
            return Ok(total);
        }
    }
}
