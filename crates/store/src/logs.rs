//! Reading `webhook_logs` (one row per attempt) for the API and the UI.
//!
//! Callers check that the webhook is in the user's scope first; every query
//! here is keyed by `webhook_id`, so it only ever sees that webhook's rows.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::types::Json;
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
    /// The bodies were cut to fit [`MAX_LOGS_PAGE_BODY_BYTES`] (only ever
    /// the single row of a page).
    #[sqlx(default)]
    pub bodies_truncated: bool,
    /// The headers sent and received, as `[name, value]` pairs: read for
    /// one attempt only; `None` in pages and for attempts logged before
    /// they were kept.
    pub request_headers: Option<Json<Vec<[String; 2]>>>,
    pub response_headers: Option<Json<Vec<[String; 2]>>>,
}

/// The bodies one page of logs may carry (`include=bodies`): 200 rows of
/// megabyte bodies would otherwise build hundreds of MiB per request. A page
/// stops before the row that would pass it (its cursor leads on to that
/// row); a page's first row is always kept, its bodies cut to fit.
pub const MAX_LOGS_PAGE_BODY_BYTES: usize = 4 << 20;

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
fn columns(query: &mut QueryBuilder<'_, Postgres>, with_bodies: bool, cut_bodies: bool) {
    query.push(
        "SELECT id, webhook_id, delivery_id, event, attempt, status_code, response_time_ms,
                is_success, error_message, created_at, ",
    );
    if with_bodies && !cut_bodies {
        query.push("payload, response, request_headers, response_headers");
    } else if with_bodies {
        // Cut in SQL (in characters, at most 4 bytes each) so that no row
        // brings more than about a page's budget into memory.
        // `left` takes an `integer`.
        let chars = i32::try_from(MAX_LOGS_PAGE_BODY_BYTES).unwrap_or(i32::MAX - 1);
        query
            .push("left(payload, ")
            .push_bind(chars.saturating_add(1))
            .push(") AS payload, left(response, ")
            .push_bind(chars.saturating_add(1))
            .push(") AS response");
    } else {
        query.push("NULL::text AS payload, NULL::text AS response");
    }
    if !with_bodies || cut_bodies {
        query.push(", NULL::jsonb AS request_headers, NULL::jsonb AS response_headers");
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
/// the order, the time range and the cursor, and with `success = false` the
/// failures-only one does (a healthy webhook's failures are otherwise found
/// by reading all of its attempts).
pub async fn list_logs(
    pool: &PgPool,
    webhook_id: i64,
    filter: &LogFilter,
    after: Option<&After<i64>>,
    limit: usize,
    with_bodies: bool,
) -> Result<Page<LogEntry, i64>, StorageError> {
    let mut query = QueryBuilder::new("");
    columns(&mut query, with_bodies, true);
    query.push("WHERE webhook_id = ").push_bind(webhook_id);
    if let Some(event) = &filter.event {
        query.push(" AND event = ").push_bind(event.clone());
    }
    // A literal, not a parameter: `NOT is_success` must be visible to the
    // planner in every plan (a generic one too) so that it walks the
    // failures-only index instead of every attempt of a healthy webhook.
    match filter.success {
        Some(true) => {
            query.push(" AND is_success");
        }
        Some(false) => {
            query.push(" AND NOT is_success");
        }
        None => {}
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
    if !with_bodies {
        let rows = query.build_query_as::<LogEntry>().fetch_all(pool).await?;
        return Ok(Page::from_rows(rows, limit, LogEntry::key));
    }
    // Rows are read one by one and reading stops at the budget: the rest of
    // the result is never fetched.
    let mut rows = query.build_query_as::<LogEntry>().fetch(pool);
    let mut items = Vec::new();
    let mut used = 0usize;
    while let Some(mut row) = rows.try_next().await? {
        if items.len() == limit {
            // The extra row: only says that there is a next page.
            return Ok(Page::from_rows_more(items, LogEntry::key));
        }
        let size = row.body_bytes();
        if used.saturating_add(size) <= MAX_LOGS_PAGE_BODY_BYTES {
            used += size;
        } else if items.is_empty() {
            // A page holds at least one row; the next row, if any, tells
            // whether there is a next page.
            row.cut_bodies(MAX_LOGS_PAGE_BODY_BYTES);
            used = MAX_LOGS_PAGE_BODY_BYTES;
        } else {
            return Ok(Page::from_rows_more(items, LogEntry::key));
        }
        items.push(row);
    }
    Ok(Page { items, next: None })
}

impl LogEntry {
    fn body_bytes(&self) -> usize {
        self.payload.as_ref().map_or(0, String::len) + self.response.as_ref().map_or(0, String::len)
    }

    /// Cuts the bodies to `budget` bytes together, the payload first.
    fn cut_bodies(&mut self, budget: usize) {
        let payload_room = cut(&mut self.payload, budget);
        cut(&mut self.response, budget.saturating_sub(payload_room));
        self.bodies_truncated = true;
    }
}

/// Cuts `text` to at most `bytes` (at a character boundary); its length after.
fn cut(text: &mut Option<String>, bytes: usize) -> usize {
    let Some(text) = text else { return 0 };
    if text.len() > bytes {
        let mut end = bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text.len()
}

/// One attempt of a webhook, bodies included. By id alone (the caller knows
/// no time): Postgres probes each daily partition's key index.
pub async fn find_log(
    pool: &PgPool,
    webhook_id: i64,
    log_id: i64,
) -> Result<Option<LogEntry>, StorageError> {
    let mut query = QueryBuilder::new("");
    columns(&mut query, true, false);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(payload: &str, response: Option<&str>) -> LogEntry {
        LogEntry {
            id: 1,
            webhook_id: 1,
            delivery_id: Uuid::nil(),
            event: "task.created".into(),
            attempt: 1,
            status_code: None,
            response_time_ms: 0,
            is_success: false,
            error_message: None,
            created_at: DateTime::UNIX_EPOCH,
            payload: Some(payload.into()),
            response: response.map(Into::into),
            batch_size: None,
            bodies_truncated: false,
            request_headers: None,
            response_headers: None,
        }
    }

    #[test]
    fn cutting_bodies_keeps_the_payload_first_and_whole_characters() {
        let mut row = entry("ééé", Some("response"));
        row.cut_bodies(5);
        // `é` is two bytes: five bytes hold two of them and one of the response.
        assert_eq!(row.payload.as_deref(), Some("éé"));
        assert_eq!(row.response.as_deref(), Some("r"));
        assert!(row.bodies_truncated);
        let mut row = entry("ab", Some("response"));
        row.cut_bodies(6);
        assert_eq!(
            (row.payload.as_deref(), row.response.as_deref()),
            (Some("ab"), Some("resp"))
        );
        assert!(row.body_bytes() <= 6);
    }
}
