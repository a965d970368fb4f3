//! `logs-at-scale`: the read side of the API against a month of history
//! (ten million `webhook_logs` rows by default, see `scale_fill.rs`), and
//! one retention pass that removes the oldest day.
//!
//! Every call is made against the real `webhookd run` process over HTTP,
//! one at a time (latency, not throughput), on webhooks drawn half from the
//! ten busiest and half from all of them, so both busy and quiet ones are
//! in the figures.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;
use sqlx::PgPool;
use webhookd_worker::retention::{purge_once, RetentionSettings};

use crate::daemon::Daemon;
use crate::report::quantile;
use crate::scale_fill::{self, FillPlan, Filled};
use crate::scenarios::Bench;
use crate::setup::Stage;

pub struct Scale {
    pub plan: FillPlan,
    /// The database's name; kept (and reused when already filled) with
    /// `keep`.
    pub db_name: String,
    pub keep: bool,
    /// Requests per call measured (stats: a tenth of it, at least 20).
    pub requests: usize,
    /// The table, as CSV.
    pub csv: PathBuf,
}

/// One measured call: its latencies in microseconds.
struct Call {
    name: &'static str,
    micros: Vec<u64>,
}

pub async fn logs_at_scale(bench: &Bench, scale: &Scale) -> anyhow::Result<()> {
    let (stage, existed) = Stage::open_named(&bench.servers, &scale.db_name).await?;
    let result = measure(bench, scale, &stage, existed).await;
    stage.finish(scale.keep).await;
    result
}

async fn measure(bench: &Bench, scale: &Scale, stage: &Stage, existed: bool) -> anyhow::Result<()> {
    let pool = &stage.pool;
    let filled = match scale_fill::previous_fill(pool).await? {
        Some(filled) => {
            eprintln!(
                "logs-at-scale: reusing {} ({} log rows, filled in {:.0} s)",
                scale.db_name, filled.log_rows, filled.fill_secs
            );
            filled
        }
        None if existed => bail!(
            "database {} exists but holds no finished fill: drop it or pick another --scale-db",
            scale.db_name
        ),
        None => {
            eprintln!("logs-at-scale: filling {} …", scale.db_name);
            scale_fill::fill(pool, &scale.plan).await?
        }
    };
    let topped_up = scale_fill::top_up(pool, &scale.plan).await?;
    eprintln!(
        "logs-at-scale: topped up to now: {} events over {} minutes",
        topped_up.events, topped_up.minutes
    );
    // The statistics read rolled-up hours: roll up the history first, as the
    // daemon's job does on its first pass over a populated database.
    let rollup_started = Instant::now();
    let rolled = webhookd_store::stats_rollup::roll_up(
        pool,
        chrono::Duration::from_std(webhookd_worker::stats_rollup::MARGIN)?,
        webhookd_worker::stats_rollup::CHUNK_HOURS,
    )
    .await?;
    eprintln!(
        "logs-at-scale: statistics rollup: {} hours, {} rows in {:.1} s",
        rolled.hours,
        rolled.rows,
        rollup_started.elapsed().as_secs_f64()
    );
    let sizes = table_sizes(pool).await?;
    let (_admin, token) =
        webhookd_store::users::create_user(pool, "scale-reader", None, true).await?;
    let targets = Targets::load(pool).await?;

    let mut env = stage.daemon_env(&bench.settings);
    // The daemon's own retention job would purge while we measure.
    env.push((
        "WEBHOOKD__RETENTION__LOGS_DAYS".to_owned(),
        "36500".to_owned(),
    ));
    // The daemon consumes a queue that the producer's side declares.
    let publisher = stage.publisher().await?;
    let mut daemon = Daemon::start(&bench.webhookd, &env)?;
    daemon.ready().await?;
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{}/api/v1", daemon.http()),
        token,
    };
    let calls = run_calls(&api, &targets, scale.requests).await;
    daemon.check_running()?;
    daemon.stop().await?;
    drop(publisher);
    let calls = calls?;

    let retention = retention_pass(pool).await?;
    let table = render(&filled, &sizes, &calls, &retention);
    println!("{table}");
    std::fs::write(&scale.csv, csv(&calls, &retention))
        .with_context(|| format!("writing {}", scale.csv.display()))?;
    Ok(())
}

/// The webhooks to ask about, busiest first, with their owners.
struct Targets {
    webhooks: Vec<(i64, i64)>,
    users: Vec<i64>,
    seed: u64,
}

impl Targets {
    async fn load(pool: &PgPool) -> anyhow::Result<Targets> {
        // Webhook n's share falls with n (see scale_fill), and ids follow n.
        let webhooks: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, user_id FROM webhooks ORDER BY id")
                .fetch_all(pool)
                .await?;
        if webhooks.len() < 10 {
            bail!(
                "logs-at-scale needs at least 10 webhooks, found {}",
                webhooks.len()
            );
        }
        let mut users: Vec<i64> = webhooks.iter().map(|(_, user)| *user).collect();
        users.sort_unstable();
        users.dedup();
        Ok(Targets {
            webhooks,
            users,
            seed: 0x5eed_1234_abcd_0001,
        })
    }

    /// xorshift64: reproducible draws without another dependency.
    fn next(&mut self) -> u64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        self.seed
    }

    /// Request `i`: even ones a busy webhook (of the ten busiest), odd ones
    /// any webhook.
    fn webhook(&mut self, i: usize) -> i64 {
        let pick = self.next() as usize;
        let range = if i.is_multiple_of(2) {
            10
        } else {
            self.webhooks.len()
        };
        self.webhooks[pick % range].0
    }

    fn user(&mut self) -> i64 {
        let pick = self.next() as usize;
        self.users[pick % self.users.len()]
    }
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    /// GET, timed; fails on anything but 200.
    async fn get(&self, path: &str, micros: &mut Vec<u64>) -> anyhow::Result<Value> {
        let started = Instant::now();
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(120))
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = response.status();
        let body = response.bytes().await?;
        micros.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
        if !status.is_success() {
            bail!("GET {path}: {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: not JSON"))
    }
}

/// Reads `path`'s first page (timed into `first`) and follows its cursor
/// for up to `pages - 1` more (timed into `micros`).
async fn walk_pages(
    api: &Api,
    path: &str,
    pages: usize,
    first: &mut Vec<u64>,
    micros: &mut Vec<u64>,
) -> anyhow::Result<()> {
    let mut page = api.get(path, first).await?;
    for _ in 1..pages {
        let Some(cursor) = cursor_of(&page) else {
            break;
        };
        page = api.get(&format!("{path}?cursor={cursor}"), micros).await?;
    }
    Ok(())
}

fn cursor_of(page: &Value) -> Option<String> {
    page.get("next_cursor").and_then(Value::as_str).map(|c| {
        c.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    })
}

fn first_id(page: &Value) -> Option<Value> {
    page.get("items")?.as_array()?.first()?.get("id").cloned()
}

async fn run_calls(api: &Api, targets: &Targets, requests: usize) -> anyhow::Result<Vec<Call>> {
    let mut targets = Targets {
        webhooks: targets.webhooks.clone(),
        users: targets.users.clone(),
        seed: targets.seed,
    };
    let mut calls = Vec::new();
    let call = |name| Call {
        name,
        micros: Vec::with_capacity(requests),
    };
    let deep_pages = 10;
    let walks = (requests / deep_pages).max(1);
    let stats_requests = (requests / 10).max(20);

    // Warm-up, not counted: the first requests open connections and pull
    // the indexes' upper pages into memory.
    let mut ignored = Vec::new();
    for i in 0..20 {
        let id = targets.webhook(i);
        api.get(&format!("/webhooks/{id}/logs"), &mut ignored)
            .await?;
    }

    let mut logs = call("logs: first page (limit 50)");
    let mut detail = call("logs: one attempt (detail)");
    let mut log_ids = Vec::new();
    for i in 0..requests {
        let id = targets.webhook(i);
        let page = api
            .get(&format!("/webhooks/{id}/logs"), &mut logs.micros)
            .await?;
        if let Some(log) = first_id(&page) {
            log_ids.push((id, log));
        }
    }
    for (webhook, log) in &log_ids {
        api.get(
            &format!("/webhooks/{webhook}/logs/{log}"),
            &mut detail.micros,
        )
        .await?;
    }
    calls.push(logs);
    calls.push(detail);

    let mut deep = call("logs: pages 2–10 by cursor");
    for i in 0..walks {
        let path = format!("/webhooks/{}/logs", targets.webhook(i));
        walk_pages(api, &path, deep_pages, &mut ignored, &mut deep.micros).await?;
    }
    calls.push(deep);

    for (name, query) in [
        ("logs: include=bodies", "include=bodies"),
        ("logs: success=false", "success=false"),
        ("logs: event=deal.won", "event=deal.won"),
        (
            "logs: success=false&event=deal.lost",
            "success=false&event=deal.lost",
        ),
        ("logs: one day two weeks ago (from, to)", ""),
    ] {
        let mut measured = call(name);
        for i in 0..requests {
            let id = targets.webhook(i);
            let query = if query.is_empty() {
                let day = chrono::Utc::now() - chrono::Duration::days(14);
                let from = day.format("%Y-%m-%dT00:00:00Z");
                let to = (day + chrono::Duration::days(1)).format("%Y-%m-%dT00:00:00Z");
                format!("from={from}&to={to}")
            } else {
                query.to_owned()
            };
            api.get(
                &format!("/webhooks/{id}/logs?{query}"),
                &mut measured.micros,
            )
            .await?;
        }
        calls.push(measured);
    }

    for (name, query) in [
        ("deliveries: first page", ""),
        ("deliveries: status=failed", "?status=failed"),
        ("deliveries: status=succeeded", "?status=succeeded"),
        ("deliveries: status=pending (none exist)", "?status=pending"),
    ] {
        let mut measured = call(name);
        for i in 0..requests {
            let id = targets.webhook(i);
            api.get(
                &format!("/webhooks/{id}/deliveries{query}"),
                &mut measured.micros,
            )
            .await?;
        }
        calls.push(measured);
    }
    let mut deep = call("deliveries: pages 2–10 by cursor");
    for i in 0..walks {
        let path = format!("/webhooks/{}/deliveries", targets.webhook(i));
        walk_pages(api, &path, deep_pages, &mut ignored, &mut deep.micros).await?;
    }
    calls.push(deep);

    for (name, query, per_user) in [
        ("stats: one user, 24h", "period=24h", true),
        ("stats: one user, 7d", "period=7d", true),
        ("stats: all webhooks (admin), 24h", "period=24h", false),
        ("stats: all webhooks (admin), 7d", "period=7d", false),
    ] {
        let mut measured = call(name);
        let count = if per_user {
            stats_requests
        } else {
            stats_requests / 4
        };
        for _ in 0..count.max(5) {
            let path = if per_user {
                format!("/stats?{query}&user_id={}", targets.user())
            } else {
                format!("/stats?{query}")
            };
            api.get(&path, &mut measured.micros).await?;
        }
        calls.push(measured);
    }
    Ok(calls)
}

struct Retention {
    logs_days: u32,
    logs: u64,
    events: u64,
    seconds: f64,
}

/// One pass of the retention job that removes the oldest day: `logs_days`
/// is the age of the oldest attempt, rounded, less one (29 on a fresh
/// 30-day fill; a kept database loses a day per run).
async fn retention_pass(pool: &PgPool) -> anyhow::Result<Retention> {
    let age_days: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM now() - min(created_at))::float8 / 86400 FROM webhook_logs",
    )
    .fetch_one(pool)
    .await?;
    let Some(age_days) = age_days else {
        bail!("webhook_logs is empty: nothing for the retention pass to remove");
    };
    let logs_days = days_keeping_all_but_the_oldest_day(age_days);
    let settings = RetentionSettings {
        logs_days,
        batch_size: 1000,
        interval_secs: 3600,
        ..RetentionSettings::default()
    };
    let started = Instant::now();
    let purged = purge_once(pool, &settings).await?;
    Ok(Retention {
        logs_days,
        logs: purged.logs,
        events: purged.events,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The `retention.logs_days` whose pass removes about the oldest day of
/// history that reaches `age_days` back (never below the setting's minimum
/// of 1).
fn days_keeping_all_but_the_oldest_day(age_days: f64) -> u32 {
    (age_days.round() as u32).saturating_sub(1).max(1)
}

struct Sizes {
    logs_bytes: i64,
    deliveries_bytes: i64,
    events_bytes: i64,
}

/// On-disk size of each table, indexes and TOAST included (partitions
/// summed on a partitioned `webhook_logs`).
async fn table_sizes(pool: &PgPool) -> anyhow::Result<Sizes> {
    let size = |table: &'static str| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce((SELECT sum(pg_total_relation_size(relid))
                              FROM pg_partition_tree($1::regclass)),
                             pg_total_relation_size($1::regclass))::bigint",
        )
        .bind(table)
        .fetch_one(pool)
        .await
    };
    Ok(Sizes {
        logs_bytes: size("webhook_logs").await?,
        deliveries_bytes: size("deliveries").await?,
        events_bytes: size("events").await?,
    })
}

fn millis(micros: Option<u64>) -> String {
    micros.map_or("–".to_owned(), |m| format!("{:.1}", m as f64 / 1000.0))
}

fn summary(call: &Call) -> (Option<u64>, Option<u64>, Option<u64>) {
    let mut sorted = call.micros.clone();
    sorted.sort_unstable();
    (
        quantile(&sorted, 0.50),
        quantile(&sorted, 0.99),
        sorted.last().copied(),
    )
}

fn render(filled: &Filled, sizes: &Sizes, calls: &[Call], retention: &Retention) -> String {
    let per_row = |bytes: i64, rows: i64| bytes as f64 / rows.max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} log rows, {} deliveries, {} events; filled in {:.0} s\n\
         on disk (indexes and TOAST included): webhook_logs {:.2} GiB ({:.0} B/row), \
         deliveries {:.2} GiB ({:.0} B/row), events {:.2} GiB ({:.0} B/row)\n",
        filled.log_rows,
        filled.deliveries,
        filled.events,
        filled.fill_secs,
        sizes.logs_bytes as f64 / f64::from(1 << 30),
        per_row(sizes.logs_bytes, filled.log_rows),
        sizes.deliveries_bytes as f64 / f64::from(1 << 30),
        per_row(sizes.deliveries_bytes, filled.deliveries),
        sizes.events_bytes as f64 / f64::from(1 << 30),
        per_row(sizes.events_bytes, filled.events),
    );
    out.push_str("| call | requests | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|\n");
    for call in calls {
        let (p50, p99, max) = summary(call);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            call.name,
            call.micros.len(),
            millis(p50),
            millis(p99),
            millis(max)
        );
    }
    let _ = writeln!(
        out,
        "\nretention pass (logs_days = {}): {} log rows and {} events removed in {:.2} s",
        retention.logs_days, retention.logs, retention.events, retention.seconds
    );
    out
}

fn csv(calls: &[Call], retention: &Retention) -> String {
    let mut out = String::from("call,requests,p50_ms,p99_ms,max_ms\n");
    for call in calls {
        let (p50, p99, max) = summary(call);
        let _ = writeln!(
            out,
            "\"{}\",{},{},{},{}",
            call.name,
            call.micros.len(),
            millis(p50),
            millis(p99),
            millis(max)
        );
    }
    let _ = writeln!(
        out,
        "\"retention pass (logs_days = {}; {} log rows, {} events)\",1,{:.1},{:.1},{:.1}",
        retention.logs_days,
        retention.logs,
        retention.events,
        retention.seconds * 1000.0,
        retention.seconds * 1000.0,
        retention.seconds * 1000.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_removes_the_oldest_day() {
        // A fresh 30-day fill, a minute old: keep 29 days.
        assert_eq!(days_keeping_all_but_the_oldest_day(30.001), 29);
        // Kept and reused a day and a half later, after one pass.
        assert_eq!(days_keeping_all_but_the_oldest_day(30.6), 30);
        assert_eq!(days_keeping_all_but_the_oldest_day(0.2), 1);
    }

    #[test]
    fn cursors_are_escaped_for_the_query_string() {
        let page = serde_json::json!({"next_cursor": "ab+c/d=="});
        assert_eq!(cursor_of(&page).as_deref(), Some("ab%2Bc%2Fd%3D%3D"));
        assert_eq!(cursor_of(&serde_json::json!({"next_cursor": null})), None);
    }

    #[test]
    fn every_other_request_goes_to_a_busy_webhook() {
        let mut targets = Targets {
            webhooks: (1..=1000).map(|id| (id, id % 10)).collect(),
            users: (0..10).collect(),
            seed: 7,
        };
        let picks: Vec<i64> = (0..200).map(|i| targets.webhook(i)).collect();
        assert!(picks.iter().step_by(2).all(|id| *id <= 10));
        assert!(picks.iter().skip(1).step_by(2).any(|id| *id > 10));
    }
}
