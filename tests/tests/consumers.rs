//! Consumer shards (`shards.rs`): `broker.consumers` consumers per worker,
//! each with its own broker connection and thread, share the queue; every
//! event is still delivered once and acked, and `/readyz` waits for all of
//! them. The other tests run with the default (one shard); `0` keeps the
//! consumer on the main runtime and is checked here.

#![allow(clippy::unwrap_used)]
use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use webhookd_e2e::process::{queue_consumers, queue_counts};
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "consumers-secret";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn three_consumers_share_the_queue_and_deliver_every_event_once() {
    delivers_every_event_once("3", 3).await;
}

#[tokio::test]
async fn a_consumer_on_the_main_runtime_delivers_every_event_once() {
    delivers_every_event_once("0", 1).await;
}

/// Connections to the test's database named `webhookd-consumer-N`.
async fn shard_connections(app: &TestApp) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND application_name LIKE 'webhookd-consumer-%'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

async fn delivers_every_event_once(consumers: &str, connected: u64) {
    let app = TestApp::spawn_with(&[("WEBHOOKD__BROKER__CONSUMERS", consumers)]).await;
    // Ready means every consumer is connected and consuming.
    assert_eq!(queue_consumers(&app.topology.queue), connected);
    // Each shard opened its two database connections (named after it in
    // pg_stat_activity) before it started consuming: opened beside the
    // consumer, they could starve it of the shard's small pool.
    let shards: i64 = consumers.parse().unwrap();
    assert_eq!(shard_connections(&app).await, 2 * shards);

    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    app.create_webhook_to(&token, &receiver.url(), json!(["task.created"]), SECRET)
        .await;
    let mut sent = HashSet::new();
    for n in 0..60 {
        let event = EventMessage::new("task.created", json!({"n": n}), 1_708_435_200).unwrap();
        app.publisher.publish(&event).await.unwrap();
        sent.insert(event.id.to_string());
    }

    let got = receiver.wait_for(60, WAIT).await;
    let ids: HashSet<&str> = got.iter().map(|r| r.header("x-webhook-id")).collect();
    assert_eq!(ids.len(), 60, "60 deliveries, none repeated");
    let events: HashSet<String> = got
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, sent, "every event reached the receiver");
    assert!(got
        .iter()
        .all(|r| r.seed_signature_valid && r.standard_signature_valid));

    let logged: i64 = eventually(WAIT, "every attempt logged", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_logs WHERE is_success")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        (n == 60).then_some(n)
    })
    .await;
    assert_eq!(logged, 60);
    eventually(WAIT, "every message acked", || async {
        (queue_counts(&app.topology.queue) == (0, 0)).then_some(())
    })
    .await;
    app.stop().await;
}
