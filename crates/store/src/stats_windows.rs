//! The offered statistics windows summarised ahead (migration 0024): for
//! the last day and the last week, one row per webhook and one per owner
//! and event over the window's rolled-up hours, so a read of everyone's
//! week at ten million attempts fetches about a thousand summaries instead
//! of fifteen thousand or more (hourly and daily ones).
//!
//! A read's rolled-up part is `[from, rolled_until)`, `from` being the
//! window's first hour: one hour short of the period while the newest
//! complete hour is rolled up, two short in the minutes before it is (the
//! rollup waits `MARGIN` past an hour's end). So each period is summarised
//! at both lengths, ending at `rolled_until`, whenever the rollup has moved
//! it; a read whose rolled-up part has another shape (the rollup behind,
//! or still backfilling the window's start) uses the other levels.
//!
//! A window is summarised from the same summaries a read would otherwise
//! merge (`webhook_stats_daily` for the whole days, `webhook_stats_hourly`
//! for the hours before them, `user_stats_hourly` for the owners), so both
//! ways give the same figures. It is valid while its row in
//! `stats_windows` exists with the current `stats_generation`: deleting a
//! webhook moves the generation, retention dropping a day the window
//! covers deletes the row, and the next pass summarises it again.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, PgConnection};

use crate::response_histogram::merged_sql;

/// The periods offered, in hours: the last day and the last week.
pub const PERIOD_HOURS: [u32; 2] = [24, 7 * 24];

/// The lengths summarised for each period: the rolled-up part of a read
/// with the newest complete hour rolled up, and without it.
fn lengths() -> impl Iterator<Item = i64> {
    PERIOD_HOURS
        .into_iter()
        .flat_map(|hours| [i64::from(hours) - 1, i64::from(hours) - 2])
        .filter(|length| *length > 0)
}

/// Summarises every window ending at `until` that is not summarised yet and
/// whose hours are all rolled up (from `rolled_from` on), and drops the
/// windows ending elsewhere. The caller holds the rollup's locks (see
/// `stats_rollup`), so the range does not move meanwhile. Returns how many
/// windows it summarised.
pub(crate) async fn refresh(
    conn: &mut PgConnection,
    rolled_from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    // Read first: a webhook deleted after this is seen as a newer
    // generation by reads, whatever this pass summarises.
    let generation = generation(&mut *conn).await?;
    sqlx::query("DELETE FROM stats_windows WHERE until <> $1 OR generation <> $2")
        .bind(until)
        .bind(generation)
        .execute(&mut *conn)
        .await?;
    for table in ["webhook_stats_window", "user_stats_window"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE until <> $1"))
            .bind(until)
            .execute(&mut *conn)
            .await?;
    }
    let mut summarised = 0;
    for length in lengths() {
        let start = until - Duration::hours(length);
        if start < rolled_from {
            continue;
        }
        if is_summarised(&mut *conn, start, until).await? {
            continue;
        }
        summarise(&mut *conn, start, until, generation).await?;
        summarised += 1;
    }
    Ok(summarised)
}

/// `stats_generation`'s value: summaries made under an older one are not
/// read (migration 0024).
pub(crate) async fn generation(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT n FROM stats_generation")
        .fetch_one(conn)
        .await
}

/// Writes the window `[start, until)`, replacing what a window of that
/// shape left behind when it was invalidated.
async fn summarise(
    conn: &mut PgConnection,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    generation: i64,
) -> Result<(), sqlx::Error> {
    let hours = window_hours(start, until);
    for table in ["webhook_stats_window", "user_stats_window"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE hours = $1 AND until = $2"
        ))
        .bind(hours)
        .bind(until)
        .execute(&mut *conn)
        .await?;
    }
    // The whole days from their day rows (the newest one's runs to
    // `until`), the hours before the first of them from the hourly rows.
    sqlx::query(&format!(
        "INSERT INTO webhook_stats_window
             (hours, until, webhook_id, attempts, successes, buckets, counts)
         SELECT $1::int4, $2::timestamptz, m.* FROM ({}) m",
        merged_sql(
            "webhook_id",
            "SELECT webhook_id, attempts, successes, buckets, counts
             FROM webhook_stats_daily
             WHERE day >= date_trunc('day', $3 + interval '1 day' - interval '1 microsecond', 'UTC')
               AND day < $2
             UNION ALL
             SELECT webhook_id, attempts, successes, buckets, counts
             FROM webhook_stats_hourly
             WHERE hour >= $3
               AND hour < least($2, date_trunc('day', $3 + interval '1 day' - interval '1 microsecond', 'UTC'))"
        )
    ))
    .bind(hours)
    .bind(until)
    .bind(start)
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO user_stats_window
             (hours, until, user_id, event, attempts, successes, buckets, counts)
         SELECT $1::int4, $2::timestamptz, m.* FROM ({}) m",
        merged_sql(
            "user_id, event",
            "SELECT user_id, event, attempts, successes, buckets, counts
             FROM user_stats_hourly WHERE hour >= $3 AND hour < $2"
        )
    ))
    .bind(hours)
    .bind(until)
    .bind(start)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM stats_windows WHERE hours = $1 AND until = $2")
        .bind(hours)
        .bind(until)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO stats_windows (hours, until, generation) VALUES ($1, $2, $3)")
        .bind(hours)
        .bind(until)
        .bind(generation)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whether the window `[start, until)` is summarised under the current
/// generation, in `conn`'s snapshot.
pub(crate) async fn is_summarised(
    conn: &mut PgConnection,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM stats_windows w, stats_generation g
                        WHERE w.hours = $1 AND w.until = $2 AND w.generation = g.n)",
    )
    .bind(window_hours(start, until))
    .bind(until)
    .fetch_one(conn)
    .await
}

fn window_hours(start: DateTime<Utc>, until: DateTime<Utc>) -> i32 {
    i32::try_from((until - start).num_hours()).unwrap_or(i32::MAX)
}

/// Drops the windows reaching into the days retention drops (`logs_days`:
/// see `stats_rollup::delete_expired`), once their summaries are deleted;
/// the next rollup pass summarises what is left of them. Under the rollup's
/// row lock, so a window a pass summarised from summaries being deleted
/// meanwhile is committed before this looks, and dropped too.
pub(crate) async fn forget_expired(
    conn: &mut PgConnection,
    logs_days: i32,
) -> Result<u64, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT 1 FROM webhook_stats_rollup FOR UPDATE")
        .execute(&mut *tx)
        .await?;
    let forgotten = sqlx::query(
        "DELETE FROM stats_windows
         WHERE until - make_interval(hours => hours)
               < date_trunc('day', now() - make_interval(days => $1), 'UTC')",
    )
    .bind(logs_days)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_period_is_summarised_with_and_without_its_newest_complete_hour() {
        assert_eq!(lengths().collect::<Vec<_>>(), vec![23, 22, 167, 166]);
    }
}
