//! The retention job's statements: attempt logs older than a number of days,
//! events as old whose deliveries are all finished, and expired web UI
//! sessions, deleted in small batches so the tables stay online, under a
//! Postgres advisory lock so that one replica at a time runs them.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgConnection, PgPool, Postgres};

use crate::ui_sessions;

/// Rows deleted by one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub logs: u64,
    pub events: u64,
    pub sessions: u64,
}

/// One pass under the advisory lock `lock_key`; deletes nothing when another
/// session holds it. `batch` rows at most per statement.
pub async fn purge(
    pool: &PgPool,
    lock_key: i64,
    logs_days: u32,
    batch: i64,
) -> Result<Deleted, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(lock_key)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(Deleted::default());
    }
    let days = i32::try_from(logs_days).unwrap_or(i32::MAX);
    let result = async {
        let logs = delete_in_batches(&mut conn, batch, |limit| {
            sqlx::query(
                "DELETE FROM webhook_logs WHERE id IN (
                     SELECT id FROM webhook_logs
                     WHERE created_at < now() - make_interval(days => $1) LIMIT $2)",
            )
            .bind(days)
            .bind(limit)
        })
        .await?;
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
        Ok::<_, sqlx::Error>(Deleted {
            logs,
            events,
            sessions,
        })
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(lock_key)
        .execute(&mut *conn)
        .await;
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
