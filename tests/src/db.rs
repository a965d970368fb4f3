//! `TestDb`: a fresh, uniquely named, migrated Postgres database per test, so
//! tests run in parallel without seeing each other's rows.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The server tests use; `WEBHOOKD_TEST_DATABASE_URL` overrides it (any
/// database name in it is ignored: each test gets its own).
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/";

/// Test databases are named with this prefix, so leftovers of crashed runs are
/// easy to find and drop.
pub const NAME_PREFIX: &str = "webhookd_test_";

pub struct TestDb {
    pub pool: PgPool,
    /// The database's URL, for settings (`WEBHOOKD__DATABASE__URL`).
    pub url: String,
    pub name: String,
    server_url: String,
}

impl TestDb {
    /// Creates the database and applies every migration.
    pub async fn create() -> TestDb {
        let server_url = std::env::var("WEBHOOKD_TEST_DATABASE_URL")
            .unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
        let name = format!("{NAME_PREFIX}{}", Uuid::new_v4().simple());
        let mut admin = connect_admin(&server_url).await;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        admin.close().await.ok();

        let mut url = reqwest::Url::parse(&server_url).expect("a valid database server URL");
        url.set_path(&name);
        let url = url.to_string();
        let options = PgConnectOptions::from_str(&url)
            .expect("a valid database URL")
            .disable_statement_logging();
        // A few connections per test: many tests run at once against one
        // server whose default limit is 100 connections.
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("connecting to test database {name}: {e}"));
        webhookd_store::migrate(&pool)
            .await
            .unwrap_or_else(|e| panic!("migrating test database {name}: {e}"));
        TestDb {
            pool,
            url,
            name,
            server_url,
        }
    }

    /// Closes the pool and drops the database, ending any connection still
    /// open to it (a daemon under test may not have let go yet).
    pub async fn drop_database(self) {
        self.pool.close().await;
        let mut admin = connect_admin(&self.server_url).await;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("dropping test database {}: {e}", self.name));
        admin.close().await.ok();
    }
}

/// The number a `SELECT count(*) ...` statement answers.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// A connection to the server's maintenance database `postgres`.
async fn connect_admin(server_url: &str) -> PgConnection {
    PgConnectOptions::from_str(server_url)
        .expect("a valid database server URL")
        .database("postgres")
        .disable_statement_logging()
        .connect()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connecting to Postgres at {server_url}: {e} \
                 (start it with `pg_ctlcluster <version> main start`)"
            )
        })
}

/// A transaction on a connection of its own holding the transaction-scoped
/// advisory lock `key`, as another replica's pass would; the lock goes with
/// the transaction's end.
pub async fn hold_xact_lock(url: &str, key: i64) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    let mut tx = own.begin().await.unwrap();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert!(held, "advisory lock {key} is free");
    tx
}
