//! The hourly statistics rollup (migration 0019): complete hours of
//! `webhook_logs` summarised into `webhook_stats_hourly`, one row per
//! webhook, hour and event, and the range of hours done kept in
//! `webhook_stats_rollup`.
//!
//! An hour is rolled up once no attempt can still be written into it: its
//! end is at least `margin` ago, and no transaction of this database that
//! began before its end is still open (an attempt's `created_at` is its
//! transaction's start, so such a transaction could still commit rows for
//! the hour). Hours are rolled forward as they complete, and on a database
//! with history, backwards from the first hour rolled to the oldest attempt,
//! `chunk_hours` at a time so no transaction runs long.
//!
//! Each chunk is one transaction: it locks the range row, inserts the
//! chunk's summaries, derives the coarser levels from them (migration 0023:
//! per owner, hour and event in `user_stats_hourly`; per webhook and UTC day
//! in `webhook_stats_daily`, for the days the chunk adds hours to) and moves the
//! range's bound. Two passes at once (two
//! replicas) serialise on that row lock, the second seeing the bound moved;
//! an interrupted one leaves nothing behind. The advisory lock only spares
//! the second replica the wait.

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use sqlx::PgPool;

use crate::response_histogram::{self, merged_sql, summary_sql};
use crate::{advisory, stats_recent, stats_windows};

/// The advisory lock a rollup pass holds (transaction scoped). Public so
/// tests and operators (`pg_locks`) can recognise it.
pub const LOCK_KEY: i64 = 0x7765_6268_6f6f_6b03;

/// The UTC day starting at or after `at`.
pub(crate) fn day_ceil(at: DateTime<Utc>) -> DateTime<Utc> {
    let floor = day_floor(at);
    if floor == at {
        at
    } else {
        floor + TimeDelta::days(1)
    }
}

/// The UTC day starting at or before `at`.
pub(crate) fn day_floor(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::days(1)).unwrap_or(at)
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rolled {
    /// Hours rolled up (forward and backwards).
    pub hours: i64,
    /// `webhook_stats_hourly` rows written.
    pub rows: u64,
    /// Offered windows summarised ahead (`stats_windows`).
    pub windows: u64,
    /// Another session held the lock: nothing was done.
    pub skipped: bool,
}

/// The hours rolled up: `[from, until)`; `None` before the first pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolledRange {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// `webhook_stats_rollup`'s bounds, NULL before the first pass.
type Bounds = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The range rolled up so far.
pub async fn rolled_range(
    executor: impl sqlx::PgExecutor<'_>,
) -> Result<Option<RolledRange>, sqlx::Error> {
    let row: Option<Bounds> =
        sqlx::query_as("SELECT rolled_from, rolled_until FROM webhook_stats_rollup")
            .fetch_optional(executor)
            .await?;
    Ok(match row {
        Some((Some(from), Some(until))) => Some(RolledRange { from, until }),
        _ => None,
    })
}

/// Rolls up every complete hour not rolled up yet (see the module comment
/// for "complete"), newest first, `chunk_hours` per transaction. Does
/// nothing when another session holds [`LOCK_KEY`].
pub async fn roll_up(
    pool: &PgPool,
    margin: Duration,
    chunk_hours: u32,
) -> Result<Rolled, sqlx::Error> {
    let chunk = Duration::hours(i64::from(chunk_hours.max(1)));
    let mut rolled = Rolled::default();
    loop {
        match roll_chunk(pool, margin, chunk).await? {
            Chunk::Busy => {
                rolled.skipped = rolled.hours == 0;
                return Ok(rolled);
            }
            Chunk::Done { windows } => {
                rolled.windows = windows;
                return Ok(rolled);
            }
            Chunk::Rolled { hours, rows } => {
                rolled.hours += hours;
                rolled.rows += rows;
            }
        }
    }
}

enum Chunk {
    Busy,
    Done { windows: u64 },
    Rolled { hours: i64, rows: u64 },
}

async fn roll_chunk(
    pool: &PgPool,
    margin: Duration,
    chunk: Duration,
) -> Result<Chunk, sqlx::Error> {
    let Some(mut tx) = advisory::begin_if_free(pool, LOCK_KEY).await? else {
        return Ok(Chunk::Busy);
    };
    let (from, until): Bounds =
        sqlx::query_as("SELECT rolled_from, rolled_until FROM webhook_stats_rollup FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    // Read after the row lock, in a statement of its own: every later
    // statement's snapshot sees the transactions that were open before.
    let (complete, complete_minute, oldest): (DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT date_trunc('hour', c.at, 'UTC'), date_trunc('minute', c.at, 'UTC'),
                    (SELECT date_trunc('hour', min(created_at), 'UTC') FROM webhook_logs)
             FROM (SELECT least(now() - $1,
                                COALESCE((SELECT min(xact_start) FROM pg_stat_activity
                                          WHERE datname = current_database()
                                            AND pid <> pg_backend_pid()
                                            AND backend_type = 'client backend'),
                                         'infinity')) AS at) c",
        )
        .bind(margin)
        .fetch_one(&mut *tx)
        .await?;
    let (Some(from), Some(until)) = (from, until) else {
        // The first pass: nothing rolled yet, the range starts empty at
        // the last complete hour and grows both ways from there.
        sqlx::query("UPDATE webhook_stats_rollup SET rolled_from = $1, rolled_until = $1")
            .bind(complete)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Chunk::Rolled { hours: 0, rows: 0 });
    };
    let (start, end, bound) = if until < complete {
        (until, (until + chunk).min(complete), "rolled_until")
    } else if let Some(oldest) = oldest.filter(|oldest| *oldest < from) {
        ((from - chunk).max(oldest), from, "rolled_from")
    } else {
        // Caught up: the offered windows ending where the range does, and
        // the complete minutes after it.
        let windows = stats_windows::refresh(&mut tx, from, until).await?;
        stats_recent::refresh(&mut tx, until, complete_minute).await?;
        tx.commit().await?;
        return Ok(Chunk::Done { windows });
    };
    let summary = summary_sql("l.created_at >= $2 AND l.created_at < $3");
    let rows = sqlx::query(&format!(
        "INSERT INTO webhook_stats_hourly
             (webhook_id, hour, event, attempts, successes, buckets, counts)
         {summary}"
    ))
    .bind(response_histogram::bounds())
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(&format!(
        "INSERT INTO user_stats_hourly
             (user_id, hour, event, attempts, successes, buckets, counts)
         {}",
        merged_sql(
            "user_id, hour, event",
            "SELECT w.user_id, r.hour, r.event, r.attempts, r.successes, r.buckets, r.counts
             FROM webhook_stats_hourly r JOIN webhooks w ON w.id = r.webhook_id
             WHERE r.hour >= $1 AND r.hour < $2"
        )
    ))
    .bind(start)
    .bind(end)
    .execute(&mut *tx)
    .await?;
    let (new_from, new_until) = if bound == "rolled_until" {
        (from, end)
    } else {
        (start, until)
    };
    // The days whose row this chunk changes, among those rolled up from
    // their start: a day's row holds its hours rolled up so far, so the
    // newest day's row runs to `rolled_until` and a window's last, partial
    // day reads one row per webhook.
    let first_day = day_ceil(new_from).max(day_floor(start));
    let end_day = day_ceil(new_until).min(day_ceil(end));
    if first_day < end_day {
        sqlx::query("DELETE FROM webhook_stats_daily WHERE day >= $1 AND day < $2")
            .bind(first_day)
            .bind(end_day)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO webhook_stats_daily
                 (webhook_id, day, attempts, successes, buckets, counts)
             {}",
            merged_sql(
                "webhook_id, day",
                "SELECT webhook_id, date_trunc('day', hour, 'UTC') AS day,
                        attempts, successes, buckets, counts
                 FROM webhook_stats_hourly WHERE hour >= $1 AND hour < $2"
            )
        ))
        .bind(first_day)
        .bind(end_day)
        .execute(&mut *tx)
        .await?;
    }
    let moved = if bound == "rolled_until" { end } else { start };
    sqlx::query(&format!("UPDATE webhook_stats_rollup SET {bound} = $1"))
        .bind(moved)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Chunk::Rolled {
        hours: (end - start).num_hours(),
        rows,
    })
}

/// How far the rollup is behind: from the end of the newest hour rolled up
/// to now (an hour and the margin when up to date); `None` before the first
/// pass.
pub async fn lag(pool: &PgPool) -> Result<Option<f64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - rolled_until)::float8 FROM webhook_stats_rollup",
    )
    .fetch_optional(pool)
    .await
    .map(Option::flatten)
}

/// Deletes, `batch` rows at a time, the summaries (every level) of the UTC
/// days whose `webhook_logs` partition retention drops (a day goes once its
/// end is `logs_days` old: see [`crate::partitions::drop_expired`]), so they
/// go with their attempts.
pub(crate) async fn delete_expired(
    conn: &mut sqlx::PgConnection,
    logs_days: i32,
    batch: i64,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    for (table, key, time) in [
        ("webhook_stats_hourly", "webhook_id, hour, event", "hour"),
        ("user_stats_hourly", "user_id, hour, event", "hour"),
        ("webhook_stats_daily", "webhook_id, day", "day"),
    ] {
        loop {
            let deleted = sqlx::query(&format!(
                "DELETE FROM {table} WHERE ({key}) IN (
                     SELECT {key} FROM {table}
                     WHERE {time} < date_trunc('day', now() - make_interval(days => $1), 'UTC')
                     LIMIT $2)"
            ))
            .bind(logs_days)
            .bind(batch)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            total += deleted;
            if deleted < u64::try_from(batch).unwrap_or(u64::MAX) {
                break;
            }
        }
    }
    stats_windows::forget_expired(&mut *conn, logs_days).await?;
    Ok(total)
}
