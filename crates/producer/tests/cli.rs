//! The `crm-events` binary, run as users run it.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Output;

use tokio::process::Command;
use uuid::Uuid;
use webhookd_events::{ParsedMessage, CATALOGUE};

use common::{broker_url, message_id, TestBroker};

/// The binary with a clean environment: only what the test passes counts.
fn crm_events() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_crm-events"));
    for variable in [
        "AMQP_URL",
        "WEBHOOKD__BROKER__URL",
        "WEBHOOKD__BROKER__EXCHANGE",
        "WEBHOOKD__BROKER__QUEUE",
        "RUST_LOG",
    ] {
        command.env_remove(variable);
    }
    command
}

/// The binary pointed at the test's own exchange and queue.
fn crm_events_for(broker: &TestBroker) -> Command {
    let mut command = crm_events();
    command
        .args(["--amqp-url", &broker_url()])
        .args(["--exchange", &broker.topology.exchange])
        .args(["--queue", &broker.topology.queue]);
    command
}

async fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().await.expect("crm-events runs");
    (
        status.code().expect("exited"),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn write_file(lines: &[&str]) -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.ndjson", Uuid::new_v4()));
    std::fs::write(&path, lines.join("\n")).expect("write the events file");
    path
}

#[tokio::test]
async fn publishing_one_event_puts_it_in_the_queue_and_prints_its_id() {
    let broker = TestBroker::new().await;
    let id = Uuid::new_v4();

    let (code, stdout, stderr) = run(crm_events_for(&broker).args([
        "publish",
        "task.created",
        "--data",
        r#"{"task_id": 123, "title": "Новая задача", "status": "pending"}"#,
        "--user-id",
        "7",
        "--id",
        &id.to_string(),
    ]))
    .await;

    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.trim(), format!("published task.created {id}"));
    let got = broker.get().await.expect("queued");
    assert_eq!(message_id(&got.delivery), Some(id));
    let parsed = ParsedMessage::parse(&got.delivery.data, 1 << 20).unwrap();
    assert_eq!(parsed.user_id, Some(7));
    assert_eq!(
        parsed.data.get(),
        r#"{"task_id":123,"title":"Новая задача","status":"pending"}"#
    );
}

#[tokio::test]
async fn an_unknown_event_exits_2_and_points_to_the_event_list() {
    let (code, _, stderr) =
        run(crm_events().args(["publish", "task.exploded", "--data", "{}"])).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains(r#"unknown event "task.exploded"; see crm-events events"#),
        "{stderr}"
    );
}

#[tokio::test]
async fn invalid_or_non_object_data_exits_2_naming_the_problem() {
    let (code, _, stderr) =
        run(crm_events().args(["publish", "task.created", "--data", "{oops"])).await;
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid JSON in --data"), "{stderr}");

    let (code, _, stderr) =
        run(crm_events().args(["publish", "task.created", "--data", "[1]"])).await;
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--data must be a JSON object, not an array"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_malformed_id_exits_2() {
    let (code, _, stderr) = run(crm_events().args([
        "publish",
        "task.created",
        "--data",
        "{}",
        "--id",
        "not-a-uuid",
    ]))
    .await;
    assert_eq!(code, 2);
    assert!(stderr.contains("--id"), "{stderr}");
}

#[tokio::test]
async fn an_invalid_line_in_a_file_exits_2_naming_it_and_publishes_nothing() {
    let broker = TestBroker::new().await;
    broker.declare().await;
    let file = write_file(&[
        r#"{"event": "task.created", "data": {"task_id": 1}}"#,
        "",
        r#"{"event": "task.created", "data": "not an object"}"#,
        r#"{"event": "deal.won", "data": {}}"#,
    ]);

    let (code, stdout, stderr) = run(crm_events_for(&broker)
        .args(["publish", "--file"])
        .arg(&file))
    .await;

    assert_eq!(code, 2, "{stdout}");
    assert!(
        stderr.contains("line 3: field `data` must be an object"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was published"), "{stderr}");
    assert_eq!(broker.message_count().await, 0);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_valid_file_publishes_every_line_and_prints_a_summary() {
    let broker = TestBroker::new().await;
    let id = Uuid::new_v4();
    let with_id = format!(
        r#"{{"event": "deal.won", "data": {{"deal_id": 456}}, "id": "{id}", "user_id": 7, "timestamp": 1708435200}}"#
    );
    let file = write_file(&[
        r#"{"event": "task.created", "data": {"task_id": 1}}"#,
        "",
        &with_id,
        r#"{"event": "comment.added", "data": {"text": "hi"}}"#,
        "",
    ]);

    let (code, stdout, stderr) = run(crm_events_for(&broker)
        .args(["publish", "--file"])
        .arg(&file))
    .await;

    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("published 3 events in "), "{stdout}");
    assert!(stdout.trim_end().ends_with(" events/s)"), "{stdout}");
    let mut events = HashSet::new();
    while let Some(got) = broker.get().await {
        let parsed = ParsedMessage::parse(&got.delivery.data, 1 << 20).unwrap();
        if parsed.id == Some(id) {
            assert_eq!(parsed.user_id, Some(7));
            assert_eq!(parsed.timestamp, Some(1708435200));
        }
        events.insert(parsed.event.name);
    }
    assert_eq!(
        events,
        HashSet::from(["task.created", "deal.won", "comment.added"])
    );
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn a_file_larger_than_one_publishing_chunk_arrives_whole() {
    // Published in chunks of 4,096 parsed events: two full ones and a rest.
    let broker = TestBroker::new().await;
    let total: u64 = 2 * 4096 + 3;
    let lines: Vec<String> = (0..total)
        .map(|i| format!(r#"{{"event": "task.created", "data": {{"task_id": {i}}}}}"#))
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let file = write_file(&refs);

    let (code, stdout, stderr) = run(crm_events_for(&broker)
        .args(["publish", "--file"])
        .arg(&file))
    .await;

    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("published {total} events in ")),
        "{stdout}"
    );
    let mut seen = HashSet::new();
    while let Some(got) = broker.get().await {
        let parsed = ParsedMessage::parse(&got.delivery.data, 1 << 20).unwrap();
        let data: serde_json::Value = serde_json::from_str(parsed.data.get()).unwrap();
        let task = data["task_id"].as_u64().expect("a task id");
        assert!(seen.insert(task), "task {task} published twice");
    }
    assert_eq!(seen, (0..total).collect::<HashSet<u64>>());
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn events_lists_the_whole_catalogue() {
    let (code, stdout, _) = run(crm_events().arg("events")).await;
    assert_eq!(code, 0);
    let names: Vec<&str> = stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let catalogue: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
    assert_eq!(names, catalogue);
    assert_eq!(names.len(), 12, "ten CRM events and two operational ones");
    assert!(stdout.contains("A deal was won"));
}

#[tokio::test]
async fn an_unreachable_broker_exits_1_without_printing_the_password() {
    let (code, _, stderr) = run(crm_events()
        .args(["--amqp-url", "amqp://guest:s3cret@127.0.0.1:1/%2f"])
        .args(["publish", "task.created", "--data", "{}"]))
    .await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot connect to the broker at amqp://guest:***@127.0.0.1:1/%2f"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[tokio::test]
async fn the_broker_url_falls_back_to_the_webhookd_setting() {
    let (code, _, stderr) = run(crm_events()
        .env(
            "WEBHOOKD__BROKER__URL",
            "amqp://guest:s3cret@127.0.0.1:2/%2f",
        )
        .args(["publish", "task.created", "--data", "{}"]))
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("@127.0.0.1:2/"), "{stderr}");

    let (_, _, stderr) = run(crm_events()
        .env(
            "WEBHOOKD__BROKER__URL",
            "amqp://guest:s3cret@127.0.0.1:2/%2f",
        )
        .env("AMQP_URL", "amqp://guest:s3cret@127.0.0.1:3/%2f")
        .args(["publish", "task.created", "--data", "{}"]))
    .await;
    assert!(stderr.contains("@127.0.0.1:3/"), "AMQP_URL wins: {stderr}");
}
