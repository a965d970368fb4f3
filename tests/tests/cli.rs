//! The real `webhookd` binary as a subprocess: `migrate`, `users`, `run`,
//! configuration errors and JSON logs. Every run is configured only through
//! `WEBHOOKD__...` environment variables, on its own database, exchange, queues
//! and HTTP port, against the real Postgres and RabbitMQ.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitStatus;
use std::str::FromStr;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{ConnectionProperties, ExchangeKind};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use uuid::Uuid;
use webhookd_e2e::broker::AMQP_URL;
use webhookd_e2e::db::{DEFAULT_SERVER_URL, NAME_PREFIX};
use webhookd_e2e::eventually;
use webhookd_e2e::process::{
    delete_topology, pairs, sample, webhookd_command, Daemon, DAEMON_LIMIT,
};
use webhookd_producer::{Event, Publisher, Topology};

/// Upper bound for a one-shot command (`migrate`, `users ...`) to finish.
const COMMAND_LIMIT: Duration = Duration::from_secs(120);

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

    /// The configuration of every `webhookd` this test runs: this test's
    /// database and broker objects, through the environment only.
    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = pairs(&[
            ("WEBHOOKD__DATABASE__URL", &self.db_url),
            ("WEBHOOKD__BROKER__URL", AMQP_URL),
            ("WEBHOOKD__BROKER__EXCHANGE", &self.topology.exchange),
            ("WEBHOOKD__BROKER__QUEUE", &self.topology.queue),
        ]);
        env.extend(pairs(extra));
        env
    }

    /// Runs a one-shot command to its end.
    async fn webhookd(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        let command = webhookd_command(args, &self.env(env)).output();
        let output = tokio::time::timeout(COMMAND_LIMIT, command)
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

/// Starts `webhookd run` for this test and waits until it is ready.
async fn start_daemon(fixture: &Fixture) -> Daemon {
    let env = fixture.env(&[("WEBHOOKD__SHUTDOWN__GRACE_PERIOD_MS", "5000")]);
    Daemon::start(&["run"], &env).await
}

/// `GET /api/v1/me`: the status and the body, JSON or not.
async fn me(daemon: &Daemon, token: &str) -> (StatusCode, Value) {
    let response = daemon.get("/api/v1/me", Some(token)).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
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
    assert_eq!(row("Alice")[..5], ["42", "Alice", "no", "no", "1"]);
    assert_eq!(row("Root")[2..5], ["yes", "yes", "1"]);
    assert!(
        !list.stdout.contains("whk_"),
        "list never shows tokens: {}",
        list.stdout
    );

    let daemon = start_daemon(&fixture).await;
    let alice_me = json!({"id": 42, "name": "Alice", "is_admin": false, "can_publish": false});
    assert_eq!(
        me(&daemon, &alice_token).await,
        (StatusCode::OK, alice_me.clone())
    );
    let (status, root_me) = me(&daemon, &root_token).await;
    assert_eq!(status, StatusCode::OK, "{root_me}");
    assert_eq!(root_me["name"], "Root");
    assert_eq!(root_me["is_admin"], true);

    let rotated = fixture
        .webhookd(&["users", "rotate", "--id", "42"], &[])
        .await;
    rotated.assert_success("users rotate --id 42");
    let new_token = rotated.token();
    assert_ne!(new_token, alice_token);
    assert_eq!(
        me(&daemon, &alice_token).await.0,
        StatusCode::UNAUTHORIZED,
        "the rotated-out token is refused"
    );
    assert_eq!(me(&daemon, &new_token).await, (StatusCode::OK, alice_me));

    let revoked = fixture
        .webhookd(&["users", "revoke", "--id", "42"], &[])
        .await;
    revoked.assert_success("users revoke --id 42");
    assert!(
        !revoked.stdout.contains("whk_"),
        "revoke prints no token: {}",
        revoked.stdout
    );
    assert_eq!(me(&daemon, &new_token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me(&daemon, &root_token).await.0,
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
        alice_row.split_whitespace().nth(4),
        Some("0"),
        "no active token left: {alice_row}"
    );

    // The right to publish over HTTP, granted and withdrawn.
    let publisher_column = |stdout: &str| {
        stdout
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some("Alice"))
            .and_then(|line| line.split_whitespace().nth(3))
            .map(str::to_owned)
    };
    let granted = fixture
        .webhookd(&["users", "grant-publisher", "--id", "42"], &[])
        .await;
    granted.assert_success("users grant-publisher --id 42");
    assert!(
        granted.stdout.contains("may publish events over HTTP"),
        "{}",
        granted.stdout
    );
    let list = fixture.webhookd(&["users", "list"], &[]).await;
    assert_eq!(
        publisher_column(&list.stdout).as_deref(),
        Some("yes"),
        "{}",
        list.stdout
    );
    let withdrawn = fixture
        .webhookd(&["users", "revoke-publisher", "--id", "42"], &[])
        .await;
    withdrawn.assert_success("users revoke-publisher --id 42");
    let list = fixture.webhookd(&["users", "list"], &[]).await;
    assert_eq!(
        publisher_column(&list.stdout).as_deref(),
        Some("no"),
        "{}",
        list.stdout
    );
    let created = fixture
        .webhookd(&["users", "create", "--name", "CRM", "--publisher"], &[])
        .await;
    created.assert_success("users create --publisher");
    assert!(created.stdout.contains("publisher"), "{}", created.stdout);
    let (status, crm_me) = me(&daemon, &created.token()).await;
    assert_eq!(status, StatusCode::OK, "{crm_me}");
    assert_eq!(crm_me["can_publish"], true);
    assert_eq!(crm_me["is_admin"], false);
    let missing = fixture
        .webhookd(&["users", "grant-publisher", "--id", "4242"], &[])
        .await;
    missing.assert_failure("users grant-publisher of an unknown id");

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
    let daemon = start_daemon(&fixture).await;

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
    eventually(DAEMON_LIMIT, "the event to be consumed", || async move {
        (sample(&running.metrics().await, consumed) == Some(1.0)).then_some(())
    })
    .await;

    let status = daemon.terminate().await;
    assert_eq!(status.code(), Some(0));
    fixture.cleanup().await;
}

#[tokio::test]
async fn run_refuses_a_database_older_than_the_binary() {
    let fixture = Fixture::new();
    fixture.migrate().await;
    // As if this binary were an upgrade whose newest migration has not run:
    // its bookkeeping row is set aside (and put back below).
    let mut conn = PgConnectOptions::from_str(&fixture.db_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let newest: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE set_aside AS SELECT * FROM _sqlx_migrations
             WHERE version = (SELECT max(version) FROM _sqlx_migrations);
         DELETE FROM _sqlx_migrations WHERE version IN (SELECT version FROM set_aside)",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let ran = fixture.webhookd(&["run"], &[]).await;
    ran.assert_failure("webhookd run on an older schema");
    assert!(
        ran.stderr.contains(&format!("[{newest}]")) && ran.stderr.contains("webhookd migrate"),
        "names the missing migration and the fix:\n{}",
        ran.stderr
    );

    sqlx::raw_sql("INSERT INTO _sqlx_migrations SELECT * FROM set_aside; DROP TABLE set_aside")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let daemon = start_daemon(&fixture).await;
    assert_eq!(daemon.get("/readyz", None).await.status(), StatusCode::OK);
    assert_eq!(daemon.terminate().await.code(), Some(0));
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
