//! The hourly statistics rollup: statistics read from rolled-up hours, from
//! a live scan of `webhook_logs`, or from both, have exactly the counts of
//! the attempts and percentiles within the stated bound; an hour is rolled
//! up exactly once whether two replicas race or a pass is killed midway;
//! summaries go with their webhook and with retention.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use sqlx::PgPool;
use webhookd_e2e::db::{count, TestDb};
use webhookd_store::stats::{load_stats, Stats, Summary, RELATIVE_ERROR};
use webhookd_store::stats_rollup::{roll_up, rolled_range, Rolled};
use webhookd_store::webhooks::Scope;

const ALICE: i64 = 7;
const BOB: i64 = 8;

/// Three webhooks (two of Alice's, one of Bob's) and `hours` hours of
/// attempts of three events up to now, some without a response; returns
/// the webhook ids.
async fn seed(pool: &PgPool, hours: i32) -> Vec<i64> {
    sqlx::query("INSERT INTO users (id, name) VALUES (7, 'Alice'), (8, 'Bob')")
        .execute(pool)
        .await
        .unwrap();
    let ids: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO webhooks (user_id, name, url, events, secret)
         SELECT u, 'hook-' || n, 'http://127.0.0.1:9/hook', '{*}', 'whsec_x'
         FROM (VALUES (1, 7), (2, 7), (3, 8)) v(n, u)
         ORDER BY n
         RETURNING id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    sqlx::query(
        "SELECT webhook_logs_ensure_partitions(
                    (now() - make_interval(hours => $1))::date - 1, now()::date + 1)",
    )
    .bind(hours)
    .execute(pool)
    .await
    .unwrap();
    // Deterministic but irregular: response times from 0 ms to 30 s, about
    // one attempt in nine without a response, one in five failed.
    sqlx::query(
        "INSERT INTO webhook_logs (webhook_id, delivery_id, event, attempt, status_code,
                                   response_time_ms, is_success, payload, created_at)
         SELECT ($1::int8[])[1 + (k * 7) % 3], gen_random_uuid(),
                (ARRAY['deal.won', 'task.created', 'task.updated'])[1 + (k * 13) % 3], 1,
                CASE WHEN k % 9 = 0 THEN NULL WHEN k % 5 = 0 THEN 500 ELSE 200 END,
                CASE WHEN k % 9 = 0 THEN 10000 ELSE ((k * 7919) % 997) * (1 + k % 31) END,
                k % 9 <> 0 AND k % 5 <> 0, '{}',
                now() - make_interval(secs => (k * 1237) % ($2 * 3600))
         FROM generate_series(1, 3000) k",
    )
    .bind(&ids)
    .bind(hours)
    .execute(pool)
    .await
    .unwrap();
    ids
}

/// What the statistics were before the rollup existed: every attempt of
/// the window scanned, exact percentiles (`percentile_cont`).
async fn exact(pool: &PgPool, scope: Scope, from: DateTime<Utc>) -> Exact {
    let owner = match scope {
        Scope::User(owner) => owner,
        Scope::All => -1,
    };
    let rows: Vec<ExactRow> = sqlx::query_as(
        "SELECT GROUPING(s.hour, s.webhook_id, s.event)::int4 AS grouping,
                    s.hour, s.webhook_id, s.event, COUNT(*) AS attempts,
                    COUNT(*) FILTER (WHERE s.is_success) AS successes,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY s.response_time_ms)
                        FILTER (WHERE s.status_code IS NOT NULL) AS p50,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY s.response_time_ms)
                        FILTER (WHERE s.status_code IS NOT NULL) AS p95
             FROM (SELECT date_trunc('hour', l.created_at, 'UTC') AS hour, l.webhook_id,
                          l.event, l.is_success, l.status_code, l.response_time_ms
                   FROM webhook_logs l JOIN webhooks w ON w.id = l.webhook_id
                   WHERE l.created_at >= $1 AND ($2 < 0 OR w.user_id = $2)) s
             GROUP BY GROUPING SETS ((s.hour), (s.webhook_id), (s.event), ())",
    )
    .bind(from)
    .bind(owner)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut exact = Exact::default();
    for row in rows {
        let summary = Summary {
            attempts: row.attempts,
            successes: row.successes,
            failures: row.attempts - row.successes,
            p50_ms: row.p50,
            p95_ms: row.p95,
        };
        match row.grouping {
            0b011 => {
                let outcomes = (row.successes, row.attempts - row.successes);
                exact.hourly.insert(row.hour.unwrap(), outcomes);
            }
            0b101 => {
                exact.webhooks.insert(row.webhook_id.unwrap(), summary);
            }
            0b110 => {
                exact.events.insert(row.event.unwrap(), summary);
            }
            _ => exact.total = Some(summary),
        }
    }
    exact
}

#[derive(sqlx::FromRow)]
struct ExactRow {
    grouping: i32,
    hour: Option<DateTime<Utc>>,
    webhook_id: Option<i64>,
    event: Option<String>,
    attempts: i64,
    successes: i64,
    p50: Option<f64>,
    p95: Option<f64>,
}

#[derive(Default, Debug)]
struct Exact {
    hourly: BTreeMap<DateTime<Utc>, (i64, i64)>,
    webhooks: BTreeMap<i64, Summary>,
    events: BTreeMap<String, Summary>,
    total: Option<Summary>,
}

#[track_caller]
fn assert_summary(actual: &Summary, exact: &Summary, context: &str) {
    assert_eq!(
        (actual.attempts, actual.successes, actual.failures),
        (exact.attempts, exact.successes, exact.failures),
        "{context}"
    );
    for (name, got, want) in [
        ("p50", actual.p50_ms, exact.p50_ms),
        ("p95", actual.p95_ms, exact.p95_ms),
    ] {
        match (got, want) {
            (Some(got), Some(want)) => assert!(
                (got - want).abs() <= RELATIVE_ERROR * want,
                "{context} {name}: {got} not within {RELATIVE_ERROR} of {want}"
            ),
            (got, want) => assert_eq!(got, want, "{context} {name}"),
        }
    }
}

/// `stats` has exactly the counts of `exact`, and percentiles within the
/// bound.
#[track_caller]
fn assert_matches(stats: &Stats, exact: &Exact) {
    let mut attempted = 0;
    for hour in &stats.hourly {
        let (successes, failures) = exact.hourly.get(&hour.hour).copied().unwrap_or_default();
        assert_eq!(
            (hour.successes, hour.failures),
            (successes, failures),
            "{}",
            hour.hour
        );
        attempted += usize::from(successes + failures > 0);
    }
    assert_eq!(
        attempted,
        exact.hourly.len(),
        "every attempt falls in an hour"
    );
    let listed: Vec<i64> = stats.webhooks.iter().map(|w| w.webhook_id).collect();
    assert_eq!(listed, exact.webhooks.keys().copied().collect::<Vec<_>>());
    for w in &stats.webhooks {
        assert_summary(&w.summary, &exact.webhooks[&w.webhook_id], &w.name);
    }
    let listed: Vec<&String> = stats.events.iter().map(|e| &e.event).collect();
    assert_eq!(listed, exact.events.keys().collect::<Vec<_>>());
    for e in &stats.events {
        assert_summary(&e.summary, &exact.events[&e.event], &e.event);
    }
    match &exact.total {
        Some(total) => assert_summary(&stats.total, total, "total"),
        None => assert_eq!(stats.total.attempts, 0),
    }
}

/// Every scope and period: the statistics `load_stats` gives now, checked
/// against the exact ones, and returned.
async fn check_all(pool: &PgPool, now: DateTime<Utc>) -> Vec<Stats> {
    let mut all = Vec::new();
    for scope in [Scope::All, Scope::User(ALICE), Scope::User(BOB)] {
        // Windows starting at a UTC midnight as well as ones that start and
        // end within a day (read from the day level in between).
        let current_hour = now.duration_trunc(Duration::hours(1)).unwrap();
        let midnight = now.duration_trunc(Duration::days(1)).unwrap() - Duration::days(1);
        let aligned = u32::try_from((current_hour - midnight).num_hours() + 1).unwrap();
        // One starting early in a day: that day's row minus its first hours.
        let early = aligned - 2;
        for hours in [24, 168, aligned, early] {
            let stats = load_stats(pool, scope, hours, now).await.unwrap();
            assert_eq!(stats.hourly.len(), hours as usize);
            assert_matches(&stats, &exact(pool, scope, stats.from).await);
            all.push(stats);
        }
    }
    all
}

/// The coarser levels hold what the hourly level holds: per owner, hour
/// and event; per webhook and every day rolled up from its start, the
/// newest up to its last hour rolled up (and such days exist).
async fn levels_agree(pool: &PgPool) {
    let owners_off = count(
        pool,
        "SELECT count(*) FROM (
             SELECT w.user_id, r.hour, r.event, sum(r.attempts) AS a, sum(r.successes) AS s,
                    sum((SELECT sum(c) FROM unnest(r.counts) c)) AS timed
             FROM webhook_stats_hourly r JOIN webhooks w ON w.id = r.webhook_id
             GROUP BY 1, 2, 3) h
         FULL JOIN (
             SELECT user_id, hour, event, attempts AS a, successes AS s,
                    (SELECT sum(c) FROM unnest(counts) c) AS timed
             FROM user_stats_hourly) u USING (user_id, hour, event)
         WHERE h.a IS DISTINCT FROM u.a OR h.s IS DISTINCT FROM u.s
            OR COALESCE(h.timed, 0) <> COALESCE(u.timed, 0)",
    )
    .await;
    assert_eq!(owners_off, 0);
    let days = count(pool, "SELECT count(*) FROM webhook_stats_daily").await;
    assert!(days > 0);
    let days_off = count(
        pool,
        "SELECT count(*) FROM (
             SELECT r.webhook_id, date_trunc('day', r.hour, 'UTC') AS day,
                    sum(r.attempts) AS a, sum(r.successes) AS s
             FROM webhook_stats_hourly r, webhook_stats_rollup g
             WHERE r.hour >= date_trunc('day', g.rolled_from + interval '1 day'
                                               - interval '1 microsecond', 'UTC')
               AND r.hour < g.rolled_until
             GROUP BY 1, 2) h
         FULL JOIN webhook_stats_daily d USING (webhook_id, day)
         WHERE h.a IS DISTINCT FROM d.attempts OR h.s IS DISTINCT FROM d.successes",
    )
    .await;
    assert_eq!(days_off, 0);
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

#[tokio::test]
async fn rolled_up_hours_give_the_counts_of_the_attempts_and_percentiles_within_the_bound() {
    let db = TestDb::create().await;
    seed(&db.pool, 60).await;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // Nothing rolled up: the live scan alone.
    assert_eq!(rolled_range(&db.pool).await.unwrap(), None);
    let live = check_all(&db.pool, now).await;

    // The hours up to three hours ago rolled up, backwards to the oldest
    // attempt: the 24-hour window spans rolled and unrolled hours.
    let rolled = roll_up(&db.pool, hours(3), 4).await.unwrap();
    assert!(rolled.hours >= 57 && rolled.rows > 0, "{rolled:?}");
    let range = rolled_range(&db.pool).await.unwrap().unwrap();
    assert!(
        range.until <= now - hours(3) && range.until > now - hours(5),
        "{range:?}"
    );
    assert!(range.from <= now - hours(60), "{range:?}");
    let mixed = check_all(&db.pool, now).await;
    // Same buckets either way: the very same figures, not just close ones.
    assert_eq!(mixed, live);

    levels_agree(&db.pool).await;

    // Up to the last complete hour.
    let again = roll_up(&db.pool, Duration::zero(), 4).await.unwrap();
    assert!(again.hours >= 2, "{again:?}");
    assert_eq!(check_all(&db.pool, now).await, live);
    // Nothing left to do.
    assert_eq!(
        roll_up(&db.pool, Duration::zero(), 4).await.unwrap(),
        Rolled::default()
    );
    db.drop_database().await;
}

#[tokio::test]
async fn an_open_transaction_holds_back_the_hours_it_could_still_write() {
    let db = TestDb::create().await;
    seed(&db.pool, 10).await;
    // A writer's rows are stamped with its transaction's start, so the
    // hour of an open transaction's start is never rolled up, whatever the
    // margin (zero here); its rows, committed after the pass, are counted.
    // (A transaction open for more than an hour, holding back a past hour,
    // is the same rule and too long for a test.)
    let mut writer = db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *writer).await.unwrap();
    roll_up(&db.pool, Duration::zero(), 24).await.unwrap();
    let start: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&mut *writer)
        .await
        .unwrap();
    let range = rolled_range(&db.pool).await.unwrap().unwrap();
    assert!(range.until <= start, "{range:?} vs {start}");
    // Its attempt, committed after the rollup, is counted.
    sqlx::query(
        "INSERT INTO webhook_logs (webhook_id, delivery_id, event, attempt, status_code,
                                   response_time_ms, is_success, payload)
         SELECT id, gen_random_uuid(), 'late.event', 1, 200, 40, true, '{}'
         FROM webhooks ORDER BY id LIMIT 1",
    )
    .execute(&mut *writer)
    .await
    .unwrap();
    writer.commit().await.unwrap();
    roll_up(&db.pool, Duration::zero(), 24).await.unwrap();
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let stats = check_all(&db.pool, now).await;
    assert!(stats[0].events.iter().any(|e| e.event == "late.event"));
    db.drop_database().await;
}

#[tokio::test]
async fn racing_and_interrupted_passes_roll_each_hour_up_exactly_once() {
    let db = TestDb::create().await;
    seed(&db.pool, 50).await;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // A first pass rolls up the hours older than 40 hours; then the range
    // row is held, so the next pass blocks inside its first chunk, holding
    // the advisory lock.
    let first = roll_up(&db.pool, hours(40), 1).await.unwrap();
    let mut holder = db.pool.begin().await.unwrap();
    sqlx::query("SELECT * FROM webhook_stats_rollup FOR UPDATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let pool = db.pool.clone();
    let blocked = tokio::spawn(async move { roll_up(&pool, Duration::zero(), 5).await });
    let victim: i32 = loop {
        let waiting: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND query LIKE '%webhook_stats_rollup FOR UPDATE%'",
        )
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        if let Some(pid) = waiting {
            break pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // Another replica meanwhile finds the lock taken and does nothing.
    let skipped = roll_up(&db.pool, Duration::zero(), 5).await.unwrap();
    assert!(skipped.skipped, "{skipped:?}");
    // The blocked pass dies mid-transaction (a crash, a deploy).
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(victim)
        .execute(&db.pool)
        .await
        .unwrap();
    holder.commit().await.unwrap();
    assert!(blocked.await.unwrap().is_err());

    // Two replicas at once: a chunk at a time under the advisory lock,
    // whichever gets it; together they roll every hour once.
    let (a, b) = {
        let (pa, pb) = (db.pool.clone(), db.pool.clone());
        tokio::join!(
            tokio::spawn(async move { roll_up(&pa, Duration::zero(), 3).await }),
            tokio::spawn(async move { roll_up(&pb, Duration::zero(), 3).await }),
        )
    };
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    let range = rolled_range(&db.pool).await.unwrap().unwrap();
    let expected_hours = (range.until - range.from).num_hours();
    assert!(expected_hours >= 50, "{range:?}");
    assert_eq!(
        first.hours + a.hours + b.hours,
        expected_hours,
        "{first:?} {a:?} {b:?}"
    );
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT DISTINCT webhook_id, hour, event FROM webhook_stats_hourly) d",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        distinct,
        count(&db.pool, "SELECT count(*) FROM webhook_stats_hourly").await
    );
    check_all(&db.pool, now).await;
    db.drop_database().await;
}

#[tokio::test]
async fn a_deleted_webhook_takes_its_summaries_along() {
    let db = TestDb::create().await;
    let ids = seed(&db.pool, 60).await;
    roll_up(&db.pool, Duration::zero(), 24).await.unwrap();
    assert_eq!(windows(&db.pool).await.len(), 2);
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_stats_hourly WHERE webhook_id = $1")
            .bind(ids[0])
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(held > 0);
    sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_stats_hourly WHERE webhook_id = $1")
            .bind(ids[0])
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // Its owner's summaries no longer hold its attempts.
    levels_agree(&db.pool).await;
    // Its attempts (kept in `webhook_logs` until retention) count nowhere.
    let all = check_all(&db.pool, now).await;
    assert!(all
        .iter()
        .all(|s| s.webhooks.iter().all(|w| w.webhook_id != ids[0])));
    // The windows summarised with it went; the next pass summarises them
    // without it.
    assert_eq!(windows(&db.pool).await, vec![]);
    roll_up(&db.pool, Duration::zero(), 24).await.unwrap();
    assert_eq!(windows(&db.pool).await.len(), 2);
    let all = check_all(&db.pool, now).await;
    assert!(all
        .iter()
        .all(|s| s.webhooks.iter().all(|w| w.webhook_id != ids[0])));
    db.drop_database().await;
}

#[tokio::test]
async fn retention_removes_the_summaries_of_the_days_it_drops() {
    let db = TestDb::create().await;
    // Eight days of attempts: with three days kept, the days whose end is
    // more than three days ago go, logs and summaries alike, and the
    // week's windows summarised ahead with them.
    seed(&db.pool, 8 * 24).await;
    roll_up(&db.pool, Duration::zero(), 24).await.unwrap();
    assert_eq!(windows(&db.pool).await.len(), 4);
    let deleted = webhookd_store::retention::purge(&db.pool, 4242, 3, 50)
        .await
        .unwrap();
    assert!(deleted.rollups > 0 && deleted.partitions > 0, "{deleted:?}");
    let (summaries, logs): (Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT (SELECT least(min(hour), (SELECT min(hour) FROM user_stats_hourly),
                              (SELECT min(day) FROM webhook_stats_daily))
                 FROM webhook_stats_hourly),
                (SELECT date_trunc('hour', min(created_at), 'UTC') FROM webhook_logs)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(summaries, logs);
    let kept: Vec<i32> = windows(&db.pool).await.into_iter().map(|w| w.0).collect();
    assert_eq!(kept, vec![22, 23]);
    roll_up(&db.pool, Duration::zero(), 24).await.unwrap();
    assert_eq!(windows(&db.pool).await.len(), 4);
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    check_all(&db.pool, now).await;
    db.drop_database().await;
}

/// The windows summarised under the current generation (the ones read).
async fn windows(pool: &PgPool) -> Vec<(i32, DateTime<Utc>)> {
    sqlx::query_as(
        "SELECT w.hours, w.until FROM stats_windows w, stats_generation g
         WHERE w.generation = g.n ORDER BY w.hours",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_offered_windows_are_summarised_ahead_and_read_from_their_summaries() {
    let db = TestDb::create().await;
    let ids = seed(&db.pool, 8 * 24).await;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let current_hour = now.duration_trunc(Duration::hours(1)).unwrap();
    let live = check_all(&db.pool, now).await;

    // The newest complete hour not rolled up yet (the first minutes of an
    // hour): the windows one hour shorter serve the periods.
    roll_up(&db.pool, hours(1), 24).await.unwrap();
    let until = current_hour - hours(1);
    assert_eq!(
        windows(&db.pool).await,
        vec![(22, until), (23, until), (166, until), (167, until)]
    );
    assert_eq!(check_all(&db.pool, now).await, live);

    // Caught up: the windows of the new end replace the old ones.
    roll_up(&db.pool, Duration::zero(), 24).await.unwrap();
    assert_eq!(
        windows(&db.pool).await,
        vec![
            (22, current_hour),
            (23, current_hour),
            (166, current_hour),
            (167, current_hour)
        ]
    );
    let summarised = check_all(&db.pool, now).await;
    assert_eq!(summarised, live);
    let stale: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM webhook_stats_window WHERE until <> $1)
              + (SELECT count(*) FROM user_stats_window WHERE until <> $1)",
    )
    .bind(current_hour)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(stale, 0);

    // The periods are read from the windows' rows: a change there shows.
    sqlx::query("UPDATE webhook_stats_window SET attempts = attempts + 1000 WHERE webhook_id = $1")
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE user_stats_window SET successes = successes + 1000 WHERE user_id = $1")
        .bind(BOB)
        .execute(&db.pool)
        .await
        .unwrap();
    for hours in [24, 168] {
        let read = load_stats(&db.pool, Scope::All, hours, now).await.unwrap();
        let exact = exact(&db.pool, Scope::All, read.from).await;
        let webhook = |stats: &BTreeMap<i64, Summary>| stats[&ids[0]].attempts;
        let read_webhooks: BTreeMap<i64, Summary> = read
            .webhooks
            .iter()
            .map(|w| (w.webhook_id, w.summary.clone()))
            .collect();
        assert_eq!(webhook(&read_webhooks), webhook(&exact.webhooks) + 1000);
        assert!(read.total.successes >= exact.total.unwrap().successes + 1000);
    }
    // Without their row in `stats_windows`, the other levels answer.
    sqlx::query("DELETE FROM stats_windows")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(check_all(&db.pool, now).await, live);
    // The next pass summarises them again, from the levels.
    roll_up(&db.pool, Duration::zero(), 24).await.unwrap();
    assert_eq!(windows(&db.pool).await.len(), 4);
    assert_eq!(check_all(&db.pool, now).await, live);
    db.drop_database().await;
}

#[tokio::test]
async fn the_complete_minutes_after_the_rolled_hours_are_summarised_and_read() {
    let db = TestDb::create().await;
    let ids = seed(&db.pool, 10).await;
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let live = check_all(&db.pool, now).await;
    // A margin that makes the last complete minute half past the hour
    // before the current one, whenever this runs.
    let current_hour = now.duration_trunc(Duration::hours(1)).unwrap();
    let complete = current_hour - Duration::minutes(30);
    roll_up(&db.pool, now - complete, 24).await.unwrap();
    let range = rolled_range(&db.pool).await.unwrap().unwrap();
    assert_eq!(range.until, current_hour - hours(1));
    let recent: (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT rolled_until, until FROM stats_recent")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(recent, (range.until, complete));
    let summarised_minutes = count(&db.pool, "SELECT count(*) FROM user_stats_recent").await;
    assert!(summarised_minutes > 0);
    assert_eq!(check_all(&db.pool, now).await, live);

    // Reads take them from their rows: a change there shows.
    sqlx::query("UPDATE webhook_stats_recent SET attempts = attempts + 1000 WHERE webhook_id = $1")
        .bind(ids[0])
        .execute(&db.pool)
        .await
        .unwrap();
    let read = load_stats(&db.pool, Scope::All, 24, now).await.unwrap();
    let exact = exact(&db.pool, Scope::All, read.from).await;
    let shown = read
        .webhooks
        .iter()
        .find(|w| w.webhook_id == ids[0])
        .unwrap();
    assert_eq!(
        shown.summary.attempts,
        exact.webhooks[&ids[0]].attempts + 1000
    );

    // A deleted webhook's share is in its owner's rows: they stop being
    // read (a newer generation), and the next pass summarises the minutes
    // without it.
    sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(ids[2])
        .execute(&db.pool)
        .await
        .unwrap();
    let current = "SELECT count(*) FROM stats_recent r, stats_generation g
                   WHERE r.generation = g.n";
    assert_eq!(count(&db.pool, current).await, 0);
    let without = check_all(&db.pool, now).await;
    roll_up(&db.pool, now - complete, 24).await.unwrap();
    assert_eq!(count(&db.pool, current).await, 1);
    let bobs = count(
        &db.pool,
        "SELECT count(*) FROM user_stats_recent WHERE user_id = 8",
    )
    .await;
    assert_eq!(bobs, 0);
    assert_eq!(check_all(&db.pool, now).await, without);
    db.drop_database().await;
}
