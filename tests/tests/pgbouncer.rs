//! webhookd behind PgBouncer in transaction mode: `database.url` through a
//! real PgBouncer (>= 1.21, `max_prepared_statements` on, a pool of two
//! server connections so they are shared and swapped between clients),
//! `database.direct_url` to Postgres for what needs a session (`LISTEN`).
//!
//! Each test starts its own PgBouncer, built by `scripts/ensure-pgbouncer.sh`
//! (found at `$WEBHOOKD_PGBOUNCER` or in that script's cache directory).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use uuid::Uuid;
use webhookd_e2e::app::webhook_body;
use webhookd_e2e::db::count;
use webhookd_e2e::eventually;
use webhookd_e2e::process::{free_port, Daemon, Deployment};
use webhookd_e2e::Receiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// The scheduler's fallback poll in the wake-up test: far longer than the
/// test waits, so only a wake-up (the recorder's, or a `NOTIFY`) can make a
/// due delivery go out in time.
const SLOW_POLL_MS: &str = "300000";
const WAKE_LIMIT: Duration = Duration::from_secs(30);
/// The PgBouncer the tests need at least: protocol-level prepared statements.
const MIN_VERSION: (u32, u32) = (1, 21);
/// Where `scripts/ensure-pgbouncer.sh` builds it.
const CACHED_VERSION: &str = "1.24.1";

// ---------------------------------------------------------------------------
// A PgBouncer of the test's own
// ---------------------------------------------------------------------------

fn pgbouncer_binary() -> PathBuf {
    let binary = match std::env::var_os("WEBHOOKD_PGBOUNCER") {
        Some(path) => PathBuf::from(path),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
                .expect("HOME or XDG_CACHE_HOME is set");
            cache.join(format!("webhookd/pgbouncer-{CACHED_VERSION}/bin/pgbouncer"))
        }
    };
    assert!(
        binary.is_file(),
        "no PgBouncer at {}: run scripts/ensure-pgbouncer.sh (it builds one; \
         scripts/test.sh does so before the tests)",
        binary.display()
    );
    let output = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .expect("running pgbouncer --version");
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or_else(|| panic!("unexpected `pgbouncer --version`: {text}"));
    assert!(
        version >= MIN_VERSION,
        "{} is PgBouncer {version:?}; webhookd needs >= 1.21 (max_prepared_statements): \
         run scripts/ensure-pgbouncer.sh and unset WEBHOOKD_PGBOUNCER",
        binary.display()
    );
    binary
}

/// The settings that matter, as docs/OPERATIONS.md ("Behind PgBouncer")
/// gives them.
#[derive(Clone, Copy)]
struct PoolSettings {
    max_prepared_statements: u32,
    default_pool_size: u32,
}

const TRANSACTION_POOLING: PoolSettings = PoolSettings {
    max_prepared_statements: 100,
    default_pool_size: 2,
};

/// A running PgBouncer in front of one test database; killed and its files
/// removed when dropped.
struct Bouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
    database: String,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Bouncer {
    async fn start(database: &str, settings: PoolSettings) -> Bouncer {
        let binary = pgbouncer_binary();
        let dir = std::env::temp_dir().join(format!("webhookd-pgbouncer-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        // Trust on both sides, as the test Postgres: the user must still be
        // listed in the auth file.
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").unwrap();
        let ini = format!(
            "[databases]\n\
             {database} = host=127.0.0.1 port=5432 dbname={database} user=postgres\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/userlist.txt\n\
             admin_users = postgres\n\
             pool_mode = transaction\n\
             max_prepared_statements = {prepared}\n\
             default_pool_size = {pool}\n\
             min_pool_size = 0\n\
             reserve_pool_size = 0\n\
             max_client_conn = 500\n\
             max_db_connections = {pool}\n\
             server_reset_query = DISCARD ALL\n\
             track_extra_parameters = IntervalStyle, extra_float_digits\n\
             logfile = {dir}/pgbouncer.log\n\
             pidfile = {dir}/pgbouncer.pid\n",
            dir = dir.display(),
            prepared = settings.max_prepared_statements,
            pool = settings.default_pool_size,
        );
        let ini_path = dir.join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).unwrap();
        let mut command = Command::new(binary);
        // PgBouncer refuses to run as root: as root (a CI container), it
        // switches to `nobody`, which must be able to write its log and pid.
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&ini_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting pgbouncer");
        let bouncer = Bouncer {
            child,
            port,
            dir,
            database: database.to_owned(),
        };
        eventually(
            Duration::from_secs(20),
            "PgBouncer accepting connections",
            || async {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(|_| ())
            },
        )
        .await;
        bouncer
    }

    /// The test database through this PgBouncer.
    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }

    /// One row of an admin console `SHOW` command (`psql`: the console
    /// speaks only the simple query protocol), by column name.
    fn show(&self, command: &str) -> Vec<HashMap<String, String>> {
        let output = std::process::Command::new("psql")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args([
                "-U",
                "postgres",
                "-d",
                "pgbouncer",
                "-A",
                "-F",
                "\t",
                "-P",
                "footer=off",
            ])
            .args(["-c", command])
            .output()
            .expect("running psql");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "psql {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
        lines
            .map(|line| {
                header
                    .iter()
                    .zip(line.split('\t'))
                    .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    }

    /// This database's counters from `SHOW STATS`.
    fn stats(&self) -> HashMap<String, i64> {
        let row = self
            .show("SHOW STATS")
            .into_iter()
            .find(|row| row.get("database") == Some(&self.database))
            .unwrap_or_else(|| panic!("{} in SHOW STATS", self.database));
        row.into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect()
    }
}

/// A worker's (or API's) environment with `database.url` through `bouncer`
/// and `database.direct_url` straight to Postgres.
fn behind(
    deployment: &Deployment,
    bouncer: &Bouncer,
    overrides: &[(&str, &str)],
) -> Vec<(String, String)> {
    let url = bouncer.url();
    let mut env = deployment.env(&[
        ("WEBHOOKD__DATABASE__URL", &url),
        ("WEBHOOKD__DATABASE__DIRECT_URL", &deployment.db.url),
    ]);
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

async fn worker(env: &[(String, String)]) -> Daemon {
    Daemon::start(&["run", "--role", "worker"], env).await
}

/// The ids of the events `receiver` got, duplicates included.
fn event_ids(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Fails at once, with the logs, on what PgBouncer without prepared
/// statement tracking (< 1.21, or `max_prepared_statements = 0`) does to
/// sqlx's named statements ("prepared statement \"sqlx_s_1\" does not
/// exist" or "already exists"), rather than waiting out the drain limit.
fn no_prepared_statement_errors(logs: &str) {
    assert!(
        !(logs.contains("prepared statement") && logs.contains("sqlx_s_")),
        "prepared statements broke behind PgBouncer:\n{logs}"
    );
}

/// Waits until every receiver has every event of `events`, then checks
/// none came twice.
async fn every_event_once(
    receivers: &[Receiver],
    expected: &HashSet<String>,
    logs: impl Fn() -> String,
) {
    for (n, receiver) in receivers.iter().enumerate() {
        eventually(
            DRAIN_LIMIT,
            &format!("receiver {n} got every event"),
            || async {
                no_prepared_statement_errors(&logs());
                let got: HashSet<String> = event_ids(receiver).into_iter().collect();
                (got == *expected).then_some(())
            },
        )
        .await;
    }
    // Let anything sent twice arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (n, receiver) in receivers.iter().enumerate() {
        let ids = event_ids(receiver);
        assert_eq!(
            ids.len(),
            expected.len(),
            "receiver {n} got events twice:\n{}",
            logs()
        );
        assert!(receiver
            .received()
            .iter()
            .all(|r| r.standard_signature_valid));
    }
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// The pooled connections (the API's, the scheduler's, each consumer's and
/// the recorder's held ones) far outnumber PgBouncer's two server
/// connections, so every named statement sqlx prepared on one is run later
/// on a server connection that never saw it: PgBouncer must prepare it there.
#[tokio::test]
async fn many_events_to_several_webhooks_are_delivered_and_logged_through_transaction_pooling() {
    const EVENTS: usize = 150;
    const WEBHOOKS: usize = 3;
    let deployment = Deployment::new().await;
    let bouncer = Bouncer::start(&deployment.db.name, TRANSACTION_POOLING).await;
    let mut receivers = Vec::new();
    for _ in 0..WEBHOOKS {
        let receiver = Receiver::start(SECRET).await;
        deployment.subscribe(&receiver.url(), SECRET).await;
        receivers.push(receiver);
    }
    // Two consumers: each has a pool of its own with statements prepared
    // ahead (`fanout::prepare_statements`).
    let env = behind(
        &deployment,
        &bouncer,
        &[("WEBHOOKD__BROKER__CONSUMERS", "2")],
    );
    let daemon = worker(&env).await;
    let events = deployment.publish(EVENTS).await;

    let expected: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    every_event_once(&receivers, &expected, || {
        format!("{}\n--- pgbouncer ---\n{}", daemon.logs(), bouncer.log())
    })
    .await;
    let total = (EVENTS * WEBHOOKS) as i64;
    eventually(DRAIN_LIMIT, "every delivery recorded", || async {
        (deployment.succeeded().await == total).then_some(())
    })
    .await;
    let logged = count(
        &deployment.db.pool,
        "SELECT count(*) FROM webhook_logs WHERE is_success",
    )
    .await;
    assert_eq!(logged, total, "one log row per delivery");

    // PgBouncer really sat in between, sharing two server connections and
    // preparing sqlx's named statements on them as clients moved around.
    let stats = bouncer.stats();
    let servers = bouncer
        .show("SHOW SERVERS")
        .into_iter()
        .filter(|row| row.get("database") == Some(&deployment.db.name))
        .count();
    assert!(
        servers <= 2,
        "at most default_pool_size server connections: {servers}"
    );
    // Every transaction is a server connection lent to a client: far more
    // of them than server connections means they moved between clients.
    assert!(
        stats["total_server_assignment_count"] > 10 * servers as i64,
        "server connections were handed from client to client: {stats:?}"
    );
    // Clients' Parse messages (one per statement per client connection)
    // outnumber the server-side ones: a statement a client prepared was
    // found already prepared on the server connection it landed on.
    assert!(
        stats["total_client_parse_count"] > stats["total_server_parse_count"]
            && stats["total_server_parse_count"] > 0,
        "named statements went through PgBouncer's tracking and were shared: {stats:?}"
    );
    // And run more often than prepared: reused, not prepared per use.
    assert!(
        stats["total_bind_count"] > stats["total_server_parse_count"],
        "prepared statements were reused: {stats:?}"
    );
    assert!(
        !daemon.logs().contains("prepared statement"),
        "no prepared statement errors:\n{}",
        daemon.logs()
    );
    daemon.terminate().await;
    drop(bouncer);
    deployment.cleanup().await;
}

/// Retries of a failing receiver go out as they fall due, and a retry asked
/// for through the API (another process, writing through PgBouncer) reaches
/// the worker as a `NOTIFY` on its direct `LISTEN` connection: with the
/// fallback poll set far beyond the test's patience, nothing else would send
/// them in time. The API's reads and writes go through PgBouncer too.
#[tokio::test]
async fn retries_fire_on_time_and_the_api_wakes_workers_through_notify() {
    let deployment = Deployment::new().await;
    let bouncer = Bouncer::start(&deployment.db.name, TRANSACTION_POOLING).await;
    let (_user, token) =
        webhookd_store::users::create_user(&deployment.db.pool, "Pooled", None, false)
            .await
            .unwrap();
    let env = behind(
        &deployment,
        &bouncer,
        &[
            ("WEBHOOKD__SCHEDULER__POLL_INTERVAL_MS", SLOW_POLL_MS),
            ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "3"),
        ],
    );
    let api = Daemon::start(&["run", "--role", "api"], &env).await;
    let worker = worker(&env).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.always(500);

    // Writes and reads through the API.
    let call = |method: Method, path: String, body: Value| {
        let request = api
            .http
            .request(method, api.url(&format!("/api/v1{path}")))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, created) = call(
        Method::POST,
        "/webhooks".into(),
        webhook_body(&receiver.url(), json!(["task.*"]), SECRET),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (status, read) = call(Method::GET, format!("/webhooks/{id}"), Value::Null).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["url"], receiver.url());
    let (status, patched) = call(
        Method::PATCH,
        format!("/webhooks/{id}"),
        json!({"name": "pooled hook"}),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "pooled hook");

    // Three attempts, the two retries woken by the recorder as they fall due.
    let events = deployment.publish(1).await;
    receiver.wait_for(3, WAKE_LIMIT).await;
    eventually(WAKE_LIMIT, "the delivery failed for good", || async {
        (deployment.delivery_statuses().await == [("failed".to_owned(), 1)]).then_some(())
    })
    .await;
    let (status, logs) = call(Method::GET, format!("/webhooks/{id}/logs"), Value::Null).await;
    assert_eq!(status, 200, "{logs}");
    assert_eq!(logs["items"].as_array().unwrap().len(), 3, "{logs}");
    let (status, deliveries) = call(
        Method::GET,
        format!("/webhooks/{id}/deliveries"),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{deliveries}");
    let delivery = deliveries["items"][0]["id"].as_str().unwrap().to_owned();

    // The retry: the API's NOTIFY is the only thing that can wake the worker
    // before its five-minute poll.
    receiver.always(200);
    let (status, retried) = call(
        Method::POST,
        format!("/webhooks/{id}/retry"),
        json!({"delivery_id": delivery}),
    )
    .await;
    assert_eq!(status, 200, "{retried}\n{}", api.logs());
    let got = receiver.wait_for(4, WAKE_LIMIT).await;
    assert_eq!(got[3].json()["id"], events[0].id.to_string());
    eventually(WAKE_LIMIT, "the retried delivery succeeded", || async {
        (deployment.succeeded().await == 1).then_some(())
    })
    .await;
    worker.terminate().await;
    api.terminate().await;
    drop(bouncer);
    deployment.cleanup().await;
}

/// Two replicas through one PgBouncer: both take part, nothing is delivered
/// twice (claims and leases are row locks inside transactions, which
/// transaction pooling keeps whole).
#[tokio::test]
async fn two_replicas_through_one_pgbouncer_share_the_work_without_duplicates() {
    const EVENTS: usize = 200;
    let deployment = Deployment::new().await;
    let bouncer = Bouncer::start(&deployment.db.name, TRANSACTION_POOLING).await;
    let receivers = vec![Receiver::start(SECRET).await, Receiver::start(SECRET).await];
    for receiver in &receivers {
        deployment.subscribe(&receiver.url(), SECRET).await;
        // Some first attempts fail, so retries are claimed by the
        // schedulers of both replicas too.
        receiver.fail_next(20, 503);
    }
    let env = behind(
        &deployment,
        &bouncer,
        &[("WEBHOOKD__BROKER__PREFETCH", "10")],
    );
    let first = worker(&env).await;
    let second = worker(&env).await;
    let events = deployment.publish(EVENTS).await;

    let expected: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    let logs = || format!("{}\n{}", first.logs(), second.logs());
    for (n, receiver) in receivers.iter().enumerate() {
        eventually(
            DRAIN_LIMIT,
            &format!("receiver {n} got every event"),
            || async {
                no_prepared_statement_errors(&logs());
                let got: HashSet<String> = event_ids(receiver).into_iter().collect();
                (got == expected).then_some(())
            },
        )
        .await;
    }
    let total = (EVENTS * receivers.len()) as i64;
    eventually(DRAIN_LIMIT, "every delivery recorded", || async {
        (deployment.succeeded().await == total).then_some(())
    })
    .await;
    // Exactly one successful attempt per delivery, and the receivers got
    // each event once plus the 20 refused attempts each.
    let succeeded_attempts = count(
        &deployment.db.pool,
        "SELECT count(*) FROM webhook_logs WHERE is_success",
    )
    .await;
    assert_eq!(succeeded_attempts, total, "{}", logs());
    for (n, receiver) in receivers.iter().enumerate() {
        assert_eq!(
            receiver.count(),
            EVENTS + 20,
            "receiver {n}: each event once, after 20 refusals\n{}",
            logs()
        );
    }
    let delivered = r#"webhookd_deliveries_total{event="task.created",outcome="success"}"#;
    for (n, daemon) in [&first, &second].into_iter().enumerate() {
        let mine = webhookd_e2e::process::sample(&daemon.metrics().await, delivered).unwrap_or(0.0);
        assert!(mine > 0.0, "replica {n} delivered some events");
    }
    first.terminate().await;
    second.terminate().await;
    drop(bouncer);
    deployment.cleanup().await;
}

/// `webhookd migrate` with `database.url` through PgBouncer works on
/// `database.direct_url`: it creates the database (connecting to the
/// `postgres` database, which PgBouncer does not serve) and migrates under
/// sqlx's session advisory lock. Through PgBouncer alone it cannot.
#[tokio::test]
async fn migrate_uses_the_direct_url_when_the_url_goes_through_pgbouncer() {
    let suffix = Uuid::new_v4().simple().to_string();
    let name = format!("{}pgbouncer_{suffix}", webhookd_e2e::db::NAME_PREFIX);
    let direct = format!("{}{name}", webhookd_e2e::db::DEFAULT_SERVER_URL);
    let topology = webhookd_producer::Topology::new(
        format!("test.events.{suffix}"),
        format!("test.webhookd.{suffix}"),
    );
    let bouncer = Bouncer::start(&name, TRANSACTION_POOLING).await;
    let migrate = |direct_url: String| {
        let env = webhookd_e2e::process::pairs(&[
            ("WEBHOOKD__DATABASE__URL", &bouncer.url()),
            ("WEBHOOKD__DATABASE__DIRECT_URL", &direct_url),
            ("WEBHOOKD__BROKER__URL", webhookd_e2e::broker::AMQP_URL),
            ("WEBHOOKD__BROKER__EXCHANGE", &topology.exchange),
            ("WEBHOOKD__BROKER__QUEUE", &topology.queue),
        ]);
        let command = webhookd_e2e::process::webhookd_command(&["migrate"], &env).output();
        async move {
            tokio::time::timeout(DRAIN_LIMIT, command)
                .await
                .expect("webhookd migrate finished")
                .expect("webhookd migrate started")
        }
    };

    let through_pgbouncer = migrate(String::new()).await;
    assert!(
        !through_pgbouncer.status.success(),
        "migrate through PgBouncer alone should fail"
    );
    // Creating the database connects to `postgres`, which PgBouncer does not
    // serve.
    let stderr = String::from_utf8_lossy(&through_pgbouncer.stderr);
    assert!(stderr.contains("checking the database"), "{stderr}");

    let ran = migrate(direct.clone()).await;
    assert!(
        ran.status.success(),
        "webhookd migrate: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    // The daemon's URL now reaches a migrated database through PgBouncer.
    let pool = sqlx::PgPool::connect(&bouncer.url()).await.unwrap();
    let applied = count(&pool, "SELECT count(*) FROM _sqlx_migrations WHERE success").await;
    assert!(applied >= 15, "migrations applied: {applied}");
    pool.close().await;

    drop(bouncer);
    webhookd_e2e::process::delete_topology(&topology).await;
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&format!(
        "{}postgres",
        webhookd_e2e::db::DEFAULT_SERVER_URL
    ))
    .await
    .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}
