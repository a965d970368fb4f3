//! The soak of issue #19: a steady rate for a long time to 10 webhooks, one
//! slow and one failing, with the daemon's memory, file descriptors and
//! pool sizes sampled throughout. Nothing is asserted: the CSV and the SVG
//! show whether they stay flat.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::daemon::{open_fds, rss_kib, Daemon};
use crate::receiver::{self, Answer, Receipts};
use crate::report::Row;
use crate::samples::{self, metric, Sample, CSV_HEADER};
use crate::scenarios::{on_stage, queue_depth, Bench};
use crate::setup::{task_event, Stage};

/// Webhooks: the first `WEBHOOKS - 2` answer at once, then one slow and one
/// failing.
const WEBHOOKS: usize = 10;
/// Publishing happens in slices this often, so a rate of hundreds a second
/// does not hinge on one confirm round trip per event.
const PUBLISH_TICK: Duration = Duration::from_millis(100);

pub struct Soak {
    pub secs: u64,
    pub rate: u32,
    pub slow: Duration,
    pub sample_every: Duration,
    pub csv: PathBuf,
    pub svg: PathBuf,
}

pub async fn soak(bench: &Bench, soak: &Soak) -> anyhow::Result<Row> {
    on_stage(bench, async |stage| soak_on(bench, stage, soak).await).await
}

async fn soak_on(bench: &Bench, stage: &Stage, soak: &Soak) -> anyhow::Result<Row> {
    let mut answers = vec![Answer::Ok; WEBHOOKS - 2];
    answers.push(Answer::After(soak.slow));
    answers.push(Answer::Fail);
    let (receipts, urls) = receiver::start_answering(answers).await?;
    stage.add_webhooks(&urls, None, None).await?;
    let mut publisher = stage.publisher().await?;
    let mut daemon = Daemon::start(&bench.webhookd, &stage.daemon_env(&bench.settings))?;
    daemon.ready().await?;
    let start_usage = daemon.usage()?;
    let title = format!(
        "soak: {}/s for {} s → 10 webhooks (1 answering in {} ms, 1 failing)",
        soak.rate,
        soak.secs,
        soak.slow.as_millis()
    );

    let started = Instant::now();
    let deadline = started + Duration::from_secs(soak.secs);
    let published = std::cell::Cell::new(0_u64);
    let publishing = async {
        let mut ticks = tokio::time::interval(PUBLISH_TICK);
        while Instant::now() < deadline {
            ticks.tick().await;
            // Catch up to the rate since the start rather than per tick, so
            // a slow confirm does not lower the rate for good.
            let due = (started.elapsed().as_secs_f64() * f64::from(soak.rate)) as u64;
            let first = published.get();
            if due <= first {
                continue;
            }
            let events = (first..due)
                .map(|i| task_event(i as usize, true))
                .collect::<Result<Vec<_>, _>>()?;
            // Other work on the machine may restart the broker during a
            // half-hour run: the slice is published again on a new
            // connection rather than ending the soak.
            match publisher.publish_many(&events, |_| {}).await {
                Ok(()) => published.set(due),
                Err(error) => {
                    eprintln!("soak: publishing failed, reconnecting: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    match stage.publisher().await {
                        Ok(fresh) => publisher = fresh,
                        Err(error) => eprintln!("soak: reconnecting failed: {error}"),
                    }
                }
            }
        }
        anyhow::Ok(publisher)
    };
    let sampling = sample_until(
        stage,
        &bench.servers.amqp_url,
        &mut daemon,
        &receipts,
        &published,
        soak,
        &title,
        (started, deadline),
    );
    let (publisher, samples) = tokio::join!(publishing, sampling);
    publisher?.close().await;
    let samples = samples?;

    let seconds = started.elapsed().as_secs_f64();
    let usage = daemon.usage()?;
    daemon.stop().await?;
    println!(
        "{title}: {} samples in {}\n\n{}",
        samples.len(),
        soak.csv.display(),
        samples::flatness(&samples)
    );
    Ok(Row {
        scenario: format!("{title} (9 answering counted)"),
        deliveries: receipts.total(),
        seconds,
        latencies_micros: receipts.latencies_micros(),
        cpu_secs: usage.cpu_secs - start_usage.cpu_secs,
        peak_rss_kib: usage.peak_rss_kib,
        unit: "deliveries/s",
        ..Row::default()
    })
}

/// Samples every `soak.sample_every` from `window.0` until `window.1`,
/// appending each to the CSV and redrawing the SVG each time, so a run cut
/// short still leaves both behind.
#[expect(
    clippy::too_many_arguments,
    reason = "everything one reading looks at, named at the one call"
)]
async fn sample_until(
    stage: &Stage,
    amqp_url: &str,
    daemon: &mut Daemon,
    receipts: &Receipts,
    published: &std::cell::Cell<u64>,
    soak: &Soak,
    title: &str,
    (started, deadline): (Instant, Instant),
) -> anyhow::Result<Vec<Sample>> {
    let mut csv = std::fs::File::create(&soak.csv)
        .with_context(|| format!("creating {}", soak.csv.display()))?;
    writeln!(csv, "{CSV_HEADER}")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let metrics_url = format!("http://{}/metrics", daemon.http());
    let mut samples: Vec<Sample> = Vec::new();
    let mut ticks = tokio::time::interval(soak.sample_every);
    loop {
        ticks.tick().await;
        daemon.check_running()?;
        let now = Instant::now();
        let mut sample = read(stage, amqp_url, daemon, &client, &metrics_url).await?;
        sample.time_s = now.duration_since(started).as_secs_f64();
        sample.published = published.get();
        sample.delivered = receipts.total();
        if let Some(previous) = samples.last() {
            let dt = sample.time_s - previous.time_s;
            if dt > 0.0 {
                sample.delivered_per_s =
                    sample.delivered.saturating_sub(previous.delivered) as f64 / dt;
            }
        }
        writeln!(csv, "{}", sample.csv_line())?;
        csv.flush()?;
        eprintln!("soak {}", sample.csv_line());
        samples.push(sample);
        std::fs::write(&soak.svg, samples::svg(title, &samples))
            .with_context(|| format!("writing {}", soak.svg.display()))?;
        if now >= deadline {
            return Ok(samples);
        }
    }
}

async fn read(
    stage: &Stage,
    amqp_url: &str,
    daemon: &Daemon,
    client: &reqwest::Client,
    metrics_url: &str,
) -> anyhow::Result<Sample> {
    let pid = daemon.pid();
    // A /metrics that does not answer leaves its columns empty rather than
    // ending a half-hour run.
    let text = match client.get(metrics_url).send().await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let pool = |state| {
        metric(
            &text,
            "webhookd_db_pool_connections",
            Some(("state", state)),
        )
    };
    let pool_active = pool("active");
    let pool_connections = match (pool("idle"), pool_active) {
        (Some(idle), Some(active)) => Some(idle + active),
        _ => None,
    };
    // Like /metrics, a server that is briefly away leaves a gap.
    let pg_backends: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&stage.pool)
    .await
    .ok();
    Ok(Sample {
        rss_mib: rss_kib(pid)? as f64 / 1024.0,
        fds: open_fds(pid)?,
        pool_connections,
        pool_active,
        pg_backends,
        queue_depth: queue_depth(amqp_url, &stage.topology.queue).await.ok(),
        deliveries_pending: metric(&text, "webhookd_deliveries_pending", None),
        in_flight: metric(&text, "webhookd_deliveries_in_flight", None),
        waiting: metric(&text, "webhookd_deliveries_waiting", None),
        breakers_open: metric(&text, "webhookd_breakers_open", None),
        ..Sample::default()
    })
}
