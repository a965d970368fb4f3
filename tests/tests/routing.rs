//! Routing (SPEC §13): payload filters decide at fan-out which subscribed
//! webhooks get an event (no delivery row for the others), in both fan-out
//! strategies; a webhook's retry schedule replaces the global policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};
use webhookd_e2e::app::webhook_body;
use webhookd_e2e::{Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

fn deal(n: i64, amount: i64, status: &str, user_id: Option<i64>) -> EventMessage {
    let mut message = EventMessage::new(
        "deal.won",
        json!({"deal_id": n, "amount": amount, "status": status, "client": {"name": format!("client {n}")}}),
        1708435200,
    )
    .unwrap();
    message.user_id = user_id;
    message
}

async fn deliveries_of(app: &TestApp, webhook: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE webhook_id = $1")
        .bind(webhook)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

fn deal_ids(received: &[webhookd_e2e::Received]) -> Vec<i64> {
    let mut ids: Vec<i64> = received
        .iter()
        .map(|r| {
            assert!(r.standard_signature_valid, "signed");
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["data"]["deal_id"].as_i64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// Both fan-out strategies route alike: first attempts before the write
/// (the default) and write first (`first_attempt_window_ms = 0`).
#[tokio::test]
async fn a_filter_lets_through_only_the_events_it_matches_and_the_rest_make_no_delivery() {
    for window in ["50", "0"] {
        let app =
            TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__FIRST_ATTEMPT_WINDOW_MS", window)]).await;
        let (alice, token) = app.create_user("Alice", None, false).await;
        let big = Receiver::start(SECRET).await;
        let all = Receiver::start(SECRET).await;
        let mut body = webhook_body(&big.url(), json!(["deal.*"]), SECRET);
        body["filter"] = json!({
            "data.amount": {"$gte": 100000},
            "$or": [{"data.status": {"$in": ["won", "open"]}}, {"data.client.name": {"$startsWith": "VIP"}}],
            "user_id": {"$ne": 999}
        });
        let filtered = app.create_webhook(&token, body).await;
        assert_eq!(
            filtered["filter"]["data.amount"]["$gte"], 100000,
            "shown as given"
        );
        let filtered = filtered["id"].as_i64().unwrap();
        let unfiltered = app
            .create_webhook_to(&token, &all.url(), json!(["deal.*"]), SECRET)
            .await;

        let events = [
            deal(1, 150_000, "won", None),         // matches
            deal(2, 50_000, "won", None),          // amount too small
            deal(3, 150_000, "lost", None),        // status not in the list
            deal(4, 200_000, "open", Some(alice)), // matches
            deal(5, 150_000, "won", Some(999)),    // another user's: not Alice's anyway
        ];
        app.publisher.publish_many(&events, |_| {}).await.unwrap();

        // The unfiltered webhook gets what the privacy rule lets it have: the
        // order of arrival says the filtered one had its chance too.
        assert_eq!(
            deal_ids(&all.wait_for(4, WAIT).await),
            [1, 2, 3, 4],
            "window {window}"
        );
        assert_eq!(
            deal_ids(&big.wait_for(2, WAIT).await),
            [1, 4],
            "window {window}"
        );
        app.publisher
            .publish(&deal(6, 300_000, "won", None))
            .await
            .unwrap();
        all.wait_for(5, WAIT).await;
        assert_eq!(deal_ids(&big.wait_for(3, WAIT).await), [1, 4, 6]);
        assert_eq!(
            deliveries_of(&app, filtered).await,
            3,
            "no row for a filtered-out event"
        );
        assert_eq!(deliveries_of(&app, unfiltered).await, 5);

        // An edit takes effect for the next event: the compiled filter is
        // per webhook version.
        let (status, patched) = app
            .api(
                &token,
                reqwest::Method::PATCH,
                &format!("/api/v1/webhooks/{filtered}"),
                json!({"filter": {"data.status": "lost"}}),
            )
            .await;
        assert_eq!(status, 200, "{patched}");
        app.publisher
            .publish(&deal(7, 1, "lost", None))
            .await
            .unwrap();
        app.publisher
            .publish(&deal(8, 1, "won", None))
            .await
            .unwrap();
        all.wait_for(7, WAIT).await;
        assert_eq!(deal_ids(&big.wait_for(4, WAIT).await), [1, 4, 6, 7]);
        // Removed: every subscribed event again.
        let (status, cleared) = app
            .api(
                &token,
                reqwest::Method::PATCH,
                &format!("/api/v1/webhooks/{filtered}"),
                json!({"filter": null}),
            )
            .await;
        assert_eq!((status.as_u16(), &cleared["filter"]), (200, &Value::Null));
        app.publisher
            .publish(&deal(9, 1, "won", None))
            .await
            .unwrap();
        assert_eq!(deal_ids(&big.wait_for(5, WAIT).await), [1, 4, 6, 7, 9]);
        assert_eq!(big.count(), 5, "window {window}: nothing else arrived");
        app.stop().await;
    }
}

#[tokio::test]
async fn filters_and_retry_schedules_are_checked_on_write_naming_the_field_and_the_fault() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    let create = |extra: Value| {
        let mut body = webhook_body(&receiver.url(), json!(["deal.won"]), SECRET);
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (
            json!({"filter": {"data.amount": {"$near": 5}}}),
            "filter",
            vec!["data.amount", "$near"],
        ),
        (
            json!({"filter": {"data.amount": {"$gte": {"x": 1}}}}),
            "filter",
            vec!["data.amount", "$gte"],
        ),
        (json!({"filter": {"$or": {"a": 1}}}), "filter", vec!["$or"]),
        (json!({"filter": [1, 2]}), "filter", vec![]),
        (json!({"filter": "data.amount > 5"}), "filter", vec![]),
        (
            json!({"retry_schedule": []}),
            "retry_schedule",
            vec!["1 to 30"],
        ),
        (
            json!({"retry_schedule": [5, 0]}),
            "retry_schedule",
            vec!["delay 1"],
        ),
        (
            json!({"retry_schedule": [604801]}),
            "retry_schedule",
            vec!["604800"],
        ),
        (
            json!({"retry_schedule": vec![1; 31]}),
            "retry_schedule",
            vec!["31"],
        ),
    ];
    for (extra, field, words) in cases {
        let (status, error) = app
            .api(
                &token,
                reqwest::Method::POST,
                "/api/v1/webhooks",
                create(extra.clone()),
            )
            .await;
        assert_eq!(status, 422, "{extra}: {error}");
        assert_eq!(error["field"], field, "{extra}: {error}");
        let message = error["error"]
            .as_str()
            .or(error["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        for word in words {
            assert!(message.contains(word), "{extra}: {message}");
        }
    }
    assert_eq!(receiver.count(), 0);
    let (status, none) = app
        .api(
            &token,
            reqwest::Method::GET,
            "/api/v1/webhooks",
            Value::Null,
        )
        .await;
    assert_eq!(
        (
            status.as_u16(),
            none["webhooks"].as_array().map_or(0, Vec::len)
        ),
        (200, 0),
        "{none}"
    );

    // Valid: stored and shown; PATCH checks the same way and null clears.
    let (status, created) = app
        .api(
            &token,
            reqwest::Method::POST,
            "/api/v1/webhooks",
            create(
                json!({"filter": {"data.amount": {"$gte": 100}}, "retry_schedule": [5, 300, 1800]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["retry_schedule"], json!([5, 300, 1800]));
    let path = format!("/api/v1/webhooks/{}", created["id"]);
    let (status, error) = app
        .api(
            &token,
            reqwest::Method::PATCH,
            &path,
            json!({"filter": {"$not": []}}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &error["field"]),
        (422, &json!("filter")),
        "{error}"
    );
    let (status, cleared) = app
        .api(
            &token,
            reqwest::Method::PATCH,
            &path,
            json!({"retry_schedule": null}),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["retry_schedule"], Value::Null);
    assert_eq!(
        cleared["filter"],
        json!({"data.amount": {"$gte": 100}}),
        "untouched"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_retry_schedule_sets_the_attempts_and_their_delays() {
    // The global policy would allow 12 attempts, 100 ms apart at first.
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__JITTER", "none")]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let failing = Receiver::start(SECRET).await;
    failing.always(500);
    let mut body = webhook_body(&failing.url(), json!(["deal.won"]), SECRET);
    body["retry_schedule"] = json!([1, 2]);
    let hook = app.create_webhook(&token, body).await["id"]
        .as_i64()
        .unwrap();
    app.publisher
        .publish(&deal(1, 1, "won", None))
        .await
        .unwrap();

    let status = app.wait_for_settled(hook, WAIT).await;
    assert_eq!(status, "failed", "given up after the schedule's 3 attempts");
    let received = failing.received();
    assert_eq!(received.len(), 3, "len + 1 attempts");
    let gaps: Vec<Duration> = received.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(
        gaps[0] >= Duration::from_millis(1000),
        "first wait is 1 s: {gaps:?}"
    );
    assert!(
        gaps[1] >= Duration::from_millis(2000),
        "second wait is 2 s: {gaps:?}"
    );
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempt FROM webhook_logs WHERE webhook_id = $1 ORDER BY id")
            .bind(hook)
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(attempts, [1, 2, 3]);
    assert_eq!(failing.count(), 3);
    app.stop().await;
}
