//! Sending a webhook what it missed, against the whole daemon: `POST
//! /webhooks/{id}/replay` sends a webhook created after some events exactly
//! the stored ones it would have matched, once; `POST /webhooks/{id}/retry`
//! with `failed_since` / `failed_until` retries only the deliveries that
//! failed in that range. The web UI's forms do the same (over HTTP, with a
//! session and its CSRF token).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;
use webhookd_e2e::graphql::{data, graphql};
use webhookd_e2e::ui_session::ui_session;
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

fn event(name: &str, user_id: Option<i64>) -> EventMessage {
    let message = EventMessage::new(name, json!({"n": 1}), Utc::now().timestamp()).unwrap();
    match user_id {
        Some(user) => message.with_user_id(user),
        None => message,
    }
}

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    app.api(
        token,
        reqwest::Method::POST,
        &format!("/api/v1{path}"),
        body,
    )
    .await
}

#[track_caller]
fn assert_invalid(reply: &(StatusCode, Value), field: &str) {
    assert_eq!(reply.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.1);
    assert_eq!(reply.1["field"], field, "{}", reply.1);
}

async fn now(app: &TestApp) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT now()")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Waits until `n` events are stored.
async fn wait_for_events(app: &TestApp, n: i64) {
    eventually(WAIT, "the events to be stored", || async {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event <> 'batch'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        (stored >= n).then_some(())
    })
    .await;
}

/// Waits until the webhook has `n` deliveries, all `status`.
async fn wait_for_deliveries(app: &TestApp, webhook: i64, n: i64, status: &str) {
    eventually(WAIT, "the deliveries to settle", || async {
        let (total, settled): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = $2)
             FROM deliveries WHERE webhook_id = $1",
        )
        .bind(webhook)
        .bind(status)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        (total == n && settled == n).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_new_webhook_is_replayed_exactly_the_stored_events_it_would_have_matched_once() {
    let app = TestApp::spawn().await;
    let (_, alice) = app.create_user("Alice", Some(7), false).await;
    let (_, bob) = app.create_user("Bob", Some(8), false).await;
    let receiver = Receiver::start(SECRET).await;

    // Before the window, then in it: public and Alice's task events (hers
    // to replay), Bob's private one, and an event she does not subscribe to.
    app.publisher
        .publish(&event("task.created", None))
        .await
        .unwrap();
    wait_for_events(&app, 1).await;
    let since = now(&app).await;
    let public = event("task.created", None);
    let private = event("task.completed", Some(7));
    for message in [
        &public,
        &private,
        &event("task.created", Some(8)),
        &event("deal.won", None),
    ] {
        app.publisher.publish(message).await.unwrap();
    }
    wait_for_events(&app, 5).await;

    let webhook = app
        .create_webhook_to(&alice, &receiver.url(), json!(["task.*"]), SECRET)
        .await;
    // Sent live once the webhook exists: a replay must not send it again.
    let live = event("task.updated", None);
    app.publisher.publish(&live).await.unwrap();
    receiver.wait_for(1, WAIT).await;

    let path = format!("/webhooks/{webhook}/replay");
    // Bob sees no webhook of Alice's; bad windows name their field.
    let foreign = post(&app, &bob, &path, json!({"since": since})).await;
    assert_eq!(foreign.0, StatusCode::NOT_FOUND, "{}", foreign.1);
    assert_invalid(
        &post(&app, &alice, &path, json!({"since": "yesterday"})).await,
        "since",
    );
    assert_invalid(
        &post(
            &app,
            &alice,
            &path,
            json!({"since": "2001-01-01T00:00:00Z"}),
        )
        .await,
        "since",
    );
    assert_invalid(
        &post(&app, &alice, &path, json!({"since": since, "until": since})).await,
        "until",
    );
    assert_invalid(
        &post(&app, &alice, &path, json!({"since": since, "from": since})).await,
        "from",
    );

    let replay = post(&app, &alice, &path, json!({"since": since})).await;
    assert_eq!(replay.0, StatusCode::OK, "{}", replay.1);
    assert_eq!(
        replay.1,
        json!({"replayed": 2, "skipped_existing": 1, "more": false, "next_since": null})
    );
    wait_for_deliveries(&app, webhook, 3, "succeeded").await;
    let received = receiver.received();
    assert_eq!(
        received.len(),
        3,
        "the live event and the two replayed ones"
    );
    let sent: BTreeSet<String> = received
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = [&public, &private, &live]
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    assert_eq!(sent, expected);
    for request in &received {
        assert!(request.seed_signature_valid && request.standard_signature_valid);
        let event_id: Uuid = request.json()["id"].as_str().unwrap().parse().unwrap();
        let delivery_id: Uuid = sqlx::query_scalar("SELECT webhookd_delivery_id($1, $2)")
            .bind(event_id)
            .bind(webhook)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        assert_eq!(request.header("x-webhook-id"), delivery_id.to_string());
    }

    // Again, through GraphQL, then the web UI's form: nothing new to send.
    let again = graphql(
        &app.http,
        &app.url(""),
        Some(&alice),
        "mutation($id: ID!, $since: DateTime!) {
             replayEvents(webhookId: $id, since: $since) { replayed skippedExisting more nextSince }
         }",
        json!({"id": webhook.to_string(), "since": since}),
    )
    .await;
    assert_eq!(
        data(&again)["replayEvents"],
        json!({"replayed": 0, "skippedExisting": 3, "more": false, "nextSince": null})
    );
    let (http, cookie, csrf) = ui_session(&app, &alice, &format!("/webhook/{webhook}")).await;
    let since_field = since.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    let page = http
        .post(app.url(&format!("/webhook/{webhook}/replay")))
        .header(COOKIE, &cookie)
        .form(&[("_csrf", csrf.as_str()), ("since", since_field.as_str())])
        .send()
        .await
        .unwrap();
    // Post/redirect/get: the result is a page of its own.
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    let result = page.headers()[LOCATION].to_str().unwrap().to_owned();
    let page = http
        .get(app.url(&result))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("No event to send"), "{page}");
    assert!(page.contains("3 already delivered or pending"), "{page}");
    let forged = http
        .post(app.url(&format!("/webhook/{webhook}/replay")))
        .header(COOKIE, &cookie)
        .form(&[("_csrf", "forged"), ("since", since_field.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    wait_for_deliveries(&app, webhook, 3, "succeeded").await;
    assert_eq!(receiver.count(), 3, "nothing is sent twice");

    // A switched-off webhook is not replayed to.
    app.http
        .post(app.url(&format!("/api/v1/webhooks/{webhook}/toggle")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let off = post(&app, &alice, &path, json!({"since": since})).await;
    assert_eq!(off.0, StatusCode::CONFLICT, "{}", off.1);
    app.stop().await;
}

#[tokio::test]
async fn a_ranged_retry_retries_only_the_deliveries_that_failed_in_the_range() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "1")]).await;
    let (_, alice) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.always(500);
    let webhook = app
        .create_webhook_to(&alice, &receiver.url(), json!(["task.created"]), SECRET)
        .await;
    let early = [event("task.created", None), event("task.created", None)];
    for message in &early {
        app.publisher.publish(message).await.unwrap();
    }
    wait_for_deliveries(&app, webhook, 2, "failed").await;
    let middle = now(&app).await;
    let late = [event("task.created", None), event("task.created", None)];
    for message in &late {
        app.publisher.publish(message).await.unwrap();
    }
    wait_for_deliveries(&app, webhook, 4, "failed").await;
    receiver.always(200);

    let path = format!("/webhooks/{webhook}/retry");
    for (body, field) in [
        (json!({"failed_since": "last tuesday"}), "failed_since"),
        (
            json!({"failed_since": middle, "failed_until": "2001-01-01T00:00:00Z"}),
            "failed_until",
        ),
        (
            json!({"failed_since": middle, "all_failed": true}),
            "all_failed",
        ),
        (json!({"failed_between": middle}), "failed_between"),
    ] {
        assert_invalid(&post(&app, &alice, &path, body).await, field);
    }

    // The GraphQL mutation checks the range as the API does.
    let backwards = graphql(
        &app.http,
        &app.url(""),
        Some(&alice),
        "mutation($id: ID!, $since: DateTime!, $until: DateTime!) {
             retryDeliveries(webhookId: $id, failedSince: $since, failedUntil: $until) { retried more }
         }",
        json!({"id": webhook.to_string(), "since": middle, "until": "2001-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        backwards["errors"][0]["extensions"]["field"], "failedUntil",
        "{backwards}"
    );

    let retried = post(&app, &alice, &path, json!({"failed_since": middle})).await;
    assert_eq!(retried.0, StatusCode::OK, "{}", retried.1);
    assert_eq!(retried.1, json!({"retried": 2, "more": false}));
    let ids = |messages: &[EventMessage]| -> BTreeSet<String> {
        messages.iter().map(|m| m.id.to_string()).collect()
    };
    let succeeded = || async {
        let rows: Vec<Uuid> = sqlx::query_scalar(
            "SELECT event_id FROM deliveries WHERE webhook_id = $1 AND status = 'succeeded'",
        )
        .bind(webhook)
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|id| id.to_string())
            .collect::<BTreeSet<_>>()
    };
    eventually(WAIT, "the late deliveries to succeed", || async {
        (succeeded().await == ids(&late)).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 6, "four failures, then the two retried");

    // The early ones, from the web UI's form (a bound left empty).
    let (http, cookie, csrf) = ui_session(&app, &alice, &format!("/webhook/{webhook}")).await;
    let until_field = middle.to_rfc3339();
    let response = http
        .post(app.url(&format!("/webhook/{webhook}/retry")))
        .header(COOKIE, &cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("failed_since", ""),
            ("failed_until", until_field.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    // The notice travels in the session, not the URL.
    assert_eq!(location, format!("/webhook/{webhook}"));
    let notice = http
        .get(app.url(&location))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("2 deliveries will be retried now."));
    let all: BTreeSet<String> = ids(&early).union(&ids(&late)).cloned().collect();
    eventually(WAIT, "every delivery to succeed", || async {
        (succeeded().await == all).then_some(())
    })
    .await;
    assert_eq!(receiver.count(), 8);
    app.stop().await;
}
