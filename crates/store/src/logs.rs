//! Reading `webhook_logs` (one row per attempt) for the API and the UI.
//!
//! Callers check that the webhook is in the user's scope first; every query
//! here is keyed by `webhook_id`, so it only ever sees that webhook's rows.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use crate::page::{After, Page};
use crate::StorageError;

/// Which attempts to list; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub event: Option<String>,
    pub success: Option<bool>,
    /// Attempts made at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Attempts made before this instant.
    pub to: Option<DateTime<Utc>>,
    pub delivery_id: Option<Uuid>,
}

/// One attempt. `payload` and `response` are only loaded when asked for:
/// they are the bulk of the table and a list rarely needs them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LogEntry {
    pub id: i64,
    pub(crate) webhook_id: i64,
    pub delivery_id: Uuid,
    pub event: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub response_time_ms: i32,
    pub is_success: bool,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub payload: Option<String>,
    pub response: Option<String>,
    /// For a batch's attempt (`event = 'batch'`): how many events it sent.
    pub batch_size: Option<i32>,
}

impl LogEntry {
    fn key(&self) -> After<i64> {
        After {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// The `SELECT` list: the bodies are read only when asked for, since they
/// are most of the table's bytes.
fn columns(query: &mut QueryBuilder<'_, Postgres>, with_bodies: bool) {
    query.push(
        "SELECT id, webhook_id, delivery_id, event, attempt, status_code, response_time_ms,
                is_success, error_message, created_at, ",
    );
    if with_bodies {
        query.push("payload, response");
    } else {
        query.push("NULL::text AS payload, NULL::text AS response");
    }
    // Looked up for batch attempts only, by the batch's primary key.
    query.push(
        ", CASE WHEN event = 'batch' THEN (SELECT d.batch_size FROM deliveries d
                                          WHERE d.id = webhook_logs.delivery_id) END AS batch_size
         FROM webhook_logs ",
    );
}

/// A page of a webhook's attempts, newest first.
///
/// Only the filters given become SQL conditions, so each query's plan is made
/// for exactly its conditions: the `(webhook_id, created_at)` index serves
/// the order, the time range and the cursor.
pub async fn list_logs(
    pool: &PgPool,
    webhook_id: i64,
    filter: &LogFilter,
    after: Option<&After<i64>>,
    limit: usize,
    with_bodies: bool,
) -> Result<Page<LogEntry, i64>, StorageError> {
    let mut query = QueryBuilder::new("");
    columns(&mut query, with_bodies);
    query.push("WHERE webhook_id = ").push_bind(webhook_id);
    if let Some(event) = &filter.event {
        query.push(" AND event = ").push_bind(event.clone());
    }
    if let Some(success) = filter.success {
        query.push(" AND is_success = ").push_bind(success);
    }
    if let Some(from) = filter.from {
        query.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to {
        query.push(" AND created_at < ").push_bind(to);
    }
    if let Some(delivery_id) = filter.delivery_id {
        query.push(" AND delivery_id = ").push_bind(delivery_id);
    }
    if let Some(after) = after {
        // Spelled out rather than as a row comparison so that
        // `created_at <= $t` bounds the index scan.
        query
            .push(" AND created_at <= ")
            .push_bind(after.created_at)
            .push(" AND (created_at < ")
            .push_bind(after.created_at)
            .push(" OR id < ")
            .push_bind(after.id)
            .push(")");
    }
    query
        .push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1));
    let rows = query.build_query_as::<LogEntry>().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, limit, LogEntry::key))
}

/// One attempt of a webhook, bodies included.
pub async fn find_log(
    pool: &PgPool,
    webhook_id: i64,
    log_id: i64,
) -> Result<Option<LogEntry>, StorageError> {
    let mut query = QueryBuilder::new("");
    columns(&mut query, true);
    query
        .push("WHERE id = ")
        .push_bind(log_id)
        .push(" AND webhook_id = ")
        .push_bind(webhook_id);
    let row = query
        .build_query_as::<LogEntry>()
        .fetch_optional(pool)
        .await?;
    Ok(row)
}
