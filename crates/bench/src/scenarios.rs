//! The scenarios of issue #6. Each one gets its own database, exchange,
//! queues and receivers, and its own `webhookd` process, so one scenario's
//! leftovers never slow the next.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use crate::daemon::{cpu_of_processes, usage_of, Daemon, Usage};
use crate::receiver;
use crate::report::Row;
use crate::setup::{publish_backlog, task_event, Servers, Stage, Writes};

/// Longest any scenario may take before the benchmark gives up on it.
const SCENARIO_LIMIT: Duration = Duration::from_secs(1800);
const SETTLE: Duration = Duration::from_secs(3);

pub struct Bench {
    pub servers: Servers,
    pub webhookd: PathBuf,
    pub crm_events: PathBuf,
    /// `WEBHOOKD__...` settings given with `--set`, on top of the defaults.
    pub settings: Vec<(String, String)>,
}

/// A backlog queued before webhookd starts, drained into `webhooks` local
/// receivers. With `slow`, receiver 0 answers after that delay and the
/// figures are about the other receivers: how fast they are served while
/// one endpoint holds its share of the request slots. With `batch`, the
/// webhooks get their events in batches of up to that many (SPEC §11), and
/// the figures count events, not requests. With `filter`, every webhook has
/// that payload filter (one every event passes, so the deliveries are the
/// same and the difference is the filters' cost).
pub async fn drain(
    bench: &Bench,
    scenario: String,
    events: usize,
    webhooks: usize,
    slow: Option<Duration>,
    batch: Option<i32>,
    filter: Option<&str>,
) -> anyhow::Result<Row> {
    on_stage(bench, async |stage| {
        drain_on(
            bench, stage, scenario, events, webhooks, slow, batch, filter, None,
        )
        .await
    })
    .await
}

/// Like [`drain`] (no slow receiver, batches or filters), every webhook
/// limited to `rate_limit_per_s` (SPEC §14): a limit above the drain rate
/// measures what the shared budget costs; one below it, that it holds.
pub async fn drain_rate_limited(
    bench: &Bench,
    scenario: String,
    events: usize,
    webhooks: usize,
    rate_limit_per_s: i32,
) -> anyhow::Result<Row> {
    on_stage(bench, async |stage| {
        drain_on(
            bench,
            stage,
            scenario,
            events,
            webhooks,
            None,
            None,
            None,
            Some(rate_limit_per_s),
        )
        .await
    })
    .await
}

#[expect(
    clippy::too_many_arguments,
    reason = "a scenario's whole shape, named at each call"
)]
async fn drain_on(
    bench: &Bench,
    stage: &Stage,
    scenario: String,
    events: usize,
    webhooks: usize,
    slow: Option<Duration>,
    batch: Option<i32>,
    filter: Option<&str>,
    rate_limit_per_s: Option<i32>,
) -> anyhow::Result<Row> {
    let (receipts, urls) = receiver::start(webhooks, slow.map(|delay| (0, delay))).await?;
    let ids = stage.add_webhooks(&urls, batch, filter).await?;
    if let Some(limit) = rate_limit_per_s {
        sqlx::query("UPDATE webhooks SET rate_limit_per_s = $1 WHERE id = ANY($2)")
            .bind(limit)
            .bind(&ids)
            .execute(&stage.pool)
            .await?;
    }
    let publisher = stage.publisher().await?;
    publish_backlog(&publisher, events).await?;
    publisher.close().await;
    // A queued backlog is one the broker has finished writing: let its
    // persistence catch up so the drain does not pay for the publishing.
    tokio::time::sleep(SETTLE).await;

    let measured: Vec<usize> = if slow.is_some() {
        (1..webhooks).collect()
    } else {
        (0..webhooks).collect()
    };
    let measured_ids: Vec<i64> = measured
        .iter()
        .filter_map(|&i| ids.get(i))
        .copied()
        .collect();
    let expected = (events * measured.len()) as u64;
    let mut window = Window::open(stage, None).await?;
    let daemon = Daemon::start(&bench.webhookd, &stage.daemon_env(&bench.settings))?;
    // Timed from the process's start: its start-up is part of the drain.
    window.started = Instant::now();
    window
        .close(
            stage,
            daemon,
            scenario,
            &measured_ids,
            expected,
            || measured.iter().map(|&i| receipts.received(i)).sum::<u64>(),
            Vec::new,
        )
        .await
}

/// webhookd running first, then `rate` events a second for `secs` seconds,
/// each published on its own with a confirm, to `webhooks` receivers.
pub async fn steady(
    bench: &Bench,
    scenario: String,
    rate: u32,
    secs: u32,
    webhooks: usize,
) -> anyhow::Result<Row> {
    on_stage(bench, async |stage| {
        steady_on(bench, stage, scenario, rate, secs, webhooks).await
    })
    .await
}

async fn steady_on(
    bench: &Bench,
    stage: &Stage,
    scenario: String,
    rate: u32,
    secs: u32,
    webhooks: usize,
) -> anyhow::Result<Row> {
    let (receipts, urls) = receiver::start(webhooks, None).await?;
    let ids = stage.add_webhooks(&urls, None, None).await?;
    let publisher = stage.publisher().await?;
    let mut daemon = Daemon::start(&bench.webhookd, &stage.daemon_env(&bench.settings))?;
    daemon.ready().await?;
    // Let start-up work (first scheduler pass, pool warm-up) settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let window = Window::open(stage, Some(&daemon)).await?;

    let events = (rate * secs) as usize;
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
    for i in 0..events {
        ticks.tick().await;
        publisher.publish(&task_event(i, true)?).await?;
    }
    publisher.close().await;
    let expected = (events * webhooks) as u64;
    window
        .close(
            stage,
            daemon,
            scenario,
            &ids,
            expected,
            || receipts.total(),
            || receipts.latencies_micros(),
        )
        .await
}

/// `crm-events publish --file` with `events` lines, timed from start to exit;
/// then checks that the queue holds every event.
pub async fn publish_file(bench: &Bench, events: usize) -> anyhow::Result<Row> {
    on_stage(bench, async |stage| {
        publish_file_on(bench, stage, events).await
    })
    .await
}

/// Runs `scenario` on a new stage and removes the stage whatever the outcome.
pub(crate) async fn on_stage(
    bench: &Bench,
    scenario: impl AsyncFnOnce(&Stage) -> anyhow::Result<Row>,
) -> anyhow::Result<Row> {
    let stage = Stage::create(&bench.servers).await?;
    let result = scenario(&stage).await;
    stage.remove().await;
    result
}

async fn publish_file_on(bench: &Bench, stage: &Stage, events: usize) -> anyhow::Result<Row> {
    let path = std::env::temp_dir().join(format!("{}.ndjson", stage.db_name));
    let mut lines = String::with_capacity(events * 160);
    for i in 0..events {
        let message = task_event(i, false)?;
        lines.push_str(&serde_json::to_string(&serde_json::json!({
            "event": message.event,
            "data": message.data,
        }))?);
        lines.push('\n');
    }
    std::fs::write(&path, lines).with_context(|| format!("writing {}", path.display()))?;

    let started = Instant::now();
    let mut child = tokio::process::Command::new(&bench.crm_events)
        .args(["--amqp-url", &bench.servers.amqp_url])
        .args(["--exchange", &stage.topology.exchange])
        .args(["--queue", &stage.topology.queue])
        .arg("publish")
        .arg("--file")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting crm-events")?;
    let pid = child.id().context("crm-events exited at once")?;
    // The last reading before exit stands for the whole run (sampled every
    // few milliseconds; /proc/PID disappears at exit).
    let mut usage = Usage::default();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if let Ok(now) = usage_of(pid) {
            usage = now;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    if !status.success() {
        bail!("crm-events publish --file failed: {status}");
    }
    let queued = queue_depth(&bench.servers.amqp_url, &stage.topology.queue).await?;
    if queued != events as u32 {
        bail!("crm-events reported success but the queue holds {queued} of {events} events");
    }
    Ok(Row {
        scenario: format!("`crm-events publish --file`, {events} events"),
        deliveries: events as u64,
        seconds,
        cpu_secs: usage.cpu_secs,
        peak_rss_kib: usage.peak_rss_kib,
        unit: "events/s",
        ..Row::default()
    })
}

/// CPU seconds of the Postgres and RabbitMQ servers (all their processes):
/// what a delivery costs beyond webhookd's own CPU, and on a machine shared
/// with them, what limits the drain rate.
#[derive(Clone, Copy)]
struct SystemCpu {
    postgres: f64,
    broker: f64,
}

impl SystemCpu {
    fn now() -> SystemCpu {
        SystemCpu {
            postgres: cpu_of_processes("postgres"),
            broker: cpu_of_processes("beam.smp"),
        }
    }

    fn since(self, before: SystemCpu) -> SystemCpu {
        SystemCpu {
            postgres: self.postgres - before.postgres,
            broker: self.broker - before.broker,
        }
    }
}

pub(crate) async fn queue_depth(amqp_url: &str, queue: &str) -> anyhow::Result<u32> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let _ = connection.close(200, "counted".into()).await;
    Ok(declared.message_count())
}

async fn wait_for(
    daemon: &mut Daemon,
    started: Instant,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    while !done() {
        daemon.check_running()?;
        if started.elapsed() > SCENARIO_LIMIT {
            bail!("the receivers did not get every delivery within {SCENARIO_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Waits until `expected` deliveries to `webhooks` are recorded as succeeded:
/// a delivery counts once its outcome is durable, not when it is received.
async fn wait_recorded(
    stage: &Stage,
    daemon: &mut Daemon,
    started: Instant,
    webhooks: &[i64],
    expected: u64,
) -> anyhow::Result<()> {
    loop {
        // An event sent in a batch stands where its batch does.
        let recorded: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries d LEFT JOIN deliveries b ON b.id = d.batch_id
             WHERE d.webhook_id = ANY($1) AND d.batch_size IS NULL
               AND COALESCE(b.status, d.status) = 'succeeded'",
        )
        .bind(webhooks)
        .fetch_one(&stage.pool)
        .await?;
        if recorded as u64 >= expected {
            return Ok(());
        }
        daemon.check_running()?;
        if started.elapsed() > SCENARIO_LIMIT {
            bail!("only {recorded} of {expected} deliveries recorded within {SCENARIO_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What is read when a scenario's measured window opens; [`Window::close`]
/// reads the same counters again once every delivery is in.
struct Window {
    started: Instant,
    usage: Usage,
    system: SystemCpu,
    writes: Writes,
}

impl Window {
    /// `daemon`: the running daemon, whose usage so far is left out (none
    /// before it starts).
    async fn open(stage: &Stage, daemon: Option<&Daemon>) -> anyhow::Result<Window> {
        let writes = stage.writes().await?;
        let usage = daemon.map(Daemon::usage).transpose()?.unwrap_or_default();
        Ok(Window {
            started: Instant::now(),
            usage,
            system: SystemCpu::now(),
            writes,
        })
    }

    /// Waits until the receivers counted `expected` deliveries (`received`)
    /// and Postgres has them recorded as succeeded, stops the daemon and
    /// makes the row; fails if any of them is missing from `webhook_logs`.
    #[allow(clippy::too_many_arguments)]
    async fn close(
        self,
        stage: &Stage,
        mut daemon: Daemon,
        scenario: String,
        webhooks: &[i64],
        expected: u64,
        mut received: impl FnMut() -> u64,
        latencies_micros: impl FnOnce() -> Vec<u64>,
    ) -> anyhow::Result<Row> {
        wait_for(&mut daemon, self.started, || received() >= expected).await?;
        wait_recorded(stage, &mut daemon, self.started, webhooks, expected).await?;
        let seconds = self.started.elapsed().as_secs_f64();
        let usage = daemon.usage()?;
        let system = SystemCpu::now().since(self.system);
        daemon.stop().await?;
        let writes = stage.writes().await?;
        // Rows, and the events they cover (a batch's row covers its events).
        let (logs, logged): (i64, i64) = sqlx::query_as(
            "SELECT count(*), COALESCE(sum(COALESCE(d.batch_size, 1)), 0)::int8
             FROM webhook_logs l LEFT JOIN deliveries d ON d.id = l.delivery_id AND l.event = 'batch'
             WHERE l.webhook_id = ANY($1) AND l.is_success",
        )
        .bind(webhooks)
        .fetch_one(&stage.pool)
        .await?;
        if (logged as u64) < expected {
            bail!("{scenario}: only {logged} of {expected} deliveries are in webhook_logs");
        }
        Ok(Row {
            scenario,
            deliveries: expected,
            seconds,
            latencies_micros: latencies_micros(),
            cpu_secs: usage.cpu_secs - self.usage.cpu_secs,
            postgres_cpu_secs: Some(system.postgres),
            broker_cpu_secs: Some(system.broker),
            peak_rss_kib: usage.peak_rss_kib,
            rows_written: Some(writes.rows - self.writes.rows),
            commits: Some(writes.commits - self.writes.commits),
            webhook_logs: Some(logs),
            unit: "deliveries/s",
        })
    }
}
