//! What the web UI's webhook list shows beside each webhook's configuration:
//! its latest delivery and its recent success rate.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::webhooks::Scope;
use crate::StorageError;

/// How many days the list's success rate covers.
pub const SUCCESS_RATE_DAYS: i32 = 7;

/// One webhook's latest delivery and its attempts over the last
/// [`SUCCESS_RATE_DAYS`] days.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookOverview {
    pub(crate) webhook_id: i64,
    /// `pending`, `succeeded` or `failed`; `None` before the first delivery.
    pub last_status: Option<String>,
    pub last_status_code: Option<i32>,
    pub last_delivery_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub(crate) successes: i64,
}

impl WebhookOverview {
    /// Successes over attempts; `None` without attempts.
    pub fn success_rate(&self) -> Option<f64> {
        (self.attempts > 0).then(|| self.successes as f64 / self.attempts as f64)
    }
}

/// The overview of every webhook in scope, by webhook id. Each lateral
/// subquery is a short range scan of one webhook's index
/// (`deliveries_webhook`, `webhook_logs_webhook_covering`, an index-only
/// scan since it carries `is_success`), so the cost grows with the number of
/// webhooks listed and their last week's attempts, not with history.
pub async fn list_webhook_overviews(
    pool: &PgPool,
    scope: Scope,
) -> Result<HashMap<i64, WebhookOverview>, StorageError> {
    let rows = sqlx::query_as::<_, WebhookOverview>(
        "SELECT w.id AS webhook_id, d.status AS last_status,
                d.last_status_code, d.created_at AS last_delivery_at,
                a.attempts, a.successes
         FROM webhooks w
         LEFT JOIN LATERAL (
             SELECT status, last_status_code, created_at FROM deliveries
             WHERE webhook_id = w.id
             ORDER BY created_at DESC
             LIMIT 1
         ) d ON true
         CROSS JOIN LATERAL (
             SELECT COUNT(*) AS attempts, COUNT(*) FILTER (WHERE is_success) AS successes
             FROM webhook_logs
             WHERE webhook_id = w.id AND created_at >= now() - make_interval(days => $2)
         ) a
         WHERE ($1::int8 IS NULL OR w.user_id = $1)",
    )
    .bind(scope.owner())
    .bind(SUCCESS_RATE_DAYS)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.webhook_id, r)).collect())
}
