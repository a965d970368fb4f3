//! The services themselves go away while events flow: RabbitMQ stopped and
//! started (`rabbitmqctl stop_app` / `start_app`), Postgres stopped and
//! started (`pg_ctlcluster ... stop` / `start`). The worker (the real binary)
//! and the producer reconnect, `/readyz` reports the outage and the recovery,
//! and every confirmed event is delivered.
//!
//! These tests stop the shared services, which breaks any other test running
//! at the time, so they are ignored by default; `scripts/test.sh` runs them
//! alone, after the main suite, with `--ignored --test-threads=1`. Each one
//! restores its service when it ends, passed or failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhookd_e2e::broker::AMQP_URL;
use webhookd_e2e::db::DEFAULT_SERVER_URL;
use webhookd_e2e::eventually;
use webhookd_e2e::process::{queue_counts, task_created, Daemon, Deployment};
use webhookd_e2e::Receiver;
use webhookd_producer::{Publisher, PublisherOptions};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Bound for a service to go down or come back, and for the daemon to notice.
const SERVICE_LIMIT: Duration = Duration::from_secs(60);
/// How long each outage lasts once the daemon has noticed it.
const OUTAGE: Duration = Duration::from_secs(3);
/// Messages a worker takes from the broker before acknowledging any.
const PREFETCH: &str = "20";

fn worker_settings() -> [(&'static str, &'static str); 2] {
    [
        ("WEBHOOKD__BROKER__PREFETCH", PREFETCH),
        ("WEBHOOKD__DELIVERY__MAX_IN_FLIGHT", "100"),
    ]
}

// ---------------------------------------------------------------------------
// The services
// ---------------------------------------------------------------------------

/// Runs a service-control command; panics with its output if it fails.
fn control(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// RabbitMQ stopped (`stop_app`) until [`BrokerOutage::end`] or drop, which
/// starts it again and waits until it is fully up.
struct BrokerOutage {
    ended: bool,
}

impl BrokerOutage {
    fn begin() -> BrokerOutage {
        let outage = BrokerOutage { ended: false };
        control("rabbitmqctl", &["-q", "stop_app"]);
        outage
    }

    fn end(mut self) {
        self.ended = true;
        restore_broker();
    }
}

impl Drop for BrokerOutage {
    fn drop(&mut self) {
        if !self.ended {
            restore_broker();
        }
    }
}

fn restore_broker() {
    control("rabbitmqctl", &["-q", "start_app"]);
    control("rabbitmqctl", &["-q", "await_startup", "--timeout", "120"]);
}

/// The one local Postgres cluster, e.g. `15`.
fn postgres_version() -> String {
    let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian Postgres cluster in /etc/postgresql")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort();
    versions.pop().expect("a Postgres version")
}

fn pg_ctlcluster(action: &str) {
    let version = postgres_version();
    control(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &version, "main", action],
    );
}

/// Postgres stopped until [`DatabaseOutage::end`] or drop, which starts it
/// again and waits until it accepts connections.
struct DatabaseOutage {
    ended: bool,
}

impl DatabaseOutage {
    fn begin() -> DatabaseOutage {
        let outage = DatabaseOutage { ended: false };
        pg_ctlcluster("stop");
        outage
    }

    async fn end(mut self) {
        self.ended = true;
        pg_ctlcluster("start");
        eventually(SERVICE_LIMIT, "Postgres to accept connections", || async {
            database_answers().await.then_some(())
        })
        .await;
    }
}

impl Drop for DatabaseOutage {
    fn drop(&mut self) {
        if !self.ended {
            pg_ctlcluster("start");
        }
    }
}

async fn database_answers() -> bool {
    let url = std::env::var("WEBHOOKD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned());
    let Ok(options) = url.parse::<sqlx::postgres::PgConnectOptions>() else {
        return false;
    };
    match options.database("postgres").connect().await {
        Ok(conn) => {
            conn.close().await.ok();
            true
        }
        Err(_) => false,
    }
}

// ---------------------------------------------------------------------------
// Events flowing
// ---------------------------------------------------------------------------

/// A producer publishing one event at a time, each confirmed, until stopped.
struct Flow {
    publisher: Arc<Publisher>,
    /// Publishes begun, confirmed or not.
    begun: Arc<AtomicUsize>,
    confirmed: Arc<Mutex<Vec<Uuid>>>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Flow {
    async fn start(deployment: &Deployment) -> Flow {
        let publisher = Arc::new(
            Publisher::connect_with(
                AMQP_URL,
                deployment.topology.clone(),
                PublisherOptions {
                    // Longer than any outage here, so no publish gives up.
                    reconnect_timeout: SERVICE_LIMIT,
                    ..PublisherOptions::default()
                },
            )
            .await
            .expect("the producer connects"),
        );
        let begun = Arc::new(AtomicUsize::new(0));
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let (publisher, begun, confirmed, errors, stop) = (
                publisher.clone(),
                begun.clone(),
                confirmed.clone(),
                errors.clone(),
                stop.clone(),
            );
            async move {
                for n in 0.. {
                    if stop.is_cancelled() {
                        break;
                    }
                    let event = task_created(n);
                    begun.fetch_add(1, Ordering::SeqCst);
                    match publisher.publish(&event).await {
                        Ok(()) => confirmed.lock().unwrap().push(event.id),
                        Err(e) => errors.lock().unwrap().push(e.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        Flow {
            publisher,
            begun,
            confirmed,
            errors,
            stop,
            task,
        }
    }

    fn confirmed(&self) -> usize {
        self.confirmed.lock().unwrap().len()
    }

    fn begun(&self) -> usize {
        self.begun.load(Ordering::SeqCst)
    }

    /// Waits until `more` further events are confirmed.
    async fn wait_for_more(&self, more: usize, what: &str) {
        let target = self.confirmed() + more;
        eventually(SERVICE_LIMIT, what, || async {
            (self.confirmed() >= target).then_some(())
        })
        .await;
    }

    /// Stops publishing; returns the confirmed event ids and the number of
    /// times the producer reconnected.
    async fn finish(self) -> (HashSet<String>, u64) {
        self.stop.cancel();
        self.task.await.unwrap();
        let errors = self.errors.lock().unwrap().clone();
        assert!(errors.is_empty(), "every publish was confirmed: {errors:?}");
        let reconnects = self.publisher.reconnect_count();
        self.publisher.close().await;
        let confirmed = self
            .confirmed
            .lock()
            .unwrap()
            .iter()
            .map(Uuid::to_string)
            .collect();
        (confirmed, reconnects)
    }
}

/// The event ids a receiver got.
fn received_ids(receiver: &Receiver) -> HashSet<String> {
    receiver
        .received()
        .iter()
        .filter_map(|r| r.json()["id"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until `/readyz` answers `status` with `field` = `value`.
async fn wait_for_readyz(worker: &Daemon, status: StatusCode, field: &str, value: &str) -> Value {
    let what = format!("/readyz {status} with {field} {value}");
    eventually(SERVICE_LIMIT, &what, || async {
        let (got, body) = worker.readyz().await?;
        (got == status && body[field] == value).then_some(body)
    })
    .await
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
#[ignore = "stops shared services; scripts/test.sh runs it alone"]
async fn rabbitmq_stopped_and_started_while_events_flow_loses_nothing_and_readyz_tells() {
    let deployment = Deployment::new().await;
    let receiver = Receiver::start(SECRET).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    let worker = deployment.worker(&worker_settings()).await;
    let flow = Flow::start(&deployment).await;
    flow.wait_for_more(50, "events flowing before the outage")
        .await;

    let outage = BrokerOutage::begin();
    let down = wait_for_readyz(&worker, StatusCode::SERVICE_UNAVAILABLE, "broker", "down").await;
    assert_eq!(down["database"], "up", "{down}");
    tokio::time::sleep(OUTAGE).await;
    outage.end();

    let up = wait_for_readyz(&worker, StatusCode::OK, "broker", "up").await;
    assert_eq!(up["status"], "ready", "{up}");
    flow.wait_for_more(50, "events flowing after the outage")
        .await;
    let (confirmed, reconnects) = flow.finish().await;
    assert!(reconnects >= 1, "the producer reconnected");
    eventually(SERVICE_LIMIT, "every confirmed event delivered", || async {
        confirmed.is_subset(&received_ids(&receiver)).then_some(())
    })
    .await;
    assert!(
        worker.logs().contains("reconnecting"),
        "the worker logged its reconnection:\n{}",
        worker.logs()
    );

    worker.terminate().await;
    deployment.cleanup().await;
}

#[tokio::test]
#[ignore = "stops shared services; scripts/test.sh runs it alone"]
async fn postgres_stopped_and_started_while_events_flow_holds_messages_unacked_and_loses_nothing() {
    let deployment = Deployment::new().await;
    let receiver = Receiver::start(SECRET).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    let worker = deployment.worker(&worker_settings()).await;
    let flow = Flow::start(&deployment).await;
    flow.wait_for_more(50, "events flowing before the outage")
        .await;

    let outage = DatabaseOutage::begin();
    // An event whose publish began before the database stopped may have been
    // recorded and acknowledged already, even if its confirm came later.
    let begun_before = flow.begun();
    let down = wait_for_readyz(&worker, StatusCode::SERVICE_UNAVAILABLE, "database", "down").await;
    assert_eq!(down["broker"], "up", "{down}");
    // The broker keeps what the worker cannot record: nothing published
    // during the outage is acknowledged, and the worker takes no more than
    // its prefetch.
    for _ in 0..2 {
        flow.wait_for_more(30, "events published during the outage")
            .await;
        let published = flow.confirmed().saturating_sub(begun_before) as u64;
        let (ready, unacked) = queue_counts(&deployment.topology.queue);
        assert!(
            ready + unacked >= published,
            "{ready} ready + {unacked} unacked, but {published} published since the database stopped"
        );
        assert!(
            unacked <= PREFETCH.parse().unwrap(),
            "the worker holds at most its prefetch: {unacked} unacked"
        );
    }
    tokio::time::sleep(OUTAGE).await;
    outage.end().await;

    let up = wait_for_readyz(&worker, StatusCode::OK, "database", "up").await;
    assert_eq!(up["status"], "ready", "{up}");
    flow.wait_for_more(50, "events flowing after the outage")
        .await;
    let (confirmed, _) = flow.finish().await;
    eventually(SERVICE_LIMIT, "every confirmed event delivered", || async {
        confirmed.is_subset(&received_ids(&receiver)).then_some(())
    })
    .await;
    eventually(SERVICE_LIMIT, "every delivery recorded", || async {
        (deployment.succeeded().await >= confirmed.len() as i64).then_some(())
    })
    .await;

    worker.terminate().await;
    deployment.cleanup().await;
}
