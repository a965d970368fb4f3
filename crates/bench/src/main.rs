//! `webhookd-bench`: queues a backlog of events in RabbitMQ, then starts the
//! daemon and measures how fast it drains the backlog into local receivers,
//! with every delivery recorded in `webhook_logs`.
//!
//! Sets up and removes its own database and exchange/queues; sends traffic
//! only to 127.0.0.1.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhookd::{App, Role, Settings};
use webhookd_events::EventMessage;
use webhookd_producer::{Publisher, Topology};

#[derive(Parser)]
#[command(about = "Measure webhookd's drain rate for a queued backlog")]
struct Args {
    /// Events queued before the daemon starts.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Webhooks subscribed to every event (one local receiver each).
    #[arg(long, default_value_t = 1)]
    webhooks: usize,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let suffix = Uuid::new_v4().simple().to_string();
    let db_name = format!("webhookd_bench_{suffix}");
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", args.postgres))
        .await
        .context("connecting to Postgres")?;
    sqlx::query(&format!("CREATE DATABASE {db_name}"))
        .execute(&admin)
        .await?;
    let result = run(&args, &db_name, &suffix).await;
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)"))
        .execute(&admin)
        .await;
    result
}

async fn run(args: &Args, db_name: &str, suffix: &str) -> anyhow::Result<()> {
    let db_url = format!("{}/{db_name}", args.postgres);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&db_url)
        .await?;
    webhookd::storage::migrate(&pool).await?;
    let topology = Topology::new(
        format!("bench.events.{suffix}"),
        format!("bench.webhookd.{suffix}"),
    );

    let received = Arc::new(AtomicU64::new(0));
    let (user, _token) = webhookd::storage::users::create_user(&pool, "bench", None, false).await?;
    for i in 0..args.webhooks {
        let url = start_receiver(received.clone()).await?;
        sqlx::query(
            "INSERT INTO webhooks (user_id, name, url, events, secret) VALUES ($1, $2, $3, ARRAY['*'], $4)",
        )
        .bind(user.id)
        .bind(format!("bench-{i}"))
        .bind(url)
        .bind(webhookd_signing_secret())
        .execute(&pool)
        .await?;
    }

    let publisher = Publisher::connect(&args.amqp_url, topology.clone()).await?;
    let messages: Vec<EventMessage> = (0..args.events)
        .map(|i| {
            EventMessage::new(
                "task.created",
                json!({"task_id": i, "title": "Benchmark task", "status": "pending", "priority": "medium"}),
                1_708_435_200,
            )
        })
        .collect::<Result<_, _>>()?;
    let queued_at = Instant::now();
    publisher.publish_many(&messages, |_| {}).await?;
    let publish_secs = queued_at.elapsed().as_secs_f64();
    publisher.close().await;

    let settings = Settings::load_from_pairs(
        None,
        [
            ("WEBHOOKD__DATABASE__URL", db_url.as_str()),
            ("WEBHOOKD__BROKER__URL", args.amqp_url.as_str()),
            ("WEBHOOKD__BROKER__EXCHANGE", topology.exchange.as_str()),
            ("WEBHOOKD__BROKER__QUEUE", topology.queue.as_str()),
            ("WEBHOOKD__HTTP__LISTEN", "127.0.0.1:0"),
            ("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
            ("WEBHOOKD__LOG__LEVEL", "warn"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )?;
    webhookd::telemetry::init(&settings.log);
    let expected = (args.events * args.webhooks) as u64;
    let app = App::build(settings, Role::All).await?;
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    let daemon = tokio::spawn(app.run_until_stopped(cancel.clone()));

    let deadline = started + Duration::from_secs(600);
    loop {
        let recorded = recorded_successes(&pool).await?;
        if recorded >= expected as i64 && received.load(Ordering::Relaxed) >= expected {
            break;
        }
        if Instant::now() > deadline {
            bail!("drain did not finish within 10 minutes: {recorded} of {expected} recorded");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    cancel.cancel();
    daemon.await??;
    let logs: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_logs")
        .fetch_one(&pool)
        .await?;

    println!("webhookd drain benchmark");
    println!("  events queued        {}", args.events);
    println!("  webhooks             {}", args.webhooks);
    println!("  deliveries           {expected}");
    println!(
        "  publish (confirmed)  {:.0} events/s",
        args.events as f64 / publish_secs
    );
    println!("  drain time           {drain:.2} s");
    println!("  deliveries/s         {:.0}", expected as f64 / drain);
    println!("  webhook_logs rows    {logs}");
    println!(
        "  CPU (whole process)  {:.2} s = {:.3} s per 1k deliveries",
        cpu,
        cpu * 1000.0 / expected as f64
    );
    println!("  peak RSS (process)   {} MiB", peak_rss_kib() / 1024);
    Ok(())
}

async fn recorded_successes(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
        .fetch_one(pool)
        .await
}

fn webhookd_signing_secret() -> String {
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()
}

/// A minimal keep-alive receiver on 127.0.0.1 that counts requests.
async fn start_receiver(counter: Arc<AtomicU64>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/hook"))
}

/// User + system CPU time of this process, from /proc (Linux).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
