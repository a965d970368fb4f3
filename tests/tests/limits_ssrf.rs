//! SPEC §15: the test button is no oracle for internal names. A refused
//! target's message says "resolves to a private address", never the address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use webhookd_e2e::api::{assert_invalid, assert_status, hook, id_of, with, ApiServer, Reply, User};
use webhookd_e2e::Receiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A task.created webhook body to `url`.
fn hook_to(url: &str) -> Value {
    with(hook("p"), "url", json!(url))
}

/// Creates the webhook `body` describes: its id.
async fn create(api: &ApiServer, user: &User, body: Value) -> i64 {
    id_of(&api.create_webhook(user, body).await)
}

/// Creating a webhook to `url` is refused with a 422 naming `url`; the reply
/// for any further checks.
async fn assert_create_refused(api: &ApiServer, user: &User, url: &str, context: &str) -> Reply {
    let reply = api.post(user, "/webhooks", hook_to(url)).await;
    assert_invalid(&reply, "url", context);
    reply
}

/// Sends webhook `id`'s test delivery, which must fail without reaching
/// `receiver`: its error message.
async fn refused_test_delivery(
    api: &ApiServer,
    user: &User,
    id: i64,
    receiver: &Receiver,
) -> String {
    let reply = api
        .post(user, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_status(&reply, StatusCode::OK, "test");
    assert_eq!(reply.json["is_success"], false);
    assert_eq!(receiver.count(), 0, "the receiver was never reached");
    reply.json["error_message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_test_to_a_name_resolving_to_loopback_says_private_without_the_address() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let id = create(&api, &alice, with(hook_to(&url), "secret", json!(SECRET))).await;

    let error = refused_test_delivery(&api, &alice, id, &receiver).await;
    assert!(
        error.contains("refused target localhost: resolves to a private address"),
        "{error}"
    );
    for leak in ["127.0.0.1", "::1", "loopback", "127.0.0.0"] {
        assert!(!error.contains(leak), "{error}");
    }

    // The logged attempt says the same.
    let logged: String = sqlx::query_scalar("SELECT error_message FROM webhook_logs")
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(logged, error);

    // A literal is refused on write naming `url`, without more than it gave.
    assert_create_refused(&api, &alice, "http://10.1.2.3/hook", "private literal").await;
}

#[tokio::test]
async fn ports_outside_the_default_rule_are_refused_on_write_naming_url() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    for url in [
        "https://hooks.example.com:25/x",
        "http://hooks.example.com:1023/x",
    ] {
        let reply = assert_create_refused(&api, &alice, url, url).await;
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
        create(&api, &alice, hook_to(url)).await;
    }
    // An update is checked too.
    let id = create(&api, &alice, hook_to("https://hooks.example.com/")).await;
    let reply = api
        .patch(
            &alice,
            &format!("/webhooks/{id}"),
            json!({"url": "https://hooks.example.com:22/"}),
        )
        .await;
    assert_invalid(&reply, "url", "update to port 22");
}

#[tokio::test]
async fn a_configured_port_list_replaces_the_default_on_write_and_at_delivery() {
    let api = ApiServer::spawn_with(&[
        ("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
        ("WEBHOOKD__DELIVERY__ALLOWED_PORTS", "443,8443"),
    ])
    .await;
    let alice = api.user("alice", false).await;
    assert_create_refused(
        &api,
        &alice,
        "http://hooks.example.com/x",
        "port 80 not listed",
    )
    .await;
    let listed = with(
        hook_to("https://hooks.example.com:8443/x"),
        "secret",
        json!(SECRET),
    );
    let id = create(&api, &alice, listed).await;
    // A row pointing elsewhere behind the API's back is refused when sent.
    let receiver = Receiver::start(SECRET).await;
    sqlx::query("UPDATE webhooks SET url = $1 WHERE id = $2")
        .bind(receiver.url())
        .bind(id)
        .execute(&api.db.pool)
        .await
        .unwrap();
    let error = refused_test_delivery(&api, &alice, id, &receiver).await;
    assert!(
        error.starts_with("refused target port ")
            && error.contains("not in delivery.allowed_ports"),
        "{error}"
    );
}
