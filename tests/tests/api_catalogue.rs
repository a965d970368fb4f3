//! The reference routes: `GET /events` (the event catalogue), `GET
//! /templates` (template presets, each accepted as a webhook template) and
//! `GET /openapi.json`, which must describe exactly the routes the router
//! serves. Served by `api::router` against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use webhookd_e2e::api::{assert_status, ApiServer};

#[tokio::test]
async fn events_lists_the_catalogue_with_descriptions() {
    let api = ApiServer::spawn().await;
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
async fn templates_list_the_presets_and_each_one_is_accepted_as_a_webhook_template() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let reply = api.get(&alice, "/templates").await;
    assert_status(&reply, StatusCode::OK, "templates");
    let presets = reply.json.as_array().unwrap();
    let ids: Vec<&str> = presets.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["slack", "telegram", "discord", "teams", "raw"]);
    for preset in presets {
        let keys: BTreeSet<&str> = preset
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["id", "name", "description", "template"])
        );
        assert!(preset["name"].is_string() && preset["description"].is_string());
        // Telegram's is saved once its `<chat_id>` placeholder is filled in.
        let template = match preset["template"].as_str() {
            Some(text) => json!(text.replace("<chat_id>", "-100200300")),
            None => Value::Null,
        };
        let created = api
            .post(
                &alice,
                "/webhooks",
                json!({"name": preset["name"], "url": "https://example.com/h",
                       "events": ["*"], "template": template}),
            )
            .await;
        assert_status(&created, StatusCode::CREATED, &preset["id"].to_string());
        assert_eq!(created.json["template"], template);
    }
    let telegram = &presets[1]["template"];
    let parsed: Value = serde_json::from_str(telegram.as_str().unwrap()).unwrap();
    assert_eq!(parsed["chat_id"], "<chat_id>");
    assert_eq!(presets[4]["template"], Value::Null);
    assert_eq!(presets[3]["name"], "Microsoft Teams");
    api.stop().await;
}

/// The routes SPEC §8 names (plus the ones this API adds), as OpenAPI paths.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/me"),
    ("get", "/api/v1/events"),
    ("post", "/api/v1/events"),
    ("get", "/api/v1/webhooks"),
    ("post", "/api/v1/webhooks"),
    ("get", "/api/v1/webhooks/{id}"),
    ("patch", "/api/v1/webhooks/{id}"),
    ("delete", "/api/v1/webhooks/{id}"),
    ("post", "/api/v1/webhooks/{id}/toggle"),
    ("post", "/api/v1/webhooks/{id}/test"),
    ("get", "/api/v1/webhooks/{id}/logs"),
    ("get", "/api/v1/webhooks/{id}/logs/{log_id}"),
    ("get", "/api/v1/webhooks/{id}/deliveries"),
    ("post", "/api/v1/webhooks/{id}/retry"),
    ("post", "/api/v1/webhooks/{id}/rotate-secret"),
    ("get", "/api/v1/stats"),
    ("get", "/api/v1/templates"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/webhooks/{id}/replay"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_the_router_serves() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    let reply = api.send(Method::GET, "/openapi.json", None, None).await;
    assert_status(&reply, StatusCode::OK, "openapi.json");
    assert!(reply.headers[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc = reply.json;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    for (method, path) in SPEC_ROUTES {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not documented"
        );
    }
    let concrete = |path: &str| {
        path.strip_prefix("/api/v1")
            .unwrap()
            .replace("{id}", &id.to_string())
            .replace("{log_id}", "1")
    };
    // Every documented operation is served: it reaches its handler, which
    // asks for a token (or, for the document itself, answers).
    for (method, path) in &documented {
        let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let served = api.send(verb, &concrete(path), None, None).await;
        let expected = if path.ends_with("/openapi.json") {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_status(&served, expected, &format!("{method} {path}"));
    }
    // And nothing more is served on those paths: a method no route has
    // answers 405 with the methods the router really serves, which must be
    // the documented ones (axum adds HEAD to every GET).
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let served = api.send(Method::PUT, &concrete(path), None, None).await;
        assert_status(&served, StatusCode::METHOD_NOT_ALLOWED, path);
        let allow: BTreeSet<String> = served.headers[reqwest::header::ALLOW]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_lowercase())
            .filter(|m| m != "head")
            .collect();
        let methods: BTreeSet<String> = documented
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(m, _)| m.clone())
            .collect();
        assert_eq!(allow, methods, "{path}");
    }
    api.stop().await;
}
