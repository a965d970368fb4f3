//! After Postgres drops every connection (a restart, a failover, backends
//! terminated), the pool loses one statement, not one per pooled
//! connection: the first broken connection retires the others opened
//! before it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use secrecy::SecretString;
use webhookd_e2e::db::TestDb;
use webhookd_e2e::eventually;

const POOLED: usize = 4;
const APP_NAME: &str = "webhookd-pool-recovery-test";

#[tokio::test]
async fn terminated_backends_cost_one_failed_statement_not_one_per_connection() {
    let db = TestDb::create().await;
    let url = SecretString::from(db.url.clone());
    let pool = webhookd_store::connect_lazy_as(&url, POOLED as u32, APP_NAME).unwrap();

    // Fill the pool: every connection open and idle.
    let mut held = Vec::new();
    for _ in 0..POOLED {
        held.push(pool.acquire().await.unwrap());
    }
    drop(held);
    let count_backends = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2",
        )
        .bind(&db.name)
        .bind(APP_NAME)
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    assert_eq!(count_backends().await, POOLED as i64);

    // What a restart does to them.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = $1 AND application_name = $2",
    )
    .bind(&db.name)
    .bind(APP_NAME)
    .execute(&db.pool)
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the backends to end", || async {
        (count_backends().await == 0).then_some(())
    })
    .await;

    let mut failures = 0;
    for _ in 0..POOLED {
        if webhookd_store::users::find_user(&pool, 1).await.is_err() {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 1,
        "one statement finds the break; the other idle connections are replaced, not used"
    );
    assert!(webhookd_store::users::find_user(&pool, 1).await.is_ok());
    pool.close().await;
    db.drop_database().await;
}
