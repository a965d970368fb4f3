//! `POST /webhooks/{id}/rotate-secret`: the old secret is kept for the grace
//! period (or not at all), an expired one is not shown, a patched secret
//! replaces it outright, and bad input answers 422 changing nothing. Served
//! by `api::router` against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use webhookd_e2e::api::{assert_invalid, assert_status, id_of, ApiServer};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn stored_secrets(api: &ApiServer, id: i64) -> (String, Option<String>, Option<f64>) {
    sqlx::query_as(
        "SELECT secret, previous_secret,
                EXTRACT(EPOCH FROM previous_secret_expires_at - now())::float8
         FROM webhooks WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&api.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn rotating_a_secret_keeps_the_old_one_for_the_grace_period() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "secret": SECRET}),
        )
        .await,
    );
    let path = format!("/webhooks/{id}/rotate-secret");

    // No body at all: a generated secret and a day of grace.
    let reply = api
        .send(Method::POST, &path, Some(&alice.token), None)
        .await;
    assert_status(&reply, StatusCode::OK, "rotate");
    let new_secret = reply.json["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != SECRET);
    assert_eq!(reply.json["id"], id);
    assert_eq!(reply.json["name"], "a");
    let expires: DateTime<Utc> = reply.json["previous_secret_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (secret, previous, left) = stored_secrets(&api, id).await;
    assert_eq!(secret, new_secret);
    assert_eq!(previous.as_deref(), Some(SECRET));
    let left = left.unwrap();
    assert!(left > 86_000.0 && left <= 86_400.0, "{left}");
    let shown = api.get(&alice, &format!("/webhooks/{id}")).await;
    assert_eq!(
        shown.json["previous_secret_expires_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        expires
    );
    assert!(shown.json.get("secret").is_none());

    // A given secret and grace period; only the latest old secret is kept.
    let given = "a-receiver-chosen-secret-1234";
    let reply = api
        .post(
            &alice,
            &path,
            json!({"secret": given, "grace_period_secs": 60}),
        )
        .await;
    assert_eq!(reply.json["secret"], given);
    let (secret, previous, left) = stored_secrets(&api, id).await;
    assert_eq!(
        (secret.as_str(), previous.as_deref()),
        (given, Some(new_secret.as_str()))
    );
    assert!(left.unwrap() <= 60.0);

    // No grace: the old secret stops at once (a leaked secret).
    let reply = api
        .post(&alice, &path, json!({"grace_period_secs": 0}))
        .await;
    assert_eq!(reply.json["previous_secret_expires_at"], Value::Null);
    assert_eq!(stored_secrets(&api, id).await.1, None);
    api.stop().await;
}

#[tokio::test]
async fn an_expired_previous_secret_is_not_shown_and_patch_replaces_the_secret_outright() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    let path = format!("/webhooks/{id}/rotate-secret");
    api.post(&alice, &path, json!({})).await;
    sqlx::query(
        "UPDATE webhooks SET previous_secret_expires_at = now() - interval '1 second' WHERE id = $1",
    )
    .bind(id)
    .execute(&api.db.pool)
    .await
    .unwrap();
    let shown = api.get(&alice, &format!("/webhooks/{id}")).await;
    assert_eq!(shown.json["previous_secret_expires_at"], Value::Null);

    api.post(&alice, &path, json!({})).await;
    let patched = api
        .send(
            Method::PATCH,
            &format!("/webhooks/{id}"),
            Some(&alice.token),
            Some(json!({"secret": "replaced-outright-0123456789"})),
        )
        .await;
    assert_eq!(patched.json["previous_secret_expires_at"], Value::Null);
    let (secret, previous, _) = stored_secrets(&api, id).await;
    assert_eq!(secret, "replaced-outright-0123456789");
    assert_eq!(previous, None);
    api.stop().await;
}

#[tokio::test]
async fn bad_rotation_input_answers_422_naming_the_field_and_changes_nothing() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = id_of(
        &api.create_webhook(
            &alice,
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "secret": SECRET}),
        )
        .await,
    );
    let path = format!("/webhooks/{id}/rotate-secret");
    let cases = [
        (json!({"secret": "short"}), "secret"),
        (json!({"secret": "has spaces in it, sixteen+"}), "secret"),
        (json!({"secret": 12345}), "secret"),
        (json!({"grace_period_secs": -1}), "grace_period_secs"),
        (json!({"grace_period_secs": 604_801}), "grace_period_secs"),
        (json!({"grace_period_secs": "1d"}), "grace_period_secs"),
        (json!({"grace": 5}), "grace"),
    ];
    for (body, field) in cases {
        let reply = api.post(&alice, &path, body.clone()).await;
        assert_invalid(&reply, field, &body.to_string());
    }
    assert_eq!(
        stored_secrets(&api, id).await,
        (SECRET.to_owned(), None, None)
    );
    let week = api
        .post(&alice, &path, json!({"grace_period_secs": 604_800}))
        .await;
    assert_status(&week, StatusCode::OK, "seven days is the maximum");
    api.stop().await;
}
