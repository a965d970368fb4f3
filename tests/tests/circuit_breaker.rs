//! The circuit breaker per webhook (docs/ARCHITECTURE.md, "Circuit
//! breaker"), end to end: a receiver on 127.0.0.1 that goes down and comes
//! back, the daemon's API, its metrics and its database.

#![allow(clippy::unwrap_used)]
use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use webhookd_e2e::graphql::{data, graphql};
use webhookd_e2e::process::{sample, Deployment};
use webhookd_e2e::{eventually, Receiver, Subscribed, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);

fn events(n: usize, from: usize) -> Vec<EventMessage> {
    (from..from + n)
        .map(|i| {
            EventMessage::new(
                "task.created",
                json!({"task_id": i, "title": format!("task {i}")}),
                1708435200,
            )
            .unwrap()
        })
        .collect()
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

#[tokio::test]
async fn a_dead_receivers_backlog_costs_a_few_probes_and_is_delivered_once_when_it_recovers() {
    let overrides = [
        ("WEBHOOKD__DELIVERY__BREAKER_FAILURES", "5"),
        ("WEBHOOKD__DELIVERY__BREAKER_COOLDOWN_SECS", "1"),
        ("WEBHOOKD__DELIVERY__BREAKER_MAX_COOLDOWN_SECS", "2"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "100"),
    ];
    let Subscribed {
        app,
        token,
        receiver,
        webhook,
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.*"]), SECRET).await;
    receiver.always(500);

    // A few deliveries fail until the breaker opens.
    let first = events(10, 0);
    app.publisher.publish_many(&first, |_| {}).await.unwrap();
    let opened = wait_until_open(&app, &token, webhook).await;
    assert!(opened["opened_at"].is_string(), "{opened}");
    assert!(opened["failures"].as_i64().unwrap() >= 5, "{opened}");
    let at_open = receiver.count();

    // The backlog grows while it is open: written parked, never attempted
    // one by one.
    let rest = events(290, 10);
    app.publisher.publish_many(&rest, |_| {}).await.unwrap();
    eventually(WAIT, "all 300 deliveries to be written", || async {
        let (pending, parked) = pending(&app, webhook).await;
        (pending == 300 && parked >= 290).then_some(())
    })
    .await;
    let quiet_from = receiver.count();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = receiver.count() - quiet_from;
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
    assert!(
        app.metric(r#"webhookd_breaker_transitions_total{to="open"}"#)
            .await
            >= 1.0
    );
    assert!(
        app.metric(r#"webhookd_breaker_transitions_total{to="half_open"}"#)
            .await
            >= 1.0
    );
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
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status = 'succeeded'",
            )
            .bind(webhook)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
            (done == 300).then_some(())
        },
    )
    .await;
    let closed = breaker(&app, &token, webhook).await;
    assert_eq!(closed["state"], "closed", "{closed}");
    assert_eq!(closed["failures"], 0, "{closed}");
    assert!(
        app.metric(r#"webhookd_breaker_transitions_total{to="closed"}"#)
            .await
            >= 1.0
    );

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
    let overrides = [
        ("WEBHOOKD__DELIVERY__BREAKER_FAILURES", "3"),
        ("WEBHOOKD__DELIVERY__BREAKER_COOLDOWN_SECS", "1"),
        ("WEBHOOKD__DELIVERY__BREAKER_MAX_COOLDOWN_SECS", "4"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "100"),
    ];
    let Subscribed {
        app,
        token,
        receiver,
        webhook,
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.*"]), SECRET).await;
    receiver.always(503);
    app.publisher
        .publish_many(&events(5, 0), |_| {})
        .await
        .unwrap();
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
    let reopened = app
        .metric(r#"webhookd_breaker_transitions_total{to="open"}"#)
        .await;
    eventually(WAIT, "another failed probe", || async {
        let now = app
            .metric(r#"webhookd_breaker_transitions_total{to="open"}"#)
            .await;
        (now > reopened).then_some(())
    })
    .await;
    assert_eq!(cooldown().await, Some(4000));
    assert!(
        app.metric(r#"webhookd_breaker_transitions_total{to="closed"}"#)
            .await
            == 0.0,
        "never closed"
    );
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
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.*"]), SECRET).await;
    receiver.always(500);
    app.publisher
        .publish_many(&events(1, 0), |_| {})
        .await
        .unwrap();
    // Every attempt of the retry policy is made.
    assert_eq!(app.wait_for_settled(webhook, WAIT).await, "failed");
    assert_eq!(receiver.count(), 8);
    let b = breaker(&app, &token, webhook).await;
    assert_eq!(b["state"], "closed", "{b}");
    assert_eq!(b["failures"], 8, "failures are still counted: {b}");
    assert_eq!(
        app.metric(r#"webhookd_breaker_transitions_total{to="open"}"#)
            .await,
        0.0
    );
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
    let settings = [
        ("WEBHOOKD__DELIVERY__BREAKER_FAILURES", "3"),
        ("WEBHOOKD__DELIVERY__BREAKER_COOLDOWN_SECS", "1"),
        ("WEBHOOKD__DELIVERY__BREAKER_MAX_COOLDOWN_SECS", "1"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "100"),
    ];
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
    let from = receiver.count();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let probes = receiver.count() - from;
    assert!(
        (2..=8).contains(&probes),
        "{probes} requests in 6 s from three replicas (one probe a second expected)"
    );
    let mut half_open = 0.0;
    for worker in &workers {
        let text = worker.metrics().await;
        half_open += sample(
            &text,
            r#"webhookd_breaker_transitions_total{to="half_open"}"#,
        )
        .unwrap_or(0.0);
    }
    assert!(half_open >= 2.0, "probes counted: {half_open}");
    for worker in workers {
        worker.terminate().await;
    }
    deployment.cleanup().await;
}

#[tokio::test]
async fn switching_off_a_webhook_with_an_open_breaker_ends_its_parked_deliveries() {
    let overrides = [
        ("WEBHOOKD__DELIVERY__BREAKER_FAILURES", "3"),
        ("WEBHOOKD__DELIVERY__BREAKER_COOLDOWN_SECS", "1"),
        ("WEBHOOKD__DELIVERY__BREAKER_MAX_COOLDOWN_SECS", "1"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "100"),
    ];
    let Subscribed {
        app,
        token,
        receiver,
        webhook,
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.*"]), SECRET).await;
    receiver.always(500);
    app.publisher
        .publish_many(&events(20, 0), |_| {})
        .await
        .unwrap();
    wait_until_open(&app, &token, webhook).await;
    eventually(WAIT, "the backlog to be parked", || async {
        let (pending, parked) = pending(&app, webhook).await;
        (pending == 20 && parked >= 18).then_some(())
    })
    .await;

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
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status = 'failed'",
    )
    .bind(webhook)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(failed, 20, "ended failed, as any switched-off webhook's");
    let b = breaker(&app, &token, webhook).await;
    assert_eq!(b["state"], "closed", "{b}");
    app.stop().await;
}
