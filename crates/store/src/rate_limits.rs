//! Rate-limit budgets shared by every worker replica (SPEC §14): one row per
//! limited webhook holding a virtual schedule (GCRA). A replica reserves send
//! slots for the deliveries it holds in one statement on the row's lock, so
//! the replicas together never plan more than the limit, and the times come
//! back as offsets from the database clock (workers' clocks may disagree).

use std::time::Duration;

use sqlx::PgPool;

use crate::StorageError;

/// What one reservation got: `granted` slots `1 / limit` apart from
/// `first_slot`, and for the rest (`requested - granted`, beyond the
/// horizon) times `1 / limit` apart from `first_deferred` at which to try
/// again. Offsets are from the database's `now()` when the statement ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reservation {
    pub limit: i32,
    pub requested: i32,
    pub granted: i32,
    pub first_slot_s: f64,
    pub first_deferred_s: f64,
}

impl Reservation {
    /// Offsets of the granted send slots, earliest first.
    pub fn slots(&self) -> impl Iterator<Item = Duration> + '_ {
        (0..self.granted.max(0)).map(|i| offset(self.first_slot_s, i, self.limit))
    }

    /// Offsets at which the deliveries without a slot are due again,
    /// earliest first: paced at the limit, so they do not all return at once.
    pub fn deferrals(&self) -> impl Iterator<Item = Duration> + '_ {
        let deferred = self.requested.saturating_sub(self.granted.max(0)).max(0);
        (0..deferred).map(|j| offset(self.first_deferred_s, j, self.limit))
    }
}

/// `start + i / limit` seconds, clamped at zero (a slot in the past is now);
/// a limit below 1 (refused by the column's CHECK) reads as 1.
fn offset(start_s: f64, i: i32, limit: i32) -> Duration {
    let secs = start_s + f64::from(i) / f64::from(limit.max(1));
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::ZERO)
}

#[derive(sqlx::FromRow)]
struct ReservedRow {
    granted: i32,
    first_slot_s: f64,
    first_deferred_s: f64,
}

// The budget row is locked first (`FOR UPDATE` reads its latest version), so
// the plan is computed from what the last reservation left, whichever replica
// made it; a slot is granted only up to `max_ahead` past now, so replicas do
// not reserve, and then waste, time far ahead.
const RESERVE_SQL: &str = "WITH budget AS (
         SELECT webhook_id, GREATEST(next_free, now()) AS base, deferred_until
         FROM webhook_rate_budgets WHERE webhook_id = $1
         FOR UPDATE
     ), plan AS (
         SELECT webhook_id, base, deferred_until,
                LEAST($3, GREATEST(0,
                    FLOOR((EXTRACT(EPOCH FROM (now() - base)) + $4 / 1000.0) * $2)::int4 + 1))
                    AS granted
         FROM budget
     ), reserved AS (
         UPDATE webhook_rate_budgets b
         SET next_free = p.base + make_interval(secs => p.granted::float8 / $2),
             deferred_until = CASE WHEN p.granted < $3
                 THEN GREATEST(p.deferred_until, p.base + make_interval(secs => p.granted::float8 / $2))
                      + make_interval(secs => ($3 - p.granted)::float8 / $2)
                 ELSE p.deferred_until END
         FROM plan p
         WHERE b.webhook_id = p.webhook_id
     )
     SELECT granted,
            EXTRACT(EPOCH FROM (base - now()))::float8 AS first_slot_s,
            EXTRACT(EPOCH FROM (GREATEST(deferred_until,
                base + make_interval(secs => granted::float8 / $2)) - now()))::float8
                AS first_deferred_s
     FROM plan";

/// Reserves `n` send slots of `webhook_id` at `limit` requests per second:
/// those within `max_ahead` of now are granted, the rest deferred (see
/// [`Reservation`]). The webhook's budget row is created on first use.
pub async fn reserve_send_slots(
    pool: &PgPool,
    webhook_id: i64,
    limit: i32,
    n: i32,
    max_ahead: Duration,
) -> Result<Reservation, StorageError> {
    let limit = limit.max(1);
    let n = n.max(1);
    let max_ahead_ms = i64::try_from(max_ahead.as_millis()).unwrap_or(i64::MAX);
    // Only a webhook's first reservation finds no row: inserting it in the
    // same statement would not be visible to the locking read.
    for _ in 0..2 {
        let row = sqlx::query_as::<_, ReservedRow>(RESERVE_SQL)
            .bind(webhook_id)
            .bind(limit)
            .bind(n)
            .bind(max_ahead_ms)
            .fetch_optional(pool)
            .await?;
        if let Some(row) = row {
            return Ok(Reservation {
                limit,
                requested: n,
                granted: row.granted,
                first_slot_s: row.first_slot_s,
                first_deferred_s: row.first_deferred_s,
            });
        }
        sqlx::query(
            "INSERT INTO webhook_rate_budgets (webhook_id, next_free) VALUES ($1, now())
             ON CONFLICT (webhook_id) DO NOTHING",
        )
        .bind(webhook_id)
        .execute(pool)
        .await?;
    }
    Err(StorageError::Conflict(format!(
        "the rate budget of webhook {webhook_id} vanished while reserving"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(granted: i32, requested: i32) -> Reservation {
        Reservation {
            limit: 50,
            requested,
            granted,
            first_slot_s: 0.5,
            first_deferred_s: 1.1,
        }
    }

    #[test]
    fn granted_slots_are_one_over_the_limit_apart_from_the_first() {
        let slots: Vec<Duration> = reservation(3, 3).slots().collect();
        let ms: Vec<u128> = slots.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 520, 540]);
        assert_eq!(reservation(3, 3).deferrals().count(), 0);
    }

    #[test]
    fn the_slots_not_granted_are_deferred_at_the_same_pace() {
        let r = reservation(1, 4);
        assert_eq!(r.slots().count(), 1);
        let ms: Vec<u128> = r.deferrals().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [1100, 1120, 1140]);
    }

    #[test]
    fn a_slot_in_the_past_is_now_and_a_broken_row_grants_nothing() {
        let mut r = reservation(2, 2);
        r.first_slot_s = -0.3;
        r.limit = 0;
        let s: Vec<Duration> = r.slots().collect();
        assert_eq!(s, [Duration::ZERO, Duration::from_millis(700)]);
        r.granted = -5;
        assert_eq!(r.slots().count(), 0);
        assert_eq!(r.deferrals().count(), 2);
    }
}
