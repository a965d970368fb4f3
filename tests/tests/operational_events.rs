//! Operational events (SPEC §13): `delivery.failed` and `webhook.disabled`
//! reach the owner's other webhooks as signed events like any other, never
//! the webhook they are about, never another user's (admins included), and
//! a failing webhook subscribed to them does not report its own reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;
use webhookd_e2e::db::{count, TestDb};
use webhookd_e2e::{eventually, Received, Receiver, TestApp};
use webhookd_events::{reports_failure, CATALOGUE};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);
const REPORTS: [&str; 2] = ["webhook.disabled", "delivery.failed"];

fn task_created(user_id: i64) -> EventMessage {
    EventMessage::new(
        "task.created",
        json!({"task_id": 1, "title": "Call the client", "status": "pending"}),
        1708435200,
    )
    .unwrap()
    .with_user_id(user_id)
}

/// The request carrying `event`, checked as any delivery is: both
/// signatures valid, the §6 envelope, `X-Webhook-Event`.
fn the_one(received: &[Received], event: &str) -> Value {
    let of_event: Vec<&Received> = received
        .iter()
        .filter(|r| r.header("x-webhook-event") == event)
        .collect();
    assert_eq!(of_event.len(), 1, "one {event}: {received:?}");
    let request = of_event[0];
    assert!(request.seed_signature_valid && request.standard_signature_valid);
    let body = request.json();
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, BTreeSet::from(["id", "event", "timestamp", "data"]));
    assert_eq!(body["event"], event);
    assert!(body["timestamp"].as_i64().unwrap() > 1708435200);
    body
}

fn keys_of(data: &Value) -> BTreeSet<&str> {
    data.as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect()
}

/// Waits until a delivery of `event` to `webhook` has ended in `status`.
async fn ended(pool: &PgPool, event: &str, webhook: i64, status: &str) {
    let sql = format!(
        "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE e.event = '{event}' AND d.webhook_id = {webhook} AND d.status = '{status}'"
    );
    eventually(WAIT, &format!("{event} to {webhook} {status}"), || async {
        (count(pool, &sql).await == 1).then_some(())
    })
    .await;
}

/// Reports of `event` ever made, once the relay has published every one
/// still in the outbox: the relay counts a report when the broker confirms
/// it and deletes its row afterwards, so reading the table and the counter
/// while a report is between the two would count it twice.
async fn reports_made(app: &TestApp, event: &str) -> i64 {
    let waiting = format!("SELECT count(*) FROM outbox WHERE event = '{event}'");
    eventually(
        WAIT,
        &format!("the outbox's {event} reports published"),
        || async { (count(&app.db.pool, &waiting).await == 0).then_some(()) },
    )
    .await;
    app.metric(&format!(
        "webhookd_outbox_published_total{{event=\"{event}\"}}"
    ))
    .await as i64
}

/// Deliveries of operational events to `webhook`.
async fn reports_delivered_to(pool: &PgPool, webhook: i64) -> i64 {
    count(
        pool,
        &format!(
            "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id
             WHERE e.event IN ('webhook.disabled', 'delivery.failed') AND d.webhook_id = {webhook}"
        ),
    )
    .await
}

#[tokio::test]
async fn a_delivery_that_fails_for_good_is_reported_once_to_its_owners_other_webhooks_only() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "1")]).await;
    let (alice_id, alice) = app.create_user("Alice", None, false).await;
    let (_, bob) = app.create_user("Bob", None, false).await;
    let (_, admin) = app.create_user("Admin", None, true).await;
    let failing = Receiver::start(SECRET).await;
    failing.always(500);
    let watching = Receiver::start(SECRET).await;
    let also_failing = Receiver::start(SECRET).await;
    also_failing.always(500);
    let bobs = Receiver::start(SECRET).await;
    let admins = Receiver::start(SECRET).await;
    // The failing webhook takes everything, reports about itself included.
    let about = app
        .create_webhook_to(&alice, &failing.url(), json!(["*"]), SECRET)
        .await;
    let watcher = app
        .create_webhook_to(&alice, &watching.url(), json!(REPORTS), SECRET)
        .await;
    // Fails every report it gets: each failure of a report must not be
    // reported in turn (to `about`, which fails too, and so on).
    let failing_watcher = app
        .create_webhook_to(
            &alice,
            &also_failing.url(),
            json!(["delivery.failed"]),
            SECRET,
        )
        .await;
    let bobs_hook = app
        .create_webhook_to(&bob, &bobs.url(), json!(["*"]), SECRET)
        .await;
    let admins_hook = app
        .create_webhook_to(&admin, &admins.url(), json!(["*"]), SECRET)
        .await;

    let task = task_created(alice_id);
    app.publisher.publish(&task).await.unwrap();

    let got = watching.wait_for(1, WAIT).await;
    let report = the_one(&got, "delivery.failed");
    let data = &report["data"];
    assert_eq!(
        keys_of(data),
        BTreeSet::from([
            "webhook_id",
            "delivery_id",
            "event_id",
            "event",
            "attempts",
            "last_status_code",
            "last_error"
        ])
    );
    let first = &failing.received()[0];
    assert_eq!(first.header("x-webhook-event"), "task.created");
    assert_eq!(data["webhook_id"], about);
    assert_eq!(data["delivery_id"], first.header("x-webhook-id"));
    assert_eq!(data["event_id"], task.id.to_string());
    assert_eq!(data["event"], "task.created");
    assert_eq!(data["attempts"], 1);
    assert_eq!(data["last_status_code"], 500);
    assert_eq!(data["last_error"], "HTTP 500");

    // Every delivery of the report is written in one statement; the
    // failing watcher's has failed for good.
    ended(&app.db.pool, "delivery.failed", watcher, "succeeded").await;
    ended(&app.db.pool, "delivery.failed", failing_watcher, "failed").await;
    ended(&app.db.pool, "task.created", admins_hook, "succeeded").await;
    assert_eq!(also_failing.count(), 1);
    // No loop: the only report is the one about the task. A report of a
    // failed report would be in the outbox by now (same statement).
    assert_eq!(reports_made(&app, "delivery.failed").await, 1);
    assert_eq!(reports_made(&app, "webhook.disabled").await, 0);

    // Private to the owner: not Bob's, not even an admin's.
    assert_eq!(reports_delivered_to(&app.db.pool, bobs_hook).await, 0);
    assert_eq!(reports_delivered_to(&app.db.pool, admins_hook).await, 0);
    assert_eq!(bobs.count(), 0);
    assert_eq!(admins.count(), 1, "the task only");
    // Never to the webhook it is about.
    assert_eq!(reports_delivered_to(&app.db.pool, about).await, 0);
    assert_eq!(failing.count(), 1, "the task only");
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_switched_off_by_a_410_is_reported_but_one_its_owner_switches_off_is_not() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.create_user("Alice", None, false).await;
    let gone = Receiver::start(SECRET).await;
    gone.always(410);
    let watching = Receiver::start(SECRET).await;
    let about = app
        .create_webhook_to(&alice, &gone.url(), json!(["task.created"]), SECRET)
        .await;
    app.create_webhook_to(&alice, &watching.url(), json!(REPORTS), SECRET)
        .await;
    let quiet = app
        .create_webhook_to(
            &alice,
            "http://127.0.0.1:9/hook",
            json!(["deal.won"]),
            SECRET,
        )
        .await;
    let toggled = app
        .http
        .post(app.url(&format!("/api/v1/webhooks/{quiet}/toggle")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(toggled.status(), 200);

    app.publisher
        .publish(&task_created(alice_id))
        .await
        .unwrap();

    let got = watching.wait_for(2, WAIT).await;
    let disabled = the_one(&got, "webhook.disabled");
    assert_eq!(
        disabled["data"],
        json!({"webhook_id": about, "name": "hook", "url": gone.url(),
               "reason": "the receiver answered 410 Gone"})
    );
    assert_eq!(
        keys_of(&disabled["data"]),
        BTreeSet::from(["webhook_id", "name", "url", "reason"])
    );
    let failed = the_one(&got, "delivery.failed");
    assert_eq!(failed["data"]["webhook_id"], about);
    assert_eq!(failed["data"]["last_status_code"], 410);
    assert!(failed["data"]["last_error"]
        .as_str()
        .unwrap()
        .starts_with("HTTP 410 Gone"));
    // The owner's own switch-off, made before, was not reported.
    assert_eq!(reports_made(&app, "webhook.disabled").await, 1);
    app.stop().await;
}

async fn insert_event(pool: &PgPool, event: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO events (id, event, body) VALUES ($1, $2, '{}')")
        .bind(id)
        .bind(event)
        .execute(pool)
        .await
        .unwrap();
    id
}

async fn insert_delivery(pool: &PgPool, event: &str, webhook: i64, status: &str) -> Uuid {
    let event_id = insert_event(pool, event).await;
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, last_status_code,
                                 last_error)
         VALUES ($1, $2, $3, $4, 3, 503, 'HTTP 503')",
    )
    .bind(id)
    .bind(event_id)
    .bind(webhook)
    .bind(status)
    .execute(pool)
    .await
    .unwrap();
    id
}

async fn set_status(pool: &PgPool, delivery: Uuid, status: &str) {
    sqlx::query("UPDATE deliveries SET status = $2, updated_at = now() WHERE id = $1")
        .bind(delivery)
        .bind(status)
        .execute(pool)
        .await
        .unwrap();
}

/// A failing batch of `members` (event names); returns the batch's id.
async fn failing_batch(pool: &PgPool, webhook: i64, members: &[&str]) -> Uuid {
    let batch = insert_delivery(pool, "batch", webhook, "pending").await;
    for member in members {
        let row = insert_delivery(pool, member, webhook, "batched").await;
        sqlx::query("UPDATE deliveries SET batch_id = $2 WHERE id = $1")
            .bind(row)
            .bind(batch)
            .execute(pool)
            .await
            .unwrap();
    }
    set_status(pool, batch, "failed").await;
    batch
}

#[tokio::test]
async fn the_outbox_gets_one_row_per_delivery_failed_for_good_and_per_switch_off_by_webhookd() {
    let db = TestDb::create().await;
    let pool = &db.pool;
    let outbox = "SELECT count(*) FROM outbox";
    sqlx::query("INSERT INTO users (id, name) VALUES (7, 'Alice')")
        .execute(pool)
        .await
        .unwrap();
    let webhook: i64 = sqlx::query_scalar(
        "INSERT INTO webhooks (user_id, name, url, events, secret)
         VALUES (7, 'a', 'https://example.com/h', ARRAY['*'], 's') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();

    // Written failed (a first attempt that ended it), then ended by an update.
    let first = insert_delivery(pool, "deal.won", webhook, "failed").await;
    assert_eq!(count(pool, outbox).await, 1);
    let row: (String, i64, String) =
        sqlx::query_as("SELECT event, user_id, data::text FROM outbox")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!((row.0.as_str(), row.1), ("delivery.failed", 7));
    let data: Value = serde_json::from_str(&row.2).unwrap();
    assert_eq!(data["delivery_id"], first.to_string());
    assert_eq!(
        (&data["event"], &data["attempts"], &data["last_status_code"]),
        (&json!("deal.won"), &json!(3), &json!(503))
    );
    let later = insert_delivery(pool, "task.created", webhook, "pending").await;
    assert_eq!(count(pool, outbox).await, 1);
    set_status(pool, later, "failed").await;
    assert_eq!(count(pool, outbox).await, 2);
    // Touching a failed row again, or a success, reports nothing.
    set_status(pool, later, "failed").await;
    let ok = insert_delivery(pool, "task.created", webhook, "pending").await;
    set_status(pool, ok, "succeeded").await;
    assert_eq!(count(pool, outbox).await, 2);

    // Reports and tests are not reported; nor is a batch of reports only.
    for event in ["delivery.failed", "webhook.disabled", "webhook.test"] {
        insert_delivery(pool, event, webhook, "failed").await;
    }
    failing_batch(pool, webhook, &["delivery.failed", "webhook.disabled"]).await;
    assert_eq!(count(pool, outbox).await, 2);
    let batch = failing_batch(pool, webhook, &["delivery.failed", "task.created"]).await;
    assert_eq!(count(pool, outbox).await, 3);
    let reported: String = sqlx::query_scalar(
        "SELECT data->>'event' FROM outbox WHERE data->>'delivery_id' = $1::text",
    )
    .bind(batch)
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(reported, "batch");

    // The owner switching it off is not reported; webhookd doing it is.
    let switch = |active: bool, reason: Option<&'static str>| {
        sqlx::query("UPDATE webhooks SET is_active = $2, disabled_reason = $3 WHERE id = $1")
            .bind(webhook)
            .bind(active)
            .bind(reason)
            .execute(pool)
    };
    switch(false, None).await.unwrap();
    switch(true, None).await.unwrap();
    assert_eq!(count(pool, outbox).await, 3);
    switch(false, Some("the receiver answered 410 Gone"))
        .await
        .unwrap();
    let disabled: (i64, String) =
        sqlx::query_as("SELECT user_id, data::text FROM outbox WHERE event = 'webhook.disabled'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(disabled.0, 7);
    assert_eq!(
        serde_json::from_str::<Value>(&disabled.1).unwrap(),
        json!({"webhook_id": webhook, "name": "a", "url": "https://example.com/h",
               "reason": "the receiver answered 410 Gone"})
    );

    // The database's rule is the domain's.
    for name in CATALOGUE.iter().map(|e| e.name).chain(["batch"]) {
        let sql: bool = sqlx::query_scalar("SELECT webhookd_reports_failure($1)")
            .bind(name)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(sql, reports_failure(name), "{name}");
    }
    db.drop_database().await;
}
