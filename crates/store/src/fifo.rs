//! FIFO webhooks (SPEC §13): one delivery at a time, in consumption order.
//!
//! The fan-out writes a FIFO webhook's deliveries `queued`. [`advance_queues`]
//! lets a webhook's oldest queued row go (pending, due now, for the
//! scheduler) once the one it let go before, `webhooks.fifo_head`, is no
//! longer pending: it succeeded or failed for good. Retries, leases, a
//! `kill -9` and a hand-back all keep the head pending, so they keep the
//! rest waiting. Every worker runs it; the update of `fifo_head` from the
//! value the statement read is a compare-and-set, so two workers at once
//! let one row go, never two.

use sqlx::PgPool;

use crate::StorageError;

// A loose index scan finds the webhooks with a queue (one index probe per
// webhook, however long its queue), so a blocked head with a long queue
// behind it costs little per pass. A webhook that no longer orders, or is
// switched off, has its whole queue let go: it has no order left to keep
// (and an inactive webhook's deliveries end unattempted when claimed).
const ADVANCE_SQL: &str = "
    WITH RECURSIVE queues AS (
        (SELECT webhook_id FROM deliveries WHERE status = 'queued'
         ORDER BY webhook_id LIMIT 1)
        UNION ALL
        SELECT (SELECT d.webhook_id FROM deliveries d
                WHERE d.status = 'queued' AND d.webhook_id > q.webhook_id
                ORDER BY d.webhook_id LIMIT 1)
        FROM queues q WHERE q.webhook_id IS NOT NULL
    ), free AS (
        SELECT w.id, w.fifo_head, w.ordering = 'fifo' AND w.is_active AS ordered
        FROM queues q JOIN webhooks w ON w.id = q.webhook_id
        WHERE w.ordering <> 'fifo' OR NOT w.is_active OR w.fifo_head IS NULL
           OR NOT EXISTS (SELECT 1 FROM deliveries h
                          WHERE h.id = w.fifo_head AND h.status = 'pending')
    ), heads AS (
        SELECT f.id AS webhook_id, f.fifo_head AS old_head, n.id AS next_head
        FROM free f
        CROSS JOIN LATERAL (SELECT d.id FROM deliveries d
                            WHERE d.webhook_id = f.id AND d.status = 'queued'
                            ORDER BY d.created_at, d.collect_order LIMIT 1) n
        WHERE f.ordered
    ), moved AS (
        UPDATE webhooks w SET fifo_head = h.next_head
        FROM heads h
        WHERE w.id = h.webhook_id AND w.fifo_head IS NOT DISTINCT FROM h.old_head
        RETURNING w.fifo_head
    ), let_go AS (
        UPDATE deliveries d SET status = 'pending', next_attempt_at = now(), updated_at = now()
        FROM moved m
        WHERE d.id = m.fifo_head AND d.status = 'queued'
        RETURNING d.id
    ), released AS (
        UPDATE deliveries d SET status = 'pending', next_attempt_at = now(), updated_at = now()
        FROM free f
        WHERE NOT f.ordered AND d.webhook_id = f.id AND d.status = 'queued'
        RETURNING d.id
    )
    SELECT (SELECT count(*) FROM let_go) AS let_go, (SELECT count(*) FROM released) AS released";

/// What one [`advance_queues`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Advanced {
    /// Heads let go: one per FIFO webhook whose previous head had ended.
    pub let_go: i64,
    /// Rows let go all at once: their webhook no longer orders, or is off.
    pub released: i64,
}

impl Advanced {
    /// Something became due for the scheduler.
    pub fn any(self) -> bool {
        self.let_go > 0 || self.released > 0
    }
}

/// Lets each FIFO webhook's next delivery go once its head has ended, and
/// the whole queue of a webhook that no longer orders or is switched off.
/// One statement, so it is atomic without a transaction.
pub async fn advance_queues(pool: &PgPool) -> Result<Advanced, StorageError> {
    let advanced = sqlx::query_as::<_, Advanced>(ADVANCE_SQL)
        .fetch_one(pool)
        .await?;
    Ok(advanced)
}
