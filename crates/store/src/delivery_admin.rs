//! What people do with deliveries from the API and the UI: list a webhook's
//! deliveries and retry failed ones by hand.
//!
//! Callers check that the webhook is in the user's scope first; every query
//! here is keyed by `webhook_id` as well, so a delivery id of another webhook
//! is never found.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;
use webhookd_events::TEST_EVENT;

use crate::notify::DUE_CHANNEL;
use crate::page::{After, Page};
use crate::StorageError;

/// A delivery's state (`pending`, `succeeded`, `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub(crate) const ALL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// Which deliveries to list; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub event: Option<String>,
    /// Only the events of this batch.
    pub batch_id: Option<Uuid>,
}

/// One delivery (an event for a webhook) and where it stands. An event sent
/// in a batch stands where its batch does: status, attempts and the last
/// outcome are the batch's.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event: String,
    pub status: String,
    /// The batch it was sent in (`None` while it waits to be collected into
    /// one, and for a webhook that does not batch).
    pub batch_id: Option<Uuid>,
    /// Attempts made so far.
    pub attempts: i32,
    /// When a pending delivery is attempted next (or its current attempt's
    /// lease ends); `None` once it has succeeded or failed.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl DeliveryRow {
    fn key(&self) -> After<Uuid> {
        After {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// A page of a webhook's deliveries, newest first; served by the
/// `(webhook_id, created_at)` index.
pub async fn list_deliveries(
    pool: &PgPool,
    webhook_id: i64,
    filter: &DeliveryFilter,
    after: Option<&After<Uuid>>,
    limit: usize,
) -> Result<Page<DeliveryRow, Uuid>, StorageError> {
    // A batch's own row is not listed: its events are, in its state.
    let mut query = QueryBuilder::<Postgres>::new(
        "SELECT d.id, d.event_id, e.event, s.status, d.batch_id, s.attempts,
                CASE WHEN s.status = 'pending' AND d.status <> 'queued' THEN s.next_attempt_at END
                    AS next_attempt_at,
                s.last_status_code, s.last_error, d.created_at, s.updated_at
         FROM deliveries d
         JOIN events e ON e.id = d.event_id
         LEFT JOIN deliveries b ON b.id = d.batch_id
         CROSS JOIN LATERAL (SELECT
             CASE d.status WHEN 'batched' THEN COALESCE(b.status, 'failed')
                           WHEN 'collecting' THEN 'pending' WHEN 'queued' THEN 'pending'
                           ELSE d.status END AS status,
             COALESCE(b.attempts, d.attempts) AS attempts,
             COALESCE(b.next_attempt_at, d.next_attempt_at) AS next_attempt_at,
             CASE WHEN b.id IS NULL THEN d.last_status_code ELSE b.last_status_code END
                 AS last_status_code,
             CASE WHEN b.id IS NULL THEN d.last_error ELSE b.last_error END AS last_error,
             GREATEST(d.updated_at, b.updated_at) AS updated_at) s
         WHERE d.batch_size IS NULL AND d.webhook_id = ",
    );
    query.push_bind(webhook_id);
    if let Some(status) = filter.status {
        // `s.status` spelled out on the stored columns: the planner cannot
        // estimate a condition on the CASE (it guesses a handful of rows and
        // reads the whole webhook to sort them), but it can these.
        query.push(status_condition(status));
    }
    if let Some(batch_id) = filter.batch_id {
        query.push(" AND d.batch_id = ").push_bind(batch_id);
    }
    if let Some(event) = &filter.event {
        query.push(" AND e.event = ").push_bind(event.clone());
    }
    if let Some(after) = after {
        // Not a row comparison, so that `created_at <= $t` bounds the scan.
        query
            .push(" AND d.created_at <= ")
            .push_bind(after.created_at)
            .push(" AND (d.created_at < ")
            .push_bind(after.created_at)
            .push(" OR d.id < ")
            .push_bind(after.id)
            .push(")");
    }
    query
        .push(" ORDER BY d.created_at DESC, d.id DESC LIMIT ")
        .push_bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1));
    let rows = query
        .build_query_as::<DeliveryRow>()
        .fetch_all(pool)
        .await?;
    Ok(Page::from_rows(rows, limit, DeliveryRow::key))
}

/// `s.status = status` of [`list_deliveries`] on the stored columns: an
/// event in a batch shows its batch's status (`failed` once the batch is
/// gone), a `collecting` or `queued` one shows `pending`, any other its own.
/// The stored states that can show `status` come first, as a list: it
/// matches a partial index for `failed` and `pending` (migration 0025) and
/// the planner estimates it well. The batch's part is a second condition
/// that only a batched row can fail, so the estimate stays that of the list
/// (written as one `OR` of both cases, the two were multiplied as if
/// independent, and the plan read and sorted a busy webhook's every failed
/// delivery).
fn status_condition(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Succeeded => {
            " AND d.status IN ('succeeded', 'batched')
              AND (d.status <> 'batched' OR COALESCE(b.status, 'failed') = 'succeeded')"
        }
        DeliveryStatus::Failed => {
            " AND d.status IN ('failed', 'batched')
              AND (d.status <> 'batched' OR COALESCE(b.status, 'failed') = 'failed')"
        }
        DeliveryStatus::Pending => {
            " AND d.status IN ('pending', 'collecting', 'queued', 'batched')
              AND (d.status <> 'batched' OR COALESCE(b.status, 'failed') = 'pending')"
        }
    }
}

/// A retried delivery's status: a FIFO webhook's waits queued for its turn
/// (its place is its consumption order, ahead of younger events), any
/// other is due at once.
const RETRIED_STATUS: &str = "CASE WHEN EXISTS (SELECT 1 FROM webhooks w
                                      WHERE w.id = deliveries.webhook_id AND w.ordering = 'fifo')
                          THEN 'queued' ELSE 'pending' END";

/// Whether a delivery of the webhook is a test delivery (`None`: no such
/// delivery).
pub async fn is_test_delivery(
    pool: &PgPool,
    webhook_id: i64,
    delivery_id: Uuid,
) -> Result<Option<bool>, StorageError> {
    let found: Option<bool> = sqlx::query_scalar(
        "SELECT e.event = $3 FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.id = $1 AND d.webhook_id = $2",
    )
    .bind(delivery_id)
    .bind(webhook_id)
    .bind(TEST_EVENT)
    .fetch_optional(pool)
    .await?;
    Ok(found)
}

/// What asking to retry one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The delivery is pending again and due now.
    Retried,
    /// It is pending already (waiting for its next attempt, or in flight).
    AlreadyPending,
    /// The webhook has no delivery with this id.
    NotFound,
}

/// Makes one succeeded or failed delivery of the webhook pending and due now,
/// and wakes the schedulers. Its attempt count is kept, so the retry policy
/// counts on from where it stopped.
pub async fn retry_delivery(
    pool: &PgPool,
    webhook_id: i64,
    delivery_id: Uuid,
) -> Result<RetryOutcome, StorageError> {
    let mut tx = pool.begin().await?;
    // An event sent in a batch is retried as its batch, whole and with the
    // batch's id, as an automatic retry would.
    let target: Option<Uuid> = sqlx::query_scalar(
        "SELECT COALESCE(batch_id, id) FROM deliveries WHERE id = $1 AND webhook_id = $2",
    )
    .bind(delivery_id)
    .bind(webhook_id)
    .fetch_optional(&mut *tx)
    .await?;
    let delivery_id = target.unwrap_or(delivery_id);
    // Locks the row, so a recorder writing an outcome meanwhile waits for us
    // and then finds it pending (its update is guarded on that).
    let status: Option<String> = sqlx::query_scalar(
        "SELECT status FROM deliveries WHERE id = $1 AND webhook_id = $2 FOR UPDATE",
    )
    .bind(delivery_id)
    .bind(webhook_id)
    .fetch_optional(&mut *tx)
    .await?;
    let outcome = match status.as_deref() {
        None => RetryOutcome::NotFound,
        Some("pending" | "collecting" | "queued") => RetryOutcome::AlreadyPending,
        Some(_) => {
            sqlx::query(&format!(
                "UPDATE deliveries SET status = {RETRIED_STATUS}, next_attempt_at = now(),
                     updated_at = now()
                 WHERE id = $1"
            ))
            .bind(delivery_id)
            .execute(&mut *tx)
            .await?;
            notify_due(&mut tx).await?;
            RetryOutcome::Retried
        }
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Makes every failed delivery of the webhook pending and due now; returns
/// how many. Attempt counts are kept, as for one delivery.
pub async fn retry_failed_deliveries(pool: &PgPool, webhook_id: i64) -> Result<u64, StorageError> {
    retry_failed(pool, webhook_id, false).await
}

/// As [`retry_failed_deliveries`], leaving test deliveries alone (the web
/// UI's "Retry failed"): a test is one attempt made while someone watches,
/// and retried here it would get the webhook's whole retry schedule.
pub async fn retry_failed_deliveries_but_tests(
    pool: &PgPool,
    webhook_id: i64,
) -> Result<u64, StorageError> {
    retry_failed(pool, webhook_id, true).await
}

async fn retry_failed(
    pool: &PgPool,
    webhook_id: i64,
    but_tests: bool,
) -> Result<u64, StorageError> {
    let mut tx = pool.begin().await?;
    let retried = sqlx::query(&format!(
        "UPDATE deliveries SET status = {RETRIED_STATUS}, next_attempt_at = now(),
             updated_at = now()
         WHERE webhook_id = $1 AND status = 'failed'
           AND NOT ($2 AND EXISTS (SELECT 1 FROM events e
                                   WHERE e.id = deliveries.event_id AND e.event = $3))"
    ))
    .bind(webhook_id)
    .bind(but_tests)
    .bind(TEST_EVENT)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if retried > 0 {
        notify_due(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(retried)
}

/// `NOTIFY webhookd_due` inside the transaction: Postgres delivers it on
/// commit, so a scheduler woken by it always sees the rows due.
async fn notify_due(tx: &mut sqlx::PgConnection) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(DUE_CHANNEL)
        .execute(tx)
        .await?;
    Ok(())
}
