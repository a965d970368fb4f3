//! SPEC §15: the test button is no oracle for internal names. A refused
//! target's message says "resolves to a private address", never the address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::json;
use webhookd_e2e::api::{assert_status, id_of, ApiServer};
use webhookd_e2e::Receiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn a_test_to_a_name_resolving_to_loopback_says_private_without_the_address() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "inside", "url": url, "events": ["task.created"], "secret": SECRET}),
        )
        .await,
    );

    let reply = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_status(&reply, StatusCode::OK, "test");
    assert_eq!(reply.json["is_success"], false);
    let error = reply.json["error_message"].as_str().unwrap();
    assert!(
        error.contains("refused target localhost: resolves to a private address"),
        "{error}"
    );
    for leak in ["127.0.0.1", "::1", "loopback", "127.0.0.0"] {
        assert!(!error.contains(leak), "{error}");
    }
    assert_eq!(receiver.count(), 0, "the receiver was never reached");

    // The logged attempt says the same.
    let logged: String = sqlx::query_scalar("SELECT error_message FROM webhook_logs")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(logged, error);

    // A literal is refused on write naming `url`, without more than it gave.
    let literal = api
        .post(
            &alice,
            "/webhooks",
            json!({"name": "lit", "url": "http://10.1.2.3/hook", "events": ["task.created"]}),
        )
        .await;
    assert_status(
        &literal,
        StatusCode::UNPROCESSABLE_ENTITY,
        "private literal",
    );
    assert_eq!(literal.json["field"], "url");
}

#[tokio::test]
async fn ports_outside_the_default_rule_are_refused_on_write_naming_url() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    for url in [
        "https://hooks.example.com:25/x",
        "http://hooks.example.com:1023/x",
    ] {
        let reply = api
            .post(
                &alice,
                "/webhooks",
                json!({"name": "p", "url": url, "events": ["task.created"]}),
            )
            .await;
        assert_status(&reply, StatusCode::UNPROCESSABLE_ENTITY, url);
        assert_eq!(reply.json["field"], "url", "{url}");
        assert!(
            reply.json["error"]
                .as_str()
                .unwrap()
                .contains("delivery.allowed_ports"),
            "{}",
            reply.json
        );
    }
    for url in [
        "https://hooks.example.com/x",
        "http://hooks.example.com/x",
        "https://hooks.example.com:8443/x",
    ] {
        api.create_webhook(
            &alice,
            json!({"name": "p", "url": url, "events": ["task.created"]}),
        )
        .await;
    }
    // An update is checked too.
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "q", "url": "https://hooks.example.com/", "events": ["task.created"]}),
        )
        .await,
    );
    let reply = api
        .patch(
            &alice,
            &format!("/webhooks/{id}"),
            json!({"url": "https://hooks.example.com:22/"}),
        )
        .await;
    assert_status(
        &reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "update to port 22",
    );
    assert_eq!(reply.json["field"], "url");
}

#[tokio::test]
async fn a_configured_port_list_replaces_the_default_on_write_and_at_delivery() {
    let api = ApiServer::spawn_with(&[
        ("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
        ("WEBHOOKD__DELIVERY__ALLOWED_PORTS", "443,8443"),
    ])
    .await;
    let alice = api.user("alice", false).await;
    let refused = api
        .post(
            &alice,
            "/webhooks",
            json!({"name": "p", "url": "http://hooks.example.com/x", "events": ["task.created"]}),
        )
        .await;
    assert_status(
        &refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "port 80 not listed",
    );
    assert_eq!(refused.json["field"], "url");
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "q", "url": "https://hooks.example.com:8443/x",
                   "events": ["task.created"], "secret": SECRET}),
        )
        .await,
    );
    // A row pointing elsewhere behind the API's back is refused when sent.
    let receiver = Receiver::start(SECRET).await;
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
    let error = reply.json["error_message"].as_str().unwrap();
    assert!(
        error.starts_with("refused target port ")
            && error.contains("not in delivery.allowed_ports"),
        "{error}"
    );
    assert_eq!(receiver.count(), 0, "the receiver was never reached");
}
