//! Delivery state: fan-out rows, claiming due work, recording attempts.
//!
//! Every statement here works on batches (`UNNEST` of arrays) so that the cost
//! per delivery is a fraction of a round trip.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;
use webhookd_events::delivery::{AttemptRecord, ClaimedDelivery, Lease};
use webhookd_events::{BreakerPolicy, RetrySchedule, StoredAuth};

use crate::breakers::{policy_numbers, settle, streak_sql, BreakerTransition};
use crate::StorageError;

/// A claimed delivery as its row reads, before it becomes the domain's
/// [`ClaimedDelivery`] (secrets wrapped, headers unwrapped).
#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedRow {
    delivery_id: Uuid,
    event_id: Uuid,
    event: String,
    attempts: i32,
    body: Option<String>,
    webhook_id: i64,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    headers: Json<serde_json::Value>,
    template: Option<String>,
    timeout_ms: Option<i32>,
    is_active: bool,
    failing: bool,
    batching: bool,
    batch_size: Option<i32>,
    retry_schedule: Option<Vec<i32>>,
    fifo: bool,
    auth: Option<Json<serde_json::Value>>,
    rate_limit_per_s: Option<i32>,
    breaker_open: bool,
    /// Only the probes' claim selects it.
    #[sqlx(default)]
    probe: bool,
}

impl From<ClaimedRow> for ClaimedDelivery {
    fn from(row: ClaimedRow) -> Self {
        ClaimedDelivery {
            delivery_id: row.delivery_id,
            event_id: row.event_id,
            event: row.event,
            attempts: row.attempts,
            body: row.body,
            webhook_id: row.webhook_id,
            url: row.url,
            secret: SecretString::from(row.secret),
            previous_secret: row.previous_secret.map(SecretString::from),
            headers: row.headers.0,
            template: row.template,
            timeout_ms: row.timeout_ms,
            is_active: row.is_active,
            failing: row.failing,
            batching: row.batching,
            batch_size: row.batch_size,
            // The column's CHECK is the schedule's rule; a row that broke it
            // anyway falls back to the global policy rather than failing.
            retry_schedule: row.retry_schedule.and_then(|delays| {
                let delays: Vec<i64> = delays.into_iter().map(i64::from).collect();
                RetrySchedule::new(&delays).ok()
            }),
            fifo: row.fifo,
            auth: row.auth.map(|a| StoredAuth::new(a.0)),
            rate_limit_per_s: row.rate_limit_per_s,
            breaker_open: row.breaker_open,
            probe: row.probe,
        }
    }
}

pub(super) const TARGET_COLUMNS: &str = "w.id AS webhook_id, w.url, w.secret,
    CASE WHEN w.previous_secret_expires_at > now() THEN w.previous_secret END AS previous_secret,
    w.headers, w.template, w.timeout_ms, w.is_active,
    (w.failing_since IS NOT NULL OR w.breaker_failures > 0) AS failing,
    w.batch_max_events IS NOT NULL AS batching, w.retry_schedule,
    w.ordering = 'fifo' AS fifo, w.auth, w.rate_limit_per_s,
    w.breaker_opened_at IS NOT NULL AS breaker_open";

// The hot statements are assembled once: formatting them per batch was about
// 10,000 instructions per event at a steady low rate (docs/PERFORMANCE.md).
static CLAIM_DUE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH due AS (
             SELECT id FROM deliveries
             WHERE status = 'pending' AND NOT parked AND next_attempt_at <= now()
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         ){}",
        lease_and_read_sql("due", "")
    )
});

/// The tail of a claiming statement whose CTEs so far end with `picked`
/// (the chosen deliveries' `id`): a CTE leasing them (`$2` the default
/// timeout, `$3` the margin, as [`Lease`]) and the statement's result,
/// [`ClaimedRow`]'s columns with `extra` appended (`", <expression> AS
/// <name>"`, or empty).
pub(super) fn lease_and_read_sql(picked: &str, extra: &str) -> String {
    format!(
        ", claimed AS (
             UPDATE deliveries d
             SET next_attempt_at = now() + make_interval(secs => (COALESCE(w.timeout_ms, $2) + $3) / 1000.0),
                 updated_at = now()
             FROM {picked}, webhooks w
             WHERE d.id = {picked}.id AND w.id = d.webhook_id
             RETURNING d.id, d.event_id, d.webhook_id, d.attempts, d.batch_size
         )
         SELECT c.id AS delivery_id, c.event_id, e.event, c.attempts, e.body, c.batch_size,
                {TARGET_COLUMNS}{extra}
         FROM claimed c
         JOIN events e ON e.id = c.event_id
         JOIN webhooks w ON w.id = c.webhook_id"
    )
}

/// Claims up to `limit` due deliveries (retries, and deliveries whose owner's
/// lease ran out) with `FOR UPDATE SKIP LOCKED`, so replicas never claim the
/// same row at once.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease: Lease,
) -> Result<Vec<ClaimedDelivery>, StorageError> {
    let rows = sqlx::query_as::<_, ClaimedRow>(&CLAIM_DUE_SQL)
        .bind(limit)
        .bind(lease.default_timeout_ms)
        .bind(lease.margin_ms)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(ClaimedDelivery::from).collect())
}

/// When the earliest pending delivery (not parked) or breaker probe falls
/// due, if any: lets the scheduler
/// sleep exactly until then instead of polling blindly. `None` when nothing
/// is pending (SQL's GREATEST skips NULLs, so the clamp to zero is done here:
/// done in SQL it turned "nothing pending" into "due now" and the idle
/// scheduler spun).
pub async fn next_due_in(pool: &PgPool) -> Result<Option<Duration>, StorageError> {
    let secs: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (LEAST(
             (SELECT MIN(next_attempt_at) FROM deliveries WHERE status = 'pending' AND NOT parked),
             (SELECT MIN(breaker_next_probe_at) FROM webhooks
              WHERE breaker_next_probe_at IS NOT NULL)) - now()))::float8",
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

/// The statement of [`record_attempts`]. `d.status = 'pending'` keeps a late
/// duplicate attempt (a worker whose lease ran out) from overwriting an
/// outcome already recorded.
static RECORD_ATTEMPTS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH {attempts}, {logs}, outcomes AS (
             UPDATE deliveries d
             SET status = o.status, attempts = GREATEST(d.attempts, o.attempt),
                 next_attempt_at = CASE WHEN o.status = 'pending'
                     THEN now() + make_interval(secs => o.delay_ms / 1000.0)
                     ELSE d.next_attempt_at END,
                 last_status_code = o.code, last_error = o.error, updated_at = now(),
                 -- Only a pending delivery waits parked: a probe that ended
                 -- leaves none behind for a later manual retry to find.
                 parked = d.parked AND o.status = 'pending'
             FROM o
             WHERE d.id = o.delivery_id AND d.status = 'pending'
         )
         {streaks}",
        attempts = attempts_cte(1),
        logs = insert_logs(""),
        streaks = update_streaks(AttemptColumns::PARAMS + 1),
    )
});

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
    let rules = Rules {
        disable_after,
        breaker: BreakerPolicy::default(),
    };
    Ok(record_attempts_under(conn, records, &rules).await?.disabled)
}

/// What recording attempts may switch: webhooks off after failing for
/// `disable_after`, and their circuit breakers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rules {
    pub disable_after: Option<Duration>,
    pub breaker: BreakerPolicy,
}

/// What a write of attempts changed beyond the deliveries.
#[derive(Debug, Default)]
pub struct Recorded {
    /// Webhooks switched off.
    pub disabled: Vec<DisabledWebhook>,
    /// Breakers opened or closed.
    pub breakers: Vec<BreakerTransition>,
}

/// [`record_attempts`] under `rules`, reporting breaker transitions too.
///
/// An attempt is never lost for want of a `webhook_logs` partition (the
/// daemon down for longer than it creates them ahead, a clock jump): the
/// day's partition is created and the write tried once more.
pub async fn record_attempts_under(
    conn: &mut PgConnection,
    records: &[AttemptRecord],
    rules: &Rules,
) -> Result<Recorded, StorageError> {
    match record_attempts_once(conn, records, rules).await {
        Err(e) if crate::partitions::is_missing_partition(&e) => {
            crate::partitions::ensure_for_now(conn).await?;
            record_attempts_once(conn, records, rules).await
        }
        result => result,
    }
}

async fn record_attempts_once(
    conn: &mut PgConnection,
    records: &[AttemptRecord],
    rules: &Rules,
) -> Result<Recorded, StorageError> {
    if records.is_empty() {
        return Ok(Recorded::default());
    }
    let columns = AttemptColumns::of(records);
    let streaks = FailingStreaks::of(records, &rules.breaker);
    let query = streaks.bind(columns.bind(sqlx::query(&RECORD_ATTEMPTS_SQL)));
    execute_then_switch_off(conn, vec![query], records, &streaks, rules).await
}

/// The columns of a batch of attempts, as arrays for `UNNEST`.
pub(super) struct AttemptColumns<'a> {
    delivery_ids: Vec<Uuid>,
    webhook_ids: Vec<i64>,
    events: Vec<&'a str>,
    attempts: Vec<i32>,
    codes: Vec<Option<i32>>,
    times: Vec<i32>,
    successes: Vec<bool>,
    payloads: Vec<&'a str>,
    responses: Vec<Option<&'a str>>,
    errors: Vec<Option<&'a str>>,
    statuses: Vec<&'static str>,
    delays_ms: Vec<i64>,
    request_headers: Vec<Option<&'a str>>,
    response_headers: Vec<Option<&'a str>>,
}

pub(super) type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl<'a> AttemptColumns<'a> {
    /// Parameters taken by [`attempts_cte`].
    pub(super) const PARAMS: usize = 14;

    pub(super) fn of<'r: 'a>(records: impl IntoIterator<Item = &'r AttemptRecord>) -> Self {
        let records = records.into_iter();
        let n = records.size_hint().0;
        let mut c = AttemptColumns {
            delivery_ids: Vec::with_capacity(n),
            webhook_ids: Vec::with_capacity(n),
            events: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            codes: Vec::with_capacity(n),
            times: Vec::with_capacity(n),
            successes: Vec::with_capacity(n),
            payloads: Vec::with_capacity(n),
            responses: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            delays_ms: Vec::with_capacity(n),
            request_headers: Vec::with_capacity(n),
            response_headers: Vec::with_capacity(n),
        };
        for r in records {
            c.delivery_ids.push(r.delivery_id);
            c.webhook_ids.push(r.webhook_id);
            c.events.push(r.event.as_str());
            c.attempts.push(r.attempt);
            c.codes.push(r.status_code);
            c.times.push(r.response_time_ms);
            c.successes.push(r.is_success);
            c.payloads.push(&*r.payload);
            c.responses.push(r.response.as_deref());
            c.errors.push(r.error_message.as_deref());
            c.statuses.push(r.next.status());
            c.delays_ms.push(r.next.delay_ms());
            c.request_headers.push(r.request_headers.as_deref());
            c.response_headers.push(r.response_headers.as_deref());
        }
        c
    }

    /// Binds the arrays in the order [`attempts_cte`] reads them.
    pub(super) fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.delivery_ids)
            .bind(&self.webhook_ids)
            .bind(&self.events)
            .bind(&self.attempts)
            .bind(&self.codes)
            .bind(&self.times)
            .bind(&self.successes)
            .bind(&self.payloads)
            .bind(&self.responses)
            .bind(&self.errors)
            .bind(&self.statuses)
            .bind(&self.delays_ms)
            .bind(&self.request_headers)
            .bind(&self.response_headers)
    }
}

/// The CTE `o`: one row per attempt, from parameters `$first` onwards
/// ([`AttemptColumns::bind`]).
pub(super) fn attempts_cte(first: usize) -> String {
    let p: Vec<String> = (first..first + AttemptColumns::PARAMS)
        .map(|n| format!("${n}"))
        .collect();
    format!(
        "o AS (
             SELECT * FROM UNNEST({}::uuid[], {}::int8[], {}::text[], {}::int4[], {}::int4[],
                 {}::int4[], {}::bool[], {}::text[], {}::text[], {}::text[], {}::text[], {}::int8[],
                 {}::text[], {}::text[])
                 AS o(delivery_id, webhook_id, event, attempt, code, time_ms, ok, payload,
                      response, error, status, delay_ms, request_headers, response_headers)
         )",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11], p[12], p[13]
    )
}

/// The CTE `logs`: a `webhook_logs` row per row of `o` (`condition`: an
/// optional `WHERE` on `o`).
pub(super) fn insert_logs(condition: &str) -> String {
    format!(
        "logs AS (
             INSERT INTO webhook_logs (delivery_id, webhook_id, event, attempt, status_code,
                 response_time_ms, is_success, payload, response, error_message,
                 request_headers, response_headers)
             SELECT delivery_id, webhook_id, event, attempt, code, time_ms, ok, payload,
                    response, error, request_headers::jsonb, response_headers::jsonb
             FROM o {condition}
         )"
    )
}

/// The statement's last part: the webhooks' failing streaks and breaker
/// counts, from the parameters of [`FailingStreaks::bind`] at `$first`
/// onwards.
pub(super) fn update_streaks(first: usize) -> String {
    let (ids, any_ok, last_ok) = (first, first + 1, first + 2);
    let (fails, probe_ok, probe_failed) = (first + 3, first + 4, first + 5);
    let (breaker_set, breaker_changes) = streak_sql(first + 6, first + 7, first + 8);
    // A success ends a failing streak; a failure starts one unless one is
    // running (a failure after a success in the same batch starts it
    // afresh). Rows are written only when the value changes, so a healthy
    // webhook costs no write here.
    format!(
        "UPDATE webhooks w
         SET failing_since = CASE WHEN s.last_ok THEN NULL
                                  WHEN s.any_ok THEN now()
                                  ELSE COALESCE(w.failing_since, now()) END,
             {breaker_set}
         FROM UNNEST(${ids}::int8[], ${any_ok}::bool[], ${last_ok}::bool[], ${fails}::int4[],
                     ${probe_ok}::bool[], ${probe_failed}::bool[])
             AS s(id, any_ok, last_ok, fails, probe_ok, probe_failed)
         WHERE w.id = s.id
           AND (CASE WHEN s.last_ok THEN w.failing_since IS NOT NULL
                     WHEN s.any_ok THEN TRUE
                     ELSE w.failing_since IS NULL END
                OR {breaker_changes})"
    )
}

/// Runs the statements that record attempts, and switches off the webhooks
/// they condemn: those that answered 410 Gone and, with `disable_after`,
/// those failing for longer. A batch of successes (the usual case) is one
/// statement, hence one round trip, atomic without BEGIN/COMMIT. Several
/// statements, or switching webhooks off (which reads the streaks the
/// statements write), need a transaction.
pub(super) async fn execute_then_switch_off<'r>(
    conn: &mut PgConnection,
    mut queries: Vec<PgQuery<'_>>,
    records: impl IntoIterator<Item = &'r AttemptRecord>,
    streaks: &FailingStreaks,
    rules: &Rules,
) -> Result<Recorded, StorageError> {
    let disable_after = rules.disable_after;
    let gone: Vec<i64> = records
        .into_iter()
        .filter(|r| r.disable_webhook)
        .map(|r| r.webhook_id)
        .collect();
    let failing = streaks.failing();
    let switch_off = !gone.is_empty() || (disable_after.is_some() && !failing.is_empty());
    // A breaker may open (a failure) or close (a probe succeeded): what
    // follows is part of the same transaction.
    let breakers = (rules.breaker.enabled() && !failing.is_empty()) || streaks.probed();
    if queries.len() == 1 && !switch_off && !breakers {
        if let Some(query) = queries.pop() {
            query.execute(&mut *conn).await?;
        }
        return Ok(Recorded::default());
    }
    let mut tx = conn.begin().await?;
    for query in queries {
        query.execute(&mut *tx).await?;
    }
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
    let breakers = match breakers {
        true => {
            settle(
                &mut tx,
                &failing,
                &streaks.probes(false),
                &streaks.probes(true),
            )
            .await?
        }
        false => Vec::new(),
    };
    tx.commit().await?;
    Ok(Recorded { disabled, breakers })
}

/// Per webhook in a batch: did any attempt succeed, and did the last one?
/// Keyed in id order so concurrent recorders lock webhook rows in one order.
pub(super) struct FailingStreaks {
    ids: Vec<i64>,
    any_ok: Vec<bool>,
    last_ok: Vec<bool>,
    /// Failures after the last success (all of them without one).
    fails: Vec<i32>,
    probe_ok: Vec<bool>,
    probe_failed: Vec<bool>,
    /// The breaker's numbers (`breakers::policy_numbers`).
    policy: (i32, i64, i64),
}

impl FailingStreaks {
    pub(super) fn of<'r>(
        records: impl IntoIterator<Item = &'r AttemptRecord>,
        breaker: &BreakerPolicy,
    ) -> Self {
        let mut by_webhook: BTreeMap<i64, Streak> = BTreeMap::new();
        for r in records {
            let entry = by_webhook.entry(r.webhook_id).or_default();
            entry.any_ok |= r.is_success;
            entry.last_ok = r.is_success;
            entry.fails = match r.is_success {
                true => 0,
                false => entry.fails.saturating_add(1),
            };
            entry.probe_ok |= r.probe && r.is_success;
            entry.probe_failed |= r.probe && !r.is_success;
        }
        let n = by_webhook.len();
        let mut streaks = FailingStreaks {
            ids: Vec::with_capacity(n),
            any_ok: Vec::with_capacity(n),
            last_ok: Vec::with_capacity(n),
            fails: Vec::with_capacity(n),
            probe_ok: Vec::with_capacity(n),
            probe_failed: Vec::with_capacity(n),
            policy: policy_numbers(breaker),
        };
        for (id, streak) in by_webhook {
            streaks.ids.push(id);
            streaks.any_ok.push(streak.any_ok);
            streaks.last_ok.push(streak.last_ok);
            streaks.fails.push(streak.fails);
            streaks.probe_ok.push(streak.probe_ok);
            streaks.probe_failed.push(streak.probe_failed);
        }
        streaks
    }

    /// Binds the parameters [`update_streaks`] reads.
    pub(super) fn bind<'q>(&'q self, query: PgQuery<'q>) -> PgQuery<'q> {
        query
            .bind(&self.ids)
            .bind(&self.any_ok)
            .bind(&self.last_ok)
            .bind(&self.fails)
            .bind(&self.probe_ok)
            .bind(&self.probe_failed)
            .bind(self.policy.0)
            .bind(self.policy.1)
            .bind(self.policy.2)
    }

    /// Whether a breaker probe is among the attempts.
    fn probed(&self) -> bool {
        self.probe_ok.iter().chain(&self.probe_failed).any(|p| *p)
    }

    /// The webhooks whose probe succeeded (`ok`) or failed.
    fn probes(&self, ok: bool) -> Vec<i64> {
        let flags = if ok {
            &self.probe_ok
        } else {
            &self.probe_failed
        };
        self.ids
            .iter()
            .zip(flags)
            .filter(|(_, probed)| **probed)
            .map(|(id, _)| *id)
            .collect()
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

/// One webhook's attempts in a batch.
#[derive(Default)]
struct Streak {
    any_ok: bool,
    last_ok: bool,
    fails: i32,
    probe_ok: bool,
    probe_failed: bool,
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
