//! `GET /webhooks/{id}/deliveries` and `POST /webhooks/{id}/retry`:
//! deliveries paged and filtered; retrying one or all failed deliveries makes
//! them pending and due at once (and wakes the workers), with its refusals;
//! and, against the whole daemon, a retried delivery gets exactly one more
//! attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use webhookd_e2e::api::{assert_invalid, assert_status, ApiServer};
use webhookd_e2e::{eventually, Receiver, TestApp};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn deliveries_page_newest_first_and_filter_by_status_and_event() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    for i in 0..12 {
        let status = ["pending", "succeeded", "failed"][i % 3];
        let event = if i % 2 == 0 {
            "task.created"
        } else {
            "deal.won"
        };
        api.seed_delivery(id, event, status).await;
    }
    let expected: Vec<Value> = sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(id)
    .fetch_all(&api.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|u| Value::from(u.to_string()))
    .collect();
    for limit in [1, 5, 12] {
        let ids = api
            .page_ids(&alice, &format!("/webhooks/{id}/deliveries?"), limit)
            .await;
        assert_eq!(ids, expected, "limit {limit}");
    }
    let failed = api
        .get(&alice, &format!("/webhooks/{id}/deliveries?status=failed"))
        .await;
    let items = failed.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for item in items {
        assert_eq!(item["status"], "failed");
        assert_eq!(item["attempts"], 3);
        assert_eq!(item["last_status_code"], 500);
        assert_eq!(item["last_error"], "HTTP 500");
        assert_eq!(item["next_attempt_at"], Value::Null);
    }
    let pending_deals = api
        .get(
            &alice,
            &format!("/webhooks/{id}/deliveries?status=pending&event=deal.won"),
        )
        .await;
    let items = pending_deals.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items
        .iter()
        .all(|i| i["event"] == "deal.won" && i["next_attempt_at"].is_string()));
    api.stop().await;
}

/// The status filter is written on the stored columns for speed; it must
/// pick exactly the rows the unfiltered list shows with that status,
/// batched, collecting and queued events included.
#[tokio::test]
async fn the_status_filter_matches_the_status_shown_for_batched_and_waiting_events() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    for status in ["pending", "succeeded", "failed", "collecting", "queued"] {
        api.seed_delivery(id, "task.created", status).await;
    }
    // Batches in each state, one event in each, and an event whose batch
    // row is gone (shown failed).
    for batch_status in ["pending", "succeeded", "failed", "gone"] {
        let batch = api.seed_delivery(id, "batch", "pending").await;
        let event = api.seed_delivery(id, "task.created", "batched").await;
        sqlx::query("UPDATE deliveries SET batch_id = $1 WHERE id = $2")
            .bind(batch)
            .bind(event)
            .execute(&api.db.pool)
            .await
            .unwrap();
        if batch_status == "gone" {
            sqlx::query("DELETE FROM deliveries WHERE id = $1")
                .bind(batch)
                .execute(&api.db.pool)
                .await
                .unwrap();
        } else {
            sqlx::query("UPDATE deliveries SET batch_size = 1, status = $1 WHERE id = $2")
                .bind(batch_status)
                .bind(batch)
                .execute(&api.db.pool)
                .await
                .unwrap();
        }
    }
    let all = api.get(&alice, &format!("/webhooks/{id}/deliveries")).await;
    let all = all.json["items"].as_array().unwrap().clone();
    assert_eq!(all.len(), 9, "{all:?}");
    for status in ["pending", "succeeded", "failed"] {
        let expected: Vec<&Value> = all.iter().filter(|d| d["status"] == status).collect();
        let page = api
            .get(
                &alice,
                &format!("/webhooks/{id}/deliveries?status={status}"),
            )
            .await;
        let got: Vec<&Value> = page.json["items"].as_array().unwrap().iter().collect();
        assert_eq!(got, expected, "status={status}");
    }
    // pending: the pending, collecting and queued rows and the event of
    // the pending batch; succeeded: two; failed: the failed row, the failed
    // batch's event and the orphan.
    let count = |status: &str| all.iter().filter(|d| d["status"] == status).count();
    assert_eq!(
        (count("pending"), count("succeeded"), count("failed")),
        (4, 2, 3)
    );
    api.stop().await;
}

async fn delivery_state(api: &ApiServer, id: Uuid) -> (String, i32, bool) {
    sqlx::query_as(
        "SELECT status, attempts, next_attempt_at <= now() FROM deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&api.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn retrying_one_delivery_makes_it_pending_and_due_now() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    let other = api.create_quiet_webhook(&alice, "b").await;
    let failed = api.seed_delivery(id, "task.created", "failed").await;
    let succeeded = api.seed_delivery(id, "task.created", "succeeded").await;
    let pending = api.seed_delivery(id, "task.created", "pending").await;
    let elsewhere = api.seed_delivery(other, "task.created", "failed").await;
    let retry = |delivery: String| {
        let path = format!("/webhooks/{id}/retry");
        let api = &api;
        let alice = &alice;
        async move {
            api.post(alice, &path, json!({ "delivery_id": delivery }))
                .await
        }
    };

    let reply = retry(failed.to_string()).await;
    assert_status(&reply, StatusCode::OK, "retry failed");
    assert_eq!(reply.json, json!({"retried": 1}));
    // The attempt count is kept: the retry policy counts on from it.
    assert_eq!(
        delivery_state(&api, failed).await,
        ("pending".into(), 3, true)
    );
    // A delivery that succeeded can be sent again too.
    assert_eq!(retry(succeeded.to_string()).await.json["retried"], 1);
    assert_eq!(delivery_state(&api, succeeded).await.0, "pending");

    let again = retry(failed.to_string()).await;
    assert_status(&again, StatusCode::CONFLICT, "already pending");
    assert!(again.json["error"].as_str().unwrap().contains("pending"));
    assert_status(
        &retry(pending.to_string()).await,
        StatusCode::CONFLICT,
        "pending",
    );
    let foreign = retry(elsewhere.to_string()).await;
    assert_status(
        &foreign,
        StatusCode::NOT_FOUND,
        "another webhook's delivery",
    );
    assert_eq!(foreign.json["error"], "delivery not found");
    assert_eq!(delivery_state(&api, elsewhere).await.0, "failed");
    assert_status(
        &retry(Uuid::new_v4().to_string()).await,
        StatusCode::NOT_FOUND,
        "unknown delivery",
    );
    api.stop().await;
}

#[tokio::test]
async fn retrying_all_failed_deliveries_touches_only_this_webhooks_failed_ones() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    let other = api.create_quiet_webhook(&alice, "b").await;
    let mut failed = Vec::new();
    for _ in 0..3 {
        failed.push(api.seed_delivery(id, "deal.won", "failed").await);
    }
    let succeeded = api.seed_delivery(id, "deal.won", "succeeded").await;
    let elsewhere = api.seed_delivery(other, "deal.won", "failed").await;

    // Workers are woken at once: the retry sends NOTIFY webhookd_due.
    let mut listener = sqlx::postgres::PgListener::connect_with(&api.db.pool)
        .await
        .unwrap();
    listener
        .listen(webhookd_store::notify::DUE_CHANNEL)
        .await
        .unwrap();

    let path = format!("/webhooks/{id}/retry");
    let reply = api.post(&alice, &path, json!({"all_failed": true})).await;
    assert_status(&reply, StatusCode::OK, "retry all");
    assert_eq!(reply.json, json!({"retried": 3}));
    for delivery in &failed {
        assert_eq!(
            delivery_state(&api, *delivery).await,
            ("pending".into(), 3, true)
        );
    }
    assert_eq!(delivery_state(&api, succeeded).await.0, "succeeded");
    assert_eq!(delivery_state(&api, elsewhere).await.0, "failed");
    let notified = tokio::time::timeout(WAIT, listener.recv()).await;
    assert!(matches!(notified, Ok(Ok(_))), "{notified:?}");

    let nothing_left = api.post(&alice, &path, json!({"all_failed": true})).await;
    assert_eq!(nothing_left.json, json!({"retried": 0}));
    api.stop().await;
}

#[tokio::test]
async fn a_retry_needs_exactly_one_valid_target_and_an_active_webhook() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    let failed = api.seed_delivery(id, "deal.won", "failed").await;
    let path = format!("/webhooks/{id}/retry");
    let cases = [
        (json!({}), "delivery_id"),
        (json!({"delivery_id": "nope"}), "delivery_id"),
        (json!({"delivery_id": 5}), "delivery_id"),
        (json!({"all_failed": false}), "all_failed"),
        (json!({"all_failed": "yes"}), "all_failed"),
        (
            json!({"all_failed": true, "delivery_id": failed.to_string()}),
            "all_failed",
        ),
        (json!({"everything": true}), "everything"),
    ];
    for (body, field) in cases {
        let reply = api.post(&alice, &path, body.clone()).await;
        assert_invalid(&reply, field, &body.to_string());
    }
    let not_json = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(&alice.token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    api.send(
        Method::POST,
        &format!("/webhooks/{id}/toggle"),
        Some(&alice.token),
        None,
    )
    .await;
    let off = api.post(&alice, &path, json!({"all_failed": true})).await;
    assert_status(&off, StatusCode::CONFLICT, "inactive webhook");
    assert!(off.json["error"].as_str().unwrap().contains("switched off"));
    assert_eq!(delivery_state(&api, failed).await.0, "failed");
    api.stop().await;
}

#[tokio::test]
async fn a_retried_delivery_is_redelivered_and_gets_exactly_one_more_attempt() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let (_alice, token) = app.create_user("alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.always(500);
    let id = app
        .create_webhook_to(&token, &receiver.url(), json!(["task.created"]), SECRET)
        .await;
    let message = webhookd_producer::EventMessage::new(
        "task.created",
        json!({"task_id": 1, "title": "t", "status": "pending", "priority": "low"}),
        1_708_435_200,
    )
    .unwrap();
    app.publisher.publish(&message).await.unwrap();
    let state = |app: &TestApp| {
        let pool = app.db.pool.clone();
        async move {
            sqlx::query_as::<_, (Uuid, String, i32)>(
                "SELECT id, status, attempts FROM deliveries WHERE webhook_id = $1",
            )
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    };
    let delivery = eventually(WAIT, "the delivery to fail for good", || async {
        state(&app)
            .await
            .filter(|(_, status, _)| status == "failed")
    })
    .await;
    assert_eq!(delivery.2, 2);

    let retry = |body: Value| {
        let url = app.url(&format!("/api/v1/webhooks/{id}/retry"));
        let request = app.http.post(url).bearer_auth(&token).json(&body);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // Still failing: one more attempt, then failed again (no new schedule).
    let answer = retry(json!({"delivery_id": delivery.0.to_string()})).await;
    assert_eq!(answer, json!({"retried": 1}));
    let after = eventually(WAIT, "the retried attempt to be recorded", || async {
        state(&app)
            .await
            .filter(|(_, status, attempts)| status == "failed" && *attempts == 3)
    })
    .await;
    assert_eq!(after.2, 3);
    assert_eq!(receiver.wait_for(3, WAIT).await.len(), 3);

    // Fixed receiver: retrying all failed ones delivers it.
    receiver.always(200);
    assert_eq!(
        retry(json!({"all_failed": true})).await,
        json!({"retried": 1})
    );
    eventually(WAIT, "the delivery to succeed", || async {
        state(&app)
            .await
            .filter(|(_, status, attempts)| status == "succeeded" && *attempts == 4)
    })
    .await;
    let got = receiver.wait_for(4, WAIT).await;
    assert_eq!(got.len(), 4, "exactly one request per attempt");
    assert!(got
        .iter()
        .all(|r| r.header("x-webhook-id") == delivery.0.to_string()));
    assert_eq!(got[3].header("x-webhook-attempt"), "4");
    app.stop().await;
}
