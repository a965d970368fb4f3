//! Batch delivery (SPEC §11) end to end: producer → RabbitMQ → webhookd →
//! one signed request per batch to receivers on 127.0.0.1 that verify both
//! signatures; the batch's attempts in `webhook_logs`, its events in the
//! deliveries API; batches that survive `kill -9` and SIGTERM of their
//! worker, and replicas that do not split them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};
use webhookd_e2e::process::Deployment;
use webhookd_e2e::{eventually, Received, Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);
/// Long enough that only a full batch is ever sent within a test.
const NEVER: i32 = 60_000;

fn task(n: usize) -> EventMessage {
    EventMessage::new(
        "task.created",
        json!({"task_id": n, "title": format!("task {n}")}),
        1708435200,
    )
    .unwrap()
}

async fn create(app: &TestApp, token: &str, body: Value) -> (reqwest::StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

/// The task ids a batch request carried, in order.
fn task_ids(request: &Received) -> Vec<u64> {
    request.json()["events"]
        .as_array()
        .expect("an events array")
        .iter()
        .map(|e| e["data"]["task_id"].as_u64().expect("a task id"))
        .collect()
}

#[tokio::test]
async fn a_full_batch_is_one_signed_request_with_its_events_in_order() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    let mut body = json!({"name": "batched", "url": receiver.url(), "events": ["task.*"],
                          "secret": SECRET, "batch_max_events": 5, "batch_max_wait_ms": NEVER});
    let (status, created) = create(&app, &token, body.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["batch_max_events"], 5);
    assert_eq!(created["batch_max_wait_ms"], NEVER);
    let webhook = created["id"].as_i64().unwrap();

    let events: Vec<EventMessage> = (0..5).map(task).collect();
    for event in &events {
        app.publisher.publish(event).await.unwrap();
    }
    let got = receiver.wait_for(1, WAIT).await;
    let request = &got[0];
    assert!(request.seed_signature_valid && request.standard_signature_valid);
    let batch = request.json();
    let batch_id = batch["id"].as_str().unwrap().to_owned();
    assert_eq!(batch["event"], "batch");
    assert!(batch["timestamp"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(task_ids(request), [0, 1, 2, 3, 4], "consumption order");
    for (envelope, event) in batch["events"].as_array().unwrap().iter().zip(&events) {
        assert_eq!(envelope["id"], event.id.to_string());
        assert_eq!(envelope["event"], "task.created");
        assert_eq!(
            envelope.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["id", "event", "timestamp", "data"],
            "each envelope exactly as a single delivery's"
        );
    }
    assert_eq!(request.header("x-webhook-event"), "batch");
    assert_eq!(request.header("x-webhook-id"), batch_id);
    assert_eq!(request.header("webhook-id"), batch_id);
    assert_eq!(request.header("x-webhook-batch-size"), "5");
    assert_eq!(request.header("x-webhook-attempt"), "1");

    // One log row for the attempt, every event listed in the batch's state.
    // The row is written after the receiver has answered: wait for it.
    let logs = eventually(WAIT, "the batch attempt's log row", || async {
        let logs = get(&app, &token, &format!("/api/v1/webhooks/{webhook}/logs")).await;
        let items = logs["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["event"], "batch");
    assert_eq!(logs[0]["delivery_id"], batch_id.as_str());
    assert_eq!(logs[0]["batch_size"], 5);
    let only_batches = get(
        &app,
        &token,
        &format!("/api/v1/webhooks/{webhook}/logs?event=batch"),
    )
    .await;
    assert_eq!(only_batches["items"].as_array().unwrap().len(), 1);
    let no_tasks = get(
        &app,
        &token,
        &format!("/api/v1/webhooks/{webhook}/logs?event=task.created"),
    )
    .await;
    assert_eq!(no_tasks["items"].as_array().unwrap().len(), 0);
    let deliveries = eventually(WAIT, "the batch's events to read succeeded", || async {
        let page = get(
            &app,
            &token,
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
        )
        .await;
        let items = page["items"].as_array().unwrap().clone();
        items
            .iter()
            .all(|d| d["status"] == "succeeded")
            .then_some(items)
    })
    .await;
    assert_eq!(deliveries.len(), 5, "the events, not the batch itself");
    for delivery in &deliveries {
        assert_eq!(delivery["batch_id"], batch_id.as_str());
        assert_eq!(delivery["attempts"], 1);
        assert_eq!(delivery["last_status_code"], 200);
    }
    let of_batch = get(
        &app,
        &token,
        &format!("/api/v1/webhooks/{webhook}/deliveries?batch_id={batch_id}"),
    )
    .await;
    assert_eq!(of_batch["items"].as_array().unwrap().len(), 5);

    // Nothing more was sent: no event went on its own.
    assert_eq!(receiver.count(), 1);

    // A second webhook that sends by age: two events, one batch.
    let by_age = Receiver::start(SECRET).await;
    body["url"] = json!(by_age.url());
    body["batch_max_events"] = json!(100);
    body["batch_max_wait_ms"] = json!(200);
    let (status, _) = create(&app, &token, body).await;
    assert_eq!(status, 201);
    app.publisher.publish(&task(10)).await.unwrap();
    app.publisher.publish(&task(11)).await.unwrap();
    let got = by_age.wait_for(1, WAIT).await;
    let mut ids = task_ids(&got[0]);
    if ids.len() < 2 {
        // The first may have gone alone if it waited 200 ms before the
        // second was consumed; then the second follows in its own batch.
        ids.extend(task_ids(&by_age.wait_for(2, WAIT).await[1]));
    }
    assert_eq!(ids, [10, 11]);
    app.stop().await;
}

#[tokio::test]
async fn a_failed_batch_is_retried_whole_and_a_retry_by_hand_resends_the_same_batch() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.always(500);
    let (status, created) = create(
        &app,
        &token,
        json!({"name": "batched", "url": receiver.url(), "events": ["*"], "secret": SECRET,
               "batch_max_events": 3, "batch_max_wait_ms": NEVER}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let webhook = created["id"].as_i64().unwrap();
    for n in 0..3 {
        app.publisher.publish(&task(n)).await.unwrap();
    }
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[0].body, got[1].body, "the same bytes on every retry");
    assert_eq!(got[0].header("x-webhook-id"), got[1].header("x-webhook-id"));
    assert_eq!(got[1].header("x-webhook-attempt"), "2");
    let batch_id = got[0].header("x-webhook-id").to_owned();

    let deliveries = eventually(WAIT, "the batch's events to read failed", || async {
        let page = get(
            &app,
            &token,
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
        )
        .await;
        let items = page["items"].as_array().unwrap().clone();
        (items.len() == 3 && items.iter().all(|d| d["status"] == "failed")).then_some(items)
    })
    .await;
    assert!(deliveries.iter().all(|d| d["attempts"] == 2
        && d["last_status_code"] == 500
        && d["batch_id"] == batch_id.as_str()));
    let logs = get(&app, &token, &format!("/api/v1/webhooks/{webhook}/logs")).await;
    let logs = logs["items"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert!(logs
        .iter()
        .all(|l| l["event"] == "batch" && l["status_code"] == 500));

    // Retrying one of its events resends the batch, whole, with its id.
    receiver.always(200);
    let member = deliveries[0]["id"].as_str().unwrap();
    let retried = app
        .http
        .post(app.url(&format!("/api/v1/webhooks/{webhook}/retry")))
        .bearer_auth(&token)
        .json(&json!({"delivery_id": member}))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 200, "{:?}", retried.text().await);
    let got = receiver.wait_for(3, WAIT).await;
    assert_eq!(got[2].header("x-webhook-id"), batch_id);
    assert_eq!(got[2].body, got[0].body);
    assert_eq!(got[2].header("x-webhook-attempt"), "3");
    eventually(WAIT, "the events to read succeeded", || async {
        let page = get(
            &app,
            &token,
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
        )
        .await;
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "succeeded")
            .then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn batch_settings_are_checked_and_batching_excludes_a_template() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let base = json!({"name": "b", "url": "http://127.0.0.1:9/hook", "events": ["*"]});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("batch_max_events", json!(1)), "batch_max_events"),
        (with("batch_max_events", json!(1001)), "batch_max_events"),
        (with("batch_max_events", json!("ten")), ""),
        (with("batch_max_wait_ms", json!(-1)), "batch_max_wait_ms"),
        (
            with("batch_max_wait_ms", json!(60_001)),
            "batch_max_wait_ms",
        ),
    ] {
        let (status, error) = create(&app, &token, body.clone()).await;
        assert!(
            status == 422 || (field.is_empty() && status == 400),
            "{body}: {status} {error}"
        );
        if !field.is_empty() {
            assert_eq!(error["field"], field, "{error}");
        }
    }
    let mut templated = with("template", json!(r#"{"text": "{{data.title}}"}"#));
    templated["batch_max_events"] = json!(10);
    let (status, error) = create(&app, &token, templated).await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "batch_max_events", "{error}");

    // PATCH checks the webhook as it would be.
    let (_, plain) = create(
        &app,
        &token,
        with("template", json!(r#"{"text": "{{data.title}}"}"#)),
    )
    .await;
    let id = plain["id"].as_i64().unwrap();
    let patch = |body: Value| {
        app.http
            .patch(app.url(&format!("/api/v1/webhooks/{id}")))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let refused = patch(json!({"batch_max_events": 10})).await.unwrap();
    assert_eq!(refused.status(), 422);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["field"], "batch_max_events");
    let switched = patch(json!({"template": null, "batch_max_events": 10, "batch_max_wait_ms": 0}))
        .await
        .unwrap();
    assert_eq!(switched.status(), 200);
    let switched: Value = switched.json().await.unwrap();
    assert_eq!(switched["batch_max_events"], 10);
    assert_eq!(switched["batch_max_wait_ms"], 0);
    let off = patch(json!({"batch_max_events": null})).await.unwrap();
    let off: Value = off.json().await.unwrap();
    assert_eq!(off["batch_max_events"], Value::Null);
    assert_eq!(off["batch_max_wait_ms"], 0, "kept");
    let refused = patch(json!({"batch_max_wait_ms": null})).await.unwrap();
    assert_eq!(refused.status(), 422, "the wait cannot be null");
    app.stop().await;
}

#[tokio::test]
async fn events_collected_for_a_webhook_that_stops_batching_go_one_by_one() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    let (_, created) = create(
        &app,
        &token,
        json!({"name": "batched", "url": receiver.url(), "events": ["*"], "secret": SECRET,
               "batch_max_events": 50, "batch_max_wait_ms": NEVER}),
    )
    .await;
    let webhook = created["id"].as_i64().unwrap();
    for n in 0..3 {
        app.publisher.publish(&task(n)).await.unwrap();
    }
    eventually(WAIT, "three events collecting", || async {
        let collecting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE status = 'collecting' AND webhook_id = $1",
        )
        .bind(webhook)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        (collecting == 3).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 0, "nothing sent before the batch is due");
    let off = app
        .http
        .patch(app.url(&format!("/api/v1/webhooks/{webhook}")))
        .bearer_auth(&token)
        .json(&json!({"batch_max_events": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 200);
    let got = receiver.wait_for(3, WAIT).await;
    let mut ids: Vec<u64> = got
        .iter()
        .map(|r| {
            assert_eq!(r.header("x-webhook-event"), "task.created");
            assert_eq!(r.header("x-webhook-batch-size"), "");
            r.json()["data"]["task_id"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2]);
    app.stop().await;
}

/// Every batch a receiver got: (batch id, task ids), each batch once.
fn batches(received: &[Received]) -> Vec<(String, Vec<u64>)> {
    let mut seen = HashSet::new();
    received
        .iter()
        .filter(|r| seen.insert(r.header("x-webhook-id").to_owned()))
        .map(|r| {
            assert!(r.seed_signature_valid && r.standard_signature_valid);
            assert_eq!(r.header("x-webhook-event"), "batch");
            (r.header("x-webhook-id").to_owned(), task_ids(r))
        })
        .collect()
}

#[tokio::test]
async fn two_workers_fill_one_webhooks_batches_instead_of_splitting_them() {
    let deployment = Deployment::new().await;
    let receiver = Receiver::start(SECRET).await;
    deployment
        .subscribe_batched(&receiver.url(), SECRET, 10, NEVER)
        .await;
    // Small prefetch: both workers take part of the stream.
    let settings = [("WEBHOOKD__BROKER__PREFETCH", "2")];
    let first = deployment.worker(&settings).await;
    let second = deployment.worker(&settings).await;
    deployment.publish(40).await;
    receiver.wait_for(4, WAIT).await;
    let got = batches(&receiver.received());
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().all(|(_, ids)| ids.len() == 10), "{got:?}");
    let mut all: Vec<u64> = got.iter().flat_map(|(_, ids)| ids.clone()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..40).collect::<Vec<u64>>());
    for worker in [first, second] {
        assert!(worker.terminate().await.success());
    }
    deployment.cleanup().await;
}

#[tokio::test]
async fn collected_and_in_flight_batches_survive_kill_9_and_sigterm_hands_one_back() {
    let deployment = Deployment::new().await;
    let receiver = Receiver::start(SECRET).await;
    deployment
        .subscribe_batched(&receiver.url(), SECRET, 10, NEVER)
        .await;
    let settings = [
        ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "2000"),
        ("WEBHOOKD__SCHEDULER__LEASE_MARGIN_MS", "500"),
        ("WEBHOOKD__SHUTDOWN__GRACE_PERIOD_MS", "500"),
    ];

    // Collected, then killed: the next worker completes the batch.
    let worker = deployment.worker(&settings).await;
    deployment.publish(15).await;
    eventually(WAIT, "a batch sent and five collecting", || async {
        let collecting: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'collecting'")
                .fetch_one(&deployment.db.pool)
                .await
                .unwrap();
        (receiver.count() >= 1 && collecting == 5).then_some(())
    })
    .await;
    worker.kill().await;

    // In flight, then killed: its lease runs out and another worker sends
    // it again, with the same id.
    receiver.hold();
    let worker = deployment.worker(&settings).await;
    deployment
        .publisher
        .publish_many(
            &(15..20)
                .map(webhookd_e2e::process::task_created)
                .collect::<Vec<_>>(),
            |_| {},
        )
        .await
        .unwrap();
    eventually(WAIT, "the second batch in flight", || async {
        (receiver.count() == 2 && receiver.held() == 1).then_some(())
    })
    .await;
    worker.kill().await;
    let worker = deployment.worker(&settings).await;
    eventually(WAIT, "the second batch sent again", || async {
        (receiver.count() == 3 && receiver.held() == 1).then_some(())
    })
    .await;
    // SIGTERM while it is in flight: given back within the grace period.
    let status = worker.terminate().await;
    assert!(status.success());
    receiver.release();
    let last = deployment.worker(&settings).await;
    eventually(WAIT, "every event delivered", || async {
        let mut ids: Vec<u64> = batches(&receiver.received())
            .into_iter()
            .flat_map(|(_, ids)| ids)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        (ids.len() == 20).then_some(())
    })
    .await;
    let got = batches(&receiver.received());
    assert_eq!(got.len(), 2, "two batches, each sent under one id: {got:?}");
    assert!(got.iter().all(|(_, ids)| ids.len() == 10));
    // Received before recorded: the batch rows' outcomes follow.
    eventually(WAIT, "both batch rows succeeded", || async {
        let succeeded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
                .fetch_one(&deployment.db.pool)
                .await
                .unwrap();
        (succeeded == 2).then_some(())
    })
    .await;
    let batched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'batched'")
            .fetch_one(&deployment.db.pool)
            .await
            .unwrap();
    assert_eq!(batched, 20);
    assert!(last.terminate().await.success());
    deployment.cleanup().await;
}

#[tokio::test]
async fn batches_keep_to_the_webhooks_request_cap() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__PER_ENDPOINT_CONCURRENCY", "1")]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.hold();
    let (status, created) = create(
        &app,
        &token,
        json!({"name": "batched", "url": receiver.url(), "events": ["*"], "secret": SECRET,
               "batch_max_events": 2, "batch_max_wait_ms": NEVER}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    for n in 0..6 {
        app.publisher.publish(&task(n)).await.unwrap();
    }
    eventually(WAIT, "three batches formed, one in flight", || async {
        let formed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE batch_size IS NOT NULL")
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        (formed == 3 && receiver.held() == 1).then_some(())
    })
    .await;
    // The other two wait for the webhook's one request slot.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1, "one request at a time to this webhook");
    receiver.release();
    let got = receiver.wait_for(3, WAIT).await;
    let mut ids: Vec<u64> = got.iter().flat_map(task_ids).collect();
    ids.sort_unstable();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
    app.stop().await;
}
