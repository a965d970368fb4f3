//! `POST /graphql` against the real daemon: the JSON API's reads and writes
//! with its ownership rules and field errors, the limits, introspection, and
//! GraphiQL served without outside hosts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::{json, Value};
use webhookd_e2e::graphql::{data, error_code, graphql};
use webhookd_e2e::{Receiver, TestApp};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

const CREATE: &str = "mutation($input: CreateWebhookInput!) {
    createWebhook(input: $input) { id userId name url events isActive timeoutMs headers secret }
}";

async fn ask(app: &TestApp, token: Option<&str>, query: &str, variables: Value) -> Value {
    graphql(&app.http, &app.url(""), token, query, variables).await
}

async fn create(app: &TestApp, token: &str, input: Value) -> Value {
    let reply = ask(app, Some(token), CREATE, json!({"input": input})).await;
    data(&reply)["createWebhook"].clone()
}

fn hook(name: &str) -> Value {
    json!({"name": name, "url": "https://example.com/hook", "events": ["task.created"]})
}

#[tokio::test]
async fn another_users_webhook_is_not_found_for_every_query_and_mutation_and_leaks_nothing() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.create_user("Alice", None, false).await;
    let (_, bob) = app.create_user("Bob", None, false).await;
    let created = create(&app, &alice, hook("alice's")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));

    let attempts = [
        (
            "query($id: ID!) { webhook(id: $id) { id name url } }",
            "webhook",
        ),
        (
            "query($id: ID!) { deliveries(webhookId: $id) { items { id } } }",
            "deliveries",
        ),
        (
            "query($id: ID!) { logs(webhookId: $id) { items { id } } }",
            "logs",
        ),
        (
            "mutation($id: ID!) { updateWebhook(id: $id, input: {name: \"mine\"}) { id } }",
            "updateWebhook",
        ),
        (
            "mutation($id: ID!) { toggleWebhook(id: $id) { id isActive } }",
            "toggleWebhook",
        ),
        (
            "mutation($id: ID!) { testWebhook(id: $id) { statusCode } }",
            "testWebhook",
        ),
        (
            "mutation($id: ID!) { retryDeliveries(webhookId: $id, allFailed: true) { retried } }",
            "retryDeliveries",
        ),
        (
            "mutation($id: ID!) { rotateSecret(id: $id) { secret } }",
            "rotateSecret",
        ),
        (
            "mutation($id: ID!) { deleteWebhook(id: $id) }",
            "deleteWebhook",
        ),
    ];
    for (query, field) in attempts {
        for unknown in [id.as_str(), "999999", "not-a-number"] {
            let reply = ask(&app, Some(&bob), query, json!({"id": unknown})).await;
            assert_eq!(
                error_code(&reply),
                "NOT_FOUND",
                "{field} {unknown}: {reply}"
            );
            assert_eq!(
                reply["errors"][0]["message"], "webhook not found",
                "{reply}"
            );
            assert_eq!(reply["data"], Value::Null, "{field}: {reply}");
            assert!(!reply.to_string().contains("alice's"), "{reply}");
        }
    }
    let listed = ask(&app, Some(&bob), "{ webhooks { id } }", json!({})).await;
    assert_eq!(data(&listed)["webhooks"], json!([]));

    // Alice's webhook is untouched: same name, still active, still there.
    let mine = ask(
        &app,
        Some(&alice),
        "query($id: ID!) { webhook(id: $id) { name isActive } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        data(&mine)["webhook"],
        json!({"name": "alice's", "isActive": true})
    );
    app.stop().await;
}

#[tokio::test]
async fn invalid_input_is_refused_with_the_json_apis_message_and_the_field_named() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.create_user("Alice", None, false).await;
    let cases = [
        (
            json!({"name": " ", "url": "https://example.com/h", "events": ["*"]}),
            "name",
        ),
        (
            json!({"name": "a", "url": "ftp://example.com/", "events": ["*"]}),
            "url",
        ),
        (
            json!({"name": "a", "url": "https://example.com/h", "events": ["task.exploded"]}),
            "events",
        ),
        (
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "timeoutMs": 5}),
            "timeoutMs",
        ),
        (
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "headers": {"Host": "x"}}),
            "headers",
        ),
        (
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "template": "{"}),
            "template",
        ),
        (
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "userId": 424242}),
            "userId",
        ),
    ];
    for (input, field) in cases {
        let reply = ask(&app, Some(&alice), CREATE, json!({"input": input})).await;
        assert_eq!(error_code(&reply), "VALIDATION", "{field}: {reply}");
        assert_eq!(reply["errors"][0]["extensions"]["field"], field, "{reply}");
        assert_eq!(reply["data"], Value::Null);
    }
    // The JSON API names the same field (in its own spelling) with the same message.
    let json_reply = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(&alice)
        .json(
            &json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "timeout_ms": 5}),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let gql_reply = ask(&app, Some(&alice), CREATE, json!({"input": {"name": "a", "url": "https://example.com/h", "events": ["*"], "timeoutMs": 5}})).await;
    assert_eq!(json_reply["field"], "timeout_ms");
    assert_eq!(gql_reply["errors"][0]["message"], json_reply["error"]);

    let id = create(&app, &alice, hook("kept")).await["id"].clone();
    let update = "mutation($id: ID!, $input: UpdateWebhookInput!) { updateWebhook(id: $id, input: $input) { name timeoutMs } }";
    let reply = ask(
        &app,
        Some(&alice),
        update,
        json!({"id": id, "input": {"name": null}}),
    )
    .await;
    assert_eq!(error_code(&reply), "VALIDATION");
    assert_eq!(reply["errors"][0]["extensions"]["field"], "name");
    let reply = ask(
        &app,
        Some(&alice),
        update,
        json!({"id": id, "input": {"timeoutMs": 2500}}),
    )
    .await;
    assert_eq!(
        data(&reply)["updateWebhook"],
        json!({"name": "kept", "timeoutMs": 2500})
    );
    let reply = ask(
        &app,
        Some(&alice),
        update,
        json!({"id": id, "input": {"timeoutMs": null}}),
    )
    .await;
    assert_eq!(data(&reply)["updateWebhook"]["timeoutMs"], Value::Null);

    let reply = ask(
        &app,
        Some(&alice),
        "query($id: ID!) { logs(webhookId: $id, limit: 201) { items { id } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        reply["errors"][0]["extensions"]["field"], "limit",
        "{reply}"
    );
    let reply = ask(
        &app,
        Some(&alice),
        "query($id: ID!) { deliveries(webhookId: $id, cursor: \"junk\") { items { id } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        reply["errors"][0]["extensions"]["field"], "cursor",
        "{reply}"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_admin_sees_and_changes_every_users_webhooks_a_user_only_their_own() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.create_user("Alice", None, false).await;
    let (_, bob) = app.create_user("Bob", None, false).await;
    let (_, admin) = app.create_user("Root", None, true).await;
    let a = create(&app, &alice, hook("a")).await["id"].clone();
    create(&app, &bob, hook("b")).await;

    let names = |reply: &Value| -> Vec<String> {
        data(reply)["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = ask(&app, Some(&admin), "{ webhooks { name } }", json!({})).await;
    assert_eq!(names(&all), ["a", "b"]);
    let alices = ask(
        &app,
        Some(&admin),
        "query($u: Int) { webhooks(userId: $u) { name } }",
        json!({"u": alice_id}),
    )
    .await;
    assert_eq!(names(&alices), ["a"]);
    let own = ask(&app, Some(&bob), "{ webhooks { name } }", json!({})).await;
    assert_eq!(names(&own), ["b"]);
    let toggled = ask(
        &app,
        Some(&admin),
        "mutation($id: ID!) { toggleWebhook(id: $id) { isActive userId } }",
        json!({"id": a}),
    )
    .await;
    assert_eq!(
        data(&toggled)["toggleWebhook"],
        json!({"isActive": false, "userId": alice_id})
    );
    let me = ask(
        &app,
        Some(&admin),
        "{ me { name isAdmin canPublish } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data(&me)["me"],
        json!({"name": "Root", "isAdmin": true, "canPublish": true})
    );
    app.stop().await;
}

#[tokio::test]
async fn every_operation_of_the_json_api_works_through_graphql() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    let me = ask(
        &app,
        Some(&alice),
        "{ me { id name isAdmin canPublish } events { name description } }",
        json!({}),
    )
    .await;
    assert_eq!(
        data(&me)["me"],
        json!({"id": alice_id, "name": "Alice", "isAdmin": false, "canPublish": false})
    );
    assert!(data(&me)["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "deal.won"));

    let created = create(
        &app,
        &alice,
        json!({"name": "crm", "url": receiver.url(), "events": ["task.*"], "secret": SECRET,
               "headers": {"X-Team": "sales"}}),
    )
    .await;
    assert_eq!(created["secret"], SECRET);
    assert_eq!(created["headers"], json!({"X-Team": "sales"}));
    let id = created["id"].clone();

    let tested = ask(
        &app,
        Some(&alice),
        "mutation($id: ID!) { testWebhook(id: $id) { statusCode isSuccess deliveryId } }",
        json!({"id": id}),
    )
    .await;
    let tested = &data(&tested)["testWebhook"];
    assert_eq!(tested["statusCode"], 200);
    assert_eq!(tested["isSuccess"], true);
    receiver.wait_for(1, Duration::from_secs(10)).await;

    let listed = ask(
        &app,
        Some(&alice),
        "query($id: ID!) {
            deliveries(webhookId: $id) { items { id event status attempts } nextCursor }
            logs(webhookId: $id, limit: 10) { items { deliveryId event attempt statusCode isSuccess } nextCursor }
            stats { period total { attempts successes } webhooks { webhookId summary { attempts } } }
        }",
        json!({"id": id}),
    )
    .await;
    let listed = data(&listed);
    assert_eq!(listed["deliveries"]["items"][0]["id"], tested["deliveryId"]);
    assert_eq!(listed["deliveries"]["items"][0]["status"], "succeeded");
    assert_eq!(
        listed["logs"]["items"][0]["deliveryId"],
        tested["deliveryId"]
    );
    assert_eq!(listed["logs"]["items"][0]["event"], "webhook.test");
    assert_eq!(listed["logs"]["nextCursor"], Value::Null);
    assert_eq!(listed["stats"]["period"], "24h");
    assert_eq!(listed["stats"]["total"]["attempts"], 1);
    assert_eq!(listed["stats"]["webhooks"][0]["webhookId"], id);

    let retried = ask(&app, Some(&alice), "mutation($id: ID!, $d: String) { retryDeliveries(webhookId: $id, deliveryId: $d) { retried } }", json!({"id": id, "d": tested["deliveryId"]})).await;
    assert_eq!(data(&retried)["retryDeliveries"]["retried"], 1);
    let rotated = ask(&app, Some(&alice), "mutation($id: ID!) { rotateSecret(id: $id, gracePeriodSecs: 60) { secret previousSecretExpiresAt } }", json!({"id": id})).await;
    let rotated = &data(&rotated)["rotateSecret"];
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_ne!(rotated["secret"], SECRET);
    assert!(rotated["previousSecretExpiresAt"].is_string());
    let toggled = ask(
        &app,
        Some(&alice),
        "mutation($id: ID!) { toggleWebhook(id: $id) { isActive } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(data(&toggled)["toggleWebhook"]["isActive"], false);
    let deleted = ask(
        &app,
        Some(&alice),
        "mutation($id: ID!) { deleteWebhook(id: $id) }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(data(&deleted)["deleteWebhook"], true);
    let gone = ask(
        &app,
        Some(&alice),
        "query($id: ID!) { webhook(id: $id) { id } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(error_code(&gone), "NOT_FOUND");
    app.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthenticated_but_introspection_needs_none() {
    let app = TestApp::spawn().await;
    for token in [None, Some("whk_not_a_real_token")] {
        let reply = ask(&app, token, "{ me { id } }", json!({})).await;
        assert_eq!(error_code(&reply), "UNAUTHENTICATED", "{reply}");
        assert_eq!(reply["data"], Value::Null);
    }
    let schema = ask(
        &app,
        None,
        "{ __schema { queryType { name } subscriptionType { fields { name } } } }",
        json!({}),
    )
    .await;
    let schema = data(&schema);
    assert_eq!(schema["__schema"]["queryType"]["name"], "Query");
    let subscriptions: Vec<&str> = schema["__schema"]["subscriptionType"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(subscriptions, ["events", "deliveryAttempts"]);
    app.stop().await;
}

/// GraphiQL's own introspection query (graphql-js `getIntrospectionQuery`):
/// it must fit the depth limit.
const INTROSPECTION: &str = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name }
  types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }";

#[tokio::test]
async fn queries_deeper_or_more_complex_than_the_limits_are_refused_before_running() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__GRAPHQL__MAX_COMPLEXITY", "3000")]).await;
    let (_, alice) = app.create_user("Alice", None, false).await;
    let id = create(&app, &alice, hook("a")).await["id"].clone();

    let full = ask(&app, None, INTROSPECTION, json!({})).await;
    assert!(data(&full)["__schema"]["types"].as_array().unwrap().len() > 10);

    let mut deep = String::from("kind");
    for _ in 0..20 {
        deep = format!("ofType {{ {deep} }}");
    }
    let reply = ask(
        &app,
        None,
        &format!("{{ __type(name: \"Webhook\") {{ {deep} }} }}"),
        json!({}),
    )
    .await;
    let message = reply["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("too deep"), "{reply}");
    assert!(reply.get("data").is_none_or(Value::is_null), "{reply}");

    // Within the limit: 200 rows of a 9-field selection.
    let page = "logs(webhookId: $id, limit: 200) { items { id deliveryId event attempt statusCode isSuccess responseTimeMs errorMessage createdAt } }";
    let fits = ask(
        &app,
        Some(&alice),
        &format!("query($id: ID!) {{ {page} }}"),
        json!({"id": id}),
    )
    .await;
    assert_eq!(data(&fits)["logs"]["items"], json!([]));
    // Two such pages under aliases add up past it.
    let twice = format!("query($id: ID!) {{ a: {page} b: {page} }}");
    let reply = ask(&app, Some(&alice), &twice, json!({"id": id})).await;
    let message = reply["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("too complex"), "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn graphiql_is_served_with_every_asset_from_the_daemon_itself() {
    let app = TestApp::spawn().await;
    let page = app.http.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("graphiql"), "{html}");
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|part| part.ends_with(".js") || part.ends_with(".css"))
        .collect();
    assert_eq!(assets.len(), 5, "{assets:?}");
    for asset in assets {
        assert!(
            asset.starts_with("/graphql/assets/"),
            "{asset} is not served by webhookd"
        );
        let response = app.http.get(app.url(asset)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    app.stop().await;
}
