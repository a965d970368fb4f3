//! Log retention [SPEC §7, §16]: old attempt logs (whole daily partitions),
//! finished events and expired web UI sessions are removed, by one replica
//! at a time under a transaction-scoped advisory lock, and the removals are
//! counted in `/metrics`. Partitions in detail: log_partitions.rs.

#![allow(clippy::unwrap_used)]
use std::time::Duration;

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;
use webhookd_e2e::db::{count, hold_xact_lock, TestDb};
use webhookd_e2e::{eventually, Subscribed, TestApp};
use webhookd_worker::retention::RetentionSettings;
use webhookd_worker::retention::{purge_once, Purged, LOCK_KEY};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_LOGS: i64 = 237;
const RECENT_LOGS: i64 = 15;
const EXPIRED_SESSIONS: i64 = 45;
const LIVE_SESSIONS: i64 = 2;

fn settings() -> RetentionSettings {
    RetentionSettings {
        logs_days: 30,
        // Small batches, so one pass runs several of them.
        batch_size: 20,
        interval_secs: 3600,
        ..RetentionSettings::default()
    }
}

async fn webhook(pool: &PgPool) -> i64 {
    sqlx::query("INSERT INTO users (id, name) VALUES (7, 'Alice')")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "INSERT INTO webhooks (user_id, name, url, events, secret)
         VALUES (7, 'hook', 'http://127.0.0.1:9/hook', '{task.created}', 'whsec_x')
         RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// `count` attempt logs of `webhook`, `days_ago` days old, in their day's
/// partition (created if missing).
async fn insert_logs(pool: &PgPool, webhook: i64, count: i64, days_ago: i32) {
    let mut tx = pool.begin().await.unwrap();
    insert_logs_in(&mut tx, webhook, count, days_ago).await;
    tx.commit().await.unwrap();
}

async fn insert_logs_in(conn: &mut PgConnection, webhook: i64, count: i64, days_ago: i32) {
    sqlx::query(
        "SELECT webhook_logs_ensure_partitions(d, d)
         FROM (SELECT ((now() - make_interval(days => $1)) AT TIME ZONE 'UTC')::date AS d) day",
    )
    .bind(days_ago)
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO webhook_logs (webhook_id, delivery_id, event, attempt, response_time_ms,
                                   is_success, payload, created_at)
         SELECT $1, gen_random_uuid(), 'task.created', 1, 5, true, '{}',
                now() - make_interval(days => $3)
         FROM generate_series(1, $2)",
    )
    .bind(webhook)
    .bind(count)
    .bind(days_ago)
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Fresh statistics: a pass counts a dropped partition's rows from them.
async fn analyze(pool: &PgPool) {
    sqlx::query("ANALYZE webhook_logs")
        .execute(pool)
        .await
        .unwrap();
}

async fn insert_event(pool: &PgPool, days_ago: i32) -> Uuid {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO events (id, event, body, created_at)
         VALUES ($1, 'task.created', '{}', now() - make_interval(days => $2))",
    )
    .bind(id)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
    id
}

/// `count` web UI sessions of user 7, expired (`expired`) or valid for a day.
async fn insert_sessions(pool: &PgPool, count: i64, expired: bool) {
    sqlx::query(
        "WITH token AS (
             INSERT INTO api_tokens (user_id, token_hash) VALUES (7, gen_random_uuid()::text::bytea)
             RETURNING id
         )
         INSERT INTO ui_sessions (id, user_id, token_id, csrf_token, expires_at)
         SELECT gen_random_uuid()::text::bytea, 7, token.id, 'csrf',
                now() + CASE WHEN $2 THEN interval '-1 minute' ELSE interval '1 day' END
         FROM token, generate_series(1, $1)",
    )
    .bind(count)
    .bind(expired)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn two_concurrent_passes_remove_exactly_the_old_rows_once_and_keep_the_recent_ones() {
    let db = TestDb::create().await;
    let hook = webhook(&db.pool).await;
    insert_logs(&db.pool, hook, OLD_LOGS, 40).await;
    insert_logs(&db.pool, hook, RECENT_LOGS, 1).await;
    let old_finished = insert_event(&db.pool, 40).await;
    let old_pending = insert_event(&db.pool, 40).await;
    let recent = insert_event(&db.pool, 1).await;
    insert_sessions(&db.pool, EXPIRED_SESSIONS, true).await;
    insert_sessions(&db.pool, LIVE_SESSIONS, false).await;
    sqlx::query("INSERT INTO deliveries (id, event_id, webhook_id) VALUES ($1, $2, $3)")
        .bind(Uuid::new_v4())
        .bind(old_pending)
        .bind(hook)
        .execute(&db.pool)
        .await
        .unwrap();

    analyze(&db.pool).await;

    // While another replica holds the lock (in a transaction: a session
    // lock would be unsafe behind a transaction-mode pooler), a pass
    // deletes nothing.
    let tx = hold_xact_lock(&db.url, LOCK_KEY).await;
    assert_eq!(
        purge_once(&db.pool, &settings()).await.unwrap(),
        Purged::default()
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM webhook_logs").await,
        OLD_LOGS + RECENT_LOGS
    );
    tx.commit().await.unwrap();

    // Two replicas at once: one runs, the other finds the lock taken or
    // nothing left; never both deleting, and the total is exact.
    let (pool_a, pool_b) = (db.pool.clone(), db.pool.clone());
    let a = tokio::spawn(async move { purge_once(&pool_a, &settings()).await });
    let b = tokio::spawn(async move { purge_once(&pool_b, &settings()).await });
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(
        a == Purged::default() || b == Purged::default(),
        "one pass at a time: {a:?} {b:?}"
    );
    assert_eq!(
        a.logs + b.logs,
        OLD_LOGS as u64,
        "every old log deleted once"
    );
    assert_eq!(
        a.events + b.events,
        1,
        "only the old, finished event deleted"
    );
    assert_eq!(
        a.sessions + b.sessions,
        EXPIRED_SESSIONS as u64,
        "only the expired sessions deleted"
    );

    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM webhook_logs").await,
        RECENT_LOGS
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM webhook_logs WHERE created_at < now() - interval '30 days'"
        )
        .await,
        0
    );
    let remaining: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM events ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert!(!remaining.contains(&old_finished));
    assert!(remaining.contains(&old_pending), "pending work is kept");
    assert!(remaining.contains(&recent));
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM ui_sessions WHERE expires_at > now()"
        )
        .await,
        LIVE_SESSIONS
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM ui_sessions").await,
        LIVE_SESSIONS
    );
    db.drop_database().await;
}

#[tokio::test]
async fn the_daemon_counts_the_rows_its_retention_job_deletes() {
    let Subscribed {
        app, webhook: hook, ..
    } = TestApp::spawn_with_webhook(
        &[("WEBHOOKD__RETENTION__INTERVAL_SECS", "1")],
        json!(["task.created"]),
        SECRET,
    )
    .await;
    // The old partition appears with its statistics, in one transaction:
    // the pass counts dropped rows from them.
    let mut tx = app.db.pool.begin().await.unwrap();
    insert_logs_in(&mut tx, hook, 42, 40).await;
    sqlx::query("ANALYZE webhook_logs")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    insert_logs(&app.db.pool, hook, 3, 0).await;

    eventually(Duration::from_secs(20), "the old logs deleted", || async {
        (app.metric("webhookd_logs_deleted_total").await == 42.0).then_some(())
    })
    .await;
    assert_eq!(
        count(&app.db.pool, "SELECT count(*) FROM webhook_logs").await,
        3
    );
    assert_eq!(app.metric("webhookd_events_deleted_total").await, 0.0);
    app.stop().await;
}
