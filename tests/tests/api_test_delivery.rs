//! `POST /webhooks/{id}/test`: a test delivery sent signed both ways, with
//! the webhook's template, headers and timeout, answered to the caller and
//! recorded like any delivery; refused for private addresses unless allowed.
//! Served by `api::router` on a real port, with real receivers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use webhookd_e2e::api::{assert_status, id_of, ApiServer};
use webhookd_e2e::Receiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_test_delivery_is_sent_signed_both_ways_answered_and_recorded() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "a", "url": receiver.url(), "events": ["task.created"],
                   "secret": SECRET, "headers": {"X-Team": "sales"}}),
        )
        .await,
    );

    let reply = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_status(&reply, StatusCode::OK, "test");
    let result = &reply.json;
    assert_eq!(result["status_code"], 200);
    assert_eq!(result["is_success"], true);
    assert_eq!(result["response"], "ok");
    assert_eq!(result["error_message"], Value::Null);
    assert!(result["response_time_ms"].is_u64());
    let delivery_id = result["delivery_id"].as_str().unwrap().to_owned();

    let got = receiver.wait_for(1, WAIT).await;
    let request = &got[0];
    assert!(request.seed_signature_valid && request.standard_signature_valid);
    assert_eq!(request.header("x-webhook-event"), "webhook.test");
    assert_eq!(request.header("x-webhook-id"), delivery_id);
    assert_eq!(request.header("webhook-id"), delivery_id);
    assert_eq!(request.header("x-webhook-attempt"), "1");
    assert_eq!(request.header("x-team"), "sales");
    let body = request.json();
    assert_eq!(body["event"], "webhook.test");
    assert_eq!(
        body["data"],
        json!({"message": "Test delivery from webhookd", "webhook_id": id})
    );
    assert!(body["id"].is_string() && body["timestamp"].is_i64());

    // Recorded like any delivery: a succeeded delivery and one logged attempt.
    let deliveries = api.get(&alice, &format!("/webhooks/{id}/deliveries")).await;
    let items = deliveries.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], delivery_id.as_str());
    assert_eq!(items[0]["event"], "webhook.test");
    assert_eq!(items[0]["status"], "succeeded");
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[0]["next_attempt_at"], Value::Null);
    let logs = api
        .get(&alice, &format!("/webhooks/{id}/logs?include=bodies"))
        .await;
    let log = &logs.json["items"][0];
    assert_eq!(log["delivery_id"], delivery_id.as_str());
    assert_eq!(log["event"], "webhook.test");
    assert_eq!(log["status_code"], 200);
    assert_eq!(log["is_success"], true);
    assert_eq!(log["response"], "ok");
    assert_eq!(
        serde_json::from_str::<Value>(log["payload"].as_str().unwrap()).unwrap(),
        body
    );
    api.stop().await;
}

#[tokio::test]
async fn a_test_delivery_renders_the_webhooks_template() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let slack = webhookd_events::find_preset("slack")
        .and_then(|p| p.template)
        .unwrap();
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "a", "url": receiver.url(), "events": ["*"], "secret": SECRET,
                   "template": slack}),
        )
        .await,
    );
    let reply = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(reply.json["is_success"], true, "{}", reply.json);
    let request = &receiver.wait_for(1, WAIT).await[0];
    assert!(request.seed_signature_valid && request.standard_signature_valid);
    assert_eq!(
        request.json()["text"],
        "*webhook.test*: Test delivery from webhookd"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_failing_or_slow_receiver_is_reported_and_recorded_as_failed() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "a", "url": receiver.url(), "events": ["*"], "secret": SECRET,
                   "timeout_ms": 300}),
        )
        .await,
    );
    receiver.fail_next(1, 500);
    let failed = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_status(&failed, StatusCode::OK, "a failed test is still an answer");
    assert_eq!(failed.json["status_code"], 500);
    assert_eq!(failed.json["is_success"], false);
    assert_eq!(failed.json["response"], "receiver says no");
    assert_eq!(failed.json["error_message"], "HTTP 500");

    // The webhook's own timeout applies.
    receiver.hold();
    let slow = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    receiver.release();
    assert_eq!(slow.json["status_code"], Value::Null);
    assert_eq!(slow.json["is_success"], false);
    assert!(
        slow.json["error_message"]
            .as_str()
            .is_some_and(|e| e.contains("timed out after 300 ms")),
        "{}",
        slow.json
    );

    let failed_list = api
        .get(&alice, &format!("/webhooks/{id}/deliveries?status=failed"))
        .await;
    assert_eq!(failed_list.json["items"].as_array().unwrap().len(), 2);
    let logs = api
        .get(&alice, &format!("/webhooks/{id}/logs?success=false"))
        .await;
    assert_eq!(logs.json["items"].as_array().unwrap().len(), 2);
    // A test never switches the webhook off or starts its failing streak.
    let webhook = api.get(&alice, &format!("/webhooks/{id}")).await;
    assert_eq!(webhook.json["is_active"], true);
    api.stop().await;
}

#[tokio::test]
async fn a_test_delivery_to_a_private_address_is_refused_unless_allowed() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    // The API refuses such a URL at save time; a row changed by hand, or a
    // name that resolves to a private address, is refused when sending.
    sqlx::query("UPDATE webhooks SET url = $1 WHERE id = $2")
        .bind(receiver.url())
        .bind(id)
        .execute(&api.db.pool)
        .await
        .unwrap();
    let reply = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_status(&reply, StatusCode::OK, "test");
    assert_eq!(reply.json["is_success"], false);
    assert_eq!(reply.json["status_code"], Value::Null);
    assert!(reply.json["error_message"].is_string(), "{}", reply.json);
    assert_eq!(receiver.count(), 0);
    api.stop().await;
}
