//! Deletes attempt logs older than `retention.logs_days`, events whose
//! deliveries are all finished, and expired web UI sessions, in small
//! batches so the tables stay online. One replica at a time, under a
//! Postgres advisory lock.

use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::metrics::events;
use crate::metrics::Metrics;
use webhookd_store::ui_sessions;

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
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(Purged::default());
    }
    let days = i32::try_from(settings.logs_days).unwrap_or(i32::MAX);
    let batch = settings.batch_size;
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
                                       WHERE d.event_id = e.id AND d.status = 'pending')
                     LIMIT $2)",
            )
            .bind(days)
            .bind(limit)
        })
        .await?;
        let sessions = delete_in_batches(&mut conn, batch, ui_sessions::delete_expired).await?;
        Ok::<_, sqlx::Error>(Purged {
            logs,
            events,
            sessions,
        })
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await;
    result
}

/// Runs `delete(batch)` until it deletes fewer than `batch` rows; returns
/// the total.
async fn delete_in_batches<'q>(
    conn: &mut sqlx::PgConnection,
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
