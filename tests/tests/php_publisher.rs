//! The PHP publisher (clients/php) against the real RabbitMQ and daemon: its
//! unit tests, its catalogue against webhookd's, events a PHP script publishes
//! delivered signed with their bodies, an unroutable publish raising, and an
//! invalid event refused before anything is sent.
//!
//! Needs `php` and Debian's php-amqplib: scripts/ensure-php.sh installs them.
//! Without them these tests fail, naming that script, rather than skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, ExchangeDeleteOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};
use serde_json::{json, Value};
use sqlx::Row;
use uuid::Uuid;
use webhookd_e2e::broker::{open_channel, AMQP_URL};
use webhookd_e2e::process::{free_port, workspace_root};
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_events::{CATALOGUE, OPERATIONAL_EVENTS};

const SECRET: &str = "whsec_PhpPublisherE2eSecret0123456789";
const WAIT: Duration = Duration::from_secs(20);

fn php_tests_dir() -> PathBuf {
    workspace_root().join("clients/php/tests")
}

/// Runs `php clients/php/tests/<script> <args>`.
async fn php(script: &str, args: &[&str]) -> Output {
    let output = tokio::process::Command::new("php")
        .arg(php_tests_dir().join(script))
        .args(args)
        .kill_on_drop(true)
        .output()
        .await;
    match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`php` is not installed: run scripts/ensure-php.sh (Debian's php-cli and php-amqplib)"
        ),
        Err(e) => panic!("cannot run php: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A broker URL on 127.0.0.1 where nothing listens.
fn dead_node_url() -> String {
    format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port())
}

/// Publishes with clients/php/tests/publish.php (through `WebhookService`);
/// the event id on success.
async fn publish(
    urls: &str,
    exchange: &str,
    queue: &str,
    event: &str,
    data: &Value,
    user_id: Option<i64>,
) -> Result<String, (Option<i32>, String)> {
    let data = data.to_string();
    let user_id = user_id.map(|id| id.to_string());
    let mut args = vec![urls, exchange, queue, event, data.as_str()];
    args.extend(user_id.as_deref());
    let output = php("publish.php", &args).await;
    if output.status.success() {
        Ok(text(&output.stdout).trim().to_owned())
    } else {
        Err((output.status.code(), text(&output.stderr)))
    }
}

/// An exchange named for one test alone (`test.php.<what>.<uuid>`), and the
/// queue of the same name once one is bound to it, on a connection of the
/// test's own. Deleted before the test asserts, so that a failing assertion
/// leaves nothing behind on the shared broker.
struct ScratchExchange {
    name: String,
    conn: Connection,
    channel: Channel,
    has_queue: bool,
}

impl ScratchExchange {
    /// Declares nothing yet: some tests leave that to the library.
    async fn named(what: &str) -> ScratchExchange {
        let (conn, channel) = open_channel().await;
        ScratchExchange {
            name: format!("test.php.{what}.{}", Uuid::new_v4().simple()),
            conn,
            channel,
            has_queue: false,
        }
    }

    async fn declare(&self, kind: ExchangeKind, options: ExchangeDeclareOptions) {
        self.channel
            .exchange_declare(
                self.name.as_str().into(),
                kind,
                options,
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    /// Binds, for every routing key, a queue that takes nothing
    /// (`x-max-length: 0`, `reject-publish`): the broker nacks whatever
    /// reaches it.
    async fn bind_a_queue_that_takes_nothing(&mut self) {
        let mut full = FieldTable::default();
        full.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
        full.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        self.channel
            .queue_declare(self.name.as_str().into(), Default::default(), full)
            .await
            .unwrap();
        self.has_queue = true;
        self.channel
            .queue_bind(
                self.name.as_str().into(),
                self.name.as_str().into(),
                "#".into(),
                Default::default(),
                Default::default(),
            )
            .await
            .unwrap();
    }

    async fn delete(&self) {
        if self.has_queue {
            self.channel
                .queue_delete(self.name.as_str().into(), Default::default())
                .await
                .unwrap();
        }
        self.channel
            .exchange_delete(self.name.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .unwrap();
        let _ = self.conn.close(200, "done".into()).await;
    }
}

/// Publishes to `exchange` alone on the running broker: the library
/// declares no queue (`-`), and no user id is given.
async fn publish_to_exchange(
    exchange: &ScratchExchange,
    event: &str,
    data: Value,
) -> Result<String, (Option<i32>, String)> {
    publish(AMQP_URL, &exchange.name, "-", event, &data, None).await
}

/// clients/php is a Composer package whose autoloading the tests' bootstrap
/// (which loads src/ by the same PSR-4 rule) relies on. Composer itself is
/// not needed to run the tests; when it is installed, it validates too.
#[tokio::test]
async fn the_composer_package_declares_what_the_library_relies_on() {
    let path = workspace_root().join("clients/php/composer.json");
    let composer: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .expect("composer.json is JSON");
    assert_eq!(composer["name"], "webhookd/crm-events");
    assert_eq!(composer["type"], "library");
    assert_eq!(composer["require"]["php"], ">=8.1");
    assert_eq!(composer["require"]["php-amqplib/php-amqplib"], "^3");
    let require = composer["require"].as_object().unwrap();
    assert!(
        require
            .keys()
            .all(|k| k == "php" || k.starts_with("ext-") || k == "php-amqplib/php-amqplib"),
        "dependency-light: php-amqplib only, {require:?}"
    );
    assert_eq!(
        composer["autoload"]["psr-4"],
        json!({"Webhookd\\CrmEvents\\": "src/"})
    );
    if let Ok(output) = tokio::process::Command::new("composer")
        .args([
            "validate",
            "--strict",
            "--no-check-publish",
            "--no-interaction",
        ])
        .current_dir(workspace_root().join("clients/php"))
        .output()
        .await
    {
        assert!(
            output.status.success(),
            "composer validate: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
}

#[tokio::test]
async fn the_php_unit_tests_pass() {
    let output = php("unit.php", &[]).await;
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "clients/php/tests/unit.php failed:\n{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(stdout.contains(", 0 failed"), "{stdout}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

/// The PHP `Catalogue`, `Publisher` and `WebhookService` stay in step with
/// crates/events/src/catalogue.rs: adding an event there fails this test
/// until the PHP library has it too.
#[tokio::test]
async fn the_php_catalogue_and_typed_methods_match_webhookds_catalogue() {
    let output = php("catalogue.php", &[]).await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let php: Value = serde_json::from_slice(&output.stdout).expect("catalogue.php prints JSON");

    let events: Vec<Value> = CATALOGUE
        .iter()
        .map(|e| json!({"name": e.name, "description": e.description}))
        .collect();
    assert_eq!(
        php["events"],
        json!(events),
        "clients/php/src/Catalogue.php EVENTS differs from crates/events/src/catalogue.rs"
    );
    assert_eq!(php["operational"], json!(OPERATIONAL_EVENTS));
    let publishable: Vec<&str> = CATALOGUE
        .iter()
        .map(|e| e.name)
        .filter(|name| !OPERATIONAL_EVENTS.contains(name))
        .collect();
    assert_eq!(
        php["publisher_methods"],
        json!(publishable),
        "clients/php/src/TypedEvents.php needs one method per event the CRM publishes"
    );
    assert_eq!(
        php["service_methods"],
        json!(publishable),
        "clients/php/src/WebhookService.php needs one notify* method per event the CRM publishes"
    );
}

#[tokio::test]
async fn events_published_from_php_are_delivered_signed_with_their_bodies() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.create_user("Alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    app.create_webhook_to(
        &alice,
        &receiver.url(),
        json!(["task.created", "deal.won"]),
        SECRET,
    )
    .await;
    // A dead first node: the library fails over to the second. It also
    // declares the daemon's topology, which the broker accepts only if the
    // arguments are the daemon's own.
    let urls = format!("{},{AMQP_URL}", dead_node_url());
    let exchange = app.topology.exchange.as_str();
    let queue = app.topology.queue.as_str();

    let task = json!({"task_id": 123, "title": "Новая задача \"срочно\"", "status": "pending",
        "priority": "medium", "created_at": "2026-02-20T12:00:00+00:00"});
    let deal = json!({"deal_id": 456, "name": "Сделка #456", "amount": 100000, "fee": 12.5,
        "client": "ООО Ромашка", "won_at": "2026-02-20T16:00:00+00:00"});
    let task_id = publish(&urls, exchange, queue, "task.created", &task, None)
        .await
        .expect("task.created published");
    let deal_id = publish(&urls, exchange, queue, "deal.won", &deal, Some(7))
        .await
        .expect("deal.won published");
    assert_ne!(task_id, deal_id);

    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2, "exactly the two events");
    for (id, event, data) in [
        (&task_id, "task.created", &task),
        (&deal_id, "deal.won", &deal),
    ] {
        let request = got
            .iter()
            .find(|r| r.json()["event"] == event)
            .unwrap_or_else(|| panic!("{event} delivered"));
        assert!(
            request.seed_signature_valid,
            "{event}: X-Webhook-Signature verifies"
        );
        assert!(
            request.standard_signature_valid,
            "{event}: webhook-signature verifies"
        );
        assert_eq!(request.header("x-webhook-event"), event);
        let body = request.json();
        assert_eq!(
            body["id"],
            json!(id),
            "{event}: the id the library generated"
        );
        assert_eq!(&body["data"], data, "{event}: the data as sent");
        assert!(body["timestamp"].is_i64(), "{event}: {body}");
    }

    // Events are written once their first attempts end (after the receiver
    // answered): wait for both rows.
    let user_ids = eventually(WAIT, "both events written", || async {
        let rows: Vec<(String, Option<i64>)> =
            sqlx::query("SELECT event, user_id FROM events ORDER BY event DESC")
                .fetch_all(&app.db.pool)
                .await
                .unwrap()
                .iter()
                .map(|row| (row.get("event"), row.get("user_id")))
                .collect();
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    assert_eq!(
        user_ids,
        [
            ("task.created".to_owned(), None),
            ("deal.won".to_owned(), Some(7))
        ],
        "user_id reaches the daemon only when given"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_php_publish_nobody_receives_raises_unroutable() {
    // Only the exchange is declared (by the library): no queue is bound to it.
    let exchange = ScratchExchange::named("unroutable").await;
    let outcome = publish_to_exchange(&exchange, "task.created", json!({"task_id": 1})).await;
    exchange.delete().await;

    let (code, stderr) = outcome.expect_err("an unroutable publish fails");
    assert_eq!(code, Some(3), "UnroutableEvent: {stderr}");
    assert!(
        stderr.contains("UnroutableEvent") && stderr.contains("312 NO_ROUTE"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("`{}`", exchange.name)), "{stderr}");
}

/// A queue that takes nothing (`x-max-length: 0`, `reject-publish`): the
/// broker nacks the event, and the library raises instead of returning.
#[tokio::test]
async fn an_event_the_broker_nacks_raises_refused() {
    let mut exchange = ScratchExchange::named("full").await;
    exchange
        .declare(
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
        )
        .await;
    exchange.bind_a_queue_that_takes_nothing().await;
    let outcome = publish_to_exchange(&exchange, "deal.lost", json!({"deal_id": 9})).await;
    exchange.delete().await;

    let (code, stderr) = outcome.expect_err("a nacked event fails");
    assert_eq!(code, Some(4), "EventRefused: {stderr}");
    assert!(stderr.contains("the broker nacked it"), "{stderr}");
}

/// An exchange that exists with another type: the broker refuses the
/// library's declaration, and the error says so instead of blaming the
/// connection.
#[tokio::test]
async fn a_topology_the_broker_refuses_is_reported_as_such() {
    let exchange = ScratchExchange::named("fanout").await;
    exchange
        .declare(ExchangeKind::Fanout, ExchangeDeclareOptions::default())
        .await;
    let outcome = publish_to_exchange(&exchange, "task.created", json!({"task_id": 1})).await;
    exchange.delete().await;

    let (code, stderr) = outcome.expect_err("the declaration is refused");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("PublishFailed")
            && stderr.contains("refused the topology")
            && stderr.contains("PRECONDITION_FAILED"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_invalid_event_is_refused_by_the_php_library_before_publishing() {
    // Nothing listens at the URL: a library that tried to publish would
    // report a connection failure (exit 1) instead.
    let url = dead_node_url();
    for (event, data, field) in [
        (
            "Task.Created",
            json!({"task_id": 1}),
            "`event` must be `entity.action`",
        ),
        (
            "task.archived",
            json!({"task_id": 1}),
            "`task.archived` is not in the catalogue",
        ),
        ("delivery.failed", json!({}), "published by webhookd itself"),
        ("task.created", json!([1, 2]), "`data` must be an object"),
    ] {
        let (code, stderr) = publish(&url, "crm.events", "-", event, &data, None)
            .await
            .expect_err("refused");
        assert_eq!(
            code,
            Some(2),
            "{event}: InvalidEvent, not a connection error: {stderr}"
        );
        assert!(
            stderr.contains("InvalidEvent") && stderr.contains(field),
            "{event}: {stderr}"
        );
    }
}
