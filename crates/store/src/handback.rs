//! The leases of claimed deliveries, while a worker holds them and when it
//! lets go: a live worker keeps renewing the leases of what it holds, so only
//! a dead worker's deliveries expire; a worker that stops before it has
//! finished gives them back instead of letting their leases run out, so
//! another worker attempts them at once.

use sqlx::PgPool;
use uuid::Uuid;

use crate::notify::DUE_CHANNEL;
use crate::StorageError;
use webhookd_events::delivery::Lease;

/// Extends the leases of deliveries this worker still holds, given with the
/// attempts they had when claimed, to a full lease from now. A delivery whose
/// next attempt has been recorded meanwhile (its retry is scheduled) is left
/// alone, and a later `next_attempt_at` is never shortened. Returns how many
/// were renewed.
pub async fn renew_leases(
    pool: &PgPool,
    deliveries: &[(Uuid, i32)],
    lease: Lease,
) -> Result<u64, StorageError> {
    if deliveries.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = deliveries.iter().map(|(id, _)| *id).collect();
    let attempts: Vec<i32> = deliveries.iter().map(|(_, n)| *n).collect();
    // SKIP LOCKED: a row locked right now is having its outcome written
    // (which ends or reschedules the lease anyway). Waiting for it instead
    // deadlocked with the recorder, both locking many rows in no common order.
    let renewed = sqlx::query(
        "WITH renew AS (
             SELECT d.id FROM deliveries d
             JOIN UNNEST($1::uuid[], $2::int4[]) AS h(id, attempts)
               ON d.id = h.id AND d.attempts = h.attempts
             WHERE d.status = 'pending'
             FOR UPDATE OF d SKIP LOCKED
         )
         UPDATE deliveries d
         SET next_attempt_at = GREATEST(d.next_attempt_at,
             now() + make_interval(secs => (COALESCE(w.timeout_ms, $3) + $4) / 1000.0))
         FROM renew, webhooks w
         WHERE d.id = renew.id AND w.id = d.webhook_id",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(lease.default_timeout_ms)
    .bind(lease.margin_ms)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(renewed)
}

/// Makes the deliveries due now, counting and logging no attempt, and wakes
/// every worker's scheduler (`NOTIFY webhookd_due`). A delivery that is no
/// longer pending (its outcome was recorded meanwhile) is left alone. Returns
/// how many were released.
pub async fn release_deliveries(pool: &PgPool, delivery_ids: &[Uuid]) -> Result<u64, StorageError> {
    if delivery_ids.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let released = sqlx::query(
        "UPDATE deliveries SET next_attempt_at = now(), updated_at = now()
         WHERE id = ANY($1) AND status = 'pending'",
    )
    .bind(delivery_ids)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if released > 0 {
        // Sent on commit, so a woken scheduler sees the rows due.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(DUE_CHANNEL)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(released)
}
