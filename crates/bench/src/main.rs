//! `webhookd-bench`: runs the performance scenarios of issue #6 against the
//! real `webhookd` binary (its own process) and prints one Markdown table:
//! deliveries/s, publish→receipt latency, webhookd's CPU per 1k deliveries and
//! peak RSS, Postgres rows written per delivery, and `webhook_logs` rows.
//!
//! Every scenario sets up and removes its own database and exchange/queues;
//! traffic goes only to receivers on 127.0.0.1.

mod daemon;
mod plot;
mod receiver;
mod report;
mod samples;
mod scale;
mod scale_fill;
mod scenarios;
mod setup;
mod soak;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use crate::scenarios::Bench;
use crate::setup::Servers;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// A backlog of --drain-events events → 1 webhook.
    Drain1,
    /// A backlog of --fanout-events events → 10 webhooks.
    Drain10,
    /// --rate events/s for --steady-secs → 1 webhook.
    Steady1,
    /// --rate events/s for --steady-secs → 10 webhooks.
    Steady10,
    /// Like drain10, each webhook batching up to --batch-events events
    /// per request (SPEC §11).
    Drain10Batch,
    /// Like drain10, each webhook with a payload filter every event passes
    /// (SPEC §13): the cost of filters.
    Drain10Filter,
    /// Like drain10, with one receiver answering after --slow-ms.
    Fairness,
    /// --backlogs events each → 1 webhook: per-delivery cost by backlog size.
    Backlog,
    /// `crm-events publish --file` with --publish-events lines.
    Publish,
    /// Like drain10, each webhook limited to --drain10-rate-limit requests/s
    /// (SPEC §14), above what it gets: the cost of the shared budget.
    Drain10Rate,
    /// --rate-limited-events events → 1 webhook limited to
    /// --rate-limit requests/s: the measured rate must match it.
    RateLimited,
    /// --soak-rate events/s for --soak-secs → 10 webhooks, one answering
    /// after --soak-slow-ms and one failing, the daemon's RSS, fds and pool
    /// sampled every --soak-sample-secs into --soak-csv and --soak-svg
    /// (not part of the default run: it takes half an hour).
    Soak,
    /// The API's reads (logs, deliveries, stats: p50/p99) and one retention
    /// pass against --scale-rows `webhook_logs` rows over --scale-days days
    /// for --scale-webhooks webhooks, in database --scale-db (kept and
    /// reused with --scale-keep: filling takes minutes); not part of the
    /// default run.
    LogsAtScale,
}

#[derive(Parser)]
#[command(about = "Measure webhookd: drain rate, latency, CPU and memory")]
struct Args {
    /// Scenarios to run, in order (default: all but soak)
    #[arg(long, value_delimiter = ',', value_enum)]
    scenarios: Vec<Scenario>,
    #[arg(long, default_value_t = 20_000)]
    drain_events: usize,
    #[arg(long, default_value_t = 5_000)]
    fanout_events: usize,
    #[arg(long, default_value_t = 200)]
    rate: u32,
    #[arg(long, default_value_t = 15)]
    steady_secs: u32,
    #[arg(long, default_value_t = 1_000)]
    slow_ms: u64,
    /// batch_max_events of the drain10-batch webhooks
    #[arg(long, default_value_t = 100)]
    batch_events: i32,
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    backlogs: Vec<usize>,
    #[arg(long, default_value_t = 50_000)]
    publish_events: usize,
    /// rate_limit_per_s of the drain10-rate webhooks (not binding)
    #[arg(long, default_value_t = 10_000)]
    drain10_rate_limit: i32,
    /// rate_limit_per_s of the rate-limited webhook
    #[arg(long, default_value_t = 200)]
    rate_limit: i32,
    #[arg(long, default_value_t = 3_000)]
    rate_limited_events: usize,
    #[arg(long, default_value_t = 1_800)]
    soak_secs: u64,
    /// events/s published during the soak
    #[arg(long, default_value_t = 500)]
    soak_rate: u32,
    /// how long the soak's slow receiver takes to answer
    #[arg(long, default_value_t = 2_000)]
    soak_slow_ms: u64,
    #[arg(long, default_value_t = 10)]
    soak_sample_secs: u64,
    /// the soak's samples, one CSV line each
    #[arg(long, default_value = "soak.csv")]
    soak_csv: PathBuf,
    /// the soak's plot, redrawn at every sample
    #[arg(long, default_value = "soak.svg")]
    soak_svg: PathBuf,
    #[arg(long, default_value_t = 10_000_000)]
    scale_rows: u64,
    #[arg(long, default_value_t = 30)]
    scale_days: u32,
    #[arg(long, default_value_t = 1_000)]
    scale_webhooks: u32,
    #[arg(long, default_value_t = 10)]
    scale_users: u32,
    /// logs-at-scale's database
    #[arg(long, default_value = "webhookd_bench_scale")]
    scale_db: String,
    /// Keep logs-at-scale's database afterwards, and reuse it when it is
    /// already filled
    #[arg(long)]
    scale_keep: bool,
    /// Requests per call measured by logs-at-scale
    #[arg(long, default_value_t = 300)]
    scale_requests: usize,
    /// logs-at-scale's table, as CSV
    #[arg(long, default_value = "logs-at-scale.csv")]
    scale_csv: PathBuf,
    /// A webhookd setting for every scenario, e.g.
    /// `--set WEBHOOKD__BROKER__PREFETCH=512` (repeatable; also
    /// `TOKIO_WORKER_THREADS`, the daemon's runtime threads)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    settings: Vec<String>,
    /// The webhookd binary (default: next to this one)
    #[arg(long)]
    webhookd: Option<PathBuf>,
    /// The crm-events binary (default: next to this one)
    #[arg(long)]
    crm_events: Option<PathBuf>,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// SQL run on each scenario's database after the migrations, to try a
    /// schema or setting change before writing it as a migration
    #[arg(long, value_name = "SQL")]
    setup_sql: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenarios = if args.scenarios.is_empty() {
        Scenario::value_variants()
            .iter()
            .copied()
            .filter(|s| *s != Scenario::Soak && *s != Scenario::LogsAtScale)
            .collect()
    } else {
        args.scenarios.clone()
    };
    let mut settings = Vec::new();
    for pair in &args.settings {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--set wants KEY=VALUE, got {pair:?}");
        };
        if !key.starts_with("WEBHOOKD__") && key != "TOKIO_WORKER_THREADS" {
            bail!("--set keys are webhookd environment names (WEBHOOKD__... or TOKIO_WORKER_THREADS), got {key:?}");
        }
        settings.push((key.to_owned(), value.to_owned()));
    }
    let bench = Bench {
        servers: Servers {
            postgres: args.postgres.clone(),
            amqp_url: args.amqp_url.clone(),
            setup_sql: args.setup_sql.clone(),
        },
        webhookd: match &args.webhookd {
            Some(path) => path.clone(),
            None => daemon::sibling_binary("webhookd")?,
        },
        crm_events: match &args.crm_events {
            Some(path) => path.clone(),
            None => daemon::sibling_binary("crm-events")?,
        },
        settings,
    };

    let mut rows = Vec::new();
    for scenario in scenarios {
        let results = run(&bench, &args, scenario)
            .await
            .with_context(|| format!("scenario {scenario:?}"))?;
        for row in results {
            eprintln!(
                "{}",
                report::render(std::slice::from_ref(&row))
                    .lines()
                    .last()
                    .unwrap_or_default()
            );
            rows.push(row);
        }
    }
    if !rows.is_empty() {
        println!("{}", report::render(&rows));
    }
    Ok(())
}

async fn run(bench: &Bench, args: &Args, scenario: Scenario) -> anyhow::Result<Vec<report::Row>> {
    Ok(match scenario {
        Scenario::Drain1 => vec![
            scenarios::drain(
                bench,
                format!("drain {} events → 1 webhook", args.drain_events),
                args.drain_events,
                1,
                None,
                None,
                None,
            )
            .await?,
        ],
        Scenario::Drain10 => vec![
            scenarios::drain(
                bench,
                format!("drain {} events → 10 webhooks", args.fanout_events),
                args.fanout_events,
                10,
                None,
                None,
                None,
            )
            .await?,
        ],
        Scenario::Drain10Batch => vec![
            scenarios::drain(
                bench,
                format!(
                    "drain {} events → 10 webhooks, batches of {} (events counted)",
                    args.fanout_events, args.batch_events
                ),
                args.fanout_events,
                10,
                None,
                Some(args.batch_events),
                None,
            )
            .await?,
        ],
        Scenario::Drain10Filter => vec![
            scenarios::drain(
                bench,
                format!(
                    "drain {} events → 10 webhooks, each with a filter",
                    args.fanout_events
                ),
                args.fanout_events,
                10,
                None,
                None,
                Some(setup::PASSING_FILTER),
            )
            .await?,
        ],
        Scenario::Steady1 => vec![
            scenarios::steady(
                bench,
                format!("steady {}/s → 1 webhook", args.rate),
                args.rate,
                args.steady_secs,
                1,
            )
            .await?,
        ],
        Scenario::Steady10 => vec![
            scenarios::steady(
                bench,
                format!("steady {}/s → 10 webhooks", args.rate),
                args.rate,
                args.steady_secs,
                10,
            )
            .await?,
        ],
        Scenario::Fairness => vec![
            scenarios::drain(
                bench,
                format!(
                    "drain {} events → 10 webhooks, one answering in {} ms (9 fast counted)",
                    args.fanout_events, args.slow_ms
                ),
                args.fanout_events,
                10,
                Some(Duration::from_millis(args.slow_ms)),
                None,
                None,
            )
            .await?,
        ],
        Scenario::Backlog => {
            let mut rows = Vec::new();
            for &events in &args.backlogs {
                rows.push(
                    scenarios::drain(
                        bench,
                        format!("backlog {events} → 1 webhook"),
                        events,
                        1,
                        None,
                        None,
                        None,
                    )
                    .await?,
                );
            }
            rows
        }
        Scenario::Publish => vec![scenarios::publish_file(bench, args.publish_events).await?],
        Scenario::Drain10Rate => vec![
            scenarios::drain_rate_limited(
                bench,
                format!(
                    "drain {} events → 10 webhooks, each limited to {}/s",
                    args.fanout_events, args.drain10_rate_limit
                ),
                args.fanout_events,
                10,
                args.drain10_rate_limit,
            )
            .await?,
        ],
        Scenario::RateLimited => vec![
            scenarios::drain_rate_limited(
                bench,
                format!(
                    "drain {} events → 1 webhook limited to {}/s",
                    args.rate_limited_events, args.rate_limit
                ),
                args.rate_limited_events,
                1,
                args.rate_limit,
            )
            .await?,
        ],
        Scenario::LogsAtScale => {
            // Its own table: latencies per API call, not deliveries.
            scale::logs_at_scale(
                bench,
                &scale::Scale {
                    plan: scale_fill::FillPlan {
                        rows: args.scale_rows,
                        days: args.scale_days,
                        webhooks: args.scale_webhooks,
                        users: args.scale_users,
                    },
                    db_name: args.scale_db.clone(),
                    keep: args.scale_keep,
                    requests: args.scale_requests,
                    csv: args.scale_csv.clone(),
                },
            )
            .await?;
            Vec::new()
        }
        Scenario::Soak => vec![
            soak::soak(
                bench,
                &soak::Soak {
                    secs: args.soak_secs,
                    rate: args.soak_rate,
                    slow: Duration::from_millis(args.soak_slow_ms),
                    sample_every: Duration::from_secs(args.soak_sample_secs.max(1)),
                    csv: args.soak_csv.clone(),
                    svg: args.soak_svg.clone(),
                },
            )
            .await?,
        ],
    })
}
