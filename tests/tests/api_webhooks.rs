//! Webhook CRUD through the JSON API: create (with every field, a generated
//! or given secret), read, list, patch (partial, with nulls), toggle and
//! delete, and the JSON errors of unknown ids, paths and methods. Served by
//! `api::router` on a real port against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::LOCATION;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use webhookd_e2e::api::{assert_invalid, assert_not_found, hook, id_of, with, ApiServer};

/// The secret as stored, which the API never shows again.
async fn stored_secret(api: &ApiServer, id: i64) -> String {
    sqlx::query_scalar("SELECT secret FROM webhooks WHERE id = $1")
        .bind(id)
        .fetch_one(&api.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn creating_a_webhook_answers_201_with_every_field_and_a_generated_secret() {
    let api = ApiServer::spawn().await;
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
    assert_eq!(stored_secret(&api, id).await, secret);

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
    let api = ApiServer::spawn().await;
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
        stored_secret(&api, id_of(&created)).await,
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
    let api = ApiServer::spawn().await;
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
    let api = ApiServer::spawn().await;
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
async fn patch_changes_only_the_given_fields() {
    let api = ApiServer::spawn().await;
    let bob = api.user("bob", false).await;
    let body = json!({
        "name": "before", "url": "https://example.com/a", "events": ["task.created"],
        "timeout_ms": 1000, "headers": {"X-A": "1"}, "template": r#"{"t": "{{event}}"}"#,
    });
    let created = api.create_webhook(&bob, body).await;
    let id = id_of(&created);
    let path = format!("/webhooks/{id}");
    let secret = stored_secret(&api, id).await;

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
    assert_eq!(stored_secret(&api, id).await, secret);

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
    assert_eq!(stored_secret(&api, id).await, "a-brand-new-secret-value");

    // An empty patch is a no-op that answers the webhook.
    let same = api.patch(&bob, &path, json!({})).await;
    assert_eq!(same.status, StatusCode::OK);
    assert_eq!(same.json, api.get(&bob, &path).await.json);
    api.stop().await;
}

#[tokio::test]
async fn patch_with_null_clears_template_and_timeout_but_not_required_fields() {
    let api = ApiServer::spawn().await;
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
async fn toggle_flips_is_active_and_clears_the_disabled_reason() {
    let api = ApiServer::spawn().await;
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
    let api = ApiServer::spawn().await;
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
    let api = ApiServer::spawn().await;
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
