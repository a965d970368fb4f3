//! `webhook_logs` partitioned by UTC day [SPEC §16]: migration 0016 converts
//! a populated table without losing a row, the daemon creates partitions
//! ahead at start-up, retention detaches and drops whole old partitions
//! (finishing an interrupted detach), one replica at a time, a writer whose
//! row finds no partition creates it, and deleting a webhook still deletes
//! its logs in every partition.

#![allow(clippy::unwrap_used)]
use std::str::FromStr;
use std::time::Duration;

use serde_json::json;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhookd::{App, Role, Settings};
use webhookd_e2e::db::{count, hold_xact_lock, TestDb, DEFAULT_SERVER_URL, NAME_PREFIX};
use webhookd_e2e::process::workspace_root;
use webhookd_e2e::{eventually, Subscribed, TestApp};
use webhookd_producer::EventMessage;
use webhookd_worker::retention::{purge_once, Purged, RetentionSettings, LOCK_KEY};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);

fn settings() -> RetentionSettings {
    RetentionSettings {
        logs_days: 30,
        batch_size: 20,
        ..RetentionSettings::default()
    }
}

/// The name of the partition of the UTC day `offset` days from today.
async fn partition_name(pool: &PgPool, offset: i32) -> String {
    sqlx::query_scalar(
        "SELECT 'webhook_logs_p' || to_char((now() AT TIME ZONE 'UTC')::date + $1, 'YYYYMMDD')",
    )
    .bind(offset)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Whether `name` is a partition of `webhook_logs` (detached tables are not).
async fn is_partition(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_logs_partitions() WHERE partition::text = $1)",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn table_exists(pool: &PgPool, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Creates the partitions of the days `from` to `to` days from today.
async fn ensure(pool: &PgPool, from: i32, to: i32) -> i32 {
    sqlx::query_scalar(
        "SELECT webhook_logs_ensure_partitions(d + $1, d + $2)
         FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) today",
    )
    .bind(from)
    .bind(to)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn webhook(pool: &PgPool, name: &str) -> i64 {
    sqlx::query("INSERT INTO users (id, name) VALUES (7, 'Alice') ON CONFLICT DO NOTHING")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "INSERT INTO webhooks (user_id, name, url, events, secret)
         VALUES (7, $1, 'http://127.0.0.1:9/hook', '{task.created}', 'whsec_x')
         RETURNING id",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// `count` logs of `webhook` stamped at noon (UTC) of the day `days_ago`
/// days before today.
async fn insert_logs(pool: &PgPool, webhook: i64, count: i64, days_ago: i32) {
    sqlx::query(
        "INSERT INTO webhook_logs (webhook_id, delivery_id, event, attempt, status_code,
                                   response_time_ms, is_success, payload, response,
                                   error_message, created_at)
         SELECT $1, gen_random_uuid(), 'task.created', g, CASE WHEN g % 2 = 0 THEN 200 END,
                g * 3, g % 2 = 0, 'payload ' || g, 'response ' || g, 'error ' || g,
                ((now() AT TIME ZONE 'UTC')::date - $3 + time '12:00') AT TIME ZONE 'UTC'
         FROM generate_series(1, $2) g",
    )
    .bind(webhook)
    .bind(count)
    .bind(days_ago)
    .execute(pool)
    .await
    .unwrap();
}

/// A database with the migrations up to `last` applied, and a pool to it.
async fn database_migrated_to(last: i64) -> (PgPool, String, Migrator) {
    let server = std::env::var("WEBHOOKD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
    let name = format!("{NAME_PREFIX}{}", Uuid::new_v4().simple());
    let admin = PgConnectOptions::from_str(&server)
        .unwrap()
        .database("postgres")
        .disable_statement_logging();
    let mut conn = admin.connect().await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(3)
        .connect_with(
            PgConnectOptions::from_str(&server)
                .unwrap()
                .database(&name)
                .disable_statement_logging(),
        )
        .await
        .unwrap();
    let all = Migrator::new(workspace_root().join("migrations"))
        .await
        .unwrap();
    let mut first = Migrator::new(workspace_root().join("migrations"))
        .await
        .unwrap();
    first.migrations = first
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    first.run(&pool).await.unwrap();
    (pool, name, all)
}

async fn drop_database(pool: PgPool, name: &str) {
    pool.close().await;
    let server = std::env::var("WEBHOOKD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
    let mut conn = PgConnectOptions::from_str(&server)
        .unwrap()
        .database("postgres")
        .disable_statement_logging()
        .connect()
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Every log row, every column, in id order.
/// Every row as JSON, without the columns later migrations add (0022's
/// headers, NULL for rows written before them).
async fn all_rows(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT (to_jsonb(l) - 'request_headers' - 'response_headers')::text
         FROM webhook_logs l ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn migrating_a_populated_table_keeps_every_row_and_partitions_it_by_day() {
    let (pool, name, all) = database_migrated_to(15).await;
    let hook = webhook(&pool, "hook").await;
    for days_ago in [20, 6, 3, 1, 0] {
        insert_logs(&pool, hook, 25, days_ago).await;
    }
    let before = all_rows(&pool).await;
    assert_eq!(before.len(), 125);

    all.run(&pool).await.unwrap();

    assert_eq!(all_rows(&pool).await, before, "every row, same values");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM pg_partitioned_table
             WHERE partrelid = 'webhook_logs'::regclass AND partdefid = 0"
        )
        .await,
        1,
        "partitioned, without a DEFAULT partition"
    );
    // The old table is one partition up to the end of today; the days after
    // it have their own.
    let legacy_upper: bool = sqlx::query_scalar(
        "SELECT upper_bound = ((now() AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC'
         FROM webhook_logs_partitions() WHERE partition::text = 'webhook_logs_legacy'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(legacy_upper);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM webhook_logs_legacy").await,
        125
    );
    for offset in 1..=7 {
        let day = partition_name(&pool, offset).await;
        assert!(is_partition(&pool, &day).await, "{day} exists");
    }
    // Ids go on from the old sequence, and the old indexes' purposes stay.
    let max_before: i64 = count(&pool, "SELECT max(id) FROM webhook_logs").await;
    sqlx::query(
        "INSERT INTO webhook_logs (webhook_id, delivery_id, event, attempt, response_time_ms,
                                   is_success, payload, created_at)
         VALUES ($1, gen_random_uuid(), 'task.created', 1, 5, true, '{}', now() + interval '1 day')",
    )
    .bind(hook)
    .execute(&pool)
    .await
    .unwrap();
    assert!(count(&pool, "SELECT max(id) FROM webhook_logs").await > max_before);
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid = 'webhook_logs'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for wanted in [
        "(webhook_id, created_at DESC)",
        "(delivery_id)",
        "(created_at)",
        "(id, created_at)",
    ] {
        assert!(
            // Later migrations may add INCLUDE columns to the same keys.
            indexes
                .iter()
                .any(|i| i.contains(&format!("USING btree {wanted}"))),
            "{wanted} in {indexes:?}"
        );
    }
    drop_database(pool, &name).await;
}

#[tokio::test]
async fn a_fresh_database_has_daily_partitions_only() {
    let db = TestDb::create().await;
    assert!(!table_exists(&db.pool, "webhook_logs_legacy").await);
    for offset in -7..=7 {
        let day = partition_name(&db.pool, offset).await;
        assert!(is_partition(&db.pool, &day).await, "{day} exists");
    }
    db.drop_database().await;
}

#[tokio::test]
async fn start_up_creates_the_partitions_ahead() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__RETENTION__PARTITIONS_AHEAD_DAYS", "12")]).await;
    for offset in 0..=12 {
        let day = partition_name(&app.db.pool, offset).await;
        assert!(is_partition(&app.db.pool, &day).await, "{day} exists");
    }
    assert!(
        !table_exists(&app.db.pool, &partition_name(&app.db.pool, 13).await).await,
        "not more than asked"
    );
    app.stop().await;
}

#[tokio::test]
async fn start_up_fails_naming_the_key_when_partitions_cannot_be_created() {
    let db = TestDb::create().await;
    // A table in the way of the tenth day's partition.
    let day = partition_name(&db.pool, 10).await;
    sqlx::query(&format!("CREATE TABLE {day} (x int)"))
        .execute(&db.pool)
        .await
        .unwrap();
    let settings = Settings::load_from_pairs(
        None,
        vec![
            ("WEBHOOKD__DATABASE__URL".to_owned(), db.url.clone()),
            (
                "WEBHOOKD__HTTP__LISTEN".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
            (
                "WEBHOOKD__BROKER__EXCHANGE".to_owned(),
                format!("test.events.{}", Uuid::new_v4().simple()),
            ),
            (
                "WEBHOOKD__BROKER__QUEUE".to_owned(),
                format!("test.webhookd.{}", Uuid::new_v4().simple()),
            ),
            (
                "WEBHOOKD__RETENTION__PARTITIONS_AHEAD_DAYS".to_owned(),
                "12".to_owned(),
            ),
        ],
    )
    .unwrap();
    let app = App::build(settings, Role::All).await.unwrap();
    let cancel = CancellationToken::new();
    let result = tokio::time::timeout(WAIT, app.run_until_stopped(cancel.clone()))
        .await
        .expect("start-up gives up instead of running");
    cancel.cancel();
    let error = result.expect_err("start-up fails").to_string();
    assert!(
        error.contains("retention.partitions_ahead_days") && error.contains(&day),
        "{error}"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn retention_drops_old_partitions_whole_and_keeps_recent_ones() {
    let db = TestDb::create().await;
    let hook = webhook(&db.pool, "hook").await;
    assert_eq!(ensure(&db.pool, -45, -40).await, 6);
    insert_logs(&db.pool, hook, 40, 45).await;
    insert_logs(&db.pool, hook, 17, 41).await;
    // Day 30's partition ends at the start of day 29, less than 30 days
    // before now: it stays, as does day 29's.
    ensure(&db.pool, -30, -29).await;
    insert_logs(&db.pool, hook, 9, 30).await;
    insert_logs(&db.pool, hook, 5, 29).await;
    insert_logs(&db.pool, hook, 3, 0).await;
    sqlx::query("ANALYZE webhook_logs")
        .execute(&db.pool)
        .await
        .unwrap();

    let purged = purge_once(&db.pool, &settings()).await.unwrap();
    assert_eq!(purged.partitions, 6, "{purged:?}");
    assert_eq!(purged.logs, 40 + 17, "{purged:?}");
    for days_ago in 40..=45 {
        let day = partition_name(&db.pool, -days_ago).await;
        assert!(!table_exists(&db.pool, &day).await, "{day} dropped");
    }
    assert!(is_partition(&db.pool, &partition_name(&db.pool, -30).await).await);
    assert!(is_partition(&db.pool, &partition_name(&db.pool, -29).await).await);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM webhook_logs").await,
        17
    );
    // Nothing is left to drop.
    let again = purge_once(&db.pool, &settings()).await.unwrap();
    assert_eq!((again.partitions, again.logs), (0, 0));
    db.drop_database().await;
}

#[tokio::test]
async fn an_interrupted_detach_is_finalized_by_the_next_pass() {
    let db = TestDb::create().await;
    let hook = webhook(&db.pool, "hook").await;
    ensure(&db.pool, -40, -40).await;
    insert_logs(&db.pool, hook, 11, 40).await;
    sqlx::query("ANALYZE webhook_logs")
        .execute(&db.pool)
        .await
        .unwrap();
    let old = partition_name(&db.pool, -40).await;

    // A reader in a transaction makes DETACH ... CONCURRENTLY wait after
    // its first step; cancelling it there leaves the partition pending.
    let mut reader = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM webhook_logs")
        .execute(&mut reader)
        .await
        .unwrap();
    let mut detacher = PgConnection::connect(&db.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut detacher)
        .await
        .unwrap();
    let statement = format!("ALTER TABLE webhook_logs DETACH PARTITION {old} CONCURRENTLY");
    let detach = sqlx::raw_sql(&statement).execute(&mut detacher);
    let interrupt = async {
        eventually(WAIT, "the detach pending", || async {
            let pending: Option<bool> = sqlx::query_scalar(
                "SELECT detach_pending FROM webhook_logs_partitions() WHERE partition::text = $1",
            )
            .bind(&old)
            .fetch_optional(&db.pool)
            .await
            .unwrap();
            (pending == Some(true)).then_some(())
        })
        .await;
        sqlx::query("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .execute(&db.pool)
            .await
            .unwrap();
    };
    let (result, ()) = tokio::join!(detach, interrupt);
    assert!(result.is_err(), "the detach was interrupted");
    sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
    assert!(is_partition(&db.pool, &old).await, "still pending");

    let purged = purge_once(&db.pool, &settings()).await.unwrap();
    assert_eq!((purged.partitions, purged.logs), (1, 11), "{purged:?}");
    assert!(!table_exists(&db.pool, &old).await);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM webhook_logs_partitions() WHERE detach_pending"
        )
        .await,
        0
    );
    db.drop_database().await;
}

#[tokio::test]
async fn a_day_detached_but_not_dropped_is_dropped_by_the_next_pass() {
    let db = TestDb::create().await;
    let hook = webhook(&db.pool, "hook").await;
    ensure(&db.pool, -50, -50).await;
    insert_logs(&db.pool, hook, 6, 50).await;
    sqlx::query("ANALYZE webhook_logs")
        .execute(&db.pool)
        .await
        .unwrap();
    let old = partition_name(&db.pool, -50).await;
    // A pass stopped between its detach and its drop.
    sqlx::query(&format!("ALTER TABLE webhook_logs DETACH PARTITION {old}"))
        .execute(&db.pool)
        .await
        .unwrap();
    // A recent day's table that is not a partition stays.
    let recent = partition_name(&db.pool, 20).await;
    sqlx::query(&format!("CREATE TABLE {recent} (x int)"))
        .execute(&db.pool)
        .await
        .unwrap();

    let purged = purge_once(&db.pool, &settings()).await.unwrap();
    assert_eq!((purged.partitions, purged.logs), (1, 6), "{purged:?}");
    assert!(!table_exists(&db.pool, &old).await);
    assert!(table_exists(&db.pool, &recent).await);
    db.drop_database().await;
}

#[tokio::test]
async fn one_pass_at_a_time_drops_the_old_partitions() {
    let db = TestDb::create().await;
    let hook = webhook(&db.pool, "hook").await;
    ensure(&db.pool, -42, -40).await;
    for days_ago in 40..=42 {
        insert_logs(&db.pool, hook, 10, days_ago).await;
    }
    sqlx::query("ANALYZE webhook_logs")
        .execute(&db.pool)
        .await
        .unwrap();

    // While another replica holds the lock (in a transaction, as a pass
    // does), a pass drops nothing.
    let tx = hold_xact_lock(&db.url, LOCK_KEY).await;
    assert_eq!(
        purge_once(&db.pool, &settings()).await.unwrap(),
        Purged::default()
    );
    for days_ago in 40..=42 {
        let day = partition_name(&db.pool, -days_ago).await;
        assert!(is_partition(&db.pool, &day).await, "{day} kept");
    }
    tx.commit().await.unwrap();

    // Two at once: one acts, the other finds the lock taken or nothing left.
    let (pool_a, pool_b) = (db.pool.clone(), db.pool.clone());
    let a = tokio::spawn(async move { purge_once(&pool_a, &settings()).await });
    let b = tokio::spawn(async move { purge_once(&pool_b, &settings()).await });
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(
        a == Purged::default() || b == Purged::default(),
        "one pass at a time: {a:?} {b:?}"
    );
    assert_eq!(a.partitions + b.partitions, 3);
    assert_eq!(a.logs + b.logs, 30);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM webhook_logs").await,
        0
    );
    db.drop_database().await;
}

#[tokio::test]
async fn an_attempt_on_a_day_without_a_partition_is_still_recorded() {
    let overrides = [
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2"),
        // Time enough to take the partition away again before the retry.
        ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "3000"),
        ("WEBHOOKD__DELIVERY__MAX_BACKOFF_MS", "3000"),
        ("WEBHOOKD__DELIVERY__JITTER", "none"),
    ];
    let Subscribed {
        app,
        receiver,
        webhook: hook,
        ..
    } = TestApp::spawn_with_webhook(&overrides, json!(["deal.won"]), SECRET).await;
    receiver.always(503);
    let today = partition_name(&app.db.pool, 0).await;
    // As if the daemon had been down for longer than it creates ahead.
    sqlx::query(&format!("DROP TABLE {today}"))
        .execute(&app.db.pool)
        .await
        .unwrap();
    let event = EventMessage::new("deal.won", json!({"deal_id": 456}), 1).unwrap();
    app.publisher.publish(&event).await.unwrap();

    // The first attempt (written with the fan-out) recreates the partition.
    eventually(WAIT, "the first attempt logged", || async {
        let logged = count(
            &app.db.pool,
            &format!("SELECT count(*) FROM webhook_logs WHERE webhook_id = {hook}"),
        )
        .await;
        (logged == 1).then_some(())
    })
    .await;
    assert!(is_partition(&app.db.pool, &today).await);
    // Gone again before the retry is recorded (by the recorder, this time).
    sqlx::query(&format!("DROP TABLE {today}"))
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(app.wait_for_settled(hook, WAIT).await, "failed");
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempt FROM webhook_logs WHERE webhook_id = $1")
            .bind(hook)
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, vec![2], "the retry's row is there");
    assert!(is_partition(&app.db.pool, &today).await);
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_webhook_deletes_its_logs_in_every_partition() {
    let db = TestDb::create().await;
    let gone = webhook(&db.pool, "gone").await;
    let kept = webhook(&db.pool, "kept").await;
    for days_ago in [5, 2, 0] {
        insert_logs(&db.pool, gone, 4, days_ago).await;
        insert_logs(&db.pool, kept, 2, days_ago).await;
    }
    assert_eq!(
        count(
            &db.pool,
            &format!("SELECT count(DISTINCT tableoid) FROM webhook_logs WHERE webhook_id = {gone}")
        )
        .await,
        3,
        "spread over three partitions"
    );
    sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(gone)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        count(
            &db.pool,
            &format!("SELECT count(*) FROM webhook_logs WHERE webhook_id = {gone}")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            &format!("SELECT count(*) FROM webhook_logs WHERE webhook_id = {kept}")
        )
        .await,
        6
    );
    db.drop_database().await;
}
