//! Fan-out: which webhooks get each consumed event, and the statements that
//! write the events with their deliveries.
//!
//! Both ways start from [`subscribers`], which reads who is subscribed
//! without writing (the worker then drops what filters and the rules of
//! operational events exclude); then [`record_fanout`] writes every delivery
//! before any attempt (the attempts' outcomes are written as updates), or
//! the first attempts run first and [`write_fanout`] writes each delivery
//! once, already in the state its first attempt left it in. Delivery ids come from the event and
//! the webhook (`webhookd_delivery_id`, migration 0007), so both ways and any
//! repeat of a message give a delivery the same id.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{Executor, PgConnection};
use uuid::Uuid;

use webhookd_events::delivery::{AttemptRecord, ClaimedDelivery, Lease};
use webhookd_events::routing::{StoredFilter, Subscriber};
use webhookd_events::{BreakerPolicy, NewEvent};

use crate::deliveries::{
    attempts_cte, execute_then_switch_off, insert_logs, update_streaks, AttemptColumns, ClaimedRow,
    DisabledWebhook, FailingStreaks, Recorded, Rules, TARGET_COLUMNS,
};
use crate::StorageError;

// One statement, hence one round trip and atomic without BEGIN/COMMIT.
// The foreign key from deliveries to events is checked at the end of the
// statement, when the events CTE's rows exist. Each webhook is locked once
// (FOR KEY SHARE) in place of a per-row foreign key check: a concurrent
// delete of the webhook then cannot leave rows behind (migration 0005).
// Which webhooks get which event was decided by the caller from
// [`subscribers`] (patterns, privacy, filters); a webhook switched off since
// gets nothing.
static RECORD_FANOUT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ev AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[])
                 WITH ORDINALITY AS ev(id, event, user_id, body, ord)
         ), pairs AS (
             SELECT * FROM UNNEST($7::uuid[], $8::int8[]) AS p(event_id, webhook_id)
         ), live AS (
             SELECT w.id, w.timeout_ms, w.batch_max_events, w.ordering,
                    w.breaker_opened_at IS NOT NULL AS breaker_open FROM webhooks w
             WHERE w.is_active AND w.id IN (SELECT webhook_id FROM pairs)
             FOR KEY SHARE
         ), new_events AS (
             INSERT INTO events (id, event, user_id, body)
             SELECT id, event, user_id, body FROM ev
             ON CONFLICT (id) DO NOTHING
         ), inserted AS (
             INSERT INTO deliveries (id, event_id, webhook_id, status, collect_order,
                 next_attempt_at, parked)
             SELECT webhookd_delivery_id(ev.id, w.id), ev.id, w.id,
                    CASE WHEN w.batch_max_events IS NOT NULL THEN 'collecting'
                         WHEN w.ordering = 'fifo' THEN 'queued'
                         ELSE 'pending' END,
                    CASE WHEN w.batch_max_events IS NOT NULL OR w.ordering = 'fifo'
                         THEN ev.ord END,
                    now() + make_interval(secs => (COALESCE(w.timeout_ms, $5::int8) + $6::int8) / 1000.0),
                    -- An open breaker's new delivery waits parked (not returned
                    -- for an attempt: the caller drops `breaker_open` claims).
                    w.breaker_open AND w.batch_max_events IS NULL AND w.ordering <> 'fifo'
             FROM pairs p
             JOIN ev ON ev.id = p.event_id
             JOIN live w ON w.id = p.webhook_id
             ON CONFLICT (event_id, webhook_id) DO NOTHING
             RETURNING id, event_id, webhook_id
         )
         SELECT i.id AS delivery_id, i.event_id, ev.event, 0 AS attempts, NULL::text AS body,
                NULL::int4 AS batch_size, {TARGET_COLUMNS}
         FROM inserted i
         JOIN ev ON ev.id = i.event_id
         JOIN webhooks w ON w.id = i.webhook_id"
    )
});

/// Records `events` and the deliveries `routed` to them (claims from
/// [`subscribers`], after routing) in one transaction, and returns the new
/// deliveries, already leased to the caller. Rows that already existed (a
/// redelivered message) are not returned: their first owner's lease, or the
/// scheduler, covers them. A batching webhook's rows are written collecting,
/// and a FIFO webhook's queued, not leased: they are returned marked
/// `batching` or `fifo`, for the caller to leave to the batcher or the
/// sequencer.
pub async fn record_fanout(
    conn: &mut PgConnection,
    events: &[NewEvent],
    routed: &[ClaimedDelivery],
    lease: Lease,
) -> Result<Vec<ClaimedDelivery>, StorageError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ev = EventColumns::of(events);
    let pair_events: Vec<Uuid> = routed.iter().map(|c| c.event_id).collect();
    let pair_webhooks: Vec<i64> = routed.iter().map(|c| c.webhook_id).collect();
    let rows = sqlx::query_as::<_, ClaimedRow>(&RECORD_FANOUT_SQL)
        .bind(&ev.ids)
        .bind(&ev.names)
        .bind(&ev.users)
        .bind(ev.bodies())
        .bind(lease.default_timeout_ms)
        .bind(lease.margin_ms)
        .bind(&pair_events)
        .bind(&pair_webhooks)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(ClaimedDelivery::from).collect())
}

static SUBSCRIBERS_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ev AS (
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[])
                 AS ev(id, event, user_id, patterns)
         ), subscribed AS (
             SELECT w.* FROM webhooks w
             WHERE w.is_active
               AND w.events && (SELECT array_agg(DISTINCT p)
                                FROM ev, unnest(string_to_array(ev.patterns, ' ')) AS p)
         )
         SELECT webhookd_delivery_id(ev.id, w.id) AS delivery_id, ev.id AS event_id, ev.event,
                0 AS attempts, NULL::text AS body, NULL::int4 AS batch_size, {TARGET_COLUMNS},
                w.user_id AS owner_id, w.filter IS NOT NULL AS has_filter,
                w.updated_at AS version
         FROM ev
         JOIN subscribed w ON w.events && string_to_array(ev.patterns, ' ')
         JOIN users u ON u.id = w.user_id
         WHERE (ev.user_id IS NULL OR w.user_id = ev.user_id OR u.is_admin)
           AND NOT EXISTS (SELECT 1 FROM deliveries d
                           WHERE d.event_id = ev.id AND d.webhook_id = w.id)"
    )
});

/// A row of [`subscribers`].
#[derive(sqlx::FromRow)]
struct SubscriberRow {
    #[sqlx(flatten)]
    claim: ClaimedRow,
    owner_id: i64,
    has_filter: bool,
    version: DateTime<Utc>,
}

/// The webhooks subscribed to `events`, as claims for their first attempt:
/// one per active webhook whose patterns match, under the privacy rule of
/// §5, with its delivery id and what routing needs (owner, filter). Writes
/// nothing, locks nothing. A delivery already written (an event published
/// twice) is left out.
pub async fn subscribers(
    conn: &mut PgConnection,
    events: &[NewEvent],
) -> Result<Vec<Subscriber>, StorageError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let ev = EventColumns::of(events);
    let rows = sqlx::query_as::<_, SubscriberRow>(&SUBSCRIBERS_SQL)
        .bind(&ev.ids)
        .bind(&ev.names)
        .bind(&ev.users)
        .bind(ev.patterns())
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| Subscriber {
            claim: ClaimedDelivery::from(row.claim),
            owner_id: row.owner_id,
            filter_version: row.has_filter.then(|| row.version.timestamp_micros()),
        })
        .collect())
}

/// The filters of `webhooks` with their versions (see
/// [`Subscriber::filter_version`]): read only for versions the caller has
/// not compiled yet, so filters cost the fan-out a read per edit, not a
/// column per event.
pub async fn filters(
    conn: &mut PgConnection,
    webhooks: &[i64],
) -> Result<Vec<StoredFilter>, StorageError> {
    let rows: Vec<(i64, DateTime<Utc>, Option<String>)> = sqlx::query_as(
        "SELECT id, updated_at, filter::text FROM webhooks WHERE id = ANY($1::int8[])",
    )
    .bind(webhooks)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(webhook_id, version, json)| StoredFilter {
            webhook_id,
            version: version.timestamp_micros(),
            json,
        })
        .collect())
}

/// Prepares the fan-out statements on `conn` (sqlx keeps them in the
/// connection's statement cache), so a fresh connection's first batch does
/// not also wait for Postgres to parse them. Prepared without parameter
/// types, they get Postgres's inferred ones, which must be what is bound
/// later: so every parameter of these statements carries a cast (an uncast
/// `$6` beside an `int4` column was inferred `int4` and refused the `int8`
/// bound to it).
pub async fn prepare_statements(conn: &mut PgConnection) -> Result<(), StorageError> {
    for sql in [
        &*SUBSCRIBERS_SQL,
        &*WRITE_FANOUT_SQL,
        &*STREAKS_SQL,
        &*RECORD_FANOUT_SQL,
    ] {
        conn.prepare(sql.as_str()).await?;
    }
    Ok(())
}

/// A delivery to write with [`write_fanout`].
#[derive(Debug, Clone, Copy)]
pub struct FanoutRow<'a> {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub webhook_id: i64,
    /// Its webhook was failing when [`subscribers`] read it: a success
    /// ends that streak.
    pub webhook_failing: bool,
    pub first: FirstAttempt<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum FirstAttempt<'a> {
    /// It ended: the delivery is written in the state it left, and logged.
    Made(&'a AttemptRecord),
    /// Not made, or not finished: pending, due after this long (a lease
    /// for one still running, a wait for one handed back).
    NotYet { due_in: Duration },
    /// Never made on its own: its webhook batches, so the row waits to be
    /// collected into a batch.
    Collect,
    /// Not made now: its webhook is FIFO, so the row waits queued for the
    /// deliveries ahead of it.
    Queue,
}

static WRITE_FANOUT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH new_events AS (
             INSERT INTO events (id, event, user_id, body)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[])
             ON CONFLICT (id) DO NOTHING
         ), d AS (
             SELECT * FROM UNNEST($5::uuid[], $6::uuid[], $7::int8[], $8::text[], $9::int4[],
                 $10::int8[], $11::int4[], $12::text[], $13::int4[])
                 AS d(id, event_id, webhook_id, status, attempts, delay_ms, code, error,
                      collect_order)
         ), live AS (
             SELECT id, breaker_opened_at IS NOT NULL AS breaker_open FROM webhooks
             WHERE id IN (SELECT webhook_id FROM d) FOR KEY SHARE
         ), new_deliveries AS (
             INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at,
                 last_status_code, last_error, collect_order, parked)
             SELECT d.id, d.event_id, d.webhook_id, d.status, d.attempts,
                    now() + make_interval(secs => d.delay_ms / 1000.0), d.code, d.error,
                    d.collect_order, d.status = 'pending' AND live.breaker_open
             FROM d JOIN live ON live.id = d.webhook_id
             ON CONFLICT (event_id, webhook_id) DO NOTHING
         ), {attempts_cte}, {logs}
         SELECT 1",
        attempts_cte = attempts_cte(14),
        logs = insert_logs("WHERE o.webhook_id IN (SELECT id FROM live)"),
    )
});

/// The failing streaks' update on its own, for [`write_fanout`].
static STREAKS_SQL: LazyLock<String> = LazyLock::new(|| update_streaks(1));

/// Writes `events` and their deliveries in one statement, each delivery once
/// in its state after its first attempt, with the attempt's `webhook_logs`
/// row and its webhook's failing streak; then switches off the webhooks the
/// attempts condemn, as [`crate::deliveries::record_attempts`] does, and
/// returns them.
///
/// Each row's webhook is locked (FOR KEY SHARE) as in [`record_fanout`]: a
/// webhook deleted since [`subscribers`] read it gets no rows. A delivery
/// that exists already (the same event consumed twice at once) keeps its
/// row; its attempt is logged all the same.
pub async fn write_fanout(
    conn: &mut PgConnection,
    events: &[NewEvent],
    rows: &[FanoutRow<'_>],
    disable_after: Option<Duration>,
) -> Result<Vec<DisabledWebhook>, StorageError> {
    let rules = Rules {
        disable_after,
        breaker: BreakerPolicy::default(),
    };
    Ok(write_fanout_under(conn, events, rows, &rules)
        .await?
        .disabled)
}

/// [`write_fanout`] under `rules`, reporting breaker transitions too. A
/// pending delivery of a webhook whose breaker is open is written parked.
/// A first attempt whose day has no `webhook_logs` partition yet gets one,
/// and the write is tried once more.
pub async fn write_fanout_under(
    conn: &mut PgConnection,
    events: &[NewEvent],
    rows: &[FanoutRow<'_>],
    rules: &Rules,
) -> Result<Recorded, StorageError> {
    match write_fanout_once(conn, events, rows, rules).await {
        Err(e) if crate::partitions::is_missing_partition(&e) => {
            crate::partitions::ensure_for_now(conn).await?;
            write_fanout_once(conn, events, rows, rules).await
        }
        result => result,
    }
}

async fn write_fanout_once(
    conn: &mut PgConnection,
    events: &[NewEvent],
    rows: &[FanoutRow<'_>],
    rules: &Rules,
) -> Result<Recorded, StorageError> {
    if events.is_empty() {
        return Ok(Recorded::default());
    }
    let ev = EventColumns::of(events);
    let deliveries = DeliveryColumns::of(rows, events);
    let attempted = || {
        rows.iter().filter_map(|row| match row.first {
            FirstAttempt::Made(record) => Some(record),
            FirstAttempt::NotYet { .. } | FirstAttempt::Collect | FirstAttempt::Queue => None,
        })
    };
    let attempts = AttemptColumns::of(attempted());
    let streaks = FailingStreaks::of(attempted(), &rules.breaker);
    // Streaks change only with a failure, or with a success of a webhook
    // that was failing; a healthy batch skips that statement. (It cannot be
    // part of this one: a row the statement both locks and updates is
    // skipped by the lock.)
    let streaks_change = rows.iter().any(|row| match row.first {
        FirstAttempt::Made(record) => !record.is_success || row.webhook_failing,
        FirstAttempt::NotYet { .. } | FirstAttempt::Collect | FirstAttempt::Queue => false,
    });
    let query = sqlx::query(&WRITE_FANOUT_SQL)
        .bind(&ev.ids)
        .bind(&ev.names)
        .bind(&ev.users)
        .bind(ev.bodies());
    let mut queries = vec![attempts.bind(deliveries.bind(query))];
    if streaks_change {
        queries.push(streaks.bind(sqlx::query(&STREAKS_SQL)));
    }
    execute_then_switch_off(conn, queries, attempted(), &streaks, rules).await
}

/// The events' columns every statement here starts with (`$1` to `$3`), as
/// arrays for `UNNEST`; bodies and patterns on demand, as not every
/// statement takes them.
struct EventColumns<'a> {
    events: &'a [NewEvent],
    ids: Vec<Uuid>,
    names: Vec<&'static str>,
    users: Vec<Option<i64>>,
}

impl<'a> EventColumns<'a> {
    fn of(events: &'a [NewEvent]) -> Self {
        Self {
            events,
            ids: events.iter().map(|e| e.id).collect(),
            names: events.iter().map(|e| e.event).collect(),
            users: events.iter().map(|e| e.user_id).collect(),
        }
    }

    fn bodies(&self) -> Vec<&'a str> {
        self.events.iter().map(|e| &*e.body).collect()
    }

    /// Each event's matching patterns, space-separated (SQL splits them).
    fn patterns(&self) -> Vec<String> {
        self.events.iter().map(|e| e.patterns.join(" ")).collect()
    }
}

/// The deliveries of [`write_fanout`], as arrays for `UNNEST`.
struct DeliveryColumns<'a> {
    ids: Vec<Uuid>,
    event_ids: Vec<Uuid>,
    webhook_ids: Vec<i64>,
    statuses: Vec<&'static str>,
    attempts: Vec<i32>,
    delays_ms: Vec<i64>,
    codes: Vec<Option<i32>>,
    errors: Vec<Option<&'a str>>,
    collect_orders: Vec<Option<i32>>,
}

impl<'a> DeliveryColumns<'a> {
    fn of(rows: &[FanoutRow<'a>], events: &[NewEvent]) -> Self {
        let n = rows.len();
        // 1-based, as `WITH ORDINALITY` numbers them in `record_fanout`.
        let order: HashMap<Uuid, i32> = events
            .iter()
            .zip(1..)
            .map(|(event, order)| (event.id, order))
            .collect();
        let mut c = DeliveryColumns {
            ids: Vec::with_capacity(n),
            event_ids: Vec::with_capacity(n),
            webhook_ids: Vec::with_capacity(n),
            statuses: Vec::with_capacity(n),
            attempts: Vec::with_capacity(n),
            delays_ms: Vec::with_capacity(n),
            codes: Vec::with_capacity(n),
            errors: Vec::with_capacity(n),
            collect_orders: Vec::with_capacity(n),
        };
        for row in rows {
            c.collect_orders.push(match row.first {
                FirstAttempt::Collect | FirstAttempt::Queue => order.get(&row.event_id).copied(),
                FirstAttempt::Made(_) | FirstAttempt::NotYet { .. } => None,
            });
            c.ids.push(row.delivery_id);
            c.event_ids.push(row.event_id);
            c.webhook_ids.push(row.webhook_id);
            match row.first {
                FirstAttempt::Made(r) => {
                    c.statuses.push(r.next.status());
                    c.attempts.push(r.attempt);
                    c.delays_ms.push(r.next.delay_ms());
                    c.codes.push(r.status_code);
                    c.errors.push(r.error_message.as_deref());
                }
                FirstAttempt::Collect | FirstAttempt::Queue => {
                    c.statuses
                        .push(if matches!(row.first, FirstAttempt::Queue) {
                            "queued"
                        } else {
                            "collecting"
                        });
                    c.attempts.push(0);
                    c.delays_ms.push(0);
                    c.codes.push(None);
                    c.errors.push(None);
                }
                FirstAttempt::NotYet { due_in } => {
                    c.statuses.push("pending");
                    c.attempts.push(0);
                    c.delays_ms
                        .push(i64::try_from(due_in.as_millis()).unwrap_or(i64::MAX));
                    c.codes.push(None);
                    c.errors.push(None);
                }
            }
        }
        c
    }

    fn bind<'q>(&'q self, query: crate::deliveries::PgQuery<'q>) -> crate::deliveries::PgQuery<'q> {
        query
            .bind(&self.ids)
            .bind(&self.event_ids)
            .bind(&self.webhook_ids)
            .bind(&self.statuses)
            .bind(&self.attempts)
            .bind(&self.delays_ms)
            .bind(&self.codes)
            .bind(&self.errors)
            .bind(&self.collect_orders)
    }
}
