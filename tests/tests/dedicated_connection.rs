//! The connection the consumer and the recorder hold across statements: the
//! same backend every time (no return to the pool, hence no ping), and one
//! that broke is closed and replaced rather than reused.

use webhookd_e2e::db::TestDb;
use webhookd_store::dedicated::DedicatedConnection;
use webhookd_store::StorageError;

async fn backend_pid(held: &mut DedicatedConnection) -> Result<i32, StorageError> {
    let result = match held.connection().await {
        Ok(conn) => sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(conn)
            .await
            .map_err(StorageError::from),
        Err(e) => Err(e),
    };
    held.checked(result)
}

#[tokio::test]
async fn statements_share_one_backend_and_a_broken_one_is_replaced() {
    let db = TestDb::create().await;
    let mut held = DedicatedConnection::new(db.pool.clone());
    assert!(!held.is_holding(), "nothing is taken before the first use");

    let first = backend_pid(&mut held).await.expect("first statement");
    for _ in 0..5 {
        assert_eq!(
            backend_pid(&mut held).await.expect("statement"),
            first,
            "every statement runs on the held backend"
        );
    }
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid = $1",
    )
    .bind(first)
    .fetch_one(&db.pool)
    .await
    .expect("activity");
    assert_eq!(others, 1, "the held backend is alive");

    // The server ends that backend (a failover, an admin, a restart).
    let ended: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&db.pool)
        .await
        .expect("terminate");
    assert!(ended);
    let broken = backend_pid(&mut held).await;
    assert!(broken.is_err(), "the statement on the dead backend fails");
    assert!(!held.is_holding(), "the broken connection is let go");

    let replaced = backend_pid(&mut held).await.expect("a new connection");
    assert_ne!(replaced, first, "a fresh backend serves the next statement");
    assert_eq!(backend_pid(&mut held).await.expect("statement"), replaced);
    drop(held);
    db.drop_database().await;
}
