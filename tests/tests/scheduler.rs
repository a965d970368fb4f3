//! The scheduler's view of the `deliveries` table: when it should wake next.

use std::time::Duration;

use webhookd_e2e::db::TestDb;
use webhookd_store::deliveries::next_due_in;

/// An idle worker must sleep until its poll interval, not spin: nothing
/// pending is "nothing due", never "due now".
#[tokio::test]
async fn nothing_pending_means_no_wake_up_time() {
    let db = TestDb::create().await;
    assert_eq!(next_due_in(&db.pool).await.unwrap(), None);

    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'u')")
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO webhooks (id, user_id, name, url, events, secret) \
         VALUES (1, 1, 'h', 'http://127.0.0.1:9/', ARRAY['*'], 's')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let insert_delivery = |id: &'static str, status: &'static str, due_in_secs: i32| {
        let pool = db.pool.clone();
        async move {
            // One event per delivery: (event, webhook) is unique.
            sqlx::query(
                "INSERT INTO events (id, event, body) VALUES ($1::uuid, 'task.created', '{}')",
            )
            .bind(id)
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO deliveries (id, event_id, webhook_id, status, next_attempt_at) \
                 VALUES ($1::uuid, $1::uuid, 1, $2, now() + make_interval(secs => $3))",
            )
            .bind(id)
            .bind(status)
            .bind(due_in_secs)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    // Finished deliveries never make the scheduler wake.
    insert_delivery("00000000-0000-7000-8000-00000000000a", "succeeded", -60).await;
    assert_eq!(next_due_in(&db.pool).await.unwrap(), None);

    insert_delivery("00000000-0000-7000-8000-00000000000b", "pending", 30).await;
    let due = next_due_in(&db.pool)
        .await
        .unwrap()
        .expect("a pending delivery");
    assert!(
        due > Duration::from_secs(25) && due <= Duration::from_secs(30),
        "{due:?}"
    );

    // Overdue is due now, not a negative wait.
    sqlx::query("UPDATE deliveries SET next_attempt_at = now() - interval '1 minute' WHERE status = 'pending'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(next_due_in(&db.pool).await.unwrap(), Some(Duration::ZERO));
    db.drop_database().await;
}

/// Renewing leases never waits for a row whose outcome is being written: it
/// skips it. Waiting deadlocked with the recorder (both lock many rows).
#[tokio::test]
async fn lease_renewal_skips_a_row_being_written() {
    use sqlx::{Connection, PgConnection};
    use webhookd_events::delivery::Lease;
    use webhookd_store::handback::renew_leases;

    let db = TestDb::create().await;
    sqlx::raw_sql(
        "INSERT INTO users (id, name) VALUES (1, 'u');
         INSERT INTO webhooks (id, user_id, name, url, events, secret)
             VALUES (1, 1, 'h', 'http://127.0.0.1:9/', ARRAY['*'], 's');
         INSERT INTO events (id, event, body) VALUES
             ('00000000-0000-7000-8000-000000000001', 'task.created', '{}'),
             ('00000000-0000-7000-8000-000000000002', 'task.created', '{}');
         INSERT INTO deliveries (id, event_id, webhook_id, next_attempt_at) VALUES
             ('00000000-0000-7000-8000-00000000000a', '00000000-0000-7000-8000-000000000001', 1, now()),
             ('00000000-0000-7000-8000-00000000000b', '00000000-0000-7000-8000-000000000002', 1, now());",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let a = uuid::Uuid::parse_str("00000000-0000-7000-8000-00000000000a").unwrap();
    let b = uuid::Uuid::parse_str("00000000-0000-7000-8000-00000000000b").unwrap();

    let mut writer = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("BEGIN; SELECT 1 FROM deliveries WHERE id = '00000000-0000-7000-8000-00000000000a' FOR UPDATE;")
        .execute(&mut writer)
        .await
        .unwrap();
    let lease = Lease {
        default_timeout_ms: 10_000,
        margin_ms: 30_000,
    };
    let renewed = tokio::time::timeout(
        Duration::from_secs(10),
        renew_leases(&db.pool, &[(a, 0), (b, 0)], lease),
    )
    .await
    .expect("renewal must not wait for the locked row")
    .unwrap();
    assert_eq!(
        renewed, 1,
        "the unlocked row is renewed, the locked one skipped"
    );
    let leased: bool = sqlx::query_scalar(
        "SELECT next_attempt_at > now() + interval '30 seconds' FROM deliveries WHERE id = $1",
    )
    .bind(b)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(leased);
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .unwrap();
    writer.close().await.ok();
    db.drop_database().await;
}
