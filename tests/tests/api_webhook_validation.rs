//! Validation of webhook input: every invalid field answers 422 naming it
//! (on create and on patch, changing nothing), unknown fields are refused,
//! bodies that are not JSON objects get the JSON error shape, and private IP
//! literal targets are refused unless allowed. Served by `api::router` on a
//! real port against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};
use webhookd_e2e::api::{assert_invalid, hook, id_of, reply, with, ApiServer};

#[tokio::test]
async fn each_invalid_field_is_refused_with_422_naming_it() {
    let api = ApiServer::spawn().await;
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
    let api = ApiServer::spawn().await;
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
    let api = ApiServer::spawn().await;
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
    let api = ApiServer::spawn().await;
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
    let api = ApiServer::spawn().await;
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

    let api = ApiServer::spawn_with_private_targets().await;
    let bob = api.user("bob", false).await;
    api.create_webhook(
        &bob,
        with(hook("h"), "url", json!("http://127.0.0.1:9000/hook")),
    )
    .await;
    api.stop().await;
}

#[tokio::test]
async fn patch_validates_like_create_and_changes_nothing_on_error() {
    let api = ApiServer::spawn().await;
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
