//! The attempt feed behind live views of `webhook_logs` (the GraphQL
//! `deliveryAttempts` subscription, the web UI's live logs page): the
//! attempts recorded lately for a set of webhooks, read by an API process
//! that polls while somebody watches. Workers write the rows; this only reads.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::page::After;
use crate::StorageError;

/// One recorded attempt, without its bodies.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordedAttempt {
    pub id: i64,
    pub webhook_id: i64,
    pub delivery_id: Uuid,
    pub event: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub response_time_ms: i32,
    pub is_success: bool,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What one poll read, and the database's clock just before it read it.
#[derive(Debug, Clone)]
pub struct RecentAttempts {
    pub attempts: Vec<RecordedAttempt>,
    pub now: DateTime<Utc>,
}

/// The attempts of `webhook_ids` recorded after `after` in `(created_at,
/// id)` order (an `id` of `i64::MIN` takes every row stamped at
/// `after.created_at`), oldest first, at most `limit`. `created_at` is the
/// recording transaction's start, so a row can become visible after rows
/// stamped later than it: callers read an overlapping window and
/// de-duplicate by `id`. The `(webhook_id, created_at)` index serves each
/// webhook's range.
pub async fn recent_attempts(
    pool: &PgPool,
    webhook_ids: &[i64],
    after: &After<i64>,
    limit: i64,
) -> Result<RecentAttempts, StorageError> {
    // Read first: every row stamped before it and committed by the select
    // is in this read; later polls overlap from here for the rest.
    let now = database_now(pool).await?;
    let attempts = sqlx::query_as::<_, RecordedAttempt>(
        "SELECT id, webhook_id, delivery_id, event, attempt, status_code, response_time_ms,
                is_success, error_message, created_at
         FROM webhook_logs
         WHERE webhook_id = ANY($1) AND created_at >= $2 AND (created_at, id) > ($2, $3)
         ORDER BY created_at, id
         LIMIT $4",
    )
    .bind(webhook_ids)
    .bind(after.created_at)
    .bind(after.id)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(RecentAttempts { attempts, now })
}

/// The database's clock: the one `webhook_logs.created_at` is stamped by.
pub async fn database_now(pool: &PgPool) -> Result<DateTime<Utc>, StorageError> {
    Ok(sqlx::query_scalar("SELECT now()").fetch_one(pool).await?)
}
