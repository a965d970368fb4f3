//! What one scenario runs against: its own database and its own uniquely
//! named exchange and queues, removed again afterwards.

use anyhow::{bail, Context};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use uuid::Uuid;
use webhookd_events::EventMessage;
use webhookd_producer::{Publisher, Topology};

use crate::receiver::{unix_nanos, SENT_FIELD};

/// Events are published in slices of this many, so a million-event backlog
/// never sits in the benchmark's memory at once.
const PUBLISH_CHUNK: usize = 10_000;

pub struct Servers {
    pub postgres: String,
    pub amqp_url: String,
    /// Run on every scenario's database after the migrations (experiments
    /// with indexes or settings before they become a migration).
    pub setup_sql: Option<String>,
}

/// Counters of [`Stage::writes`].
#[derive(Clone, Copy, Debug)]
pub struct Writes {
    pub rows: i64,
    pub commits: i64,
}

pub struct Stage {
    pub db_name: String,
    pub db_url: String,
    pub pool: PgPool,
    pub topology: Topology,
    admin: PgPool,
    amqp_url: String,
}

impl Stage {
    pub async fn create(servers: &Servers) -> anyhow::Result<Stage> {
        let stage = Stage::create_bare(servers).await?;
        if let Some(sql) = &servers.setup_sql {
            sqlx::raw_sql(sql)
                .execute(&stage.pool)
                .await
                .context("running --setup-sql")?;
        }
        Ok(stage)
    }

    async fn create_bare(servers: &Servers) -> anyhow::Result<Stage> {
        let suffix = Uuid::new_v4().simple().to_string();
        let db_name = format!("webhookd_bench_{suffix}");
        let admin = connect_admin(servers).await?;
        sqlx::query(&format!("CREATE DATABASE {db_name}"))
            .execute(&admin)
            .await?;
        let db_url = format!("{}/{db_name}", servers.postgres);
        let pool = PgPoolOptions::new()
            // One connection, so flushing its statistics (rows_written) is
            // flushing all of the benchmark's own.
            .max_connections(1)
            .connect(&db_url)
            .await?;
        webhookd_store::migrate(&pool).await?;
        Ok(Stage {
            db_name,
            db_url,
            pool,
            topology: Topology::new(
                format!("bench.events.{suffix}"),
                format!("bench.webhookd.{suffix}"),
            ),
            admin,
            amqp_url: servers.amqp_url.clone(),
        })
    }

    /// The database `db_name`, created and migrated when missing (and
    /// migrated again when it exists, so a kept database gets new
    /// migrations); with uniquely named exchange and queues as ever. Also
    /// says whether the database existed.
    pub async fn open_named(servers: &Servers, db_name: &str) -> anyhow::Result<(Stage, bool)> {
        if !db_name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            bail!("--scale-db must be lower-case letters, digits and _, got {db_name:?}");
        }
        let suffix = Uuid::new_v4().simple().to_string();
        let admin = connect_admin(servers).await?;
        let existed: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(db_name)
                .fetch_one(&admin)
                .await?;
        if !existed {
            sqlx::query(&format!("CREATE DATABASE {db_name}"))
                .execute(&admin)
                .await?;
        }
        let db_url = format!("{}/{db_name}", servers.postgres);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&db_url)
            .await?;
        webhookd_store::migrate(&pool).await?;
        if let Some(sql) = &servers.setup_sql {
            sqlx::raw_sql(sql)
                .execute(&pool)
                .await
                .context("running --setup-sql")?;
        }
        let stage = Stage {
            db_name: db_name.to_owned(),
            db_url,
            pool,
            topology: Topology::new(
                format!("bench.events.{suffix}"),
                format!("bench.webhookd.{suffix}"),
            ),
            admin,
            amqp_url: servers.amqp_url.clone(),
        };
        Ok((stage, existed))
    }

    /// Like [`Stage::remove`], but with `keep` the database stays.
    pub async fn finish(self, keep: bool) {
        if keep {
            self.pool.close().await;
            self.remove_broker_objects().await;
        } else {
            self.remove().await;
        }
    }

    /// One webhook per URL, subscribed to every event, batching its events
    /// when `batch_max_events` is given, with `filter` (JSON) when given.
    /// Returns their ids.
    pub async fn add_webhooks(
        &self,
        urls: &[String],
        batch_max_events: Option<i32>,
        filter: Option<&str>,
    ) -> anyhow::Result<Vec<i64>> {
        let (user, _token) =
            webhookd_store::users::create_user(&self.pool, "bench", None, false).await?;
        let mut ids = Vec::with_capacity(urls.len());
        for (i, url) in urls.iter().enumerate() {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO webhooks (user_id, name, url, events, secret, batch_max_events, filter) \
                 VALUES ($1, $2, $3, ARRAY['*'], $4, $5, $6::jsonb) RETURNING id",
            )
            .bind(user.id)
            .bind(format!("bench-{i}"))
            .bind(url)
            .bind(webhookd_signing::generate_secret())
            .bind(batch_max_events)
            .bind(filter)
            .fetch_one(&self.pool)
            .await?;
            ids.push(id);
        }
        Ok(ids)
    }

    pub async fn publisher(&self) -> anyhow::Result<Publisher> {
        Ok(Publisher::connect(&self.amqp_url, self.topology.clone()).await?)
    }

    /// Environment for `webhookd run` against this stage.
    pub fn daemon_env(&self, extra: &[(String, String)]) -> Vec<(String, String)> {
        let mut env = vec![
            ("WEBHOOKD__DATABASE__URL".to_owned(), self.db_url.clone()),
            ("WEBHOOKD__BROKER__URL".to_owned(), self.amqp_url.clone()),
            (
                "WEBHOOKD__BROKER__EXCHANGE".to_owned(),
                self.topology.exchange.clone(),
            ),
            (
                "WEBHOOKD__BROKER__QUEUE".to_owned(),
                self.topology.queue.clone(),
            ),
        ];
        env.extend(extra.iter().cloned());
        env
    }

    /// Rows inserted, updated or deleted and transactions committed in this
    /// database so far. Statistics of a backend reach the views when it
    /// commits (at most once a second) and when it exits, so read this with
    /// the daemon stopped (and give its backends a moment to exit).
    pub async fn writes(&self) -> anyhow::Result<Writes> {
        sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&self.pool)
            .await?;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (rows, commits): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint
                     FROM pg_stat_user_tables),
                    (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Writes { rows, commits })
    }

    /// Drops the database and deletes the exchanges and queues.
    pub async fn remove(self) {
        self.pool.close().await;
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.db_name
        ))
        .execute(&self.admin)
        .await;
        self.remove_broker_objects().await;
    }

    async fn remove_broker_objects(&self) {
        if let Ok(connection) =
            Connection::connect(&self.amqp_url, ConnectionProperties::default()).await
        {
            if let Ok(channel) = connection.create_channel().await {
                let t = &self.topology;
                for queue in [t.queue.clone(), format!("{}.dlq", t.queue)] {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                for exchange in [t.exchange.clone(), format!("{}.dlx", t.exchange)] {
                    let _ = channel
                        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                        .await;
                }
            }
            let _ = connection.close(200, "bench done".into()).await;
        }
    }
}

/// A `task.created` event shaped like the CRM's; with `stamp`, its data
/// carries the publish time for the receivers' latency figures.
/// A filter every benchmark event passes, with the work of a realistic one:
/// an exact match, a comparison, a prefix, a set, and a combinator.
pub const PASSING_FILTER: &str = r#"{"event": "task.created", "data.task_id": {"$gte": 0},
    "data.title": {"$startsWith": "Benchmark"},
    "$or": [{"data.status": {"$in": ["pending", "open"]}}, {"data.priority": "high"}],
    "data.assignee_id": {"$exists": true}}"#;

pub fn task_event(i: usize, stamp: bool) -> anyhow::Result<EventMessage> {
    let mut data = json!({
        "task_id": i,
        "title": "Benchmark task",
        "status": "pending",
        "priority": "medium",
        "assignee_id": 42,
    });
    if stamp {
        data[SENT_FIELD] = json!(unix_nanos());
    }
    Ok(EventMessage::new("task.created", data, 1_708_435_200)?)
}

/// Queues `events` events with confirms, in chunks.
pub async fn publish_backlog(publisher: &Publisher, events: usize) -> anyhow::Result<()> {
    let mut next = 0;
    while next < events {
        let end = (next + PUBLISH_CHUNK).min(events);
        let chunk: Vec<EventMessage> = (next..end)
            .map(|i| task_event(i, false))
            .collect::<Result<_, _>>()?;
        publisher.publish_many(&chunk, |_| {}).await?;
        next = end;
    }
    Ok(())
}

/// One connection to the server's `postgres` database, for creating and
/// dropping the scenarios' own.
async fn connect_admin(servers: &Servers) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", servers.postgres))
        .await
        .context("connecting to Postgres")
}
