//! The circuit breakers' storage (docs/ARCHITECTURE.md, "Circuit breaker";
//! the rules are `webhookd_events::breaker`).
//!
//! A breaker's count moves in the statement that records attempts (the
//! webhook row is written there anyway when an attempt fails, and never for
//! a success of a healthy webhook); what follows a transition (parking or
//! unparking the backlog) runs in the same transaction, right after
//! ([`settle`]). The scheduler claims probes in `probes.rs`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use webhookd_events::{BreakerPolicy, BreakerState};

use crate::notify::DUE_CHANNEL;
use crate::StorageError;

/// A webhook's breaker as its row reads (`webhooks.breaker_*`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Breaker {
    #[sqlx(rename = "breaker_failures")]
    pub failures: i32,
    #[sqlx(rename = "breaker_opened_at")]
    pub opened_at: Option<DateTime<Utc>>,
    #[sqlx(rename = "breaker_next_probe_at")]
    pub next_probe_at: Option<DateTime<Utc>>,
    /// A probe is being attempted.
    #[sqlx(rename = "breaker_probing")]
    pub probing: bool,
}

impl Breaker {
    /// `closed`, `open` or `half_open` (the API's `breaker.state`).
    pub fn state(&self) -> &'static str {
        BreakerState::name_of(self.opened_at.is_some(), self.probing)
    }
}

/// A breaker that opened or closed in a recorder's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerTransition {
    pub webhook_id: i64,
    /// `open` (also after a failed probe) or `closed`.
    pub to: &'static str,
}

/// The breaker's part of the `UPDATE webhooks w ... FROM ... s` that records
/// attempts' streaks: `SET` assignments and the condition under which the
/// row must be written. `s` has `any_ok`, `fails` (failures after the last
/// success of the batch), `probe_ok`, `probe_failed`; `$threshold`,
/// `$cooldown` (ms) and `$max` (ms) are [`BreakerPolicy`]'s numbers
/// ([`policy_numbers`]). Mirrors `BreakerPolicy::after`.
pub(crate) fn streak_sql(threshold: usize, cooldown: usize, max: usize) -> (String, String) {
    // Each parameter cast: the fan-out prepares this statement without
    // parameter types (`fanout::prepare_statements`).
    let (threshold, cooldown, max) = (
        format!("${threshold}::int4"),
        format!("${cooldown}::int8"),
        format!("${max}::int8"),
    );
    let open = "w.breaker_opened_at IS NOT NULL";
    let counted = "CASE WHEN s.any_ok THEN s.fails ELSE w.breaker_failures + s.fails END";
    let opens = format!("(NOT {open} AND {threshold} > 0 AND {counted} >= {threshold})");
    let closes = format!("({open} AND s.probe_ok)");
    let reopens = format!("({open} AND s.probe_failed AND NOT s.probe_ok)");
    let doubled = format!(
        "GREATEST(LEAST(COALESCE(w.breaker_cooldown_ms, {cooldown})::int8 * 2, {max}), {cooldown})"
    );
    let set = format!(
        "breaker_failures = CASE WHEN NOT {open} OR s.probe_ok THEN {counted}
                                 ELSE w.breaker_failures + s.fails END,
         breaker_opened_at = CASE WHEN {closes} THEN NULL WHEN {opens} THEN now()
                                  ELSE w.breaker_opened_at END,
         breaker_cooldown_ms = CASE WHEN {closes} THEN NULL WHEN {opens} THEN ({cooldown})::int4
                                    WHEN {reopens} THEN ({doubled})::int4
                                    ELSE w.breaker_cooldown_ms END,
         breaker_next_probe_at = CASE
             WHEN {closes} THEN now() + make_interval(secs => {CLOSED_SWEEP_SECS})
             WHEN {opens} THEN now() + make_interval(secs => {cooldown} / 1000.0)
             WHEN {reopens} THEN now() + make_interval(secs => ({doubled}) / 1000.0)
             ELSE w.breaker_next_probe_at END,
         breaker_probe_id = CASE WHEN {closes} OR {reopens} THEN NULL
                                 ELSE w.breaker_probe_id END"
    );
    // A success of a healthy webhook (nothing counted) writes nothing.
    let changes = format!(
        "s.fails > 0 OR s.probe_ok OR s.probe_failed
         OR (s.any_ok AND w.breaker_failures > 0 AND NOT {open})"
    );
    (set, changes)
}

/// A closed breaker's last look, this long after it closed: a fan-out that
/// read the breaker open just before it closed commits its rows parked
/// after the close has unparked the backlog, and the scheduler unparks them
/// then (`probes::claim_probes`). Its statement takes milliseconds; the
/// margin is generous.
const CLOSED_SWEEP_SECS: u32 = 10;

/// The numbers [`streak_sql`] binds: threshold, first cooldown and maximum
/// cooldown in milliseconds.
pub(crate) fn policy_numbers(policy: &BreakerPolicy) -> (i32, i64, i64) {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    (
        i32::try_from(policy.failures).unwrap_or(i32::MAX),
        // Stored as int4: about 24 days at most, far above any sane cooldown.
        ms(policy.first_cooldown()).min(i64::from(i32::MAX)),
        ms(policy.max_cooldown).min(i64::from(i32::MAX)),
    )
}

/// After the streaks of a batch were written (in `tx`): parks the pending
/// deliveries of the breakers now open among `failing` (the webhooks whose
/// last attempt failed), and unparks the backlog of those among `probed_ok`
/// (a probe succeeded) now closed, waking every scheduler. Returns the
/// transitions this transaction made. `reopened`: webhooks whose probe
/// failed.
pub(crate) async fn settle(
    tx: &mut PgConnection,
    failing: &[i64],
    reopened: &[i64],
    probed_ok: &[i64],
) -> Result<Vec<BreakerTransition>, StorageError> {
    let mut transitions = Vec::new();
    if !failing.is_empty() {
        // `now()` is the transaction's start: a breaker opened by this
        // transaction's streaks carries exactly it.
        let opened: Vec<i64> = sqlx::query_scalar(
            "WITH parked AS (
                 UPDATE deliveries d SET parked = TRUE, updated_at = now()
                 FROM webhooks w
                 WHERE w.id = ANY($1) AND w.breaker_opened_at IS NOT NULL
                   AND d.webhook_id = w.id AND d.status = 'pending' AND NOT d.parked
             )
             SELECT id FROM webhooks
             WHERE id = ANY($1) AND breaker_opened_at IS NOT NULL
               AND (breaker_opened_at = now() OR id = ANY($2))",
        )
        .bind(failing)
        .bind(reopened)
        .fetch_all(&mut *tx)
        .await?;
        transitions.extend(opened.into_iter().map(|webhook_id| BreakerTransition {
            webhook_id,
            to: "open",
        }));
    }
    if !probed_ok.is_empty() {
        let closed: Vec<i64> = sqlx::query_scalar(
            "WITH unparked AS (
                 UPDATE deliveries d SET parked = FALSE, updated_at = now()
                 FROM webhooks w
                 WHERE w.id = ANY($1) AND w.breaker_opened_at IS NULL
                   AND d.webhook_id = w.id AND d.status = 'pending' AND d.parked
             )
             SELECT id FROM webhooks WHERE id = ANY($1) AND breaker_opened_at IS NULL",
        )
        .bind(probed_ok)
        .fetch_all(&mut *tx)
        .await?;
        if !closed.is_empty() {
            // Sent on commit: every scheduler sees the backlog due.
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(DUE_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        transitions.extend(closed.into_iter().map(|webhook_id| BreakerTransition {
            webhook_id,
            to: "closed",
        }));
    }
    Ok(transitions)
}

/// How many webhooks have their breaker open (or half open), for the
/// `webhookd_breakers_open` gauge; cheap through `webhooks_breaker_probe`.
pub async fn count_open(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM webhooks
         WHERE breaker_next_probe_at IS NOT NULL AND breaker_opened_at IS NOT NULL",
    )
    .fetch_one(pool)
    .await
}
