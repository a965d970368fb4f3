//! Sending a webhook what it missed: its failed deliveries of a time range
//! retried ([`retry_failed_between`]), and stored events it would have
//! matched sent to it ([`replay_events`]). Both are bounded per call, so one
//! request never rewrites or reads millions of rows in one statement; the
//! caller continues with what the answer says.
//!
//! Callers check that the webhook is in the user's scope and switched on
//! first; every statement here is keyed by the webhook's id as well.

use chrono::{DateTime, Duration, Utc};
use futures_util::TryStreamExt;
use sqlx::PgPool;
use uuid::Uuid;

use webhookd_events::routing::{is_operational, operational_event_reaches};
use webhookd_events::{
    filter_subject, find_event, is_visible_to, EventPattern, Filter, FilterError, CATALOGUE,
    TEST_EVENT,
};

use crate::notify::DUE_CHANNEL;
use crate::StorageError;

/// What [`retry_failed_between`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeRetried {
    /// Deliveries made pending and due now.
    pub retried: u64,
    /// More failed deliveries lie in the range: call again.
    pub more: bool,
}

/// Makes at most `limit` of the webhook's failed deliveries whose failure
/// lies in `[since, until)` pending and due now, oldest failure first, and
/// wakes the schedulers. Attempt counts are kept, as for
/// [`crate::delivery_admin::retry_failed_deliveries`].
///
/// The failure time is `updated_at`: a failed row is last written when its
/// final outcome is recorded (or when the scheduler ends it because its
/// webhook was switched off), and nothing touches it after that but a retry,
/// which makes it pending. A batch is retried as its own row (its events'
/// rows are `batched`), so a batch stays whole. Retried rows leave `failed`,
/// so the next call picks up where this one stopped.
pub async fn retry_failed_between(
    pool: &PgPool,
    webhook_id: i64,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<RangeRetried, StorageError> {
    let mut tx = pool.begin().await?;
    // `created_at < until` holds for any row that failed before `until`; it
    // lets the `(webhook_id, created_at)` index bound the scan. The row past
    // the limit is locked too, only to tell whether more remain.
    let (retried, found): (i64, i64) = sqlx::query_as(
        "WITH candidates AS (
             SELECT id, updated_at FROM deliveries
             WHERE webhook_id = $1 AND status = 'failed'
               AND ($2::timestamptz IS NULL OR updated_at >= $2)
               AND ($3::timestamptz IS NULL OR (updated_at < $3 AND created_at < $3))
             ORDER BY updated_at, id
             LIMIT $4 + 1
             FOR UPDATE
         ), picked AS (
             SELECT id FROM candidates ORDER BY updated_at, id LIMIT $4
         ), retried AS (
             UPDATE deliveries d
             SET status = 'pending', next_attempt_at = now(), updated_at = now()
             FROM picked WHERE d.id = picked.id
             RETURNING 1
         )
         SELECT (SELECT count(*) FROM retried), (SELECT count(*) FROM candidates)",
    )
    .bind(webhook_id)
    .bind(since)
    .bind(until)
    .bind(limit)
    .fetch_one(&mut *tx)
    .await?;
    if retried > 0 {
        notify_due(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(RangeRetried {
        retried: u64::try_from(retried).unwrap_or(0),
        more: found > limit,
    })
}

/// What [`replay_events`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Stored events of the window the webhook's subscriptions and the
    /// privacy rule selected, oldest first.
    pub examined: u64,
    /// New deliveries written.
    pub replayed: u64,
    /// Events the webhook had a delivery of already (sent, failed or still
    /// pending): not sent again.
    pub skipped_existing: u64,
    /// When the window holds more such events: where to continue (`since`
    /// of the next call). `None` once the window is done.
    pub next_since: Option<DateTime<Utc>>,
}

/// Rows read from Postgres and inserted per statement: bounds the memory a
/// replay holds (bodies included) whatever `limit` is.
const CHUNK: usize = 500;

/// The webhook as a replay needs it.
struct ReplayTarget {
    id: i64,
    patterns: Vec<EventPattern>,
    /// Its payload filter, compiled once for the whole replay; a stored one
    /// that no longer parses matches nothing, as at fan-out.
    filter: Option<Result<Filter, FilterError>>,
    owner: i64,
    owner_is_admin: bool,
    batching: bool,
}

/// A stored event, a candidate for replay.
#[derive(sqlx::FromRow)]
struct StoredEvent {
    id: Uuid,
    event: String,
    user_id: Option<i64>,
    /// The envelope delivered; what a payload filter is evaluated against.
    body: String,
    created_at: DateTime<Utc>,
    delivered: bool,
}

/// Whether the webhook would have received `event` had it existed then: the
/// one place that decides, for every candidate the query below returns.
/// The query narrows the scan with the same rules (subscribed names, the
/// privacy rule) so that a page is not filled with events that fail here.
fn replayable(webhook: &ReplayTarget, event: &StoredEvent) -> bool {
    let subscribed = event.event != TEST_EVENT
        && find_event(&event.event).is_some()
        && webhook.patterns.iter().any(|p| p.matches(&event.event))
        && is_visible_to(event.user_id, webhook.owner, webhook.owner_is_admin);
    let operational = is_operational(&event.event);
    if !subscribed || (webhook.filter.is_none() && !operational) {
        return subscribed;
    }
    // The fan-out's rules, on the event as filters see it.
    let Some(subject) = filter_subject(&event.body, event.user_id) else {
        return false;
    };
    if operational && !operational_event_reaches(&subject, event.user_id, webhook.id, webhook.owner)
    {
        return false;
    }
    match &webhook.filter {
        None => true,
        Some(filter) => filter.as_ref().is_ok_and(|f| f.matches(&subject)),
    }
}

/// The catalogue names the webhook's patterns match (never `webhook.test`:
/// test deliveries are sent on demand, not fanned out).
fn subscribed_names(patterns: &[EventPattern]) -> Vec<String> {
    CATALOGUE
        .iter()
        .map(|spec| spec.name)
        .filter(|name| *name != TEST_EVENT && patterns.iter().any(|p| p.matches(name)))
        .map(str::to_owned)
        .collect()
}

/// Writes a delivery of the webhook for each stored event of `[since,
/// until)` it would have matched (see [`replayable`]) and has none of yet,
/// oldest first: pending and due now, or `collecting` for a batching
/// webhook, so the batcher sends them as batches like any of its events.
/// At most `limit` events are examined, plus those stored in the same
/// instant as the last (so a continuation from `next_since` skips none).
///
/// Delivery ids are `webhookd_delivery_id(event, webhook)` and the insert
/// does nothing on conflict, so an event is never sent to a webhook twice,
/// whether fan-out, an earlier replay or a concurrent one wrote it.
/// Returns `None` when the webhook is gone or switched off.
pub async fn replay_events(
    pool: &PgPool,
    webhook_id: i64,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Option<Replayed>, StorageError> {
    let Some(target) = load_target(pool, webhook_id).await? else {
        return Ok(None);
    };
    let names = subscribed_names(&target.patterns);
    let mut outcome = Replayed {
        examined: 0,
        replayed: 0,
        skipped_existing: 0,
        next_since: None,
    };
    if names.is_empty() {
        return Ok(Some(outcome));
    }
    // Read on a connection of its own while chunks are written through the
    // pool: the rows stream, so at most a chunk of bodies is held.
    let mut reader = pool.acquire().await?;
    let mut rows = sqlx::query_as::<_, StoredEvent>(
        "SELECT e.id, e.event, e.user_id, e.body, e.created_at,
                EXISTS (SELECT 1 FROM deliveries d
                        WHERE d.event_id = e.id AND d.webhook_id = $1) AS delivered
         FROM events e
         WHERE e.created_at >= $2 AND ($3::timestamptz IS NULL OR e.created_at < $3)
           AND e.event = ANY($4::text[])
           AND (e.user_id IS NULL OR e.user_id = $5 OR $6)
         ORDER BY e.created_at
         FETCH FIRST $7 ROWS WITH TIES",
    )
    .bind(webhook_id)
    .bind(since)
    .bind(until)
    .bind(&names)
    .bind(target.owner)
    .bind(target.owner_is_admin)
    .bind(limit)
    .fetch(&mut *reader);
    let mut chunk: Vec<Uuid> = Vec::with_capacity(CHUNK);
    let mut eligible: u64 = 0;
    let mut last: Option<DateTime<Utc>> = None;
    while let Some(event) = rows.try_next().await? {
        outcome.examined += 1;
        last = Some(event.created_at);
        if !replayable(&target, &event) {
            continue;
        }
        eligible += 1;
        if event.delivered {
            continue;
        }
        chunk.push(event.id);
        if chunk.len() == CHUNK {
            outcome.replayed += insert_chunk(pool, webhook_id, &target, &chunk).await?;
            chunk.clear();
        }
    }
    drop(rows);
    if !chunk.is_empty() {
        outcome.replayed += insert_chunk(pool, webhook_id, &target, &chunk).await?;
    }
    // What was not written existed already, read as delivered or written
    // meanwhile by a fan-out or another replay.
    outcome.skipped_existing = eligible.saturating_sub(outcome.replayed);
    let full = outcome.examined >= u64::try_from(limit).unwrap_or(0);
    if let Some(last) = last.filter(|_| full) {
        // Every event of the instant `last` was read (WITH TIES), so the
        // next call may start just after it.
        let next = last + Duration::microseconds(1);
        let more: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events e
                 WHERE e.created_at >= $1 AND ($2::timestamptz IS NULL OR e.created_at < $2)
                   AND e.event = ANY($3::text[])
                   AND (e.user_id IS NULL OR e.user_id = $4 OR $5))",
        )
        .bind(next)
        .bind(until)
        .bind(&names)
        .bind(target.owner)
        .bind(target.owner_is_admin)
        .fetch_one(&mut *reader)
        .await?;
        outcome.next_since = more.then_some(next);
    }
    Ok(Some(outcome))
}

/// The webhook's subscriptions, owner and batching, when it exists and is
/// switched on.
async fn load_target(pool: &PgPool, webhook_id: i64) -> Result<Option<ReplayTarget>, StorageError> {
    /// Patterns, owner, owner is admin, batching, filter.
    type Row = (Vec<String>, i64, bool, bool, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT w.events, w.user_id, u.is_admin, w.batch_max_events IS NOT NULL, w.filter::text
         FROM webhooks w JOIN users u ON u.id = w.user_id
         WHERE w.id = $1 AND w.is_active",
    )
    .bind(webhook_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(events, owner, owner_is_admin, batching, filter)| ReplayTarget {
            id: webhook_id,
            filter: filter.map(|f| Filter::parse_str(&f)),
            // Stored patterns were checked on write; one that no longer parses
            // (an event dropped from the catalogue) matches nothing.
            patterns: events
                .iter()
                .filter_map(|p| EventPattern::parse(p).ok())
                .collect(),
            owner,
            owner_is_admin,
            batching,
        },
    ))
}

/// Writes the deliveries of `events` (oldest first) for the webhook; returns
/// how many were new. One statement, so without `BEGIN`/`COMMIT`.
///
/// The webhook is locked (FOR KEY SHARE) as fan-out locks it: deliveries
/// have no foreign key to webhooks (migration 0005), and a webhook deleted
/// or switched off meanwhile gets no rows. The events are locked too, so
/// one that retention deletes meanwhile is skipped rather than failing the
/// foreign key.
async fn insert_chunk(
    pool: &PgPool,
    webhook_id: i64,
    target: &ReplayTarget,
    events: &[Uuid],
) -> Result<u64, StorageError> {
    let mut conn = pool.acquire().await?;
    let inserted: i64 = sqlx::query_scalar(
        "WITH live AS (
             SELECT id, batch_max_events FROM webhooks WHERE id = $1 AND is_active
             FOR KEY SHARE
         ), picked AS (
             SELECT p.id, p.ord FROM UNNEST($2::uuid[]) WITH ORDINALITY AS p(id, ord)
             JOIN (SELECT id FROM events WHERE id = ANY($2::uuid[]) FOR KEY SHARE) e
               ON e.id = p.id
         ), inserted AS (
             INSERT INTO deliveries (id, event_id, webhook_id, status, next_attempt_at,
                 collect_order)
             SELECT webhookd_delivery_id(p.id, w.id), p.id, w.id,
                    CASE WHEN w.batch_max_events IS NULL THEN 'pending' ELSE 'collecting' END,
                    now(),
                    CASE WHEN w.batch_max_events IS NOT NULL THEN p.ord::int4 END
             FROM picked p CROSS JOIN live w
             ORDER BY p.ord
             ON CONFLICT DO NOTHING
             RETURNING 1
         )
         SELECT count(*) FROM inserted",
    )
    .bind(webhook_id)
    .bind(events)
    .fetch_one(&mut *conn)
    .await?;
    // Batching rows wait for the batcher, which looks every second.
    if inserted > 0 && !target.batching {
        notify_due(&mut conn).await?;
    }
    Ok(u64::try_from(inserted).unwrap_or(0))
}

/// `NOTIFY webhookd_due`, after the rows it announces are committed.
async fn notify_due(conn: &mut sqlx::PgConnection) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(DUE_CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(patterns: &[&str], owner: i64, owner_is_admin: bool) -> ReplayTarget {
        ReplayTarget {
            id: 1,
            filter: None,
            patterns: patterns
                .iter()
                .map(|p| EventPattern::parse(p).unwrap())
                .collect(),
            owner,
            owner_is_admin,
            batching: false,
        }
    }

    fn stored(event: &str, user_id: Option<i64>) -> StoredEvent {
        StoredEvent {
            id: Uuid::nil(),
            event: event.to_owned(),
            user_id,
            body: String::new(),
            created_at: DateTime::<Utc>::MIN_UTC,
            delivered: false,
        }
    }

    #[test]
    fn subscribed_names_expand_patterns_over_the_catalogue_without_test_events() {
        let names = subscribed_names(&target(&["task.*", "deal.won"], 7, false).patterns);
        assert!(names
            .iter()
            .all(|n| n.starts_with("task.") || n == "deal.won"));
        assert!(names.contains(&"task.created".to_owned()));
        assert!(names.contains(&"deal.won".to_owned()));
        assert!(!names.contains(&"deal.lost".to_owned()));
        let everything = subscribed_names(&target(&["*"], 7, false).patterns);
        assert_eq!(everything.len(), CATALOGUE.len() - 1);
        assert!(!everything.iter().any(|n| n == TEST_EVENT));
    }

    #[test]
    fn a_replayable_event_is_subscribed_and_visible_to_the_webhooks_owner() {
        let alice = target(&["task.*"], 7, false);
        assert!(replayable(&alice, &stored("task.created", None)));
        assert!(replayable(&alice, &stored("task.created", Some(7))));
        assert!(!replayable(&alice, &stored("task.created", Some(8))));
        assert!(!replayable(&alice, &stored("deal.won", None)));
        let admin = target(&["*"], 1, true);
        assert!(replayable(&admin, &stored("task.created", Some(8))));
        assert!(!replayable(&admin, &stored(TEST_EVENT, None)));
        assert!(!replayable(&admin, &stored("batch", None)));
    }

    #[test]
    fn a_replay_applies_the_filter_and_the_rules_of_operational_events() {
        let mut deals = target(&["*"], 7, true);
        deals.filter = Some(Filter::parse_str(r#"{"data.amount": {"$gte": 100}}"#));
        let deal = |amount: i64| StoredEvent {
            body: format!(r#"{{"event": "deal.won", "data": {{"amount": {amount}}}}}"#),
            ..stored("deal.won", None)
        };
        assert!(replayable(&deals, &deal(150)));
        assert!(!replayable(&deals, &deal(50)));
        deals.filter = None;
        assert!(replayable(&deals, &deal(50)));

        let failed = |about: i64, user: i64| StoredEvent {
            body: format!(r#"{{"event": "delivery.failed", "data": {{"webhook_id": {about}}}}}"#),
            ..stored("delivery.failed", Some(user))
        };
        assert!(
            replayable(&deals, &failed(2, 7)),
            "the owner's other webhook"
        );
        assert!(
            !replayable(&deals, &failed(1, 7)),
            "not the webhook it is about"
        );
        assert!(
            !replayable(&deals, &failed(2, 8)),
            "not an admin's, unlike other events"
        );
        deals.filter = Some(Filter::parse_str(r#"{"x": {"$bogus": 1}}"#));
        assert!(
            !replayable(&deals, &deal(150)),
            "an unusable filter matches nothing"
        );
    }
}
