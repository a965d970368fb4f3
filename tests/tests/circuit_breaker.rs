//! The circuit breaker per webhook (docs/ARCHITECTURE.md, "Circuit
//! breaker"), end to end: a receiver on 127.0.0.1 that goes down and comes
//! back, the daemon's API, its metrics and its database.

#![allow(clippy::unwrap_used)]
use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use webhookd_e2e::graphql::{data, graphql};
use webhookd_e2e::process::{sample, Deployment};
use webhookd_e2e::{eventually, Receiver, Subscribed, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);

/// Breaker settings: it opens after `failures` failed attempts in a row and
/// probes after `cooldown_secs`, doubled after each failed probe up to
/// `max_cooldown_secs`. Attempts are plenty, so that only the breaker holds
/// deliveries back.
fn breaker_settings(
    failures: &'static str,
    cooldown_secs: &'static str,
    max_cooldown_secs: &'static str,
) -> [(&'static str, &'static str); 4] {
    [
        ("WEBHOOKD__DELIVERY__BREAKER_FAILURES", failures),
        ("WEBHOOKD__DELIVERY__BREAKER_COOLDOWN_SECS", cooldown_secs),
        (
            "WEBHOOKD__DELIVERY__BREAKER_MAX_COOLDOWN_SECS",
            max_cooldown_secs,
        ),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "100"),
    ]
}

/// A daemon with `overrides` and Alice's webhook to a receiver that answers
/// every request with `status`.
async fn spawn_with_failing_receiver(overrides: &[(&str, &str)], status: u16) -> Subscribed {
    let subscribed = TestApp::spawn_with_webhook(overrides, json!(["task.*"]), SECRET).await;
    subscribed.receiver.always(status);
    subscribed
}

/// Publishes one `task.created` event for each task id in `ids`.
async fn publish_tasks(app: &TestApp, ids: Range<usize>) {
    let events: Vec<EventMessage> = ids
        .map(|i| {
            EventMessage::new(
                "task.created",
                json!({"task_id": i, "title": format!("task {i}")}),
                1708435200,
            )
            .unwrap()
        })
        .collect();
    app.publisher.publish_many(&events, |_| {}).await.unwrap();
}

async fn breaker(app: &TestApp, token: &str, webhook: i64) -> Value {
    let path = format!("/api/v1/webhooks/{webhook}");
    let (status, body) = app
        .api(token, reqwest::Method::GET, &path, Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    body["breaker"].clone()
}

async fn wait_until_open(app: &TestApp, token: &str, webhook: i64) -> Value {
    eventually(WAIT, "the breaker to open", || async {
        let b = breaker(app, token, webhook).await;
        (b["state"] != "closed").then_some(b)
    })
    .await
}

/// The webhook's pending deliveries, and how many of them are parked.
async fn pending(app: &TestApp, webhook: i64) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'pending'),
                count(*) FILTER (WHERE status = 'pending' AND parked)
         FROM deliveries WHERE webhook_id = $1",
    )
    .bind(webhook)
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

/// Waits until the webhook has `total` pending deliveries, at least `parked`
/// of them parked.
async fn wait_until_parked(app: &TestApp, webhook: i64, total: i64, parked: i64) {
    let what = format!("{total} pending deliveries, {parked} or more of them parked");
    eventually(WAIT, &what, || async {
        let (now_pending, now_parked) = pending(app, webhook).await;
        (now_pending == total && now_parked >= parked).then_some(())
    })
    .await;
}

async fn deliveries_with_status(app: &TestApp, webhook: i64, status: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status = $2")
        .bind(webhook)
        .bind(status)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// The metric sample counting the breaker's transitions to `state`.
fn transitions_to(state: &str) -> String {
    format!(r#"webhookd_breaker_transitions_total{{to="{state}"}}"#)
}

async fn transitions(app: &TestApp, to: &str) -> f64 {
    app.metric(&transitions_to(to)).await
}

/// How many requests `receiver` gets in the next `period`.
async fn requests_during(receiver: &Receiver, period: Duration) -> usize {
    let from = receiver.count();
    tokio::time::sleep(period).await;
    receiver.count() - from
}

#[tokio::test]
async fn a_dead_receivers_backlog_costs_a_few_probes_and_is_delivered_once_when_it_recovers() {
    let Subscribed {
        app,
        token,
        receiver,
        webhook,
    } = spawn_with_failing_receiver(&breaker_settings("5", "1", "2"), 500).await;

    // A few deliveries fail until the breaker opens.
    publish_tasks(&app, 0..10).await;
    let opened = wait_until_open(&app, &token, webhook).await;
    assert!(opened["opened_at"].is_string(), "{opened}");
    assert!(opened["failures"].as_i64().unwrap() >= 5, "{opened}");
    let at_open = receiver.count();

    // The backlog grows while it is open: written parked, never attempted
    // one by one.
    publish_tasks(&app, 10..300).await;
    wait_until_parked(&app, webhook, 300, 290).await;
    let during = requests_during(&receiver, Duration::from_secs(5)).await;
    // A probe at most every second (cooldown 1 s, then 2 s): a handful.
    assert!(
        during <= 8,
        "{during} requests in 5 s with the breaker open (only probes expected)"
    );
    assert!(
        receiver.count() <= at_open + 40,
        "{} requests for 300 deliveries to a dead receiver",
        receiver.count()
    );
    assert!(transitions(&app, "open").await >= 1.0);
    assert!(transitions(&app, "half_open").await >= 1.0);
    eventually(WAIT, "the open-breaker gauge", || async {
        (app.metric("webhookd_breakers_open").await >= 1.0).then_some(())
    })
    .await;

    // The receiver comes back: the next probe closes the breaker and the
    // backlog resumes.
    let recovered_at = Instant::now();
    receiver.always(200);
    eventually(
        Duration::from_secs(60),
        "every delivery to succeed",
        || async {
            let done = deliveries_with_status(&app, webhook, "succeeded").await;
            (done == 300).then_some(())
        },
    )
    .await;
    let closed = breaker(&app, &token, webhook).await;
    assert_eq!(closed["state"], "closed", "{closed}");
    assert_eq!(closed["failures"], 0, "{closed}");
    assert!(transitions(&app, "closed").await >= 1.0);

    // Exactly once: one successful attempt logged per delivery, and no
    // delivery id received twice since the receiver recovered.
    let successes: Vec<(uuid::Uuid, i64)> = sqlx::query_as(
        "SELECT d.id, count(l.id) FROM deliveries d
         LEFT JOIN webhook_logs l ON l.delivery_id = d.id AND l.is_success
         WHERE d.webhook_id = $1 GROUP BY d.id",
    )
    .bind(webhook)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(successes.len(), 300);
    assert!(
        successes.iter().all(|(_, n)| *n == 1),
        "one success each: {:?}",
        successes
            .iter()
            .filter(|(_, n)| *n != 1)
            .collect::<Vec<_>>()
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in receiver.received().iter().filter(|r| r.at > recovered_at) {
        *seen.entry(r.header("x-webhook-id").to_owned()).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {twice:?}");
    assert!(seen.len() >= 299, "{} delivered after recovery", seen.len());
    app.stop().await;
}

#[tokio::test]
async fn a_failed_probe_keeps_the_breaker_open_with_a_growing_cooldown() {
    let Subscribed {
        app,
        token,
        webhook,
        ..
    } = spawn_with_failing_receiver(&breaker_settings("3", "1", "4"), 503).await;
    publish_tasks(&app, 0..5).await;
    wait_until_open(&app, &token, webhook).await;

    let cooldown = || async {
        sqlx::query_scalar::<_, Option<i32>>(
            "SELECT breaker_cooldown_ms FROM webhooks WHERE id = $1",
        )
        .bind(webhook)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
    };
    for grown in [2000, 4000] {
        eventually(WAIT, "a failed probe to double the cooldown", || async {
            (cooldown().await == Some(grown)).then_some(())
        })
        .await;
        let b = breaker(&app, &token, webhook).await;
        assert_ne!(b["state"], "closed", "still open after a failed probe: {b}");
    }
    // GraphQL shows the same breaker.
    let query =
        "query($id: ID!) { webhook(id: $id) { breaker { state failures openedAt nextProbeAt } } }";
    let base = format!("http://{}", app.addr);
    let answer = graphql(
        &app.http,
        &base,
        Some(&token),
        query,
        json!({"id": webhook}),
    )
    .await;
    let shown = &data(&answer)["webhook"]["breaker"];
    assert_ne!(shown["state"], "closed", "{shown}");
    assert!(shown["openedAt"].is_string(), "{shown}");
    assert!(shown["failures"].as_i64().unwrap() >= 3, "{shown}");

    // Capped at the maximum.
    let reopened = transitions(&app, "open").await;
    eventually(WAIT, "another failed probe", || async {
        (transitions(&app, "open").await > reopened).then_some(())
    })
    .await;
    assert_eq!(cooldown().await, Some(4000));
    assert!(transitions(&app, "closed").await == 0.0, "never closed");
    app.stop().await;
}

#[tokio::test]
async fn a_threshold_of_zero_turns_the_breaker_off() {
    let overrides = [
        ("WEBHOOKD__DELIVERY__BREAKER_FAILURES", "0"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "8"),
        ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "50"),
        ("WEBHOOKD__DELIVERY__MAX_BACKOFF_MS", "200"),
    ];
    let Subscribed {
        app,
        token,
        receiver,
        webhook,
    } = spawn_with_failing_receiver(&overrides, 500).await;
    publish_tasks(&app, 0..1).await;
    // Every attempt of the retry policy is made.
    assert_eq!(app.wait_for_settled(webhook, WAIT).await, "failed");
    assert_eq!(receiver.count(), 8);
    let b = breaker(&app, &token, webhook).await;
    assert_eq!(b["state"], "closed", "{b}");
    assert_eq!(b["failures"], 8, "failures are still counted: {b}");
    assert_eq!(transitions(&app, "open").await, 0.0);
    app.stop().await;
}

#[tokio::test]
async fn three_replicas_send_one_probe_at_a_time_between_them() {
    let deployment = Deployment::new().await;
    let receiver = Receiver::start(SECRET).await;
    receiver.always(500);
    let webhook = deployment.subscribe(&receiver.url(), SECRET).await;
    // A constant one-second cooldown: each replica probing on its own
    // would send about three requests a second.
    let settings = breaker_settings("3", "1", "1");
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(deployment.worker(&settings).await);
    }
    deployment.publish(30).await;
    eventually(WAIT, "the breaker to open", || async {
        let open: bool =
            sqlx::query_scalar("SELECT breaker_opened_at IS NOT NULL FROM webhooks WHERE id = $1")
                .bind(webhook)
                .fetch_one(&deployment.db.pool)
                .await
                .unwrap();
        open.then_some(())
    })
    .await;
    // What was already in the replicas' memory settles first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let probes = requests_during(&receiver, Duration::from_secs(6)).await;
    assert!(
        (2..=8).contains(&probes),
        "{probes} requests in 6 s from three replicas (one probe a second expected)"
    );
    let mut half_open = 0.0;
    for worker in &workers {
        let text = worker.metrics().await;
        half_open += sample(&text, &transitions_to("half_open")).unwrap_or(0.0);
    }
    assert!(half_open >= 2.0, "probes counted: {half_open}");
    for worker in workers {
        worker.terminate().await;
    }
    deployment.cleanup().await;
}

#[tokio::test]
async fn switching_off_a_webhook_with_an_open_breaker_ends_its_parked_deliveries() {
    let Subscribed {
        app,
        token,
        webhook,
        ..
    } = spawn_with_failing_receiver(&breaker_settings("3", "1", "1"), 500).await;
    publish_tasks(&app, 0..20).await;
    wait_until_open(&app, &token, webhook).await;
    wait_until_parked(&app, webhook, 20, 18).await;

    let path = format!("/api/v1/webhooks/{webhook}/toggle");
    let (status, body) = app
        .api(&token, reqwest::Method::POST, &path, Value::Null)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["is_active"], false, "{body}");

    eventually(WAIT, "every parked delivery to end", || async {
        let (pending, _) = pending(&app, webhook).await;
        (pending == 0).then_some(())
    })
    .await;
    let failed = deliveries_with_status(&app, webhook, "failed").await;
    assert_eq!(failed, 20, "ended failed, as any switched-off webhook's");
    let b = breaker(&app, &token, webhook).await;
    assert_eq!(b["state"], "closed", "{b}");
    app.stop().await;
}
