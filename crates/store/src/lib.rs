//! webhookd's Postgres access: the connection pool, migrations, and one
//! module per table family. It knows nothing of the pipeline or the HTTP
//! side above it.

pub mod attempt_feed;
pub mod backlog;
pub mod batches;
pub mod breakers;
pub mod dedicated;
pub mod deliveries;
pub mod delivery_admin;
pub mod fanout;
pub mod fifo;
pub mod handback;
pub mod logs;
pub mod notify;
pub mod outbox;
pub mod page;
pub mod partitions;
pub mod probes;
pub mod rate_limits;
pub mod replay;
pub mod response_histogram;
pub mod retention;
pub mod secrets_at_rest;
pub mod stats;
pub mod stats_rollup;
pub mod test_deliveries;
pub mod ui_sessions;
pub mod ui_submissions;
pub mod users;
pub mod webhook_overview;
pub mod webhooks;

mod advisory;
mod connection_health;
mod stats_recent;
mod stats_windows;

use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

// The wrapped errors are shown in the message and deliberately not exposed as
// `source()`: error reporters print the chain, and the cause would appear twice.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("database: {0}")]
    Database(sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    /// A secret that could not be sealed or opened (SPEC §15).
    #[error("secrets at rest: {0}")]
    Secret(#[from] webhookd_events::SecretBoxError),
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        if connection_lost(&e) {
            connection_health::lost_now();
        }
        StorageError::Database(e)
    }
}

/// Whether `e` says the connection itself is gone (the server restarted,
/// the backend was terminated, the socket broke), rather than a statement
/// failing on a healthy connection.
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exceptions; 57P01-57P03: admin or crash
            // shutdown, cannot connect now.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StorageError::Migrate(e)
    }
}

fn options(url: &SecretString) -> Result<PgConnectOptions, StorageError> {
    // Statement logging would put event payloads and secrets in the logs.
    Ok(PgConnectOptions::from_str(url.expose_secret())?.disable_statement_logging())
}

pub async fn connect(url: &SecretString, max_connections: u32) -> Result<PgPool, StorageError> {
    let options = options(url)?;
    // One direct connection first: a pool only says "timed out", while this
    // reports the real cause (refused, unknown database, bad password).
    options.connect().await?.close().await?;
    let pool = pool_options(max_connections).connect_with(options).await?;
    Ok(pool)
}

/// No ping before each acquire: it is a round trip per statement on the hot
/// path. A connection that broke while idle fails its next statement instead,
/// which every caller already treats as a database error (the work is
/// retried), and sqlx closes it rather than returning it to the pool.
///
/// Connections rarely break alone: a Postgres restart or failover breaks
/// every idle one at once, and each would fail one statement in turn. So
/// the first lost connection marks the time (`connection_health`), and a
/// connection opened before that mark is closed when next taken from the
/// pool instead of being used: a restart costs one failed statement per
/// process, not one per pooled connection. A clock read and a compare per
/// acquire, no round trip.
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|_connection, meta| {
            Box::pin(async move { Ok(connection_health::opened_after_last_loss(meta.age)) })
        })
}

/// A pool that connects on first use: lets the daemon start (and report
/// not-ready) while the database is down.
pub fn connect_lazy(url: &SecretString, max_connections: u32) -> Result<PgPool, StorageError> {
    Ok(pool_options(max_connections).connect_lazy_with(options(url)?))
}

/// [`connect_lazy`], its connections named `application_name` (what
/// `pg_stat_activity` shows), overriding one the URL may set.
pub fn connect_lazy_as(
    url: &SecretString,
    max_connections: u32,
    application_name: &str,
) -> Result<PgPool, StorageError> {
    let options = options(url)?.application_name(application_name);
    Ok(pool_options(max_connections).connect_lazy_with(options))
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn create_database_if_missing(url: &SecretString) -> Result<bool, StorageError> {
    let target = options(url)?;
    let Some(name) = target.get_database().map(str::to_owned) else {
        return Ok(false);
    };
    let mut admin = target.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        let created = sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await;
        // Two replicas migrating at once: the loser sees duplicate_database.
        if let Err(e) = created {
            let duplicate = e
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|code| code == "42P04");
            if !duplicate {
                return Err(e.into());
            }
        }
    }
    admin.close().await?;
    Ok(!exists)
}

pub async fn migrate(pool: &PgPool) -> Result<(), StorageError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The migrations this binary has that the database at `url` has not
/// applied (all of them for an empty database), in order. A newer schema
/// than the binary is fine: migrations only add.
pub async fn missing_migrations(url: &SecretString) -> Result<Vec<i64>, StorageError> {
    let mut conn = options(url)?.connect().await?;
    let applied: Vec<i64> =
        if sqlx::query_scalar::<_, bool>("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?
        {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&mut conn)
                .await?
        } else {
            Vec::new()
        };
    conn.close().await?;
    Ok(MIGRATOR
        .iter()
        .map(|m| m.version)
        .filter(|version| !applied.contains(version))
        .collect())
}
