//! The real `webhookd` binary as a child process: built once per test binary,
//! configured only through `WEBHOOKD__...` environment variables, stopped with
//! real signals. [`Deployment`] sets up what worker processes share (a
//! database, an exchange and queue, a publisher, webhooks) for the fault
//! tests.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::ConnectionProperties;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;
use webhookd_producer::{EventMessage, Publisher, QueueType, Topology};
use webhookd_store::webhooks::{create_webhook, NewWebhook};

use crate::broker::AMQP_URL;
use crate::db::TestDb;

/// Upper bound for `webhookd run` to become ready, or to exit after SIGTERM
/// in tests that are not about how fast it exits.
pub const DAEMON_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate lives inside the workspace")
        .to_path_buf()
}

/// `target/debug/webhookd` (or under `CARGO_TARGET_DIR`). Cargo is run once per
/// test binary, whatever the number of parallel tests: it builds the binary
/// when missing and rebuilds it when stale (`cargo test -p webhookd-e2e`
/// builds the `webhookd` library this crate links, not the `webhookd` binary,
/// so without this the tests could exercise an old build).
pub fn webhookd_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_binary("webhookd", "webhookd"))
}

/// `crm-events`, the producer's CLI, built as [`webhookd_binary`] is.
pub fn crm_events_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| build_binary("webhookd-producer", "crm-events"))
}

/// `cargo build -p PACKAGE --bin NAME`, then the binary's path.
fn build_binary(package: &str, name: &str) -> PathBuf {
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"));
    let binary = target_dir
        .join("debug")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = std::process::Command::new(cargo);
    // The variables cargo sets for this test process describe this crate.
    // Left in place, build scripts that watch them (ring's watches
    // CARGO_MANIFEST_DIR) would rerun, rebuilding half the dependency
    // tree now and again at the next ordinary `cargo build`.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "OUT_DIR",
            ]
            .contains(&key_text.as_ref())
        {
            command.env_remove(&key);
        }
    }
    let output = command
        .args(["build", "-p", package, "--bin", name])
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .expect("running `cargo build`");
    assert!(
        output.status.success(),
        "`cargo build -p {package} --bin {name}` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        binary.is_file(),
        "cargo built {name} but {} does not exist",
        binary.display()
    );
    binary
}

/// `webhookd ARGS` with `env` as its only configuration: inherited
/// `WEBHOOKD*` and `RUST_LOG` variables are removed so the developer's shell
/// cannot change the run. Killed if dropped while running.
pub fn webhookd_command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut command = Command::new(webhookd_binary());
    command.args(args);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("WEBHOOKD") || key_text == "RUST_LOG" {
            command.env_remove(&key);
        }
    }
    command
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Owned `(key, value)` pairs from borrowed ones.
pub fn pairs(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

// ---------------------------------------------------------------------------
// `webhookd run` as a child process
// ---------------------------------------------------------------------------

/// A running `webhookd run`; killed when dropped, so a failed test never
/// leaves a daemon behind.
pub struct Daemon {
    child: Child,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Daemon {
    /// Starts `webhookd ARGS` (`run ...`) with `env` on a free port and waits
    /// until `/readyz` says ready.
    pub async fn start(args: &[&str], env: &[(String, String)]) -> Daemon {
        let mut daemon = Daemon::spawn(args, env);
        daemon.wait_until_ready().await;
        daemon
    }

    /// Starts it without waiting for readiness.
    pub fn spawn(args: &[&str], env: &[(String, String)]) -> Daemon {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut command = webhookd_command(args, env);
        command
            .env("WEBHOOKD__HTTP__LISTEN", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting webhookd");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("a piped stderr");
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Daemon {
            child,
            addr,
            http: reqwest::Client::new(),
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What the daemon has logged so far, for failure messages.
    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the daemon is still running")
    }

    pub async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + DAEMON_LIMIT;
        loop {
            if let Some((StatusCode::OK, body)) = self.readyz().await {
                assert_eq!(body["status"], "ready", "/readyz: {body}");
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader catch the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "webhookd exited with {status} before becoming ready:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "webhookd never became ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `/readyz`'s status and body; `None` while nothing answers.
    pub async fn readyz(&self) -> Option<(StatusCode, Value)> {
        let response = self
            .http
            .get(self.url("/readyz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let status = response.status();
        Some((status, response.json().await.ok()?))
    }

    pub async fn metrics(&self) -> String {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    /// `kill -9`: no chance to finish anything.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("sending SIGKILL");
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        let pid = self.pid();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
    }

    /// Waits (bounded) for the process to exit.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let status = tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("webhookd did not exit within {within:?}:\n{}", self.logs()))
            .unwrap();
        // Let the reader catch the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        status
    }

    /// Sends SIGTERM, waits (bounded) for the exit and checks it was clean.
    pub async fn terminate(mut self) -> ExitStatus {
        self.sigterm();
        let status = self.wait_exit(DAEMON_LIMIT).await;
        assert!(
            status.success(),
            "webhookd exited with {status} after SIGTERM:\n{}",
            self.logs()
        );
        status
    }
}

/// The value of one sample line of a Prometheus text exposition.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok())?
    })
}

/// Deletes a test's exchanges and queues (and their dead-letter twins).
pub async fn delete_topology(topology: &Topology) {
    let Ok(conn) = lapin::Connection::connect(AMQP_URL, ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = conn.create_channel().await {
        for queue in [topology.queue.clone(), topology.dead_letter_queue()] {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [topology.exchange.clone(), topology.dead_letter_exchange()] {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = conn.close(200, "done".into()).await;
}

// ---------------------------------------------------------------------------
// A deployment: what worker processes share
// ---------------------------------------------------------------------------

/// A migrated database, a uniquely named exchange and queue (declared), a
/// publisher, and a user to own webhooks; workers are started on it with
/// [`Deployment::worker`].
pub struct Deployment {
    pub db: TestDb,
    pub topology: Topology,
    pub publisher: Publisher,
    user_id: i64,
}

impl Deployment {
    pub async fn new() -> Deployment {
        Deployment::with_queue_type(QueueType::Classic).await
    }

    /// [`Deployment::new`] with queues of `queue_type`, which its workers'
    /// environment sets too.
    pub async fn with_queue_type(queue_type: QueueType) -> Deployment {
        let db = TestDb::create().await;
        let suffix = Uuid::new_v4().simple().to_string();
        let topology = Topology::new(
            format!("test.events.{suffix}"),
            format!("test.webhookd.{suffix}"),
        )
        .with_queue_type(queue_type);
        // Connecting declares the exchange and queue, so events published
        // before any worker starts are kept.
        let publisher = Publisher::connect(AMQP_URL, topology.clone())
            .await
            .expect("the publisher connects");
        let (user, _token) =
            webhookd_store::users::create_user(&db.pool, "Operator", Some(1), true)
                .await
                .expect("user created");
        Deployment {
            db,
            topology,
            publisher,
            user_id: user.id,
        }
    }

    /// The environment of a worker on this deployment: loopback receivers
    /// allowed, fast polling and backoffs; `overrides` go on top.
    pub fn env(&self, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = pairs(&[
            ("WEBHOOKD__BROKER__URL", AMQP_URL),
            ("WEBHOOKD__BROKER__EXCHANGE", &self.topology.exchange),
            ("WEBHOOKD__BROKER__QUEUE", &self.topology.queue),
            (
                "WEBHOOKD__BROKER__QUEUE_TYPE",
                self.topology.queue_type.as_str(),
            ),
            ("WEBHOOKD__DATABASE__URL", &self.db.url),
            ("WEBHOOKD__DATABASE__MAX_CONNECTIONS", "8"),
            ("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
            ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "100"),
            ("WEBHOOKD__DELIVERY__MAX_BACKOFF_MS", "1000"),
            ("WEBHOOKD__SCHEDULER__POLL_INTERVAL_MS", "200"),
        ]);
        env.extend(pairs(overrides));
        env
    }

    /// Starts `webhookd run --role worker` and waits until it is ready.
    pub async fn worker(&self, overrides: &[(&str, &str)]) -> Daemon {
        Daemon::start(&["run", "--role", "worker"], &self.env(overrides)).await
    }

    /// A webhook subscribed to every event, delivering to `url`.
    pub async fn subscribe(&self, url: &str, secret: &str) -> i64 {
        self.subscribe_with(url, secret, None, 1000).await
    }

    /// A webhook subscribed to every event that gets them in batches of up
    /// to `max_events`, each sent once full or `max_wait_ms` after its
    /// oldest event.
    pub async fn subscribe_batched(
        &self,
        url: &str,
        secret: &str,
        max_events: i32,
        max_wait_ms: i32,
    ) -> i64 {
        self.subscribe_with(url, secret, Some(max_events), max_wait_ms)
            .await
    }

    async fn subscribe_with(
        &self,
        url: &str,
        secret: &str,
        batch_max_events: Option<i32>,
        batch_max_wait_ms: i32,
    ) -> i64 {
        let webhook = create_webhook(
            &self.db.pool,
            &NewWebhook {
                user_id: self.user_id,
                name: format!("hook {url}"),
                url: url.to_owned(),
                events: vec!["*".to_owned()],
                secret: secret.to_owned(),
                is_active: true,
                timeout_ms: None,
                headers: Default::default(),
                template: None,
                batch_max_events,
                batch_max_wait_ms,
                filter: None,
                retry_schedule: None,
                ordering: Default::default(),
                auth: None,
                rate_limit_per_s: None,
            },
            // These daemons run without keys: secrets in clear.
            &webhookd_events::SecretKeys::none(),
        )
        .await
        .expect("webhook created")
        .expect("its owner exists");
        webhook.id
    }

    /// Publishes `count` `task.created` events (confirmed) and returns them.
    pub async fn publish(&self, count: usize) -> Vec<EventMessage> {
        let events: Vec<EventMessage> = (0..count).map(task_created).collect();
        self.publisher
            .publish_many(&events, |_| {})
            .await
            .expect("the backlog is published");
        events
    }

    /// Messages waiting in the queue (not counting those delivered to a
    /// consumer and not yet acknowledged).
    pub async fn queue_ready(&self) -> u32 {
        let conn = lapin::Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .expect("connecting to RabbitMQ");
        let channel = conn.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                self.topology.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("the queue exists");
        let _ = conn.close(200, "done".into()).await;
        queue.message_count()
    }

    /// Deliveries by status, e.g. `[("succeeded", 10)]`.
    pub async fn delivery_statuses(&self) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status")
            .fetch_all(&self.db.pool)
            .await
            .unwrap()
    }

    /// How many deliveries have succeeded.
    pub async fn succeeded(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// Closes the publisher, deletes the broker objects, drops the database.
    pub async fn cleanup(self) {
        self.publisher.close().await;
        delete_topology(&self.topology).await;
        self.db.drop_database().await;
    }
}

/// The `n`th event of a test's backlog.
pub fn task_created(n: usize) -> EventMessage {
    EventMessage::new(
        "task.created",
        json!({"task_id": n, "title": format!("task {n}"), "status": "pending"}),
        chrono::Utc::now().timestamp(),
    )
    .unwrap()
}

/// Messages ready in the queue and delivered but unacknowledged, as the
/// broker counts them (`rabbitmqctl`: AMQP itself reports only the ready
/// ones).
pub fn queue_counts(queue: &str) -> (u64, u64) {
    match queue_columns(queue, &["messages_ready", "messages_unacknowledged"])[..] {
        [ready, unacked] => (ready, unacked),
        _ => unreachable!("two columns asked for"),
    }
}

/// How many consumers RabbitMQ has on `queue` (`rabbitmqctl`).
pub fn queue_consumers(queue: &str) -> u64 {
    queue_columns(queue, &["consumers"])[0]
}

/// Numeric `rabbitmqctl list_queues` columns of `queue`, in the order asked.
fn queue_columns(queue: &str, columns: &[&str]) -> Vec<u64> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "--no-table-headers", "name"])
        .args(columns)
        .output()
        .expect("running rabbitmqctl list_queues");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| {
            let mut fields = line.split_whitespace();
            if fields.next()? != queue {
                return None;
            }
            let values: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
            (values.len() == columns.len()).then_some(values)
        })
        .unwrap_or_else(|| panic!("queue {queue} in `rabbitmqctl list_queues`:\n{text}"))
}
