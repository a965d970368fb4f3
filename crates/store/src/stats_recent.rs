//! The complete minutes after the newest hour rolled up, summarised at every
//! rollup pass (migration 0026), so a statistics read scans a few minutes of
//! `webhook_logs` rather than up to an hour and the rollup's margin of it:
//! at ten million attempts a month that scan was the largest part of a
//! read of everyone's statistics.
//!
//! "Complete" as for hours (`stats_rollup`): at least the margin ago, and
//! before the start of every open transaction. The summaries cover
//! `[rolled_until, until)`, one row per webhook and one per owner, hour and
//! event (the range spans at most two hours), and are replaced whole by the
//! next pass. A read uses them only while `stats_recent` names the
//! `rolled_until` it sees as their start: once an hour is rolled up they
//! overlap it, and until the same pass summarises the minutes again the
//! read scans them. Deleting a webhook moves `stats_generation` (its share
//! is in its owner's rows): summaries of an older generation are not read,
//! as for the windows (`stats_windows`).

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::response_histogram::{self, grouped_summary_sql};
use crate::stats_windows;

/// Replaces the summaries by those of `[rolled_until, until)` (none when
/// that is empty). The caller holds the rollup's locks.
pub(crate) async fn refresh(
    conn: &mut PgConnection,
    rolled_until: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let generation = stats_windows::generation(&mut *conn).await?;
    for table in ["stats_recent", "webhook_stats_recent", "user_stats_recent"] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *conn)
            .await?;
    }
    if until <= rolled_until {
        return Ok(());
    }
    let condition = "l.created_at >= $2 AND l.created_at < $3";
    // Webhooks first: a webhook deleted meanwhile fails this insert's
    // foreign key (and the pass) instead of leaving its share behind.
    let webhooks = grouped_summary_sql(&[("l.webhook_id", "webhook_id")], condition);
    let owners = grouped_summary_sql(
        &[
            ("w.user_id", "user_id"),
            ("date_trunc('hour', l.created_at, 'UTC')", "hour"),
            ("l.event", "event"),
        ],
        condition,
    );
    for (table, columns, summary) in [
        ("webhook_stats_recent", "webhook_id", webhooks),
        ("user_stats_recent", "user_id, hour, event", owners),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {table} ({columns}, attempts, successes, buckets, counts) {summary}"
        ))
        .bind(response_histogram::bounds())
        .bind(rolled_until)
        .bind(until)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("INSERT INTO stats_recent (rolled_until, until, generation) VALUES ($1, $2, $3)")
        .bind(rolled_until)
        .bind(until)
        .bind(generation)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The end of the minutes summarised after `rolled_until` under the
/// current generation, in `conn`'s snapshot; `None` when there are none.
pub(crate) async fn summarised_until(
    conn: &mut PgConnection,
    rolled_until: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT r.until FROM stats_recent r, stats_generation g
         WHERE r.rolled_until = $1 AND r.generation = g.n",
    )
    .bind(rolled_until)
    .fetch_optional(conn)
    .await
}
