//! `POST /api/v1/events`: events published over HTTP by admins and
//! publishers, checked as the consumer checks broker messages, confirmed by
//! the broker before the 202, delivered signed, once per id; 503 with
//! `Retry-After` while the broker is away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;
use webhookd_e2e::db::{count, TestDb};
use webhookd_e2e::process::{pairs, sample, Daemon};
use webhookd_e2e::{eventually, Receiver, Subscribed, TestApp};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

/// A user created with `--publisher`'s flag; its token.
async fn publisher(app: &TestApp, name: &str) -> String {
    let (_, token) = webhookd_store::users::create_user_with(&app.db.pool, name, None, false, true)
        .await
        .unwrap();
    token
}

async fn post_event(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = http
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn events_url(app: &TestApp) -> String {
    app.url("/api/v1/events")
}

async fn post(
    app: &TestApp,
    token: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    post_event(&app.http, &events_url(app), Some(token), body).await
}

#[tokio::test]
async fn a_publishers_event_is_delivered_signed_with_the_id_it_was_given() {
    let Subscribed {
        app,
        token: _alice,
        receiver,
        webhook,
    } = TestApp::spawn_with_webhook(&[], json!(["task.*"]), SECRET).await;
    let crm = publisher(&app, "CRM").await;

    let id = Uuid::now_v7();
    // Numbers spelled as a `Value` would not write them back: `data` must
    // reach the receiver byte for byte, as from the broker.
    let data = r#"{"task_id": 123, "title": "Новая задача", "status": "pending", "amount": 1e2, "ratio": 1.50}"#;
    let body = format!(
        r#"{{"id": "{id}", "event": "task.created", "timestamp": 1708435200, "data": {data}}}"#
    );
    let (status, _, answer) = post(&app, &crm, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer, json!({"id": id}));

    let got = receiver.wait_for(1, WAIT).await;
    let request = &got[0];
    assert!(request.seed_signature_valid, "X-Webhook-Signature verifies");
    assert!(
        request.standard_signature_valid,
        "webhook-signature verifies"
    );
    assert_eq!(request.header("x-webhook-event"), "task.created");
    assert_eq!(
        String::from_utf8_lossy(&request.body),
        format!(r#"{{"id":"{id}","event":"task.created","timestamp":1708435200,"data":{data}}}"#)
    );
    assert_eq!(app.wait_for_settled(webhook, WAIT).await, "succeeded");
    assert_eq!(
        app.metric(r#"webhookd_ingest_requests_total{outcome="accepted"}"#)
            .await,
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn admins_may_publish_plain_users_get_403_and_no_token_401() {
    let Subscribed {
        app,
        token: alice,
        receiver,
        ..
    } = TestApp::spawn_with_webhook(&[], json!(["*"]), SECRET).await;
    let (_, root) = app.create_user("Root", None, true).await;
    let body = json!({"event": "deal.won", "data": {"deal_id": 9}}).to_string();

    let (status, headers, answer) = post(&app, &alice, body.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("only admins and publishers may publish events"),
        "{answer}"
    );
    assert!(headers.get("retry-after").is_none());

    let (status, headers, _) = post_event(&app.http, &events_url(&app), None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "Bearer");

    let (status, _, answer) = post(&app, &root, body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["event"], "deal.won");
    assert_eq!(got[0].json()["id"], answer["id"]);
    // Alice's refused post reached nothing: her webhook got the admin's event only.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(
        app.metric(r#"webhookd_ingest_requests_total{outcome="forbidden"}"#)
            .await,
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_messages_get_the_consumers_reason_naming_the_field_and_nothing_is_published() {
    let Subscribed { app, receiver, .. } =
        TestApp::spawn_with_webhook(&[], json!(["*"]), SECRET).await;
    let crm = publisher(&app, "CRM").await;
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("{\"event\":", None, "message body is not valid JSON: "),
        ("[1, 2]", None, "message body is JSON but not an object"),
        (
            r#"{"data":{}}"#,
            Some("event"),
            "missing required field `event`",
        ),
        (
            r#"{"event":"task.created"}"#,
            Some("data"),
            "missing required field `data`",
        ),
        (
            r#"{"event":"task.exploded","data":{}}"#,
            Some("event"),
            "unknown event `task.exploded`",
        ),
        (
            r#"{"event":"task.*","data":{}}"#,
            Some("event"),
            "unknown event `task.*`",
        ),
        (
            r#"{"event":42,"data":{}}"#,
            Some("event"),
            "field `event` must be a string",
        ),
        (
            r#"{"event":"task.created","data":[1]}"#,
            Some("data"),
            "field `data` must be an object",
        ),
        (
            r#"{"event":"task.created","data":"x"}"#,
            Some("data"),
            "field `data` must be an object",
        ),
        (
            r#"{"event":"task.created","data":{},"id":"not-a-uuid"}"#,
            Some("id"),
            "field `id` must be a UUID string",
        ),
        (
            r#"{"event":"task.created","data":{},"timestamp":"yesterday"}"#,
            Some("timestamp"),
            "field `timestamp` must be an integer (unix seconds)",
        ),
        (
            r#"{"event":"task.created","data":{},"user_id":"7"}"#,
            Some("user_id"),
            "field `user_id` must be an integer",
        ),
        (
            r#"{"event":"task.created","data":{"t":"\ud800"}}"#,
            Some("data"),
            "message body is not valid JSON: in `data`: ",
        ),
    ];
    for (body, field, reason) in cases {
        let (status, _, answer) = post(&app, &crm, body.to_string()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with(reason), "{body}: {error}");
        assert_eq!(answer["field"].as_str(), *field, "{body}: {answer}");
    }

    // The consumer's limit (1 MiB by default), not the API's 256 KiB.
    let big = format!(
        r#"{{"event":"task.created","data":{{"blob":"{}"}}}}"#,
        "x".repeat(1024 * 1024)
    );
    let (status, _, answer) = post(&app, &crm, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("over the limit of 1048576 bytes"), "{error}");
    // Without a Content-Length (chunked), the limit holds while reading.
    let mut chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(br#"{"event":"task.created","data":{"blob":""#.to_vec())];
    chunks.extend((0..17).map(|_| Ok(vec![b'x'; 64 * 1024])));
    chunks.push(Ok(br#""}}"#.to_vec()));
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (status, _, answer) = post(&app, &crm, streamed).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("over the limit of 1048576 bytes"),
        "{answer}"
    );
    let fits = format!(
        r#"{{"event":"task.created","data":{{"blob":"{}"}}}}"#,
        "x".repeat(512 * 1024)
    );
    let (status, _, answer) = post(&app, &crm, fits).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");

    // Only the valid one was published: it arrives, and the consumer
    // rejected nothing.
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["id"], answer["id"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1);
    let metrics = app.metrics_text().await;
    let rejected: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("webhookd_events_rejected_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(rejected, 0.0, "nothing invalid reached the broker");
    assert_eq!(
        sample(
            &metrics,
            r#"webhookd_ingest_requests_total{outcome="invalid"}"#
        ),
        Some((cases.len() + 2) as f64)
    );
    assert_eq!(
        sample(
            &metrics,
            r#"webhookd_ingest_invalid_total{reason="unknown_event"}"#
        ),
        Some(2.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn the_same_id_posted_twice_is_delivered_once_and_a_body_without_id_keeps_its_id() {
    let Subscribed {
        app,
        receiver,
        webhook,
        ..
    } = TestApp::spawn_with_webhook(&[], json!(["*"]), SECRET).await;
    let crm = publisher(&app, "CRM").await;

    let id = Uuid::now_v7();
    let body = json!({"id": id, "event": "comment.added", "data": {"text": "hi"}}).to_string();
    for _ in 0..2 {
        let (status, _, answer) = post(&app, &crm, body.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["id"], json!(id));
    }
    // Without an id: the same bytes name the same event, so a client that
    // lost the answer posts again safely.
    let anonymous = r#"{"event":"client.created","timestamp":1708435200,"data":{"client_id":5}}"#;
    let (status, _, first) = post(&app, &crm, anonymous).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let (status, _, second) = post(&app, &crm, anonymous).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(first["id"], second["id"]);
    assert_ne!(first["id"], json!(id));

    // A marker event published last: once it is delivered, the copies
    // before it have been consumed too.
    let (_, _, marker) = post(&app, &crm, r#"{"event":"deal.lost","data":{}}"#).await;
    eventually(WAIT, "the marker to be delivered", || async {
        receiver
            .received()
            .iter()
            .any(|r| r.json()["id"] == marker["id"])
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<Value> = receiver
        .received()
        .iter()
        .map(|r| r.json()["id"].clone())
        .collect();
    assert_eq!(ids.len(), 3, "one delivery per event: {ids:?}");
    for expected in [json!(id), first["id"].clone(), marker["id"].clone()] {
        assert_eq!(
            ids.iter().filter(|i| **i == expected).count(),
            1,
            "{expected}"
        );
    }
    let deliveries = count(
        &app.db.pool,
        &format!("SELECT count(*) FROM deliveries WHERE webhook_id = {webhook}"),
    )
    .await;
    assert_eq!(deliveries, 3);
    app.stop().await;
}

#[tokio::test]
async fn an_event_with_user_id_reaches_only_that_users_webhooks() {
    let app = TestApp::spawn().await;
    let crm = publisher(&app, "CRM").await;
    let (alice_id, alice) = app.create_user("Alice", None, false).await;
    let (bob_id, bob) = app.create_user("Bob", None, false).await;
    let alice_hook = Receiver::start(SECRET).await;
    let bob_hook = Receiver::start(SECRET).await;
    app.create_webhook_to(&alice, &alice_hook.url(), json!(["*"]), SECRET)
        .await;
    app.create_webhook_to(&bob, &bob_hook.url(), json!(["*"]), SECRET)
        .await;

    let private = json!({"event": "task.updated", "user_id": bob_id, "data": {"task_id": 1}});
    let (status, _, private_answer) = post(&app, &crm, private.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{private_answer}");
    let public = json!({"event": "task.updated", "data": {"task_id": 2}});
    let (status, _, public_answer) = post(&app, &crm, public.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{public_answer}");

    let to_bob = bob_hook.wait_for(2, WAIT).await;
    let bob_ids: Vec<Value> = to_bob.iter().map(|r| r.json()["id"].clone()).collect();
    assert!(bob_ids.contains(&private_answer["id"]) && bob_ids.contains(&public_answer["id"]));
    let to_alice = alice_hook.wait_for(1, WAIT).await;
    assert_eq!(to_alice[0].json()["id"], public_answer["id"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        alice_hook.count(),
        1,
        "Alice (user {alice_id}) never gets Bob's event"
    );
    app.stop().await;
}

/// A RabbitMQ virtual host of the test's own, deleted to make the broker
/// unavailable to one daemon without stopping the shared server.
struct Vhost(String);

impl Vhost {
    fn create() -> Vhost {
        let vhost = Vhost(format!("test-ingest-{}", Uuid::new_v4().simple()));
        vhost.add();
        vhost
    }

    fn add(&self) {
        rabbitmqctl(&["add_vhost", &self.0]);
        rabbitmqctl(&["set_permissions", "-p", &self.0, "guest", ".*", ".*", ".*"]);
    }

    fn delete(&self) {
        rabbitmqctl(&["delete_vhost", &self.0]);
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:5672/{}", self.0)
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "delete_vhost", &self.0])
            .output();
    }
}

fn rabbitmqctl(args: &[&str]) {
    let output = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("running rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn while_the_broker_is_unavailable_the_api_answers_503_with_retry_after_then_recovers() {
    let vhost = Vhost::create();
    let db = TestDb::create().await;
    let suffix = Uuid::new_v4().simple().to_string();
    let exchange = format!("test.events.{suffix}");
    let queue = format!("test.webhookd.{suffix}");
    let url = vhost.url();
    let env = pairs(&[
        ("WEBHOOKD__BROKER__URL", &url),
        ("WEBHOOKD__BROKER__EXCHANGE", &exchange),
        ("WEBHOOKD__BROKER__QUEUE", &queue),
        ("WEBHOOKD__DATABASE__URL", &db.url),
    ]);
    // The API role alone: no worker in the way of the outage.
    let api = Daemon::start(&["run", "--role", "api"], &env).await;
    let (_, token) = webhookd_store::users::create_user_with(&db.pool, "CRM", None, false, true)
        .await
        .unwrap();
    let events = api.url("/api/v1/events");
    let body = |n: i64| json!({"event": "task.created", "data": {"task_id": n}}).to_string();

    let (status, _, answer) = post_event(&api.http, &events, Some(&token), body(1)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}\n{}", api.logs());

    vhost.delete();
    let (status, headers, answer) = post_event(&api.http, &events, Some(&token), body(2)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(headers["retry-after"], "2");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .starts_with("the event was not accepted, retry later"),
        "{answer}"
    );

    vhost.add();
    let started = std::time::Instant::now();
    let accepted = loop {
        let (status, _, answer) = post_event(&api.http, &events, Some(&token), body(2)).await;
        if status == StatusCode::ACCEPTED {
            break answer;
        }
        assert!(
            started.elapsed() < WAIT,
            "the ingest did not recover: {status} {answer}\n{}",
            api.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(accepted["id"].is_string(), "{accepted}");
    let metrics = api.metrics().await;
    assert!(
        sample(
            &metrics,
            r#"webhookd_ingest_requests_total{outcome="unavailable"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"webhookd_ingest_requests_total{outcome="accepted"}"#
        ),
        Some(2.0)
    );
    api.terminate().await;
    drop(vhost);
    db.drop_database().await;
}
