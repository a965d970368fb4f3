//! Receivers that fail in every way, against the real daemon: each failure is
//! an attempt logged with a useful `error_message` and retried on schedule;
//! 410 Gone and a long failing streak switch a webhook off; a hanging
//! endpoint delays no one else and holds a bounded share of memory.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::Row;
use webhookd_e2e::app::webhook_body;
use webhookd_e2e::db::TestDb;
use webhookd_e2e::receiver::{closed_port_url, ResetServer};
use webhookd_e2e::{eventually, Receiver, Subscribed, TestApp};
use webhookd_events::delivery::{AttemptRecord, NextStep};
use webhookd_producer::EventMessage;
use webhookd_store::deliveries::record_attempts;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

fn task_created(n: i64) -> EventMessage {
    EventMessage::new(
        "task.created",
        json!({"task_id": n, "title": format!("task {n}"), "status": "pending"}),
        1708435200,
    )
    .unwrap()
}

/// Creates a webhook on `url` for `task.created`; `extra` fields (e.g.
/// `timeout_ms`) are merged into the request.
async fn webhook(app: &TestApp, token: &str, url: &str, extra: Value) -> i64 {
    let mut body = webhook_body(url, json!(["task.created"]), SECRET);
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    app.create_webhook(token, body).await["id"]
        .as_i64()
        .unwrap()
}

#[derive(Debug)]
struct Logged {
    attempt: i32,
    status_code: Option<i32>,
    is_success: bool,
    error: String,
    response: Option<String>,
    response_time_ms: i32,
}

async fn logs(app: &TestApp, hook: i64) -> Vec<Logged> {
    sqlx::query(
        "SELECT attempt, status_code, is_success, error_message, response, response_time_ms
         FROM webhook_logs WHERE webhook_id = $1 ORDER BY id",
    )
    .bind(hook)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .iter()
    .map(|r| Logged {
        attempt: r.get("attempt"),
        status_code: r.get("status_code"),
        is_success: r.get("is_success"),
        error: r
            .get::<Option<String>, _>("error_message")
            .unwrap_or_default(),
        response: r.get("response"),
        response_time_ms: r.get("response_time_ms"),
    })
    .collect()
}

async fn get_webhook(app: &TestApp, token: &str, hook: i64) -> Value {
    app.http
        .get(app.url(&format!("/api/v1/webhooks/{hook}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the API shows the webhook switched off, and returns its JSON.
async fn disabled(app: &TestApp, token: &str, hook: i64) -> Value {
    eventually(WAIT, "the webhook to be disabled", || async {
        let shown = get_webhook(app, token, hook).await;
        (shown["is_active"] == false).then_some(shown)
    })
    .await
}

#[tokio::test]
async fn a_receiver_answering_500_is_retried_on_the_backoff_schedule_until_the_delivery_fails() {
    let overrides = [
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "3"),
        ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "200"),
        ("WEBHOOKD__DELIVERY__JITTER", "none"),
    ];
    let Subscribed {
        app,
        receiver,
        webhook: hook,
        ..
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.created"]), SECRET).await;
    receiver.always(500);
    app.publisher.publish(&task_created(1)).await.unwrap();

    assert_eq!(app.wait_for_settled(hook, WAIT).await, "failed");
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got[1].at - got[0].at >= Duration::from_millis(200));
    assert!(got[2].at - got[1].at >= Duration::from_millis(400));
    let logged = logs(&app, hook).await;
    assert_eq!(logged.len(), 3, "{logged:?}");
    for (n, row) in logged.iter().enumerate() {
        assert_eq!(row.attempt, n as i32 + 1);
        assert_eq!(row.status_code, Some(500));
        assert!(!row.is_success);
        assert_eq!(row.error, "HTTP 500");
        assert_eq!(row.response.as_deref(), Some("receiver says no"));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_in_seconds_is_not_retried_sooner() {
    // The normal backoff would retry within 50 ms.
    let overrides = [
        ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "50"),
        ("WEBHOOKD__DELIVERY__MAX_BACKOFF_MS", "10000"),
    ];
    let Subscribed {
        app,
        receiver,
        webhook: hook,
        ..
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.created"]), SECRET).await;
    receiver.fail_next(1, 429);
    receiver.retry_after(Some("2"));
    app.publisher.publish(&task_created(1)).await.unwrap();

    let got = receiver.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    assert!(gap >= Duration::from_secs(2), "retried after {gap:?}");
    assert_eq!(got[0].header("x-webhook-id"), got[1].header("x-webhook-id"));
    assert_eq!(app.wait_for_settled(hook, WAIT).await, "succeeded");
    let logged = logs(&app, hook).await;
    assert_eq!(logged[0].status_code, Some(429));
    assert_eq!(logged[0].error, "HTTP 429");
    assert!(logged[1].is_success);
    app.stop().await;
}

#[tokio::test]
async fn a_503_with_an_http_date_retry_after_is_not_retried_before_that_date() {
    let overrides = [
        ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "50"),
        ("WEBHOOKD__DELIVERY__MAX_BACKOFF_MS", "10000"),
    ];
    let Subscribed {
        app,
        receiver,
        webhook: hook,
        ..
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.created"]), SECRET).await;
    // HTTP dates have whole seconds: this one is 2 to 3 s away.
    let not_before = chrono::Utc::now() + chrono::Duration::seconds(3);
    let http_date = not_before.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    let not_before = chrono::DateTime::parse_from_rfc2822(&http_date).unwrap();
    receiver.fail_next(1, 503);
    receiver.retry_after(Some(&http_date));
    app.publisher.publish(&task_created(1)).await.unwrap();

    let got = receiver.wait_for(2, WAIT).await;
    assert!(
        got[1].received_at >= not_before,
        "retried at {} before Retry-After {http_date}",
        got[1].received_at
    );
    assert_eq!(app.wait_for_settled(hook, WAIT).await, "succeeded");
    let logged = logs(&app, hook).await;
    assert_eq!(logged[0].status_code, Some(503));
    assert_eq!(logged[0].error, "HTTP 503");
    assert!(logged[1].is_success);
    app.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_logged_and_retried() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let hook = webhook(&app, &token, &closed_port_url().await, json!({})).await;
    app.publisher.publish(&task_created(1)).await.unwrap();

    assert_eq!(app.wait_for_settled(hook, WAIT).await, "failed");
    let logged = logs(&app, hook).await;
    assert_eq!(logged.len(), 2, "{logged:?}");
    for row in &logged {
        assert_eq!(row.status_code, None);
        assert!(row.error.starts_with("connection failed"), "{}", row.error);
        assert!(
            row.error.to_lowercase().contains("refused"),
            "{}",
            row.error
        );
        // Which receiver: the port and path are kept (the query is not).
        assert!(row.error.contains("/hook"), "the URL's path: {}", row.error);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_connection_reset_mid_response_is_logged_and_retried() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let server = ResetServer::start().await;
    let hook = webhook(&app, &token, &server.url(), json!({})).await;
    app.publisher.publish(&task_created(1)).await.unwrap();

    assert_eq!(app.wait_for_settled(hook, WAIT).await, "failed");
    assert_eq!(server.requests(), 2, "each attempt reached the server");
    let logged = logs(&app, hook).await;
    assert_eq!(logged.len(), 2, "{logged:?}");
    for row in &logged {
        assert_eq!(row.status_code, None);
        assert!(
            row.error.starts_with("connection reset by the receiver"),
            "{}",
            row.error
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_response_that_never_comes_times_out_at_the_webhooks_timeout() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.hold();
    let hook = webhook(&app, &token, &receiver.url(), json!({"timeout_ms": 300})).await;
    app.publisher.publish(&task_created(1)).await.unwrap();

    assert_eq!(app.wait_for_settled(hook, WAIT).await, "failed");
    assert_eq!(receiver.answered(), 0, "both attempts were abandoned");
    let logged = logs(&app, hook).await;
    assert_eq!(logged.len(), 2, "{logged:?}");
    for row in &logged {
        assert_eq!(row.status_code, None);
        assert_eq!(row.error, "timed out after 300 ms");
        assert!(row.response_time_ms >= 300, "{row:?}");
    }
    receiver.release();
    app.stop().await;
}

#[tokio::test]
async fn a_huge_response_body_is_stored_capped_and_the_attempt_counts_by_its_status() {
    let overrides = [("WEBHOOKD__DELIVERY__MAX_RESPONSE_BYTES", "4096")];
    let Subscribed {
        app,
        receiver,
        webhook: hook,
        ..
    } = TestApp::spawn_with_webhook(&overrides, json!(["task.created"]), SECRET).await;
    receiver.huge_body(10 << 20);
    receiver.fail_next(1, 500);
    app.publisher.publish(&task_created(1)).await.unwrap();

    assert_eq!(app.wait_for_settled(hook, WAIT).await, "succeeded");
    let logged = logs(&app, hook).await;
    let summary: Vec<(Option<i32>, bool, &str)> = logged
        .iter()
        .map(|r| (r.status_code, r.is_success, r.error.as_str()))
        .collect();
    assert_eq!(
        summary,
        [(Some(500), false, "HTTP 500"), (Some(200), true, "")]
    );
    for row in &logged {
        let body = row.response.as_deref().unwrap_or_default();
        assert_eq!(body.len(), 4096, "capped at max_response_bytes");
        assert!(body.bytes().all(|b| b == b'x'));
    }
    app.stop().await;
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_fails_with_its_status_logged() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let target = Receiver::start(SECRET).await;
    let mut hooks = Vec::new();
    for status in [302, 307, 308] {
        let redirecting = Receiver::start(SECRET).await;
        redirecting.redirect(status, &target.url());
        let hook = webhook(&app, &token, &redirecting.url(), json!({})).await;
        hooks.push((status, hook, redirecting));
    }
    app.publisher.publish(&task_created(1)).await.unwrap();

    for (status, hook, redirecting) in &hooks {
        assert_eq!(app.wait_for_settled(*hook, WAIT).await, "failed");
        assert_eq!(redirecting.count(), 2, "retried once");
        let logged = logs(&app, *hook).await;
        assert_eq!(logged.len(), 2, "{logged:?}");
        for row in &logged {
            assert_eq!(row.status_code, Some(i32::from(*status)));
            assert!(
                row.error.starts_with(&format!(
                    "HTTP {status}: redirects are not followed (Location: http://127.0.0.1"
                )),
                "{}",
                row.error
            );
        }
    }
    assert_eq!(target.count(), 0, "the Location target got nothing");
    app.stop().await;
}

#[tokio::test]
async fn a_410_gone_disables_the_webhook_once_and_it_gets_nothing_more() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let gone = Receiver::start(SECRET).await;
    gone.always(410);
    let healthy = Receiver::start(SECRET).await;
    let hook = webhook(&app, &token, &gone.url(), json!({})).await;
    webhook(&app, &token, &healthy.url(), json!({})).await;
    let burst: Vec<EventMessage> = (0..3).map(task_created).collect();
    app.publisher.publish_many(&burst, |_| {}).await.unwrap();

    let shown = disabled(&app, &token, hook).await;
    assert_eq!(shown["disabled_reason"], "the receiver answered 410 Gone");
    healthy.wait_for(3, WAIT).await;
    let statuses: Vec<String> = eventually(WAIT, "every delivery to end", || async {
        let statuses: Vec<String> =
            sqlx::query_scalar("SELECT status FROM deliveries WHERE webhook_id = $1")
                .bind(hook)
                .fetch_all(&app.db.pool)
                .await
                .unwrap();
        statuses.iter().all(|s| s != "pending").then_some(statuses)
    })
    .await;
    // Events fanned out after the first 410 disabled the webhook make no
    // delivery for it, so there are between one and three, all failed.
    assert!(
        (1..=3).contains(&statuses.len()) && statuses.iter().all(|s| s == "failed"),
        "{statuses:?}"
    );
    let logged = logs(&app, hook).await;
    assert_eq!(logged.len(), statuses.len(), "one attempt per delivery");
    for row in &logged {
        assert_eq!(row.status_code, Some(410));
        assert_eq!(row.error, "HTTP 410 Gone: the webhook is disabled");
    }
    assert_eq!(
        app.metric("webhookd_webhooks_disabled_total").await,
        1.0,
        "counted once however many attempts saw the 410"
    );

    // Later events reach the healthy webhook only.
    let before = gone.count();
    app.publisher.publish(&task_created(4)).await.unwrap();
    healthy.wait_for(4, WAIT).await;
    assert_eq!(gone.count(), before, "a disabled webhook gets nothing");
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_failing_every_delivery_for_the_configured_period_is_disabled() {
    let app = TestApp::spawn_with(&[
        ("WEBHOOKD__DELIVERY__DISABLE_AFTER_FAILING_SECS", "1"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "100"),
        ("WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS", "100"),
        ("WEBHOOKD__DELIVERY__MAX_BACKOFF_MS", "200"),
        ("WEBHOOKD__DELIVERY__JITTER", "none"),
    ])
    .await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let failing = Receiver::start(SECRET).await;
    failing.always(500);
    let healthy = Receiver::start(SECRET).await;
    let hook = webhook(&app, &token, &failing.url(), json!({})).await;
    let fine = webhook(&app, &token, &healthy.url(), json!({})).await;
    app.publisher.publish(&task_created(1)).await.unwrap();

    let shown = disabled(&app, &token, hook).await;
    let reason = shown["disabled_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("failing since ") && reason.contains("(more than 1 s"),
        "{reason}"
    );
    assert_eq!(app.metric("webhookd_webhooks_disabled_total").await, 1.0);
    // Not before the period: from the first failure to the switch-off.
    let streak: f64 = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM w.updated_at - min(l.created_at))::float8
         FROM webhooks w JOIN webhook_logs l ON l.webhook_id = w.id
         WHERE w.id = $1 GROUP BY w.updated_at",
    )
    .bind(hook)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(streak >= 1.0, "disabled after {streak} s of failures");
    assert!(logs(&app, hook).await.iter().all(|r| !r.is_success));

    // Its pending retry ends without another request.
    assert_eq!(app.wait_for_settled(hook, WAIT).await, "failed");
    let requests = failing.count();
    app.publisher.publish(&task_created(2)).await.unwrap();
    healthy.wait_for(2, WAIT).await;
    assert_eq!(failing.count(), requests);
    assert_eq!(get_webhook(&app, &token, fine).await["is_active"], true);
    app.stop().await;
}

/// One attempt's record for the storage-level streak test.
fn attempt(webhook_id: i64, ok: bool) -> AttemptRecord {
    AttemptRecord {
        delivery_id: uuid::Uuid::new_v4(),
        webhook_id,
        event: "task.created".into(),
        attempt: 1,
        status_code: Some(if ok { 200 } else { 500 }),
        response_time_ms: 1,
        is_success: ok,
        payload: "{}".into(),
        response: None,
        error_message: None,
        request_headers: None,
        response_headers: None,
        next: if ok {
            NextStep::Succeeded
        } else {
            NextStep::Failed
        },
        disable_webhook: false,
        fifo: false,
        probe: false,
    }
}

#[tokio::test]
async fn a_failing_streak_is_ended_by_any_success_and_restarted_by_an_edit() {
    let db = TestDb::create().await;
    let pool = &db.pool;
    let (user, _) = webhookd_store::users::create_user(pool, "Alice", None, false)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for name in ["streak", "edited"] {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (user_id, name, url, events, secret)
             VALUES ($1, $2, 'http://127.0.0.1:9/hook', ARRAY['*'], 's') RETURNING id",
        )
        .bind(user.id)
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap();
        ids.push(id);
    }
    let (hook, edited) = (ids[0], ids[1]);
    let since = |id: i64| async move {
        sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
            "SELECT failing_since FROM webhooks WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let period = Some(Duration::from_secs(60));
    let mut conn = pool.acquire().await.unwrap();

    record_attempts(&mut conn, &[attempt(hook, false)], period)
        .await
        .unwrap();
    let started = since(hook).await.expect("a failure starts a streak");
    record_attempts(&mut conn, &[attempt(hook, false)], period)
        .await
        .unwrap();
    assert_eq!(
        since(hook).await,
        Some(started),
        "a running streak keeps its start"
    );
    record_attempts(
        &mut conn,
        &[attempt(hook, false), attempt(hook, true)],
        period,
    )
    .await
    .unwrap();
    assert_eq!(since(hook).await, None, "a success ends it");
    record_attempts(
        &mut conn,
        &[attempt(hook, true), attempt(hook, false)],
        period,
    )
    .await
    .unwrap();
    assert!(
        since(hook).await.is_some(),
        "a failure after it starts anew"
    );

    // Failing for two minutes, untouched for two minutes: over a 60 s period.
    // The edited one failed as long but was changed just now.
    sqlx::query(
        "UPDATE webhooks SET failing_since = now() - interval '2 minutes',
             updated_at = CASE WHEN id = $1 THEN now() - interval '2 minutes' ELSE now() END",
    )
    .bind(hook)
    .execute(pool)
    .await
    .unwrap();
    let off = record_attempts(
        &mut conn,
        &[attempt(hook, false), attempt(edited, false)],
        None,
    )
    .await
    .unwrap();
    assert!(off.is_empty(), "a period of None never disables: {off:?}");
    let off = record_attempts(
        &mut conn,
        &[attempt(hook, false), attempt(edited, false)],
        period,
    )
    .await
    .unwrap();
    assert_eq!(off.len(), 1, "{off:?}");
    assert_eq!(off[0].webhook_id, hook);
    assert!(
        off[0].reason.starts_with("failing since "),
        "{}",
        off[0].reason
    );
    assert!(
        off[0]
            .reason
            .ends_with("UTC (more than 60 s without a successful delivery)"),
        "{}",
        off[0].reason
    );
    let (active, reason): (bool, Option<String>) =
        sqlx::query_as("SELECT is_active, disabled_reason FROM webhooks WHERE id = $1")
            .bind(hook)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(!active);
    assert_eq!(reason.as_deref(), Some(off[0].reason.as_str()));
    assert_eq!(
        since(hook).await,
        None,
        "switched back on, it starts afresh"
    );

    // A webhook already off is not reported again, by a 410 either.
    let mut gone = attempt(hook, false);
    gone.disable_webhook = true;
    let off = record_attempts(&mut conn, &[gone], period).await.unwrap();
    assert!(off.is_empty(), "{off:?}");
    db.drop_database().await;
}

/// Delivery ids of a webhook's rows, and how many successful attempts each has.
async fn successes_per_delivery(app: &TestApp, hook: i64) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT d.id::text, count(l.id) FILTER (WHERE l.is_success)
         FROM deliveries d LEFT JOIN webhook_logs l ON l.delivery_id = d.id
         WHERE d.webhook_id = $1 GROUP BY d.id",
    )
    .bind(hook)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Waits until every one of the webhook's `n` deliveries has succeeded, then
/// checks each succeeded exactly once and the receiver saw only their ids.
async fn every_delivery_succeeds_once(app: &TestApp, hook: i64, n: usize, receiver: &Receiver) {
    eventually(
        WAIT,
        "every delivery to the slow webhook to succeed",
        || async {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status = 'succeeded'",
            )
            .bind(hook)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
            (done == n as i64).then_some(())
        },
    )
    .await;
    let successes = successes_per_delivery(app, hook).await;
    assert_eq!(successes.len(), n);
    assert!(
        successes.values().all(|&s| s == 1),
        "one successful attempt per delivery: {successes:?}"
    );
    // Duplicates on the wire would be harmless only with a known delivery id.
    let seen: HashSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.header("x-webhook-id").to_owned())
        .collect();
    let expected: HashSet<String> = successes.into_keys().collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn a_hanging_endpoint_does_not_delay_a_healthy_one() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let slow = Receiver::start(SECRET).await;
    slow.hold();
    let healthy = Receiver::start(SECRET).await;
    // Long enough that no slow attempt ends on its own during the test.
    let slow_hook = webhook(&app, &token, &slow.url(), json!({"timeout_ms": 60000})).await;
    webhook(&app, &token, &healthy.url(), json!({})).await;
    let events: Vec<EventMessage> = (0..200).map(task_created).collect();
    app.publisher.publish_many(&events, |_| {}).await.unwrap();

    healthy.wait_for(200, WAIT).await;
    assert_eq!(
        slow.answered(),
        0,
        "every healthy delivery arrived while the slow endpoint still held its requests"
    );
    assert!(slow.held() > 0);
    assert!(
        logs(&app, slow_hook).await.is_empty(),
        "no slow attempt ended"
    );

    slow.release();
    every_delivery_succeeds_once(&app, slow_hook, 200, &slow).await;
    app.stop().await;
}

#[tokio::test]
async fn a_flood_to_a_hanging_endpoint_is_handed_back_while_a_healthy_one_gets_everything() {
    let app = TestApp::spawn_with(&[
        ("WEBHOOKD__DELIVERY__PER_ENDPOINT_CONCURRENCY", "2"),
        ("WEBHOOKD__DELIVERY__PER_ENDPOINT_QUEUE", "5"),
        ("WEBHOOKD__DELIVERY__MAX_IN_FLIGHT", "20"),
    ])
    .await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let slow = Receiver::start(SECRET).await;
    slow.hold();
    let healthy = Receiver::start(SECRET).await;
    let slow_hook = webhook(&app, &token, &slow.url(), json!({"timeout_ms": 60000})).await;
    webhook(&app, &token, &healthy.url(), json!({})).await;
    let events: Vec<EventMessage> = (0..100).map(task_created).collect();
    app.publisher.publish_many(&events, |_| {}).await.unwrap();

    healthy.wait_for(100, WAIT).await;
    assert_eq!(slow.answered(), 0, "the slow endpoint is still stuck");
    // Two requests hang, five deliveries wait in memory, the rest went back
    // to Postgres without counting an attempt.
    eventually(WAIT, "both slow request slots in use", || async {
        (slow.held() == 2).then_some(())
    })
    .await;
    assert_eq!(
        slow.count(),
        2,
        "no more than per_endpoint_concurrency requests"
    );
    eventually(WAIT, "the slow webhook's queue to be full", || async {
        (app.metric("webhookd_deliveries_waiting").await == 5.0).then_some(())
    })
    .await;
    assert!(app.metric("webhookd_deliveries_handed_back_total").await >= 93.0);
    let untouched: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries
         WHERE webhook_id = $1 AND status = 'pending' AND attempts = 0",
    )
    .bind(slow_hook)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(untouched, 100, "handing back counts no attempt");
    assert!(logs(&app, slow_hook).await.is_empty());

    slow.release();
    every_delivery_succeeds_once(&app, slow_hook, 100, &slow).await;
    app.stop().await;
}
