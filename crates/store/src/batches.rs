//! Batches (SPEC §11): a batching webhook's fan-out rows wait `collecting`
//! until enough have gathered or the oldest has waited long enough, then
//! one statement group turns them into a batch: an `events` row holding the
//! batch body and a `deliveries` row for it, due at once, which the
//! scheduler claims, attempts, retries and logs like any delivery.
//!
//! Several workers may collect at once. Each takes the oldest collecting
//! rows with `FOR UPDATE SKIP LOCKED` and forms a batch only when what it
//! took is full or overdue by itself, so two workers never split one
//! webhook's events into small batches: the loser of a race finds the rest
//! too few and too young, and leaves them.

use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::StorageError;

/// What one webhook has collected so far, and its batch settings as they
/// are now.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Collected {
    pub webhook_id: i64,
    pub waiting: i64,
    /// How long the oldest has waited.
    pub oldest_waited_ms: i64,
    /// `None`: the webhook no longer batches (or was deleted meanwhile).
    pub batch_max_events: Option<i32>,
    pub batch_max_wait_ms: i32,
}

impl Collected {
    /// A batch is due: full, or its oldest event has waited long enough.
    pub fn due(&self) -> bool {
        match self.batch_max_events {
            None => true,
            Some(max) => {
                self.waiting >= i64::from(max)
                    || self.oldest_waited_ms >= i64::from(self.batch_max_wait_ms)
            }
        }
    }

    /// How long until a batch is due by age (zero when it is).
    pub fn due_in(&self) -> Duration {
        let left = i64::from(self.batch_max_wait_ms).saturating_sub(self.oldest_waited_ms);
        Duration::from_millis(u64::try_from(left).unwrap_or(0))
    }
}

/// Every webhook with collecting rows; served by the partial index
/// `deliveries_collecting`, which holds only rows younger than their
/// webhook's `batch_max_wait_ms` (plus the batcher's lag).
pub async fn collected(pool: &PgPool) -> Result<Vec<Collected>, StorageError> {
    let rows = sqlx::query_as::<_, Collected>(
        "SELECT c.webhook_id, c.waiting,
                (EXTRACT(EPOCH FROM (now() - c.oldest)) * 1000)::int8 AS oldest_waited_ms,
                w.batch_max_events, COALESCE(w.batch_max_wait_ms, 0) AS batch_max_wait_ms
         FROM (SELECT webhook_id, count(*) AS waiting, min(created_at) AS oldest
               FROM deliveries WHERE status = 'collecting' GROUP BY webhook_id) c
         LEFT JOIN webhooks w ON w.id = c.webhook_id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// A batch just formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formed {
    pub batch_id: Uuid,
    pub size: usize,
}

/// One collecting row, as the batcher weighs it.
#[derive(sqlx::FromRow)]
struct Candidate {
    id: Uuid,
    event_id: Uuid,
    overdue: bool,
    bytes: i32,
}

/// Forms one batch of the webhook's oldest collecting rows if what this
/// worker can take is a batch by itself: `max_events` of them, or any whose
/// oldest has waited `max_wait`, or as many as fit in `max_body_bytes`
/// (always at least one). `None` when nothing was formed.
pub async fn form(
    pool: &PgPool,
    webhook_id: i64,
    max_events: i32,
    max_wait: Duration,
    max_body_bytes: usize,
) -> Result<Option<Formed>, StorageError> {
    let mut tx = pool.begin().await?;
    let wait_ms = i64::try_from(max_wait.as_millis()).unwrap_or(i64::MAX);
    let candidates = sqlx::query_as::<_, Candidate>(
        "SELECT d.id, d.event_id,
                d.created_at <= now() - make_interval(secs => $3::int8 / 1000.0) AS overdue,
                octet_length(e.body) AS bytes
         FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.webhook_id = $1 AND d.status = 'collecting'
         ORDER BY d.created_at, d.collect_order
         LIMIT $2
         FOR UPDATE OF d SKIP LOCKED",
    )
    .bind(webhook_id)
    .bind(i64::from(max_events.max(1)))
    .bind(wait_ms)
    .fetch_all(&mut *tx)
    .await?;
    let taken = fitting(&candidates, max_body_bytes);
    let full = candidates.len() >= usize::try_from(max_events).unwrap_or(usize::MAX);
    let overflowing = taken < candidates.len();
    let overdue = candidates.first().is_some_and(|c| c.overdue);
    if taken == 0 || !(full || overflowing || overdue) {
        return Ok(None); // the transaction rolls back: the rows stay collecting
    }
    let members = &candidates[..taken];
    let batch_id = Uuid::now_v7();
    insert_batch(&mut tx, webhook_id, batch_id, members).await?;
    tx.commit().await?;
    Ok(Some(Formed {
        batch_id,
        size: taken,
    }))
}

/// How many of the oldest candidates fit in a body of `max_bytes` (the
/// events' bodies, their separators and the wrapper): at least one, so an
/// event larger than the cap still goes, alone.
fn fitting(candidates: &[Candidate], max_bytes: usize) -> usize {
    // `{"id":"<36>","event":"batch","timestamp":<20>,"events":[...]}`
    const WRAPPER: usize = 100;
    let mut total = WRAPPER;
    for (n, candidate) in candidates.iter().enumerate() {
        total = total
            .saturating_add(usize::try_from(candidate.bytes).unwrap_or(usize::MAX))
            .saturating_add(1);
        if total > max_bytes {
            return n.max(1).min(candidates.len());
        }
    }
    candidates.len()
}

/// Writes the batch's event (the body, built from its events' envelopes in
/// order, so no body leaves Postgres), its delivery, due now (queued behind
/// the batches before it for a FIFO webhook), and marks its members.
async fn insert_batch(
    tx: &mut Transaction<'_, Postgres>,
    webhook_id: i64,
    batch_id: Uuid,
    members: &[Candidate],
) -> Result<(), StorageError> {
    let ids: Vec<Uuid> = members.iter().map(|c| c.id).collect();
    let event_ids: Vec<Uuid> = members.iter().map(|c| c.event_id).collect();
    let size = i32::try_from(members.len()).unwrap_or(i32::MAX);
    sqlx::query(
        "WITH body AS (
             SELECT '{\"id\":\"' || $1::text || '\",\"event\":\"batch\",\"timestamp\":'
                    || floor(EXTRACT(EPOCH FROM now()))::int8 || ',\"events\":['
                    || string_agg(e.body, ',' ORDER BY m.ord) || ']}' AS text
             FROM UNNEST($3::uuid[]) WITH ORDINALITY AS m(event_id, ord)
             JOIN events e ON e.id = m.event_id
         ), batch_event AS (
             INSERT INTO events (id, event, user_id, body)
             SELECT $1, 'batch', NULL, text FROM body
         )
         INSERT INTO deliveries (id, event_id, webhook_id, status, next_attempt_at, batch_size)
         SELECT $1, $1, $2, CASE WHEN w.ordering = 'fifo' THEN 'queued' ELSE 'pending' END,
                now(), $4
         FROM webhooks w WHERE w.id = $2",
    )
    .bind(batch_id)
    .bind(webhook_id)
    .bind(&event_ids)
    .bind(size)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "UPDATE deliveries SET status = 'batched', batch_id = $2, updated_at = now()
         WHERE id = ANY($1)",
    )
    .bind(&ids)
    .bind(batch_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes the webhook's collecting rows ordinary deliveries, due now (or
/// queued in their order, for a FIFO webhook): it no longer batches.
/// Returns how many.
pub async fn release(pool: &PgPool, webhook_id: i64) -> Result<u64, StorageError> {
    let released = sqlx::query(
        "WITH fifo AS (
             SELECT EXISTS (SELECT 1 FROM webhooks WHERE id = $1 AND ordering = 'fifo') AS is
         )
         UPDATE deliveries SET next_attempt_at = now(), updated_at = now(),
             status = CASE WHEN fifo.is THEN 'queued' ELSE 'pending' END,
             collect_order = CASE WHEN fifo.is THEN collect_order END
         FROM fifo
         WHERE webhook_id = $1 AND status = 'collecting'
           AND NOT EXISTS (SELECT 1 FROM webhooks
                           WHERE id = $1 AND batch_max_events IS NOT NULL)",
    )
    .bind(webhook_id)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(released)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(bytes: i32) -> Candidate {
        Candidate {
            id: Uuid::nil(),
            event_id: Uuid::nil(),
            overdue: false,
            bytes,
        }
    }

    #[test]
    fn a_batch_takes_what_fits_and_never_less_than_one_event() {
        let small: Vec<_> = (0..10).map(|_| candidate(99)).collect();
        assert_eq!(fitting(&small, 10_000), 10);
        assert_eq!(
            fitting(&small, 100 + 5 * 100),
            5,
            "five of 99 bytes + comma"
        );
        assert_eq!(fitting(&small, 100 + 5 * 100 - 1), 4);
        let huge = [candidate(50_000), candidate(10)];
        assert_eq!(fitting(&huge, 1_000), 1, "alone, but sent");
        assert_eq!(fitting(&[], 1_000), 0);
    }

    #[test]
    fn a_webhook_is_due_when_full_or_old_enough_or_no_longer_batching() {
        let c = Collected {
            webhook_id: 1,
            waiting: 5,
            oldest_waited_ms: 100,
            batch_max_events: Some(10),
            batch_max_wait_ms: 1000,
        };
        assert!(!c.due());
        assert_eq!(c.due_in(), Duration::from_millis(900));
        assert!(Collected {
            waiting: 10,
            ..c.clone()
        }
        .due());
        let old = Collected {
            oldest_waited_ms: 1000,
            ..c.clone()
        };
        assert!(old.due());
        assert_eq!(old.due_in(), Duration::ZERO);
        assert!(Collected {
            batch_max_events: None,
            ..c
        }
        .due());
    }
}
