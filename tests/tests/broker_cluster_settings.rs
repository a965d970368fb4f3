//! `broker.queue_type` and `broker.urls` against the machine's RabbitMQ:
//! quorum queues (main and dead-letter) carry events end to end, dead-letter
//! a poison message and are re-declared identically on restart; a queue of
//! the other type stops start-up with a message naming the setting; a list
//! of nodes whose first does not answer is served by the next, for workers
//! and for `crm-events`. The three-node cluster with nodes stopping under
//! load is `scripts/cluster-test.sh`.

#![allow(clippy::unwrap_used)]
use std::collections::HashSet;
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use webhookd_e2e::broker::AMQP_URL;
use webhookd_e2e::process::{crm_events_binary, free_port, webhookd_command, Daemon, Deployment};
use webhookd_e2e::{eventually, Receiver};
use webhookd_producer::{QueueType, REJECT_REASON_HEADER};

const SECRET: &str = "cluster-settings-secret";
const WAIT: Duration = Duration::from_secs(30);

/// `type` and `arguments` of `queue` as `rabbitmqctl list_queues` shows them.
fn queue_type_and_arguments(queue: &str) -> (String, String) {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "--no-table-headers", "name", "type"])
        .arg("arguments")
        .output()
        .expect("running rabbitmqctl list_queues");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, '\t');
            (fields.next()? == queue).then(|| {
                let kind = fields.next().unwrap_or_default().to_owned();
                (kind, fields.next().unwrap_or_default().to_owned())
            })
        })
        .unwrap_or_else(|| panic!("queue {queue} in `rabbitmqctl list_queues`:\n{text}"))
}

/// Messages ready in `queue` (a passive declaration, which quorum queues
/// answer as classic ones do).
async fn ready(queue: &str) -> u32 {
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let _ = conn.close(200, "done".into()).await;
    declared.message_count()
}

/// The event ids of the requests a receiver got.
fn delivered_ids(receiver: &Receiver) -> HashSet<String> {
    receiver
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A broker URL on a 127.0.0.1 port nothing listens on, with a password
/// that must never show in a log.
fn closed_node_url() -> String {
    format!("amqp://guest:s3cret-node@127.0.0.1:{}/%2f", free_port())
}

#[tokio::test]
async fn quorum_queues_deliver_dead_letter_poison_and_are_redeclared_on_restart() {
    let deployment = Deployment::with_queue_type(QueueType::Quorum).await;
    let queue = deployment.topology.queue.clone();
    let dlq = deployment.topology.dead_letter_queue();
    let (kind, arguments) = queue_type_and_arguments(&queue);
    assert_eq!(kind, "quorum", "{arguments}");
    assert!(arguments.contains("at-least-once"), "{arguments}");
    assert!(arguments.contains("reject-publish"), "{arguments}");
    assert!(arguments.contains("x-delivery-limit"), "{arguments}");
    assert_eq!(queue_type_and_arguments(&dlq).0, "quorum");

    let receiver = Receiver::start(SECRET).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    let worker = deployment.worker(&[]).await;
    let first = deployment.publish(20).await;
    receiver.wait_for(first.len(), WAIT).await;

    // A message that is not an event goes to the quorum dead-letter queue
    // with its reason, and nothing else stops.
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_publish(
            deployment.topology.exchange.as_str().into(),
            "task.created".into(),
            BasicPublishOptions::default(),
            b"not json",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    eventually(WAIT, "the poison message is dead-lettered", || async {
        (ready(&dlq).await == 1).then_some(())
    })
    .await;
    let parked = channel
        .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the dead-lettered message");
    assert_eq!(parked.delivery.data, b"not json");
    let headers = parked.delivery.properties.headers().clone().unwrap();
    assert!(matches!(
        headers.inner().get(REJECT_REASON_HEADER),
        Some(AMQPValue::LongString(_))
    ));
    let _ = conn.close(200, "done".into()).await;

    // A restart declares the same queues again: same arguments, no error.
    worker.terminate().await;
    let migrate = webhookd_command(&["migrate"], &deployment.env(&[]))
        .output()
        .await
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    let worker = deployment.worker(&[]).await;
    let second = deployment.publish(20).await;
    receiver.wait_for(first.len() + second.len(), WAIT).await;
    let expected: HashSet<String> = first
        .iter()
        .chain(&second)
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(delivered_ids(&receiver), expected);
    assert_eq!(ready(&queue).await, 0);
    assert_eq!(queue_type_and_arguments(&queue).0, "quorum");
    worker.terminate().await;
    deployment.cleanup().await;
}

#[tokio::test]
async fn a_queue_of_the_other_type_stops_start_up_naming_the_setting() {
    // The deployment's publisher declared classic queues.
    let deployment = Deployment::new().await;
    let queue = deployment.topology.queue.clone();
    let quorum = [("WEBHOOKD__BROKER__QUEUE_TYPE", "quorum")];

    let mut worker = Daemon::spawn(&["run", "--role", "worker"], &deployment.env(&quorum));
    let status = worker.wait_exit(WAIT).await;
    let logs = worker.logs();
    assert!(!status.success(), "{logs}");
    for expected in [
        "broker.queue_type",
        "quorum",
        // The dead-letter queue, declared first, is the one named.
        &format!("`{queue}.dlq`"),
        "delete both",
        "docs/OPERATIONS.md",
    ] {
        assert!(logs.contains(expected), "{expected:?} in:\n{logs}");
    }

    let migrate = webhookd_command(&["migrate"], &deployment.env(&quorum))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&migrate.stderr);
    assert!(!migrate.status.success(), "{stderr}");
    assert!(stderr.contains("broker.queue_type"), "{stderr}");

    // The queue was left as it was, and a classic worker still uses it.
    assert_eq!(queue_type_and_arguments(&queue).0, "classic");
    let receiver = Receiver::start(SECRET).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    let worker = deployment.worker(&[]).await;
    let events = deployment.publish(3).await;
    receiver.wait_for(events.len(), WAIT).await;
    worker.terminate().await;
    deployment.cleanup().await;
}

#[tokio::test]
async fn a_worker_skips_a_broker_node_that_does_not_answer() {
    let deployment = Deployment::with_queue_type(QueueType::Quorum).await;
    let receiver = Receiver::start(SECRET).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    let dead = closed_node_url();
    let urls = format!("{dead},{AMQP_URL}");
    // `broker.url` points nowhere: `broker.urls` is what counts.
    let worker = deployment
        .worker(&[
            ("WEBHOOKD__BROKER__URLS", &urls),
            ("WEBHOOKD__BROKER__URL", &closed_node_url()),
        ])
        .await;
    let events = deployment.publish(10).await;
    receiver.wait_for(events.len(), WAIT).await;
    let expected: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(delivered_ids(&receiver), expected);

    let logs = worker.logs();
    assert!(logs.contains("did not answer"), "{logs}");
    assert!(
        !logs.contains("s3cret-node"),
        "a password was logged:\n{logs}"
    );
    worker.terminate().await;
    deployment.cleanup().await;
}

#[tokio::test]
async fn crm_events_publishes_through_the_first_node_that_answers() {
    let deployment = Deployment::with_queue_type(QueueType::Quorum).await;
    let dead = closed_node_url();
    let output = tokio::process::Command::new(crm_events_binary())
        .args(["--amqp-url", &dead, "--amqp-url", AMQP_URL])
        .args(["--exchange", &deployment.topology.exchange])
        .args(["--queue", &deployment.topology.queue])
        .args(["--queue-type", "quorum"])
        .args(["publish", "task.created", "--data", r#"{"task_id": 1}"#])
        .env_remove("AMQP_URL")
        .env_remove("WEBHOOKD__BROKER__QUEUE_TYPE")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("s3cret-node"), "{stderr}");
    assert_eq!(ready(&deployment.topology.queue).await, 1);

    // Comma-separated in the environment, the same.
    let output = tokio::process::Command::new(crm_events_binary())
        .args(["--exchange", &deployment.topology.exchange])
        .args(["--queue", &deployment.topology.queue])
        .args(["publish", "task.created", "--data", r#"{"task_id": 2}"#])
        .env_remove("AMQP_URL")
        .env("WEBHOOKD__BROKER__URLS", format!("{dead},{AMQP_URL}"))
        .env("WEBHOOKD__BROKER__QUEUE_TYPE", "quorum")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(ready(&deployment.topology.queue).await, 2);

    // Declaring classic queues over the quorum ones is refused, by name.
    let output = tokio::process::Command::new(crm_events_binary())
        .args(["--amqp-url", AMQP_URL])
        .args(["--exchange", &deployment.topology.exchange])
        .args(["--queue", &deployment.topology.queue])
        .args(["--queue-type", "classic"])
        .args(["publish", "task.created", "--data", r#"{"task_id": 3}"#])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("broker.queue_type"), "{stderr}");
    assert_eq!(ready(&deployment.topology.queue).await, 2);
    deployment.cleanup().await;
}
