//! The JSON API for webhooks and users, served by `api::router` on a real
//! port against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::{CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use webhookd_e2e::api::{reply, ApiServer, Reply, User};
use webhookd_e2e::db::TestDb;
use webhookd_store::users;

/// The shared API harness plus this file's own helpers.
struct Api(ApiServer);

impl std::ops::Deref for Api {
    type Target = ApiServer;
    fn deref(&self) -> &ApiServer {
        &self.0
    }
}

impl Api {
    async fn spawn() -> Api {
        Self::spawn_with(&[]).await
    }

    async fn spawn_with(pairs: &[(&str, &str)]) -> Api {
        Api(ApiServer::spawn_with(pairs).await)
    }

    async fn stop(self) {
        self.0.stop().await
    }

    async fn toggle(&self, user: &User, id: i64) -> Reply {
        self.send(
            Method::POST,
            &format!("/webhooks/{id}/toggle"),
            Some(&user.token),
            None,
        )
        .await
    }

    /// Creates a webhook and returns its JSON, asserting 201.
    async fn create_webhook(&self, user: &User, body: Value) -> Value {
        let reply = self.post(user, "/webhooks", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        reply.json
    }

    async fn stored_secret(&self, id: i64) -> String {
        sqlx::query_scalar("SELECT secret FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }
}

fn hook(name: &str) -> Value {
    json!({"name": name, "url": "https://example.com/hook", "events": ["task.created"]})
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

fn id_of(webhook: &Value) -> i64 {
    webhook["id"].as_i64().expect("a numeric id")
}

/// Asserts a 422 whose JSON names `field`.
#[track_caller]
fn assert_invalid(reply: &Reply, field: &str, context: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{context}: {}",
        reply.json
    );
    assert_eq!(reply.json["field"], field, "{context}: {}", reply.json);
    assert!(
        reply.json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{context}"
    );
}

#[track_caller]
fn assert_not_found(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.json);
    assert_eq!(reply.json, json!({"error": "webhook not found"}));
}

#[tokio::test]
async fn me_answers_the_token_owners_id_name_and_admin_flag() {
    let api = Api::spawn().await;
    let (alice, token) = users::create_user(&api.db.pool, "Алиса", Some(7), true)
        .await
        .unwrap();
    let me = api
        .get(
            &User {
                id: alice.id,
                token,
            },
            "/me",
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json, json!({"id": 7, "name": "Алиса", "is_admin": true}));
    api.stop().await;
}

#[tokio::test]
async fn events_lists_the_catalogue_with_descriptions() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let events = api.get(&bob, "/events").await;
    assert_eq!(events.status, StatusCode::OK);
    let list = events.json.as_array().expect("an array");
    assert_eq!(list.len(), webhookd_events::CATALOGUE.len());
    assert!(list.contains(&json!({"name": "task.created", "description": "A task was created"})));
    assert!(list.iter().all(|e| e["description"].is_string()));
    api.stop().await;
}

#[tokio::test]
async fn every_route_refuses_a_request_without_a_token_with_a_bearer_challenge() {
    let api = Api::spawn().await;
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
async fn a_malformed_unknown_or_other_scheme_token_is_refused() {
    let api = Api::spawn().await;
    let unknown = users::generate_token();
    for token in ["garbage", "whk_", unknown.as_str()] {
        let reply = api.send(Method::GET, "/me", Some(token), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(
            reply.headers[WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        assert_eq!(reply.json["error"], "invalid or revoked token");
    }
    let basic = api
        .http
        .get(format!("{}/me", api.base))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    api.stop().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_and_a_rotated_one_works() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let second = users::issue_token(&api.db.pool, bob.id).await.unwrap();
    assert_eq!(
        api.send(Method::GET, "/me", Some(&second), None)
            .await
            .status,
        StatusCode::OK
    );

    assert_eq!(users::revoke_tokens(&api.db.pool, bob.id).await.unwrap(), 2);
    for token in [&bob.token, &second] {
        let reply = api.send(Method::GET, "/me", Some(token), None).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert!(reply.headers.contains_key(WWW_AUTHENTICATE));
    }

    let (fresh, revoked) = users::rotate_token(&api.db.pool, bob.id).await.unwrap();
    assert_eq!(revoked, 0);
    let me = api.send(Method::GET, "/me", Some(&fresh), None).await;
    assert_eq!(me.json["id"], bob.id);
    api.stop().await;
}

#[tokio::test]
async fn creating_a_webhook_answers_201_with_every_field_and_a_generated_secret() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let reply = api.post(&bob, "/webhooks", hook("Slack")).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
    let created = reply.json;
    let id = id_of(&created);
    assert_eq!(
        reply.headers[LOCATION],
        format!("/api/v1/webhooks/{id}").as_str()
    );
    assert_eq!(created["user_id"], bob.id);
    assert_eq!(created["name"], "Slack");
    assert_eq!(created["url"], "https://example.com/hook");
    assert_eq!(created["events"], json!(["task.created"]));
    assert_eq!(created["is_active"], true);
    assert_eq!(created["timeout_ms"], Value::Null);
    assert_eq!(created["headers"], json!({}));
    assert_eq!(created["template"], Value::Null);
    assert_eq!(created["disabled_reason"], Value::Null);
    assert_eq!(created["previous_secret_expires_at"], Value::Null);
    for stamp in ["created_at", "updated_at"] {
        let text = created[stamp].as_str().expect("a timestamp");
        chrono_like_rfc3339(text);
    }
    let secret = created["secret"].as_str().expect("the secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(api.stored_secret(id).await, secret);

    // Reading it back shows the same webhook, without the secret.
    let shown = api.get(&bob, &format!("/webhooks/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().remove("secret");
    assert_eq!(shown.json, expected);
    let list = api.get(&bob, "/webhooks").await;
    assert_eq!(list.json, json!([expected]));
    api.stop().await;
}

/// `2024-02-20T13:05:00.123456Z`: a date, a `T`, a time and a zone.
fn chrono_like_rfc3339(text: &str) {
    let (date, rest) = text.split_once('T').expect("a T");
    assert_eq!(date.len(), 10, "{text}");
    assert!(rest.ends_with('Z') || rest.contains('+'), "{text}");
}

#[tokio::test]
async fn a_given_secret_and_every_optional_field_are_stored() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let template = r#"{"chat_id": "42", "text": "{{data.title}}"}"#;
    let body = json!({
        "name": "Telegram",
        "url": "https://api.telegram.org/bot123/sendMessage",
        "events": ["task.*", "deal.won"],
        "secret": "my-own-secret-0123456789",
        "is_active": false,
        "timeout_ms": 2500,
        "headers": {"Authorization": "Bearer abc", "X-Team": "sales"},
        "template": template,
    });
    let created = api.create_webhook(&bob, body).await;
    assert_eq!(created["secret"], "my-own-secret-0123456789");
    assert_eq!(
        api.stored_secret(id_of(&created)).await,
        "my-own-secret-0123456789"
    );
    assert_eq!(created["is_active"], false);
    assert_eq!(created["timeout_ms"], 2500);
    assert_eq!(created["events"], json!(["task.*", "deal.won"]));
    assert_eq!(
        created["headers"],
        json!({"Authorization": "Bearer abc", "X-Team": "sales"})
    );
    assert_eq!(created["template"], template);
    api.stop().await;
}

#[tokio::test]
async fn unicode_names_are_accepted_and_trimmed() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let created = api
        .create_webhook(&bob, hook("  Уведомления 🚀 в Slack  "))
        .await;
    assert_eq!(created["name"], "Уведомления 🚀 в Slack");
    // The limit counts characters, not bytes: 200 Cyrillic letters fit.
    api.create_webhook(&bob, hook(&"я".repeat(200))).await;
    api.stop().await;
}

#[tokio::test]
async fn wildcards_are_accepted_and_duplicate_events_dropped() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let body = with(
        hook("w"),
        "events",
        json!(["task.*", "*", "task.*", "comment.added"]),
    );
    let created = api.create_webhook(&bob, body).await;
    assert_eq!(created["events"], json!(["task.*", "*", "comment.added"]));
    api.stop().await;
}

#[tokio::test]
async fn each_invalid_field_is_refused_with_422_naming_it() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let many_headers: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let cases: Vec<(&str, Value)> = vec![
        ("name", json!("")),
        ("name", json!("   ")),
        ("name", json!("x".repeat(201))),
        ("name", json!(5)),
        ("url", json!("ftp://example.com/")),
        ("url", json!("/relative/path")),
        ("url", json!("http://")),
        ("url", json!("https://user:pass@example.com/")),
        (
            "url",
            json!(format!("https://example.com/{}", "a".repeat(2048))),
        ),
        ("url", json!("not a url")),
        ("events", json!([])),
        ("events", json!(["task.exploded"])),
        ("events", json!(["invoice.*"])),
        ("events", json!(vec!["*"; 51])),
        ("events", json!("task.created")),
        ("events", json!([1])),
        ("timeout_ms", json!(99)),
        ("timeout_ms", json!(60_001)),
        ("timeout_ms", json!("1000")),
        ("timeout_ms", json!(1000.5)),
        ("headers", json!({"Content-Type": "text/plain"})),
        ("headers", json!({"content-length": "1"})),
        ("headers", json!({"HOST": "example.org"})),
        ("headers", json!({"User-Agent": "me"})),
        ("headers", json!({"X-Webhook-Signature": "forged"})),
        ("headers", json!({"x-webhook-anything": "1"})),
        ("headers", json!({"Webhook-Id": "1"})),
        ("headers", json!({"bad name": "x"})),
        ("headers", json!({"X-Line": "a\r\nInjected: yes"})),
        ("headers", json!({"X-Number": 1})),
        ("headers", json!(["X-A"])),
        ("headers", Value::Object(many_headers)),
        ("template", json!("{not json")),
        ("template", json!(r#"{"text": "{{nope.title}}"}"#)),
        ("template", json!({"text": "an object, not a string"})),
        ("secret", json!("too-short")),
        ("secret", json!("x".repeat(257))),
        ("secret", json!("has spaces in the middle")),
        ("secret", json!(1234567890123456789_i64)),
        ("is_active", json!("yes")),
    ];
    for (field, value) in cases {
        let body = with(hook("h"), field, value.clone());
        let reply = api.post(&bob, "/webhooks", body).await;
        assert_invalid(&reply, field, &format!("POST {field} = {value}"));
    }
    for missing in ["name", "url", "events"] {
        let mut body = hook("h");
        body.as_object_mut().unwrap().remove(missing);
        let reply = api.post(&bob, "/webhooks", body).await;
        assert_invalid(&reply, missing, &format!("missing {missing}"));
    }
    // Nothing was created by any of them.
    assert_eq!(api.get(&bob, "/webhooks").await.json, json!([]));
    api.stop().await;
}

#[tokio::test]
async fn a_bad_template_is_reported_with_the_parsers_message() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let body = with(hook("t"), "template", json!(r#"{"text": "{{data.title"}"#));
    let reply = api.post(&bob, "/webhooks", body).await;
    assert_invalid(&reply, "template", "unclosed placeholder");
    let expected = webhookd_events::Template::parse(r#"{"text": "{{data.title"}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(reply.json["error"], expected.as_str());
    api.stop().await;
}

#[tokio::test]
async fn unknown_fields_are_refused_naming_them() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let reply = api
        .post(&bob, "/webhooks", with(hook("h"), "evnets", json!(["*"])))
        .await;
    assert_invalid(&reply, "evnets", "typo on create");
    let id = id_of(&api.create_webhook(&bob, hook("h")).await);
    let reply = api
        .patch(
            &bob,
            &format!("/webhooks/{id}"),
            json!({"is_enabled": true}),
        )
        .await;
    assert_invalid(&reply, "is_enabled", "typo on patch");
    let reply = api
        .patch(&bob, &format!("/webhooks/{id}"), json!({"id": 99}))
        .await;
    assert_invalid(&reply, "id", "read-only field on patch");
    api.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_json_objects_answer_the_json_error_shape() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let raw = |body: &'static str, content_type: &'static str| {
        api.http
            .post(format!("{}/webhooks", api.base))
            .bearer_auth(&bob.token)
            .header(CONTENT_TYPE, content_type)
            .body(body)
    };
    for text in ["", "{\"name\": ", "name=x&url=y", "{'name': 'x'}"] {
        let reply = reply(raw(text, "application/json").send().await.unwrap()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{text:?}");
        assert!(reply.json["error"].is_string(), "{text:?}");
    }
    for text in ["[]", "\"a string\"", "42", "null"] {
        let reply = reply(raw(text, "application/json").send().await.unwrap()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{text:?}");
        assert!(reply.json["error"].is_string(), "{text:?}");
    }
    let form = reply(
        raw("name=x", "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(form.json["error"].is_string());
    let huge = with(hook("h"), "template", json!("x".repeat(1024 * 1024)));
    let too_large = api.post(&bob, "/webhooks", huge).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_large.json["error"].is_string());
    api.stop().await;
}

#[tokio::test]
async fn private_ip_literal_targets_are_refused_unless_private_targets_are_allowed() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/",
    ] {
        let reply = api
            .post(&bob, "/webhooks", with(hook("h"), "url", json!(url)))
            .await;
        assert_invalid(&reply, "url", url);
    }
    api.stop().await;

    let api = Api::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let bob = api.user("bob", false).await;
    api.create_webhook(
        &bob,
        with(hook("h"), "url", json!("http://127.0.0.1:9000/hook")),
    )
    .await;
    api.stop().await;
}

#[tokio::test]
async fn users_list_only_their_own_webhooks() {
    let api = Api::spawn().await;
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
    let api = Api::spawn().await;
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
    let api = Api::spawn().await;
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
    let api = Api::spawn().await;
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
    let api = Api::spawn().await;
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
    let api = Api::spawn().await;
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

#[tokio::test]
async fn patch_changes_only_the_given_fields() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let body = json!({
        "name": "before", "url": "https://example.com/a", "events": ["task.created"],
        "timeout_ms": 1000, "headers": {"X-A": "1"}, "template": r#"{"t": "{{event}}"}"#,
    });
    let created = api.create_webhook(&bob, body).await;
    let id = id_of(&created);
    let path = format!("/webhooks/{id}");
    let secret = api.stored_secret(id).await;

    let renamed = api
        .patch(
            &bob,
            &path,
            json!({"name": " after ", "events": ["deal.*"]}),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.json);
    let renamed = renamed.json;
    assert_eq!(renamed["name"], "after");
    assert_eq!(renamed["events"], json!(["deal.*"]));
    for unchanged in [
        "url",
        "timeout_ms",
        "headers",
        "template",
        "is_active",
        "created_at",
    ] {
        assert_eq!(renamed[unchanged], created[unchanged], "{unchanged}");
    }
    assert!(renamed.get("secret").is_none());
    assert_eq!(api.stored_secret(id).await, secret);

    let changed = api
        .patch(
            &bob,
            &path,
            json!({"url": "https://example.org/b", "headers": {}, "timeout_ms": 60000,
                   "is_active": false, "secret": "a-brand-new-secret-value"}),
        )
        .await
        .json;
    assert_eq!(changed["url"], "https://example.org/b");
    assert_eq!(changed["headers"], json!({}));
    assert_eq!(changed["timeout_ms"], 60000);
    assert_eq!(changed["is_active"], false);
    assert_eq!(api.stored_secret(id).await, "a-brand-new-secret-value");

    // An empty patch is a no-op that answers the webhook.
    let same = api.patch(&bob, &path, json!({})).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.json, api.get(&bob, &path).await.json);
    api.stop().await;
}

#[tokio::test]
async fn patch_with_null_clears_template_and_timeout_but_not_required_fields() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let body = with(
        with(hook("h"), "template", json!(r#"{"t": "{{data.title}}"}"#)),
        "timeout_ms",
        json!(500),
    );
    let id = id_of(&api.create_webhook(&bob, body).await);
    let path = format!("/webhooks/{id}");
    let cleared = api
        .patch(&bob, &path, json!({"template": null, "timeout_ms": null}))
        .await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.json);
    assert_eq!(cleared.json["template"], Value::Null);
    assert_eq!(cleared.json["timeout_ms"], Value::Null);
    for field in ["name", "url", "events", "is_active", "headers", "secret"] {
        let reply = api.patch(&bob, &path, json!({ field: null })).await;
        assert_invalid(&reply, field, &format!("{field}: null"));
    }
    api.stop().await;
}

#[tokio::test]
async fn patch_validates_like_create_and_changes_nothing_on_error() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let id = id_of(&api.create_webhook(&bob, hook("h")).await);
    let path = format!("/webhooks/{id}");
    let cases = [
        json!({"name": ""}),
        json!({"url": "ftp://example.com/"}),
        json!({"events": ["task.exploded"]}),
        json!({"timeout_ms": 50}),
        json!({"headers": {"Content-Type": "text/plain"}}),
        json!({"template": "{"}),
        json!({"secret": "short"}),
        json!({"is_active": 1}),
    ];
    for body in cases {
        let field = body.as_object().unwrap().keys().next().unwrap().clone();
        let reply = api.patch(&bob, &path, body.clone()).await;
        assert_invalid(&reply, &field, &body.to_string());
    }
    // The first problem in field order is the one reported.
    let reply = api
        .patch(&bob, &path, json!({"url": "nope", "name": ""}))
        .await;
    assert_invalid(&reply, "name", "two problems");
    assert_eq!(api.get(&bob, &path).await.json["name"], "h");
    api.stop().await;
}

#[tokio::test]
async fn toggle_flips_is_active_and_clears_the_disabled_reason() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let id = id_of(&api.create_webhook(&bob, hook("h")).await);
    let off = api.toggle(&bob, id).await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(off.json["is_active"], false);

    // As the daemon does when a receiver answers 410 Gone.
    sqlx::query(
        "UPDATE webhooks SET disabled_reason = 'the receiver answered 410 Gone' WHERE id = $1",
    )
    .bind(id)
    .execute(&api.db.pool)
    .await
    .unwrap();
    let shown = api.get(&bob, &format!("/webhooks/{id}")).await.json;
    assert_eq!(shown["disabled_reason"], "the receiver answered 410 Gone");

    let on = api.toggle(&bob, id).await.json;
    assert_eq!(on["is_active"], true);
    assert_eq!(on["disabled_reason"], Value::Null);
    api.stop().await;
}

#[tokio::test]
async fn a_deleted_webhook_answers_404_afterwards() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    let id = id_of(&api.create_webhook(&bob, hook("h")).await);
    let path = format!("/webhooks/{id}");
    let deleted = api.delete(&bob, &path).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.json, Value::Null);
    assert_not_found(&api.get(&bob, &path).await);
    assert_not_found(&api.delete(&bob, &path).await);
    assert_eq!(api.get(&bob, "/webhooks").await.json, json!([]));
    api.stop().await;
}

#[tokio::test]
async fn unknown_ids_paths_and_methods_answer_json_errors() {
    let api = Api::spawn().await;
    let bob = api.user("bob", false).await;
    assert_not_found(&api.get(&bob, "/webhooks/abc").await);
    assert_not_found(&api.get(&bob, "/webhooks/99999999999999999999999").await);
    let unknown = api.get(&bob, "/no-such-thing").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.json["error"].is_string());
    let wrong_method = api
        .send(Method::PUT, "/webhooks", Some(&bob.token), None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.json["error"].is_string());
    assert_eq!(
        wrong_method.headers[reqwest::header::ALLOW],
        "GET,HEAD,POST"
    );
    api.stop().await;
}

#[tokio::test]
async fn users_get_the_next_free_id_even_when_created_concurrently() {
    let db = TestDb::create().await;
    let (crm_user, _) = users::create_user(&db.pool, "from the CRM", Some(40), false)
        .await
        .unwrap();
    assert_eq!(crm_user.id, 40);
    let taken = users::create_user(&db.pool, "again", Some(40), false).await;
    assert!(
        matches!(taken, Err(webhookd_store::StorageError::Conflict(_))),
        "{taken:?}"
    );
    let creations = (0..8).map(|i| {
        let pool = db.pool.clone();
        tokio::spawn(async move { users::create_user(&pool, &format!("u{i}"), None, false).await })
    });
    let mut ids = Vec::new();
    for created in creations.collect::<Vec<_>>() {
        ids.push(created.await.unwrap().unwrap().0.id);
    }
    ids.sort_unstable();
    assert_eq!(ids, (41..=48).collect::<Vec<i64>>());

    let listed = users::list_users(&db.pool).await.unwrap();
    assert_eq!(listed.len(), 9);
    assert!(listed.iter().all(|u| u.active_tokens == 1));
    users::revoke_tokens(&db.pool, 40).await.unwrap();
    let listed = users::list_users(&db.pool).await.unwrap();
    assert_eq!(listed[0].active_tokens, 0);
    db.drop_database().await;
}
