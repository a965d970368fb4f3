//! Delivery state: fan-out rows, claiming due work, recording attempts.
//!
//! Every statement here works on batches (`UNNEST` of arrays) so that the cost
//! per delivery is a fraction of a round trip.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use super::StorageError;

/// An accepted broker event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub event: &'static str,
    pub user_id: Option<i64>,
    /// The envelope exactly as delivered.
    pub body: String,
    /// Every subscription pattern that matches `event`.
    pub patterns: [String; 3],
}

/// A delivery this worker now owns (its lease is running) and should attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The envelope; absent for fresh fan-out rows, whose body the caller has.
    pub body: Option<String>,
    pub webhook_id: i64,
    pub url: String,
    pub secret: String,
    /// The rotated-out secret while its grace period runs.
    pub previous_secret: Option<String>,
    pub headers: Json<serde_json::Value>,
    pub template: Option<String>,
    pub timeout_ms: Option<i32>,
    pub is_active: bool,
}

/// The end state of one attempt, as written back.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: Uuid,
    pub webhook_id: i64,
    pub event: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub response_time_ms: i32,
    pub is_success: bool,
    /// The body sent, shared with the request (and, without a template,
    /// with the event's other deliveries).
    pub payload: std::sync::Arc<str>,
    pub response: Option<String>,
    pub error_message: Option<String>,
    pub next: NextStep,
    /// The receiver answered 410 Gone: the webhook is switched off.
    pub disable_webhook: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Succeeded,
    RetryIn(Duration),
    Failed,
}

impl NextStep {
    fn status(self) -> &'static str {
        match self {
            NextStep::Succeeded => "succeeded",
            NextStep::RetryIn(_) => "pending",
            NextStep::Failed => "failed",
        }
    }
}

/// Lease lengths are computed in SQL from each webhook's own timeout.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    pub default_timeout_ms: i64,
    pub margin_ms: i64,
}

const TARGET_COLUMNS: &str = "w.id AS webhook_id, w.url, w.secret,
    CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret,
    w.headers, w.template, w.timeout_ms, w.is_active";

/// Records events and one delivery row per matching active webhook in one
/// transaction, and returns the new deliveries, already leased to the caller.
/// Rows that already existed (a redelivered message) are not returned: their
/// first owner's lease, or the scheduler, covers them.
pub async fn record_fanout(
    conn: &mut PgConnection,
    events: &[NewEvent],
    lease: Lease,
) -> Result<Vec<ClaimedDelivery>, StorageError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
    let names: Vec<&str> = events.iter().map(|e| e.event).collect();
    let users: Vec<Option<i64>> = events.iter().map(|e| e.user_id).collect();
    let bodies: Vec<&str> = events.iter().map(|e| e.body.as_str()).collect();
    let patterns: Vec<String> = events.iter().map(|e| e.patterns.join(" ")).collect();

    // One statement, hence one round trip and atomic without BEGIN/COMMIT.
    // The foreign key from deliveries to events is checked at the end of the
    // statement, when the events CTE's rows exist. Each subscribed webhook is
    // locked once (FOR KEY SHARE) in place of a per-row foreign key check: a
    // concurrent delete of the webhook then cannot leave rows behind
    // (migration 0005).
    // Privacy rule: an event with a user_id goes to that user's webhooks and
    // to admins'; one without goes to every subscriber.
    let sql = format!(
        "WITH ev AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::text[])
                 AS ev(id, event, user_id, body, patterns)
         ), subscribed AS (
             SELECT w.id, w.events, w.user_id, w.timeout_ms FROM webhooks w
             WHERE w.is_active
               AND w.events && (SELECT array_agg(DISTINCT p)
                                FROM ev, unnest(string_to_array(ev.patterns, ' ')) AS p)
             FOR KEY SHARE
         ), new_events AS (
             INSERT INTO events (id, event, user_id, body)
             SELECT id, event, user_id, body FROM ev
             ON CONFLICT (id) DO NOTHING
         ), inserted AS (
             INSERT INTO deliveries (id, event_id, webhook_id, next_attempt_at)
             SELECT webhookd_uuid_v7(), ev.id, w.id,
                    now() + make_interval(secs => (COALESCE(w.timeout_ms, $6) + $7) / 1000.0)
             FROM ev
             JOIN subscribed w ON w.events && string_to_array(ev.patterns, ' ')
             JOIN users u ON u.id = w.user_id
             WHERE ev.user_id IS NULL OR w.user_id = ev.user_id OR u.is_admin
             ON CONFLICT (event_id, webhook_id) DO NOTHING
             RETURNING id, event_id, webhook_id
         )
         SELECT i.id AS delivery_id, i.event_id, ev.event, 0 AS attempts, NULL::text AS body,
                {TARGET_COLUMNS}
         FROM inserted i
         JOIN ev ON ev.id = i.event_id
         JOIN webhooks w ON w.id = i.webhook_id"
    );
    let rows = sqlx::query_as::<_, ClaimedDelivery>(&sql)
        .bind(&ids)
        .bind(&names)
        .bind(&users)
        .bind(&bodies)
        .bind(&patterns)
        .bind(lease.default_timeout_ms)
        .bind(lease.margin_ms)
        .fetch_all(conn)
        .await?;
    Ok(rows)
}

/// Claims up to `limit` due deliveries (retries, and deliveries whose owner's
/// lease ran out) with `FOR UPDATE SKIP LOCKED`, so replicas never claim the
/// same row at once.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: Lease,
) -> Result<Vec<ClaimedDelivery>, StorageError> {
    let sql = format!(
        "WITH due AS (
             SELECT id FROM deliveries
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE deliveries d
             SET next_attempt_at = now() + make_interval(secs => (COALESCE(w.timeout_ms, $2) + $3) / 1000.0),
                 updated_at = now()
             FROM due, webhooks w
             WHERE d.id = due.id AND w.id = d.webhook_id
             RETURNING d.id, d.event_id, d.webhook_id, d.attempts
         )
         SELECT c.id AS delivery_id, c.event_id, e.event, c.attempts, e.body, {TARGET_COLUMNS}
         FROM claimed c
         JOIN events e ON e.id = c.event_id
         JOIN webhooks w ON w.id = c.webhook_id"
    );
    let rows = sqlx::query_as::<_, ClaimedDelivery>(&sql)
        .bind(limit)
        .bind(lease.default_timeout_ms)
        .bind(lease.margin_ms)
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

/// When the earliest pending delivery falls due, if any: lets the scheduler
/// sleep exactly until then instead of polling blindly. `None` when nothing
/// is pending (SQL's GREATEST skips NULLs, so the clamp to zero is done here:
/// done in SQL it turned "nothing pending" into "due now" and the idle
/// scheduler spun).
pub async fn next_due_in(pool: &PgPool) -> Result<Option<Duration>, StorageError> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (MIN(next_attempt_at) - now()))::float8
         FROM deliveries WHERE status = 'pending'",
    )
    .fetch_one(pool)
    .await?;
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// A webhook the recorder has just switched off, and why.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DisabledWebhook {
    pub webhook_id: i64,
    pub reason: String,
}

/// Writes a batch of attempts in one transaction: the `webhook_logs` rows,
/// each delivery's new state, and each webhook's failing streak. Switches off
/// the webhooks that answered 410 Gone and, when `disable_after` is set, those
/// that have failed every attempt for longer than it; returns them (each
/// once: only a switch from active counts).
pub async fn record_attempts(
    conn: &mut PgConnection,
    records: &[AttemptRecord],
    disable_after: Option<Duration>,
) -> Result<Vec<DisabledWebhook>, StorageError> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let n = records.len();
    let mut delivery_ids = Vec::with_capacity(n);
    let mut webhook_ids = Vec::with_capacity(n);
    let mut events = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut codes = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut successes = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut responses = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut delays_ms = Vec::with_capacity(n);
    for r in records {
        delivery_ids.push(r.delivery_id);
        webhook_ids.push(r.webhook_id);
        events.push(r.event.as_str());
        attempts.push(r.attempt);
        codes.push(r.status_code);
        times.push(r.response_time_ms);
        successes.push(r.is_success);
        payloads.push(&*r.payload);
        responses.push(r.response.as_deref());
        errors.push(r.error_message.as_deref());
        statuses.push(r.next.status());
        delays_ms.push(match r.next {
            NextStep::RetryIn(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            NextStep::Succeeded | NextStep::Failed => 0,
        });
    }
    let streaks = FailingStreaks::of(records);
    let gone: Vec<i64> = records
        .iter()
        .filter(|r| r.disable_webhook)
        .map(|r| r.webhook_id)
        .collect();
    let failing = streaks.failing();
    // A batch of successes (the usual case) is one statement, hence one
    // round trip, atomic without BEGIN/COMMIT. Switching webhooks off reads
    // the streaks that statement writes, so it needs a transaction.
    let switch_off = !gone.is_empty() || (disable_after.is_some() && !failing.is_empty());
    // `d.status = 'pending'` keeps a late duplicate attempt (a worker whose
    // lease ran out) from overwriting an outcome already recorded.
    let outcomes = sqlx::query(
        "WITH o AS (
             SELECT * FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::int4[], $5::int4[],
                 $6::int4[], $7::bool[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int8[])
                 AS o(delivery_id, webhook_id, event, attempt, code, time_ms, ok, payload,
                      response, error, status, delay_ms)
         ), logs AS (
             INSERT INTO webhook_logs (delivery_id, webhook_id, event, attempt, status_code,
                 response_time_ms, is_success, payload, response, error_message)
             SELECT delivery_id, webhook_id, event, attempt, code, time_ms, ok, payload,
                    response, error
             FROM o
         ), outcomes AS (
             UPDATE deliveries d
             SET status = o.status, attempts = GREATEST(d.attempts, o.attempt),
                 next_attempt_at = CASE WHEN o.status = 'pending'
                     THEN now() + make_interval(secs => o.delay_ms / 1000.0)
                     ELSE d.next_attempt_at END,
                 last_status_code = o.code, last_error = o.error, updated_at = now()
             FROM o
             WHERE d.id = o.delivery_id AND d.status = 'pending'
         )
         -- A success ends a failing streak; a failure starts one unless one
         -- is running (a failure after a success in the same batch starts it
         -- afresh). Rows are written only when the value changes, so a
         -- healthy webhook costs no write here.
         UPDATE webhooks w
         SET failing_since = CASE WHEN s.last_ok THEN NULL
                                  WHEN s.any_ok THEN now()
                                  ELSE COALESCE(w.failing_since, now()) END
         FROM UNNEST($13::int8[], $14::bool[], $15::bool[]) AS s(id, any_ok, last_ok)
         WHERE w.id = s.id
           AND CASE WHEN s.last_ok THEN w.failing_since IS NOT NULL
                    WHEN s.any_ok THEN TRUE
                    ELSE w.failing_since IS NULL END",
    )
    .bind(&delivery_ids)
    .bind(&webhook_ids)
    .bind(&events)
    .bind(&attempts)
    .bind(&codes)
    .bind(&times)
    .bind(&successes)
    .bind(&payloads)
    .bind(&responses)
    .bind(&errors)
    .bind(&statuses)
    .bind(&delays_ms)
    .bind(&streaks.ids)
    .bind(&streaks.any_ok)
    .bind(&streaks.last_ok);
    if !switch_off {
        outcomes.execute(&mut *conn).await?;
        return Ok(Vec::new());
    }
    let mut tx = conn.begin().await?;
    outcomes.execute(&mut *tx).await?;
    let mut disabled = Vec::new();
    if !gone.is_empty() {
        let rows = sqlx::query_as::<_, DisabledWebhook>(
            "UPDATE webhooks SET is_active = FALSE, failing_since = NULL,
                 disabled_reason = 'the receiver answered 410 Gone', updated_at = now()
             WHERE id = ANY($1) AND is_active
             RETURNING id AS webhook_id, disabled_reason AS reason",
        )
        .bind(&gone)
        .fetch_all(&mut *tx)
        .await?;
        disabled.extend(rows);
    }
    if let Some(period) = disable_after {
        disabled.extend(disable_failing(&mut tx, &failing, period).await?);
    }
    tx.commit().await?;
    Ok(disabled)
}

/// Per webhook in a batch: did any attempt succeed, and did the last one?
/// Keyed in id order so concurrent recorders lock webhook rows in one order.
struct FailingStreaks {
    ids: Vec<i64>,
    any_ok: Vec<bool>,
    last_ok: Vec<bool>,
}

impl FailingStreaks {
    fn of(records: &[AttemptRecord]) -> Self {
        let mut by_webhook: BTreeMap<i64, (bool, bool)> = BTreeMap::new();
        for r in records {
            let entry = by_webhook.entry(r.webhook_id).or_insert((false, false));
            entry.0 |= r.is_success;
            entry.1 = r.is_success;
        }
        let mut streaks = FailingStreaks {
            ids: Vec::with_capacity(by_webhook.len()),
            any_ok: Vec::with_capacity(by_webhook.len()),
            last_ok: Vec::with_capacity(by_webhook.len()),
        };
        for (id, (any_ok, last_ok)) in by_webhook {
            streaks.ids.push(id);
            streaks.any_ok.push(any_ok);
            streaks.last_ok.push(last_ok);
        }
        streaks
    }

    /// Webhooks whose latest attempt in the batch failed.
    fn failing(&self) -> Vec<i64> {
        self.ids
            .iter()
            .zip(&self.last_ok)
            .filter(|(_, ok)| !**ok)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// Switches off the active webhooks among `ids` that have failed every
/// attempt for longer than `period`. The clock counts from the later of the
/// streak's start and the webhook's last edit, so re-enabling or fixing a
/// webhook gives it a full period again. Clearing `failing_since` does the
/// same for a webhook switched back on by hand.
async fn disable_failing(
    tx: &mut sqlx::PgConnection,
    ids: &[i64],
    period: Duration,
) -> Result<Vec<DisabledWebhook>, StorageError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let secs = i64::try_from(period.as_secs()).unwrap_or(i64::MAX);
    let rows = sqlx::query_as::<_, DisabledWebhook>(
        "UPDATE webhooks
         SET is_active = FALSE, failing_since = NULL, updated_at = now(),
             disabled_reason = format(
                 'failing since %s UTC (more than %s s without a successful delivery)',
                 to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), $2)
         WHERE id = ANY($1) AND is_active AND failing_since IS NOT NULL
           AND GREATEST(failing_since, updated_at) <= now() - make_interval(secs => $2::float8)
         RETURNING id AS webhook_id, disabled_reason AS reason",
    )
    .bind(ids)
    .bind(secs)
    .fetch_all(tx)
    .await?;
    Ok(rows)
}

/// Gives claimed deliveries back to the schedule without attempting them:
/// each is due again after its delay, and no attempt is counted or logged.
/// Used when a webhook already has as many deliveries waiting in this process
/// as it may, so they wait in Postgres rather than in memory.
pub async fn hand_back(
    conn: &mut PgConnection,
    deliveries: &[(Uuid, Duration)],
) -> Result<(), StorageError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = deliveries.iter().map(|(id, _)| *id).collect();
    let delays_ms: Vec<i64> = deliveries
        .iter()
        .map(|(_, d)| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .collect();
    sqlx::query(
        "UPDATE deliveries d
         SET next_attempt_at = now() + make_interval(secs => o.delay_ms / 1000.0),
             updated_at = now()
         FROM UNNEST($1::uuid[], $2::int8[]) AS o(id, delay_ms)
         WHERE d.id = o.id AND d.status = 'pending'",
    )
    .bind(&ids)
    .bind(&delays_ms)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends deliveries that can no longer be attempted (their webhook was switched
/// off) without logging an attempt.
pub async fn fail_without_attempt(
    pool: &PgPool,
    delivery_ids: &[Uuid],
    reason: &str,
) -> Result<(), StorageError> {
    if delivery_ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = now()
         WHERE id = ANY($1) AND status = 'pending'",
    )
    .bind(delivery_ids)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}
