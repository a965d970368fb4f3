//! `webhook_logs`'s daily partitions (SPEC §16): created ahead of need by
//! the daemon (`webhook_logs_ensure_partitions`, migration 0016), created on
//! demand by a writer whose row finds none, and dropped whole by retention.

use sqlx::{PgConnection, PgPool};

use crate::{advisory, StorageError};

/// The advisory lock `webhook_logs_ensure_partitions` takes (transaction
/// scoped) so that one session at a time creates partitions. Public so tests
/// and operators (`pg_locks`) can recognise it.
pub const LOCK_KEY: i64 = 0x7765_6268_6f6f_6b02;

/// Creates the missing partitions of today to today + `ahead_days` (UTC
/// days), waiting for another session creating them; returns how many it
/// created.
pub async fn ensure_ahead(conn: &mut PgConnection, ahead_days: u32) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT webhook_logs_ensure_partitions(d, d + $1)
         FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) today",
    )
    .bind(i32::try_from(ahead_days).unwrap_or(i32::MAX))
    .fetch_one(conn)
    .await
}

/// [`ensure_ahead`] unless another session holds [`LOCK_KEY`] (it is
/// creating them): `None` then. The lock is taken with
/// `pg_try_advisory_xact_lock` in a transaction, never for the session, so
/// it is safe behind a transaction-mode pooler.
pub async fn ensure_ahead_if_free(
    pool: &PgPool,
    ahead_days: u32,
) -> Result<Option<i32>, sqlx::Error> {
    let Some(mut tx) = advisory::begin_if_free(pool, LOCK_KEY).await? else {
        return Ok(None);
    };
    let created: i32 = sqlx::query_scalar(
        "SELECT webhook_logs_ensure_partitions(d, d + $1)
         FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) today",
    )
    .bind(i32::try_from(ahead_days).unwrap_or(i32::MAX))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(created))
}

/// Whether `error` is Postgres refusing a `webhook_logs` row because no
/// partition covers its `created_at` (a clock jump, or a daemon down for
/// longer than it creates partitions ahead).
pub fn is_missing_partition(error: &StorageError) -> bool {
    let StorageError::Database(sqlx::Error::Database(e)) = error else {
        return false;
    };
    e.code().as_deref() == Some("23514") && e.message().starts_with("no partition of relation")
}

/// Creates today's and tomorrow's partitions if missing: what a writer whose
/// row found no partition needs before trying again (its retry may start
/// after midnight). `conn` must not be inside a failed transaction.
pub async fn ensure_for_now(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT webhook_logs_ensure_partitions(d, d + 1)
         FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) today",
    )
    .fetch_one(conn)
    .await
}

/// Partitions dropped by [`drop_expired`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub partitions: u64,
    /// Their rows, estimated from the planner's statistics
    /// (`pg_class.reltuples`, kept by autovacuum and ANALYZE; the activity
    /// counters' `n_live_tup` for a partition never analysed): counting a
    /// whole day would read it just before dropping it.
    pub rows: u64,
}

#[derive(sqlx::FromRow)]
struct Expired {
    /// As `regclass` prints it: quoted where needed, so fit for SQL.
    name: String,
    reltuples: f64,
    live: i64,
    /// Still a partition (false: a day's table detached by a pass that
    /// stopped before dropping it).
    attached: bool,
    detach_pending: bool,
    /// Older than the retention period: dropped once detached.
    expired: bool,
}

/// Detaches and drops the partitions whose upper bound is at least
/// `logs_days` days old, and finishes any detach left pending by an earlier
/// pass that was interrupted (dropping that partition too if it is old: a
/// recent one an operator was detaching is detached and left alone). A day's
/// table (`webhook_logs_pYYYYMMDD`) already detached but not dropped, by a
/// pass stopped in between, is dropped once its day is as old. The caller
/// makes sure one session at a time runs this.
///
/// `DETACH ... CONCURRENTLY` does not block writers or readers of the other
/// partitions, but cannot run in a transaction block: each statement runs
/// on its own, over the simple protocol.
pub async fn drop_expired(pool: &PgPool, logs_days: u32) -> Result<Dropped, sqlx::Error> {
    let expired: Vec<Expired> = sqlx::query_as(
        "WITH parts AS (
             SELECT p.partition AS oid, TRUE AS attached, p.detach_pending, p.upper_bound
             FROM webhook_logs_partitions() p
             UNION ALL
             SELECT c.oid, FALSE, FALSE,
                    (to_date(substr(c.relname, 15), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
             FROM pg_class c
             WHERE c.relname ~ '^webhook_logs_p[0-9]{8}$' AND c.relkind = 'r'
               AND NOT c.relispartition
               AND c.relnamespace = (SELECT relnamespace FROM pg_class
                                     WHERE oid = 'webhook_logs'::regclass)
         )
         SELECT name, reltuples, live, attached, detach_pending, expired
         FROM (SELECT p.oid::regclass::text AS name, c.reltuples::float8 AS reltuples,
                      COALESCE(s.n_live_tup, 0) AS live, p.attached, p.detach_pending,
                      p.upper_bound <= now() - make_interval(days => $1) AS expired,
                      p.upper_bound
               FROM parts p
               JOIN pg_class c ON c.oid = p.oid
               LEFT JOIN pg_stat_user_tables s ON s.relid = p.oid) p
         WHERE detach_pending OR expired
         ORDER BY upper_bound",
    )
    .bind(i32::try_from(logs_days).unwrap_or(i32::MAX))
    .fetch_all(pool)
    .await?;
    let mut dropped = Dropped::default();
    for partition in expired {
        let name = &partition.name;
        if partition.attached {
            let how = match partition.detach_pending {
                true => "FINALIZE",
                false => "CONCURRENTLY",
            };
            sqlx::raw_sql(&format!(
                "ALTER TABLE webhook_logs DETACH PARTITION {name} {how}"
            ))
            .execute(pool)
            .await?;
        }
        if !partition.expired {
            continue;
        }
        sqlx::raw_sql(&format!("DROP TABLE {name}"))
            .execute(pool)
            .await?;
        dropped.partitions += 1;
        dropped.rows += match partition.reltuples {
            r if r >= 0.0 => r as u64,
            _ => u64::try_from(partition.live).unwrap_or(0),
        };
    }
    Ok(dropped)
}
