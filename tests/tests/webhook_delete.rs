//! Deleting a webhook removes its deliveries and logs (migration 0005 keeps
//! the cascade with a trigger instead of foreign keys), also when a fan-out
//! batch holding the webhook commits while the delete waits.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use webhookd_e2e::db::{count, TestDb};

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sql).execute(pool).await.expect("statement");
}

/// Two webhooks with one delivery and one log row each.
async fn seed(pool: &PgPool) {
    exec(pool, "INSERT INTO users (id, name) VALUES (1, 'u')").await;
    for id in [1, 2] {
        exec(
            pool,
            &format!(
                "INSERT INTO webhooks (id, user_id, name, url, events, secret) \
                 VALUES ({id}, 1, 'h', 'http://127.0.0.1:9/', ARRAY['*'], 's')"
            ),
        )
        .await;
        exec(
            pool,
            &format!(
                "INSERT INTO events (id, event, body) \
                 VALUES ('00000000-0000-7000-8000-00000000000{id}', 'task.created', '{{}}')"
            ),
        )
        .await;
        insert_delivery(
            pool,
            id,
            &format!("00000000-0000-7000-8000-00000000000{id}"),
        )
        .await;
    }
}

async fn insert_delivery(pool: &PgPool, webhook: i64, event: &str) {
    exec(
        pool,
        &format!(
            "INSERT INTO deliveries (id, event_id, webhook_id) VALUES (gen_random_uuid(), '{event}', {webhook}); \
             INSERT INTO webhook_logs (delivery_id, webhook_id, event, attempt, response_time_ms, is_success, payload) \
             VALUES (gen_random_uuid(), {webhook}, 'task.created', 1, 1, true, '{{}}')"
        ),
    )
    .await;
}

#[tokio::test]
async fn deleting_a_webhook_removes_its_deliveries_and_logs_only() {
    let db = TestDb::create().await;
    seed(&db.pool).await;
    exec(&db.pool, "DELETE FROM webhooks WHERE id = 1").await;
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM deliveries WHERE webhook_id = 1"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM webhook_logs WHERE webhook_id = 1"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM deliveries WHERE webhook_id = 2"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM webhook_logs WHERE webhook_id = 2"
        )
        .await,
        1
    );
    db.drop_database().await;
}

#[tokio::test]
async fn a_delete_waiting_for_a_fan_out_batch_removes_the_rows_it_wrote() {
    let db = TestDb::create().await;
    seed(&db.pool).await;
    // A fan-out batch in progress: it holds the webhook FOR KEY SHARE, as
    // `record_fanout` does, and has written a delivery it has not committed.
    let mut batch = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut batch).await.unwrap();
    sqlx::query("SELECT id FROM webhooks WHERE id = 1 FOR KEY SHARE")
        .execute(&mut batch)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO events (id, event, body) VALUES ('00000000-0000-7000-8000-0000000000aa', 'task.created', '{}'); \
         INSERT INTO deliveries (id, event_id, webhook_id) \
         VALUES (gen_random_uuid(), '00000000-0000-7000-8000-0000000000aa', 1)",
    )
    .execute(&mut batch)
    .await
    .unwrap();

    let pool = db.pool.clone();
    let delete =
        tokio::spawn(async move { exec(&pool, "DELETE FROM webhooks WHERE id = 1").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !delete.is_finished(),
        "the delete must wait for the batch's lock"
    );
    sqlx::query("COMMIT").execute(&mut batch).await.unwrap();
    delete.await.unwrap();

    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM webhooks WHERE id = 1").await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM deliveries WHERE webhook_id = 1"
        )
        .await,
        0,
        "the batch's delivery must not outlive its webhook"
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM deliveries WHERE webhook_id = 2"
        )
        .await,
        1
    );
    batch.close().await.ok();
    db.drop_database().await;
}
