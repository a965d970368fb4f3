//! Delivery statistics from `webhook_logs`: attempts per hour by outcome, and
//! success rate and response-time percentiles per webhook and per event.
//!
//! One scan of the window answers everything (`GROUPING SETS`), and the
//! window is a `created_at` range, so the scan is an index range: on
//! `(created_at)` for everyone's webhooks, on `(webhook_id, created_at)` for
//! one user's (a nested loop over their webhooks).

use chrono::{DateTime, Duration, DurationRound, TimeDelta, Utc};
use sqlx::PgPool;

use crate::webhooks::Scope;
use crate::StorageError;

/// Attempts in one hour, by outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourCount {
    /// The start of the hour (UTC).
    pub hour: DateTime<Utc>,
    pub successes: i64,
    pub failures: i64,
}

/// Attempts of one group (a webhook, an event, or all of them).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub attempts: i64,
    pub successes: i64,
    pub failures: i64,
    /// Median and 95th percentile of `response_time_ms`, over the attempts
    /// that got an HTTP response: connection errors and timeouts are failures,
    /// not response times. `None` when there were none.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

impl Summary {
    /// Successes over attempts; `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.successes as f64 / self.attempts as f64)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSummary {
    pub webhook_id: i64,
    pub name: String,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventSummary {
    pub event: String,
    pub summary: Summary,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// The window: from the start of the first hour up to now.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Every hour of the window, oldest first, zeros included.
    pub hourly: Vec<HourCount>,
    pub total: Summary,
    /// Webhooks with at least one attempt in the window, by id.
    pub webhooks: Vec<WebhookSummary>,
    /// Events with at least one attempt in the window, by name.
    pub events: Vec<EventSummary>,
}

#[derive(sqlx::FromRow)]
struct Row {
    /// `GROUPING(hour, webhook_id, event)`: which grouping set the row is.
    grouping: i32,
    hour: Option<DateTime<Utc>>,
    webhook_id: Option<i64>,
    name: Option<String>,
    event: Option<String>,
    attempts: i64,
    successes: i64,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
}

const BY_HOUR: i32 = 0b011;
const BY_WEBHOOK: i32 = 0b101;
const BY_EVENT: i32 = 0b110;
const TOTAL: i32 = 0b111;

/// Statistics of the webhooks in `scope` over the last `hours` hours (the
/// current, partial hour being the last of them).
pub async fn load_stats(
    pool: &PgPool,
    scope: Scope,
    hours: u32,
    now: DateTime<Utc>,
) -> Result<Stats, StorageError> {
    let current_hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
    let from = current_hour - Duration::hours(i64::from(hours.max(1)) - 1);
    let sql = stats_sql(scope);
    let mut query = sqlx::query_as::<_, Row>(&sql).bind(from);
    if let Scope::User(owner) = scope {
        query = query.bind(owner);
    }
    let rows = query.fetch_all(pool).await?;
    Ok(assemble(from, now, hours, rows))
}

/// The statement [`load_stats`] runs: `$1` is the window's start and, for
/// [`Scope::User`], `$2` the owner. Public so a test can check its plan.
///
/// The scope is a condition in the text, not `$n IS NULL OR ...`, so the
/// plan is made for it: with a user, the index on their webhooks' logs;
/// without, the `created_at` index.
pub fn stats_sql(scope: Scope) -> String {
    let owner_condition = match scope {
        Scope::User(_) => "AND w.user_id = $2",
        Scope::All => "",
    };
    format!(
        "SELECT GROUPING(s.hour, s.webhook_id, s.event) AS grouping,
                s.hour, s.webhook_id, s.name, s.event,
                COUNT(*) AS attempts,
                COUNT(*) FILTER (WHERE s.is_success) AS successes,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY s.response_time_ms)
                    FILTER (WHERE s.status_code IS NOT NULL) AS p50_ms,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY s.response_time_ms)
                    FILTER (WHERE s.status_code IS NOT NULL) AS p95_ms
         FROM (
             SELECT date_trunc('hour', l.created_at, 'UTC') AS hour, l.webhook_id, w.name,
                    l.event, l.is_success, l.status_code, l.response_time_ms
             FROM webhook_logs l
             JOIN webhooks w ON w.id = l.webhook_id
             WHERE l.created_at >= $1 {owner_condition}
         ) s
         GROUP BY GROUPING SETS ((s.hour), (s.webhook_id, s.name), (s.event), ())
         ORDER BY grouping, s.hour, s.webhook_id, s.event"
    )
}

fn assemble(from: DateTime<Utc>, to: DateTime<Utc>, hours: u32, rows: Vec<Row>) -> Stats {
    let mut hourly: Vec<HourCount> = (0..i64::from(hours.max(1)))
        .map(|i| HourCount {
            hour: from + Duration::hours(i),
            successes: 0,
            failures: 0,
        })
        .collect();
    let mut stats = Stats {
        from,
        to,
        hourly: Vec::new(),
        total: Summary {
            attempts: 0,
            successes: 0,
            failures: 0,
            p50_ms: None,
            p95_ms: None,
        },
        webhooks: Vec::new(),
        events: Vec::new(),
    };
    for row in rows {
        let summary = Summary {
            attempts: row.attempts,
            successes: row.successes,
            failures: row.attempts - row.successes,
            p50_ms: row.p50_ms,
            p95_ms: row.p95_ms,
        };
        match (row.grouping, row.hour, row.webhook_id, row.event) {
            (BY_HOUR, Some(hour), _, _) => {
                if let Some(slot) = hourly.iter_mut().find(|h| h.hour == hour) {
                    slot.successes = summary.successes;
                    slot.failures = summary.failures;
                }
            }
            (BY_WEBHOOK, _, Some(webhook_id), _) => stats.webhooks.push(WebhookSummary {
                webhook_id,
                name: row.name.unwrap_or_default(),
                summary,
            }),
            (BY_EVENT, _, _, Some(event)) => stats.events.push(EventSummary { event, summary }),
            (TOTAL, ..) => stats.total = summary,
            _ => {}
        }
    }
    stats.hourly = hourly;
    stats
}
