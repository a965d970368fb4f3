//! The open breakers' probes, as the scheduler claims them, and parking
//! what the scheduler claimed for an open breaker (docs/ARCHITECTURE.md,
//! "Circuit breaker").

use std::sync::LazyLock;

use sqlx::PgPool;
use uuid::Uuid;
use webhookd_events::delivery::{ClaimedDelivery, Lease};

use crate::deliveries::{lease_and_read_sql, ClaimedRow};
use crate::StorageError;

static CLAIM_PROBES_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        // One statement, one round trip per scheduler pass: `off` and `due`
        // never take the same webhook (closed or switched off, against open
        // and active), so their updates never meet.
        "WITH off AS (
             UPDATE webhooks
             SET breaker_failures = CASE WHEN is_active THEN breaker_failures ELSE 0 END,
                 breaker_opened_at = NULL, breaker_next_probe_at = NULL,
                 breaker_cooldown_ms = NULL, breaker_probe_id = NULL
             WHERE breaker_next_probe_at <= now()
               AND (NOT is_active OR breaker_opened_at IS NULL)
             RETURNING id
         ), released AS (
             UPDATE deliveries d SET parked = FALSE, next_attempt_at = now(), updated_at = now()
             FROM off WHERE d.webhook_id = off.id AND d.status = 'pending' AND d.parked
         ), due AS (
             SELECT id FROM webhooks
             WHERE breaker_next_probe_at <= now() AND breaker_opened_at IS NOT NULL AND is_active
             ORDER BY breaker_next_probe_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         ), pick AS (
             SELECT p.id, due.id AS webhook_id FROM due
             CROSS JOIN LATERAL (
                 SELECT d.id FROM deliveries d
                 WHERE d.webhook_id = due.id AND d.status = 'pending' AND d.parked
                 ORDER BY d.next_attempt_at
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED
             ) p
         ), advanced AS (
             UPDATE webhooks w
             SET breaker_next_probe_at = now() + make_interval(secs =>
                     (COALESCE(w.timeout_ms, $2) + $3 + COALESCE(w.breaker_cooldown_ms, 0)) / 1000.0),
                 breaker_probe_id = pick.id
             FROM due LEFT JOIN pick ON pick.webhook_id = due.id
             WHERE w.id = due.id
         ){}",
        lease_and_read_sql("pick", ", TRUE AS probe")
    )
});

/// Claims one parked delivery as the probe of each open breaker whose
/// cooldown is over (at most `limit` breakers). `FOR UPDATE SKIP LOCKED` on
/// the webhook row: one replica probes a webhook at a time. The next probe
/// time moves past the probe's lease at once, so a probe lost with its
/// worker is followed by another, and a second one never runs beside it.
/// A switched-off webhook's breaker is closed instead, its backlog unparked
/// so the scheduler ends it as it ends any switched-off webhook's; a breaker
/// closed a few seconds ago gets the same last look, which unparks rows a
/// concurrent fan-out wrote parked just as it closed.
pub async fn claim_probes(
    pool: &PgPool,
    limit: i64,
    lease: Lease,
) -> Result<Vec<ClaimedDelivery>, StorageError> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as::<_, ClaimedRow>(&CLAIM_PROBES_SQL)
        .bind(limit)
        .bind(lease.default_timeout_ms)
        .bind(lease.margin_ms)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(ClaimedDelivery::from).collect())
}

/// Parks claimed deliveries that are not to be attempted: their webhook's
/// breaker opened after they were written unparked. A breaker closed
/// meanwhile leaves them as they are (their lease makes them due again).
pub async fn park_deliveries(pool: &PgPool, ids: &[Uuid]) -> Result<(), StorageError> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deliveries d SET parked = TRUE, next_attempt_at = now(), updated_at = now()
         FROM webhooks w
         WHERE d.id = ANY($1) AND d.status = 'pending' AND w.id = d.webhook_id
           AND w.breaker_opened_at IS NOT NULL",
    )
    .bind(ids)
    .execute(pool)
    .await?;
    Ok(())
}
