//! The real `webhookd` binary as a subprocess: `migrate`, `users`, `run`,
//! configuration errors and JSON logs. Every run is configured only through
//! `WEBHOOKD__...` environment variables, on its own database, exchange, queues
//! and HTTP port, against the real Postgres and RabbitMQ.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{ConnectionProperties, ExchangeKind};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;
use webhookd_e2e::app::AMQP_URL;
use webhookd_e2e::db::{DEFAULT_SERVER_URL, NAME_PREFIX};
use webhookd_producer::{Event, Publisher, Topology};

/// Upper bound for a one-shot command (`migrate`, `users ...`) to finish.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);
/// Upper bound for `webhookd run` to become ready, or to exit after SIGTERM.
const DAEMON_LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The binary
// ---------------------------------------------------------------------------

fn workspace_root() -> PathBuf {
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
fn webhookd_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let root = workspace_root();
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(|dir| root.join(dir))
            .unwrap_or_else(|| root.join("target"));
        let binary = target_dir
            .join("debug")
            .join(format!("webhookd{}", std::env::consts::EXE_SUFFIX));
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
            .args(["build", "-p", "webhookd", "--bin", "webhookd"])
            .current_dir(&root)
            .stdin(Stdio::null())
            .output()
            .expect("running `cargo build -p webhookd --bin webhookd`");
        assert!(
            output.status.success(),
            "`cargo build -p webhookd --bin webhookd` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            binary.is_file(),
            "cargo built webhookd but {} does not exist",
            binary.display()
        );
        binary
    })
}

// ---------------------------------------------------------------------------
// Per-test resources: a database name, an exchange and a queue
// ---------------------------------------------------------------------------

fn server_url() -> String {
    std::env::var("WEBHOOKD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// Unique names for one test, and the clean-up of whatever the daemon made
/// with them. Dropped without [`Fixture::cleanup`] (a failed test), it still
/// drops the database and deletes the broker objects.
struct Fixture {
    db_name: String,
    db_url: String,
    topology: Topology,
    cleaned: bool,
}

/// The output of a one-shot command.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "{what} exited with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }

    fn assert_failure(&self, what: &str) {
        assert!(
            !self.status.success(),
            "{what} should have failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }

    /// The one `whk_...` API token printed on stdout.
    fn token(&self) -> String {
        let tokens: Vec<&str> = self
            .stdout
            .split_whitespace()
            .filter(|word| word.starts_with("whk_"))
            .collect();
        assert_eq!(tokens.len(), 1, "one token on stdout:\n{}", self.stdout);
        let token = tokens[0].to_owned();
        assert_eq!(
            token.len(),
            "whk_".len() + 43,
            "a token is whk_ and 43 base64url characters: {token}"
        );
        token
    }
}

impl Fixture {
    fn new() -> Fixture {
        let suffix = Uuid::new_v4().simple().to_string();
        let db_name = format!("{NAME_PREFIX}cli_{suffix}");
        let mut url = reqwest::Url::parse(&server_url()).expect("a valid database server URL");
        url.set_path(&db_name);
        Fixture {
            db_name,
            db_url: url.to_string(),
            topology: Topology::new(
                format!("test.events.{suffix}"),
                format!("test.webhookd.{suffix}"),
            ),
            cleaned: false,
        }
    }

    /// `webhookd ARGS` configured for this test's database and broker objects
    /// only through the environment; inherited `WEBHOOKD*` and `RUST_LOG`
    /// variables are removed so the developer's shell cannot change the run.
    fn command(&self, args: &[&str]) -> Command {
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
            .env("WEBHOOKD__DATABASE__URL", &self.db_url)
            .env("WEBHOOKD__BROKER__URL", AMQP_URL)
            .env("WEBHOOKD__BROKER__EXCHANGE", &self.topology.exchange)
            .env("WEBHOOKD__BROKER__QUEUE", &self.topology.queue)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs a one-shot command to its end.
    async fn webhookd(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let mut command = self.command(args);
        command.envs(env.iter().copied());
        let output = tokio::time::timeout(COMMAND_LIMIT, command.output())
            .await
            .unwrap_or_else(|_| panic!("`webhookd {}` did not finish", args.join(" ")))
            .unwrap_or_else(|e| panic!("starting `webhookd {}`: {e}", args.join(" ")));
        Ran {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn migrate(&self) {
        self.webhookd(&["migrate"], &[])
            .await
            .assert_success("webhookd migrate");
    }

    async fn database_exists(&self) -> bool {
        let mut admin = connect_admin().await;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&self.db_name)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        admin.close().await.ok();
        exists
    }

    /// The tables of the test database's `public` schema.
    async fn tables(&self) -> Vec<String> {
        let mut conn = PgConnectOptions::from_str(&self.db_url)
            .unwrap()
            .disable_statement_logging()
            .connect()
            .await
            .unwrap();
        let tables = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.ok();
        tables
    }

    /// Drops the database and deletes the exchanges and queues.
    async fn cleanup(mut self) {
        self.cleaned = true;
        delete_topology(&self.topology).await;
        drop_database(&self.db_name)
            .await
            .unwrap_or_else(|e| panic!("dropping database {}: {e}", self.db_name));
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A failed test: clean up on a runtime of our own, since Drop cannot
        // await and the test's runtime may be unwinding.
        let db_name = self.db_name.clone();
        let topology = self.topology.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                delete_topology(&topology).await;
                drop_database(&db_name).await.ok()
            })
        })
        .join();
    }
}

async fn connect_admin() -> PgConnection {
    PgConnectOptions::from_str(&server_url())
        .expect("a valid database server URL")
        .database("postgres")
        .disable_statement_logging()
        .connect()
        .await
        .expect("connecting to Postgres (is it running on 127.0.0.1:5432?)")
}

/// Drops the database, ending any connection still open to it.
async fn drop_database(name: &str) -> Result<(), sqlx::Error> {
    let mut admin = PgConnectOptions::from_str(&server_url())
        .map_err(|e| sqlx::Error::Configuration(e.into()))?
        .database("postgres")
        .disable_statement_logging()
        .connect()
        .await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    admin.close().await.ok();
    Ok(())
}

async fn delete_topology(topology: &Topology) {
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

/// A broker object whose existence a passive declare checks.
enum BrokerObject<'a> {
    Exchange(&'a str),
    Queue(&'a str),
}

/// Whether the object exists: a passive declare succeeds only then. Each
/// check gets its own channel, since a failed passive declare closes it.
async fn broker_has(object: BrokerObject<'_>) -> bool {
    let conn = lapin::Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("connecting to RabbitMQ (is it running on 127.0.0.1:5672?)");
    let channel = conn.create_channel().await.unwrap();
    let found = match object {
        BrokerObject::Exchange(name) => channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    passive: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .is_ok(),
        BrokerObject::Queue(name) => channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .is_ok(),
    };
    let _ = conn.close(200, "done".into()).await;
    found
}

// ---------------------------------------------------------------------------
// `webhookd run` as a child process
// ---------------------------------------------------------------------------

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A running `webhookd run`; killed when dropped, so a failed test never
/// leaves a daemon behind.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    http: reqwest::Client,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Daemon {
    /// Starts `webhookd run` on a free port and waits until `/readyz` says ready.
    async fn start(fixture: &Fixture) -> Daemon {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
        let mut command = fixture.command(&["run"]);
        command
            .env("WEBHOOKD__HTTP__LISTEN", addr.to_string())
            .env("WEBHOOKD__SHUTDOWN__GRACE_PERIOD_MS", "5000")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("starting `webhookd run`");
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
        let mut daemon = Daemon {
            child,
            addr,
            http: reqwest::Client::new(),
            stderr,
        };
        daemon.wait_until_ready().await;
        daemon
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// What the daemon has logged so far, for failure messages.
    fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + DAEMON_LIMIT;
        loop {
            if let Ok(response) = self.http.get(self.url("/readyz")).send().await {
                if response.status() == StatusCode::OK {
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["status"], "ready", "/readyz: {body}");
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader catch the last lines.
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "webhookd run exited with {status} before becoming ready:\n{}",
                    self.logs()
                );
            }
            assert!(
                Instant::now() < deadline,
                "webhookd run never became ready:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// `GET /api/v1/me`: the status and the body, JSON or not.
    async fn me(&self, token: &str) -> (StatusCode, Value) {
        let response = self.get("/api/v1/me", Some(token)).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn metrics(&self) -> String {
        let response = self.get("/metrics", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    async fn terminate(mut self) -> ExitStatus {
        let pid = self.child.id().expect("the daemon is still running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let status = tokio::time::timeout(DAEMON_LIMIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("webhookd run did not exit after SIGTERM:\n{}", self.logs()))
            .unwrap();
        // Let the reader catch the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            status.success(),
            "webhookd run exited with {status} after SIGTERM:\n{}",
            self.logs()
        );
        status
    }
}

/// Polls `check` every 50 ms until it returns `Some`, at most `within`.
async fn poll<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of one sample line of a Prometheus text exposition.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok())?
    })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn migrate_creates_a_missing_database_applies_migrations_and_declares_the_topology() {
    let fixture = Fixture::new();
    let topology = fixture.topology.clone();
    assert!(!fixture.database_exists().await, "a fresh name");
    assert!(!broker_has(BrokerObject::Queue(&topology.queue)).await);
    assert!(!broker_has(BrokerObject::Exchange(&topology.exchange)).await);

    fixture.migrate().await;

    assert!(
        fixture.database_exists().await,
        "migrate creates the database"
    );
    let tables = fixture.tables().await;
    for table in ["users", "webhooks", "webhook_logs", "deliveries", "events"] {
        assert!(
            tables.iter().any(|t| t == table),
            "table {table} in {tables:?}"
        );
    }
    for object in [
        BrokerObject::Exchange(&topology.exchange),
        BrokerObject::Exchange(&topology.dead_letter_exchange()),
        BrokerObject::Queue(&topology.queue),
        BrokerObject::Queue(&topology.dead_letter_queue()),
    ] {
        let name = match object {
            BrokerObject::Exchange(name) | BrokerObject::Queue(name) => name.to_owned(),
        };
        assert!(broker_has(object).await, "{name} was declared");
    }

    // Idempotent: everything exists now, and a second run changes nothing.
    fixture.migrate().await;
    assert_eq!(fixture.tables().await, tables);
    assert!(broker_has(BrokerObject::Queue(&topology.queue)).await);

    fixture.cleanup().await;
}

#[tokio::test]
async fn users_create_list_rotate_and_revoke_manage_tokens_that_the_api_accepts() {
    let fixture = Fixture::new();
    fixture.migrate().await;

    let alice = fixture
        .webhookd(&["users", "create", "--name", "Alice", "--id", "42"], &[])
        .await;
    alice.assert_success("users create --name Alice --id 42");
    assert!(alice.stdout.contains("42"), "{}", alice.stdout);
    let alice_token = alice.token();

    let root = fixture
        .webhookd(&["users", "create", "--name", "Root", "--admin"], &[])
        .await;
    root.assert_success("users create --name Root --admin");
    let root_token = root.token();

    let again = fixture
        .webhookd(
            &["users", "create", "--name", "Alice again", "--id", "42"],
            &[],
        )
        .await;
    again.assert_failure("creating id 42 twice");
    assert!(
        again.stderr.contains("42") && again.stderr.contains("already exists"),
        "the error says why: {}",
        again.stderr
    );
    assert!(
        !again.stdout.contains("whk_"),
        "no token printed: {}",
        again.stdout
    );

    let list = fixture.webhookd(&["users", "list"], &[]).await;
    list.assert_success("users list");
    let rows: Vec<Vec<&str>> = list
        .stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    let row = |name: &str| {
        rows.iter()
            .find(|row| row.get(1) == Some(&name))
            .unwrap_or_else(|| panic!("{name} in the list:\n{}", list.stdout))
            .clone()
    };
    assert_eq!(row("Alice")[..4], ["42", "Alice", "no", "1"]);
    assert_eq!(row("Root")[2..4], ["yes", "1"]);
    assert!(
        !list.stdout.contains("whk_"),
        "list never shows tokens: {}",
        list.stdout
    );

    let daemon = Daemon::start(&fixture).await;
    let alice_me = json!({"id": 42, "name": "Alice", "is_admin": false});
    assert_eq!(
        daemon.me(&alice_token).await,
        (StatusCode::OK, alice_me.clone())
    );
    let (status, me) = daemon.me(&root_token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "Root");
    assert_eq!(me["is_admin"], true);

    let rotated = fixture
        .webhookd(&["users", "rotate", "--id", "42"], &[])
        .await;
    rotated.assert_success("users rotate --id 42");
    let new_token = rotated.token();
    assert_ne!(new_token, alice_token);
    assert_eq!(
        daemon.me(&alice_token).await.0,
        StatusCode::UNAUTHORIZED,
        "the rotated-out token is refused"
    );
    assert_eq!(daemon.me(&new_token).await, (StatusCode::OK, alice_me));

    let revoked = fixture
        .webhookd(&["users", "revoke", "--id", "42"], &[])
        .await;
    revoked.assert_success("users revoke --id 42");
    assert!(
        !revoked.stdout.contains("whk_"),
        "revoke prints no token: {}",
        revoked.stdout
    );
    assert_eq!(daemon.me(&new_token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        daemon.me(&root_token).await.0,
        StatusCode::OK,
        "revoking Alice's tokens leaves Root's alone"
    );

    let list = fixture.webhookd(&["users", "list"], &[]).await;
    list.assert_success("users list");
    let alice_row = list
        .stdout
        .lines()
        .find(|line| line.split_whitespace().nth(1) == Some("Alice"))
        .unwrap_or_else(|| panic!("Alice in the list:\n{}", list.stdout));
    assert_eq!(
        alice_row.split_whitespace().nth(3),
        Some("0"),
        "no active token left: {alice_row}"
    );

    for command in ["rotate", "revoke"] {
        let missing = fixture
            .webhookd(&["users", command, "--id", "4242"], &[])
            .await;
        missing.assert_failure(&format!("users {command} of an unknown id"));
        assert!(
            missing.stderr.contains("4242"),
            "users {command} names the missing id: {}",
            missing.stderr
        );
    }

    daemon.terminate().await;
    fixture.cleanup().await;
}

#[tokio::test]
async fn run_exits_zero_on_sigterm_and_readyz_reports_ready_before() {
    let fixture = Fixture::new();
    fixture.migrate().await;
    let daemon = Daemon::start(&fixture).await;

    let ready = daemon.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["database"], "up", "{ready}");
    assert_eq!(ready["broker"], "up", "{ready}");

    let health = daemon.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);

    let metrics = daemon.metrics().await;
    // Metrics without labels are exposed from the start; labelled ones once
    // they have a sample.
    for line in [
        "# TYPE webhookd_delivery_duration_seconds histogram",
        "# TYPE webhookd_deliveries_in_flight gauge",
        "# TYPE webhookd_retries_scheduled_total counter",
        "# TYPE webhookd_webhooks_disabled_total counter",
    ] {
        assert!(metrics.contains(line), "{line} in /metrics:\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .filter(|line| line.starts_with("# HELP "))
            .all(|line| line.starts_with("# HELP webhookd_")),
        "every metric is named webhookd_*:\n{metrics}"
    );

    // The binary consumes from its queue: an event shows in the counter.
    let publisher = Publisher::connect(AMQP_URL, fixture.topology.clone())
        .await
        .expect("the publisher connects");
    let event = Event::custom(
        "task.created",
        json!({"task_id": 1, "title": "Call the client", "status": "pending"}),
    )
    .unwrap()
    .with_user_id(42);
    publisher.publish(&event).await.unwrap();
    publisher.close().await;
    let consumed = r#"webhookd_events_consumed_total{event="task.created"}"#;
    let running = &daemon;
    poll(DAEMON_LIMIT, "the event to be consumed", || async move {
        (sample(&running.metrics().await, consumed) == Some(1.0)).then_some(())
    })
    .await;

    let status = daemon.terminate().await;
    assert_eq!(status.code(), Some(0));
    fixture.cleanup().await;
}

#[tokio::test]
async fn a_bad_config_value_stops_start_up_naming_the_key() {
    let fixture = Fixture::new();
    let cases = [
        ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "soon", "timeout_ms"),
        ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "0", "delivery.timeout_ms"),
        ("WEBHOOKD__HTTP__LISTEN", "nowhere", "listen"),
    ];
    for (key, value, named) in cases {
        let ran = fixture.webhookd(&["run"], &[(key, value)]).await;
        ran.assert_failure(&format!("webhookd run with {key}={value}"));
        assert!(
            ran.stderr.contains(named),
            "{key}={value}: stderr names {named}:\n{}",
            ran.stderr
        );
    }
    assert!(
        !fixture.database_exists().await,
        "nothing was started, so nothing was created"
    );
    fixture.cleanup().await;
}

#[tokio::test]
async fn json_logs_are_emitted_when_log_format_is_json() {
    let fixture = Fixture::new();
    let ran = fixture
        .webhookd(&["migrate"], &[("WEBHOOKD__LOG__FORMAT", "json")])
        .await;
    ran.assert_success("webhookd migrate with JSON logs");
    let lines: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "migrate logs something");
    for line in lines {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a JSON log line ({e}): {line}"));
        assert!(parsed.is_object(), "a JSON object: {line}");
        assert!(parsed["level"].is_string(), "a `level` field: {line}");
    }
    fixture.cleanup().await;
}
