//! Who may call what: every route asks for a bearer token; a webhook of
//! another user answers 404 exactly like a missing one; admins see, change
//! and create webhooks of every user. Served by `api::router` on a real port
//! against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::WWW_AUTHENTICATE;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use webhookd_e2e::api::{
    assert_invalid, assert_not_found, assert_status, hook, id_of, with, ApiServer, Log,
};
use webhookd_e2e::Receiver;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::test]
async fn every_route_refuses_a_request_without_a_token_with_a_bearer_challenge() {
    let api = ApiServer::spawn().await;
    let bob = api.user("bob", false).await;
    let id = id_of(&api.create_webhook(&bob, hook("h")).await);
    let routes = [
        (Method::GET, "/me".to_owned()),
        (Method::GET, "/events".to_owned()),
        (Method::GET, "/webhooks".to_owned()),
        (Method::POST, "/webhooks".to_owned()),
        (Method::GET, format!("/webhooks/{id}")),
        (Method::PATCH, format!("/webhooks/{id}")),
        (Method::DELETE, format!("/webhooks/{id}")),
        (Method::POST, format!("/webhooks/{id}/toggle")),
        (Method::POST, format!("/webhooks/{id}/test")),
        (Method::POST, format!("/webhooks/{id}/retry")),
        (Method::POST, format!("/webhooks/{id}/rotate-secret")),
        (Method::GET, format!("/webhooks/{id}/logs")),
        (Method::GET, format!("/webhooks/{id}/logs/1")),
        (Method::GET, format!("/webhooks/{id}/deliveries")),
        (Method::GET, "/stats".to_owned()),
        (Method::GET, "/templates".to_owned()),
    ];
    for (method, path) in routes {
        let body = matches!(method, Method::POST | Method::PATCH).then(|| hook("x"));
        let reply = api.send(method.clone(), &path, None, body).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(reply.headers[WWW_AUTHENTICATE], "Bearer", "{method} {path}");
        assert!(reply.json["error"].is_string(), "{method} {path}");
    }
    // Nothing was changed by the refused requests.
    let list = api.get(&bob, "/webhooks").await.json;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["is_active"], true);
    api.stop().await;
}

#[tokio::test]
async fn each_new_route_needs_a_token_hides_other_users_webhooks_and_lets_admins_in() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let admin = api.user("root", true).await;
    let receiver = Receiver::start(SECRET).await;
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "a", "url": receiver.url(), "events": ["*"], "secret": SECRET}),
        )
        .await,
    );
    let failed = api.seed_delivery(id, "task.created", "failed").await;
    let (log_id, _) = api
        .seed_log(Log {
            webhook_id: id,
            delivery_id: failed,
            event: "task.created",
            status_code: Some(500),
            ms: 10,
            base: api.now().await,
            age_secs: 1.0,
        })
        .await;
    let per_webhook = [
        (Method::POST, format!("/webhooks/{id}/test"), None),
        (Method::GET, format!("/webhooks/{id}/logs"), None),
        (Method::GET, format!("/webhooks/{id}/logs/{log_id}"), None),
        (Method::GET, format!("/webhooks/{id}/deliveries"), None),
        (
            Method::POST,
            format!("/webhooks/{id}/retry"),
            Some(json!({"all_failed": true})),
        ),
        (
            Method::POST,
            format!("/webhooks/{id}/rotate-secret"),
            Some(json!({"secret": SECRET})),
        ),
        (
            Method::POST,
            format!("/webhooks/{id}/replay"),
            Some(json!({"since": api.now().await - chrono::Duration::hours(1)})),
        ),
    ];
    for (method, path, body) in &per_webhook {
        let what = format!("{method} {path}");
        let none = api.send(method.clone(), path, None, body.clone()).await;
        assert_status(&none, StatusCode::UNAUTHORIZED, &what);
        assert_eq!(none.headers[reqwest::header::WWW_AUTHENTICATE], "Bearer");
        let other = api
            .send(method.clone(), path, Some(&bob.token), body.clone())
            .await;
        assert_status(&other, StatusCode::NOT_FOUND, &what);
        assert_eq!(other.json, json!({"error": "webhook not found"}), "{what}");
        let root = api
            .send(method.clone(), path, Some(&admin.token), body.clone())
            .await;
        assert_status(&root, StatusCode::OK, &what);
        let owner = api
            .send(method.clone(), path, Some(&alice.token), body.clone())
            .await;
        assert_status(&owner, StatusCode::OK, &what);
    }
    for path in ["/stats", "/templates"] {
        let none = api.send(Method::GET, path, None, None).await;
        assert_status(&none, StatusCode::UNAUTHORIZED, path);
        assert_status(&api.get(&bob, path).await, StatusCode::OK, path);
        assert_status(&api.get(&admin, path).await, StatusCode::OK, path);
    }
    let doc = api.send(Method::GET, "/openapi.json", None, None).await;
    assert_status(&doc, StatusCode::OK, "openapi without a token");
    // Ids that are not numbers name nothing.
    for path in [
        "/webhooks/x/logs",
        "/webhooks/x/logs/1",
        "/webhooks/1/logs/x",
    ] {
        assert_status(&api.get(&alice, path).await, StatusCode::NOT_FOUND, path);
    }
    api.stop().await;
}

#[tokio::test]
async fn users_list_only_their_own_webhooks() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let a = api.create_webhook(&alice, hook("a")).await;
    let b = api.create_webhook(&bob, hook("b")).await;
    let listed = api.get(&alice, "/webhooks").await.json;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["id"], a["id"]);
    // Filtering by someone else's id shows nothing rather than their webhooks.
    let filtered = api
        .get(&alice, &format!("/webhooks?user_id={}", bob.id))
        .await;
    assert_eq!(filtered.json, json!([]));
    let listed = api.get(&bob, "/webhooks").await.json;
    assert_eq!(listed[0]["id"], b["id"]);
    api.stop().await;
}

#[tokio::test]
async fn another_users_webhook_answers_404_exactly_like_a_missing_one() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let id = id_of(&api.create_webhook(&alice, hook("alice's")).await);
    let missing = id + 1000;
    for target in [id, missing] {
        let path = format!("/webhooks/{target}");
        assert_not_found(&api.get(&bob, &path).await);
        assert_not_found(&api.patch(&bob, &path, json!({"name": "mine now"})).await);
        assert_not_found(&api.toggle(&bob, target).await);
        assert_not_found(&api.delete(&bob, &path).await);
    }
    let untouched = api.get(&alice, &format!("/webhooks/{id}")).await;
    assert_eq!(untouched.json["name"], "alice's");
    assert_eq!(untouched.json["is_active"], true);
    api.stop().await;
}

#[tokio::test]
async fn admins_see_every_webhook_and_filter_by_user_id() {
    let api = ApiServer::spawn().await;
    let admin = api.user("root", true).await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let a = api.create_webhook(&alice, hook("a")).await;
    let b = api.create_webhook(&bob, hook("b")).await;
    let all = api.get(&admin, "/webhooks").await.json;
    let ids: Vec<&Value> = all.as_array().unwrap().iter().map(|w| &w["id"]).collect();
    assert_eq!(ids, [&a["id"], &b["id"]]);
    let only_bob = api
        .get(&admin, &format!("/webhooks?user_id={}", bob.id))
        .await
        .json;
    assert_eq!(only_bob.as_array().map(Vec::len), Some(1));
    assert_eq!(only_bob[0]["id"], b["id"]);
    let bad = api.get(&admin, "/webhooks?user_id=abc").await;
    assert_invalid(&bad, "user_id", "non-numeric filter");
    let unknown = api.get(&admin, "/webhooks?owner=1").await;
    assert_invalid(&unknown, "owner", "unknown query parameter");
    api.stop().await;
}

#[tokio::test]
async fn admins_read_change_toggle_and_delete_other_users_webhooks() {
    let api = ApiServer::spawn().await;
    let admin = api.user("root", true).await;
    let alice = api.user("alice", false).await;
    let id = id_of(&api.create_webhook(&alice, hook("a")).await);
    let path = format!("/webhooks/{id}");
    assert_eq!(api.get(&admin, &path).await.json["user_id"], alice.id);
    let patched = api
        .patch(&admin, &path, json!({"name": "renamed by admin"}))
        .await;
    assert_eq!(patched.json["name"], "renamed by admin");
    assert_eq!(patched.json["user_id"], alice.id);
    assert_eq!(api.toggle(&admin, id).await.json["is_active"], false);
    assert_eq!(
        api.delete(&admin, &path).await.status,
        StatusCode::NO_CONTENT
    );
    assert_not_found(&api.get(&alice, &path).await);
    api.stop().await;
}

#[tokio::test]
async fn an_admin_creates_a_webhook_for_another_existing_user_only() {
    let api = ApiServer::spawn().await;
    let admin = api.user("root", true).await;
    let alice = api.user("alice", false).await;
    let created = api
        .create_webhook(&admin, with(hook("for alice"), "user_id", json!(alice.id)))
        .await;
    assert_eq!(created["user_id"], alice.id);
    assert_eq!(
        api.get(&alice, "/webhooks").await.json[0]["id"],
        created["id"]
    );
    let own = api.create_webhook(&admin, hook("own")).await;
    assert_eq!(own["user_id"], admin.id);
    let reply = api
        .post(
            &admin,
            "/webhooks",
            with(hook("nobody's"), "user_id", json!(4242)),
        )
        .await;
    assert_invalid(&reply, "user_id", "unknown owner");
    api.stop().await;
}

#[tokio::test]
async fn a_non_admin_always_owns_the_webhooks_it_creates() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let reply = api
        .post(
            &bob,
            "/webhooks",
            with(hook("sneaky"), "user_id", json!(alice.id)),
        )
        .await;
    assert_invalid(&reply, "user_id", "someone else's id");
    assert_eq!(api.get(&alice, "/webhooks").await.json, json!([]));
    let own = api
        .create_webhook(&bob, with(hook("own"), "user_id", json!(bob.id)))
        .await;
    assert_eq!(own["user_id"], bob.id);
    api.stop().await;
}
