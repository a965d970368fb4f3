//! The delivery pipeline end to end: producer → RabbitMQ → webhookd →
//! signed HTTP → receivers on 127.0.0.1, with every attempt in Postgres.

#![allow(clippy::unwrap_used)]
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Row;
use webhookd_e2e::{eventually, Receiver, Subscribed, TestApp};
use webhookd_producer::event::{Event, TaskCreated};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

fn task_created(title: &str) -> EventMessage {
    EventMessage::new(
        "task.created",
        json!({"task_id": 123, "title": title, "status": "pending", "priority": "medium"}),
        1708435200,
    )
    .unwrap()
}

#[tokio::test]
async fn an_event_reaches_exactly_the_matching_webhooks_signed_both_ways() {
    let app = TestApp::spawn().await;
    let (_alice, alice) = app.create_user("Alice", Some(7), false).await;
    let (_bob, bob) = app.create_user("Bob", Some(8), false).await;
    let (_root, root) = app.create_user("Root", Some(1), true).await;

    let exact = Receiver::start(SECRET).await;
    let entity = Receiver::start(SECRET).await;
    let star = Receiver::start(SECRET).await;
    let other_entity = Receiver::start(SECRET).await;
    let other_user = Receiver::start(SECRET).await;
    let admin = Receiver::start(SECRET).await;
    let inactive = Receiver::start(SECRET).await;
    app.create_webhook_to(&alice, &exact.url(), json!(["task.created"]), SECRET)
        .await;
    app.create_webhook_to(&alice, &entity.url(), json!(["task.*"]), SECRET)
        .await;
    app.create_webhook_to(&alice, &star.url(), json!(["*"]), SECRET)
        .await;
    app.create_webhook_to(
        &alice,
        &other_entity.url(),
        json!(["deal.*", "task.updated"]),
        SECRET,
    )
    .await;
    app.create_webhook_to(&bob, &other_user.url(), json!(["task.created"]), SECRET)
        .await;
    app.create_webhook_to(&root, &admin.url(), json!(["task.created"]), SECRET)
        .await;
    let off = app
        .create_webhook_to(&alice, &inactive.url(), json!(["*"]), SECRET)
        .await;
    let toggled = app
        .http
        .post(app.url(&format!("/api/v1/webhooks/{off}/toggle")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(toggled.status(), 200);

    let private = task_created("Новая задача \"срочно\"").with_user_id(7);
    app.publisher.publish(&private).await.unwrap();

    for receiver in [&exact, &entity, &star, &admin] {
        let got = receiver.wait_for(1, WAIT).await;
        let request = &got[0];
        assert!(request.seed_signature_valid, "X-Webhook-Signature verifies");
        assert!(
            request.standard_signature_valid,
            "webhook-signature verifies"
        );
        assert!(request.header("x-webhook-signature").starts_with("sha256="));
        assert!(request.header("webhook-signature").starts_with("v1,"));
        assert_eq!(request.header("x-webhook-event"), "task.created");
        assert_eq!(request.header("x-webhook-attempt"), "1");
        assert_eq!(request.header("content-type"), "application/json");
        assert!(request.header("user-agent").starts_with("webhookd/"));
        assert_eq!(request.header("x-webhook-id"), request.header("webhook-id"));
        let sent_at: u64 = request.header("x-webhook-timestamp").parse().unwrap();
        // Delivery ids come from the event and the webhook (version 8,
        // migration 0007) and start with the event id's timestamp.
        let delivery_id = uuid::Uuid::parse_str(request.header("x-webhook-id")).unwrap();
        assert_eq!(delivery_id.get_version_num(), 8, "{delivery_id}");
        assert_eq!(
            delivery_id.as_bytes()[..6],
            private.id.as_bytes()[..6],
            "{delivery_id} starts as event {} does",
            private.id
        );
        assert!(sent_at > 0);
        let body = request.json();
        assert_eq!(
            body,
            json!({
                "id": private.id.to_string(),
                "event": "task.created",
                "timestamp": 1708435200,
                "data": {"task_id": 123, "title": "Новая задача \"срочно\"", "status": "pending", "priority": "medium"}
            })
        );
        let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["id", "event", "timestamp", "data"],
            "the seed's shape plus id"
        );
    }

    // A public event (no user_id) goes to every subscriber, Bob included; once
    // it has reached Bob, the private one would have too if it were going to.
    let public = task_created("for everyone");
    app.publisher.publish(&public).await.unwrap();
    let bob_got = other_user.wait_for(1, WAIT).await;
    assert_eq!(bob_got.len(), 1);
    assert_eq!(bob_got[0].json()["id"], public.id.to_string());
    for receiver in [&exact, &entity, &star, &admin] {
        receiver.wait_for(2, WAIT).await;
    }
    assert_eq!(
        other_entity.count(),
        0,
        "deal.* and task.updated do not match"
    );
    assert_eq!(inactive.count(), 0, "an inactive webhook gets nothing");

    // Counted once its batch is written, which may follow the receipt.
    eventually(WAIT, "2 events counted as consumed", || async {
        let consumed = app
            .metric(r#"webhookd_events_consumed_total{event="task.created"}"#)
            .await;
        (consumed == 2.0).then_some(())
    })
    .await;
    // Receivers see a request before its attempt is recorded: wait for the rows.
    eventually(WAIT, "9 recorded successes", || async {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_logs WHERE is_success")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        (rows == 9).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_logs")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        rows, 9,
        "4 deliveries of the private event, 5 of the public one, nothing else"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_same_delivery_three_times_with_growing_gaps() {
    let overrides = [
        ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "300"),
        ("WEBHOOKD__DELIVERY__JITTER", "none"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "5"),
    ];
    let Subscribed {
        app,
        receiver,
        webhook: hook,
        ..
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.*"]), SECRET).await;
    receiver.fail_next(2, 500);

    app.publisher
        .publish(&Event::task_created(TaskCreated {
            task_id: 1,
            title: "retry me".into(),
            status: "pending".into(),
            priority: "high".into(),
            assignee_id: None,
            due_at: None,
            created_at: chrono::Utc::now(),
        }))
        .await
        .unwrap();

    let got = receiver.wait_for(3, WAIT).await;
    let ids: Vec<&str> = got.iter().map(|r| r.header("x-webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one delivery id: {ids:?}"
    );
    let attempts: Vec<&str> = got.iter().map(|r| r.header("x-webhook-attempt")).collect();
    assert_eq!(attempts, ["1", "2", "3"]);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same body every time"
    );
    assert!(got
        .iter()
        .all(|r| r.seed_signature_valid && r.standard_signature_valid));
    let first_gap = got[1].at - got[0].at;
    let second_gap = got[2].at - got[1].at;
    assert!(first_gap >= Duration::from_millis(300), "{first_gap:?}");
    assert!(second_gap >= Duration::from_millis(600), "{second_gap:?}");
    assert!(second_gap > first_gap);

    let rows = eventually(WAIT, "three log rows", || async {
        let rows = sqlx::query(
            "SELECT attempt, status_code, is_success, error_message, payload, delivery_id::text AS delivery
             FROM webhook_logs WHERE webhook_id = $1 ORDER BY attempt",
        )
        .bind(hook)
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
        (rows.len() == 3).then_some(rows)
    })
    .await;
    let summary: Vec<(i32, Option<i32>, bool)> = rows
        .iter()
        .map(|r| (r.get("attempt"), r.get("status_code"), r.get("is_success")))
        .collect();
    assert_eq!(
        summary,
        [
            (1, Some(500), false),
            (2, Some(500), false),
            (3, Some(200), true)
        ]
    );
    let error: Option<String> = rows[0].get("error_message");
    assert_eq!(error.as_deref(), Some("HTTP 500"));
    let payload: String = rows[2].get("payload");
    assert_eq!(payload.as_bytes(), &got[2].body[..]);
    let delivery: String = rows[0].get("delivery");
    assert_eq!(delivery, ids[0]);

    let status: String = sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1::uuid")
        .bind(ids[0])
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(status, "succeeded");
    assert_eq!(
        app.metric(r#"webhookd_deliveries_total{event="task.created",outcome="retry"}"#)
            .await,
        2.0
    );
    app.stop().await;
}

#[tokio::test]
async fn an_exhausted_delivery_ends_failed_with_every_attempt_logged() {
    let overrides = [
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "3"),
        ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "50"),
    ];
    let Subscribed {
        app,
        receiver,
        webhook: hook,
        ..
    } = TestApp::spawn_with_webhook(&overrides, json!(["deal.won"]), SECRET).await;
    receiver.always(503);
    let event =
        EventMessage::new("deal.won", json!({"deal_id": 456, "amount": 100000}), 1).unwrap();
    app.publisher.publish(&event).await.unwrap();

    let status = app.wait_for_settled(hook, WAIT).await;
    assert_eq!(status, "failed");
    assert_eq!(receiver.count(), 3, "max_attempts requests, no more");
    let logged: Vec<(i32, bool)> = sqlx::query_as(
        "SELECT attempt, is_success FROM webhook_logs WHERE webhook_id = $1 ORDER BY attempt",
    )
    .bind(hook)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(logged, [(1, false), (2, false), (3, false)]);
    assert_eq!(
        app.metric(r#"webhookd_deliveries_total{event="deal.won",outcome="failed"}"#)
            .await,
        1.0
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.count(),
        3,
        "a failed delivery is not retried on its own"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_malformed_message_is_rejected_counted_and_the_next_good_one_delivered() {
    let overrides = [("WEBHOOKD__BROKER__MAX_MESSAGE_BYTES", "65536")];
    let Subscribed { app, receiver, .. } =
        TestApp::spawn_with_webhook(&overrides, json!(["*"]), SECRET).await;

    let huge = format!(
        r#"{{"event":"task.created","data":{{"x":"{}"}}}}"#,
        "a".repeat(70_000)
    );
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_utf8", b"\xff\xfe\xfd".to_vec()),
        ("invalid_json", b"{not json".to_vec()),
        ("not_object", b"[1,2,3]".to_vec()),
        ("missing_field", br#"{"event":"task.created"}"#.to_vec()),
        (
            "wrong_type",
            br#"{"event":"task.created","data":{},"user_id":"seven"}"#.to_vec(),
        ),
        (
            "unknown_event",
            br#"{"event":"task.exploded","data":{}}"#.to_vec(),
        ),
        ("too_large", huge.into_bytes()),
    ];
    for (_, body) in &bad {
        app.publish_raw("task.created", body).await;
    }
    let good = task_created("after the garbage");
    app.publisher.publish(&good).await.unwrap();

    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["id"], good.id.to_string());
    for (reason, _) in &bad {
        let sample = format!(r#"webhookd_events_rejected_total{{reason="{reason}"}}"#);
        assert_eq!(app.metric(&sample).await, 1.0, "{sample}");
    }

    // Every rejected message waits in the dead-letter queue with its reason.
    let conn = lapin::Connection::connect(webhookd_e2e::broker::AMQP_URL, Default::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let mut reasons = Vec::new();
    while let Some(message) = channel
        .basic_get(
            app.topology.dead_letter_queue().as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        let headers = message
            .delivery
            .properties
            .headers()
            .clone()
            .unwrap_or_default();
        let reason = headers
            .inner()
            .get(webhookd_producer::REJECT_REASON_HEADER)
            .and_then(|v| match v {
                lapin::types::AMQPValue::LongString(s) => {
                    Some(String::from_utf8_lossy(s.as_bytes()).into_owned())
                }
                _ => None,
            })
            .unwrap_or_default();
        reasons.push(reason);
    }
    assert_eq!(reasons.len(), bad.len(), "{reasons:?}");
    for expected in [
        "not valid UTF-8",
        "not valid JSON",
        "not an object",
        "missing required field `data`",
        "field `user_id` must be an integer",
        "unknown event `task.exploded`",
        "over the limit of 65536 bytes",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "{expected}: {reasons:?}"
        );
    }
    let _ = conn.close(200, "done".into()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.count(), 1, "nothing malformed was delivered");
    app.stop().await;
}

#[tokio::test]
async fn a_redelivered_event_is_delivered_once_per_webhook() {
    let Subscribed { app, receiver, .. } =
        TestApp::spawn_with_webhook(&[], json!(["task.created", "comment.added"]), SECRET).await;
    let event = task_created("once");
    app.publisher.publish(&event).await.unwrap();
    app.publisher.publish(&event).await.unwrap();
    let marker = EventMessage::new("comment.added", json!({"text": "marker"}), 2).unwrap();
    app.publisher.publish(&marker).await.unwrap();
    let got = receiver.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids: Vec<String> = receiver
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids.iter().filter(|id| **id == event.id.to_string()).count(),
        1,
        "{ids:?}"
    );
    assert!(got.len() >= 2);
    app.stop().await;
}

#[tokio::test]
async fn a_template_webhook_receives_its_rendered_body() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    app.create_webhook(
        &token,
        json!({
            "name": "telegram",
            "url": receiver.url(),
            "events": ["task.created"],
            "secret": SECRET,
            "template": r#"{"chat_id": "42", "text": "New task: {{data.title}}"}"#,
            "headers": {"X-Api-Key": "k-123"}
        }),
    )
    .await;
    app.publisher
        .publish(&task_created("Quote \" and {{braces}}"))
        .await
        .unwrap();
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].json(),
        json!({"chat_id": "42", "text": "New task: Quote \" and {{braces}}"})
    );
    assert!(got[0].seed_signature_valid && got[0].standard_signature_valid);
    assert_eq!(got[0].header("x-api-key"), "k-123");
    app.stop().await;
}

#[tokio::test]
async fn during_a_secret_rotation_requests_are_signed_with_both_secrets() {
    let Subscribed {
        app,
        token,
        receiver,
        webhook: hook,
    } = TestApp::spawn_with_webhook(&[], json!(["task.created"]), SECRET).await;
    // A delivery before the rotation: the daemon has built (and cached) the
    // webhook's target with the old secret.
    app.publisher
        .publish(&task_created("before"))
        .await
        .unwrap();
    let before = receiver.wait_for(1, WAIT).await;
    webhookd_signing::verify_seed(
        SECRET,
        &before[0].body,
        before[0].header("x-webhook-signature"),
    )
    .expect("signed with the only secret");
    assert!(before[0]
        .headers
        .get("x-webhook-signature-previous")
        .is_none());

    let rotated: Value = app
        .http
        .post(app.url(&format!("/api/v1/webhooks/{hook}/rotate-secret")))
        .bearer_auth(&token)
        .json(&json!({"grace_period_secs": 3600}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, SECRET);

    app.publisher
        .publish(&task_created("rotating"))
        .await
        .unwrap();
    let got = receiver.wait_for(2, WAIT).await;
    let request = &got[1];
    let body = &request.body[..];
    let id = request.header("webhook-id");
    let ts = request.header("webhook-timestamp");
    let standard = request.header("webhook-signature");
    let now = chrono::Utc::now().timestamp();
    assert_eq!(standard.split(' ').count(), 2, "{standard}");
    webhookd_signing::verify_standard(&new_secret, id, ts, body, standard, now, 300)
        .expect("the new secret verifies");
    webhookd_signing::verify_standard(SECRET, id, ts, body, standard, now, 300)
        .expect("the old secret still verifies during the grace period");
    webhookd_signing::verify_seed(&new_secret, body, request.header("x-webhook-signature"))
        .expect("X-Webhook-Signature uses the new secret");
    webhookd_signing::verify_seed(SECRET, body, request.header("x-webhook-signature-previous"))
        .expect("X-Webhook-Signature-Previous uses the old secret");
    app.stop().await;
}
