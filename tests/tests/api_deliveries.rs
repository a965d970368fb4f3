//! The JSON API's delivery routes (test, logs, deliveries, retry), secret
//! rotation, statistics, template presets and the OpenAPI document, served
//! by `api::router` on a real port against a fresh database per test, with
//! real receivers on 127.0.0.1 where something is delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;
use webhookd_e2e::api::{ApiServer, Reply, User};
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_store::stats::stats_sql;
use webhookd_store::webhooks::Scope;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

/// The shared API harness plus this file's own helpers.
struct Api(ApiServer);

impl std::ops::Deref for Api {
    type Target = ApiServer;
    fn deref(&self) -> &ApiServer {
        &self.0
    }
}

impl Api {
    /// Loopback receivers are allowed, as in every test that delivers.
    async fn spawn() -> Api {
        Self::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await
    }

    async fn spawn_with(pairs: &[(&str, &str)]) -> Api {
        Api(ApiServer::spawn_with(pairs).await)
    }

    async fn stop(self) {
        self.0.stop().await
    }

    async fn webhook(&self, user: &User, body: Value) -> i64 {
        let reply = self.post(user, "/webhooks", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        reply.json["id"].as_i64().unwrap()
    }

    /// A webhook of `user` to a URL nobody is called at (rows are seeded).
    async fn quiet_webhook(&self, user: &User, name: &str) -> i64 {
        self.webhook(
            user,
            json!({"name": name, "url": "https://example.com/hook", "events": ["*"]}),
        )
        .await
    }

    /// An event and its delivery for `webhook_id`, in `status`.
    async fn seed_delivery(&self, webhook_id: i64, event: &str, status: &str) -> Uuid {
        let event_id = Uuid::new_v4();
        let delivery_id = Uuid::new_v4();
        sqlx::query("INSERT INTO events (id, event, body) VALUES ($1, $2, '{}')")
            .bind(event_id)
            .bind(event)
            .execute(&self.db.pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at,
                                     last_status_code, last_error)
             VALUES ($1, $2, $3, $4, 3, now() + interval '1 hour', 500, 'HTTP 500')",
        )
        .bind(delivery_id)
        .bind(event_id)
        .bind(webhook_id)
        .bind(status)
        .execute(&self.db.pool)
        .await
        .unwrap();
        delivery_id
    }

    /// A `webhook_logs` row made `age_secs` ago; returns its id and time.
    async fn seed_log(&self, log: Log<'_>) -> (i64, DateTime<Utc>) {
        sqlx::query_as(
            "INSERT INTO webhook_logs (webhook_id, delivery_id, event, attempt, status_code,
                 response_time_ms, is_success, payload, response, error_message, created_at)
             VALUES ($1, $2, $3, 1, $4, $5, $6, 'sent body', 'answer', NULL,
                     $7::timestamptz - make_interval(secs => $8))
             RETURNING id, created_at",
        )
        .bind(log.webhook_id)
        .bind(log.delivery_id)
        .bind(log.event)
        .bind(log.status_code)
        .bind(log.ms)
        .bind(log.status_code.is_some_and(|c| (200..300).contains(&c)))
        .bind(log.base)
        .bind(log.age_secs)
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    async fn now(&self) -> DateTime<Utc> {
        sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }
}

/// A log row to seed: its success follows from a 2xx `status_code`.
#[derive(Clone, Copy)]
struct Log<'a> {
    webhook_id: i64,
    delivery_id: Uuid,
    event: &'a str,
    status_code: Option<i32>,
    ms: i32,
    /// `created_at` is `base - age_secs`.
    base: DateTime<Utc>,
    age_secs: f64,
}

#[track_caller]
fn assert_status(reply: &Reply, status: StatusCode, context: &str) {
    assert_eq!(reply.status, status, "{context}: {}", reply.json);
}

#[track_caller]
fn assert_invalid(reply: &Reply, field: &str, context: &str) {
    assert_status(reply, StatusCode::UNPROCESSABLE_ENTITY, context);
    assert_eq!(reply.json["field"], field, "{context}: {}", reply.json);
    assert!(reply.json["error"].as_str().is_some_and(|e| !e.is_empty()));
}

// ---------------------------------------------------------------- authorization

#[tokio::test]
async fn each_new_route_needs_a_token_hides_other_users_webhooks_and_lets_admins_in() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let admin = api.user("root", true).await;
    let receiver = Receiver::start(SECRET).await;
    let id = api
        .webhook(
            &alice,
            json!({"name": "a", "url": receiver.url(), "events": ["*"], "secret": SECRET}),
        )
        .await;
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

// ---------------------------------------------------------------- test deliveries

#[tokio::test]
async fn a_test_delivery_is_sent_signed_both_ways_answered_and_recorded() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let id = api
        .webhook(
            &alice,
            json!({"name": "a", "url": receiver.url(), "events": ["task.created"],
                   "secret": SECRET, "headers": {"X-Team": "sales"}}),
        )
        .await;

    let reply = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_status(&reply, StatusCode::OK, "test");
    let result = &reply.json;
    assert_eq!(result["status_code"], 200);
    assert_eq!(result["is_success"], true);
    assert_eq!(result["response"], "ok");
    assert_eq!(result["error_message"], Value::Null);
    assert!(result["response_time_ms"].is_u64());
    let delivery_id = result["delivery_id"].as_str().unwrap().to_owned();

    let got = receiver.wait_for(1, WAIT).await;
    let request = &got[0];
    assert!(request.seed_signature_valid && request.standard_signature_valid);
    assert_eq!(request.header("x-webhook-event"), "webhook.test");
    assert_eq!(request.header("x-webhook-id"), delivery_id);
    assert_eq!(request.header("webhook-id"), delivery_id);
    assert_eq!(request.header("x-webhook-attempt"), "1");
    assert_eq!(request.header("x-team"), "sales");
    let body = request.json();
    assert_eq!(body["event"], "webhook.test");
    assert_eq!(
        body["data"],
        json!({"message": "Test delivery from webhookd", "webhook_id": id})
    );
    assert!(body["id"].is_string() && body["timestamp"].is_i64());

    // Recorded like any delivery: a succeeded delivery and one logged attempt.
    let deliveries = api.get(&alice, &format!("/webhooks/{id}/deliveries")).await;
    let items = deliveries.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], delivery_id.as_str());
    assert_eq!(items[0]["event"], "webhook.test");
    assert_eq!(items[0]["status"], "succeeded");
    assert_eq!(items[0]["attempts"], 1);
    assert_eq!(items[0]["next_attempt_at"], Value::Null);
    let logs = api
        .get(&alice, &format!("/webhooks/{id}/logs?include=bodies"))
        .await;
    let log = &logs.json["items"][0];
    assert_eq!(log["delivery_id"], delivery_id.as_str());
    assert_eq!(log["event"], "webhook.test");
    assert_eq!(log["status_code"], 200);
    assert_eq!(log["is_success"], true);
    assert_eq!(log["response"], "ok");
    assert_eq!(
        serde_json::from_str::<Value>(log["payload"].as_str().unwrap()).unwrap(),
        body
    );
    api.stop().await;
}

#[tokio::test]
async fn a_test_delivery_renders_the_webhooks_template() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let slack = webhookd_events::find_preset("slack")
        .and_then(|p| p.template)
        .unwrap();
    let id = api
        .webhook(
            &alice,
            json!({"name": "a", "url": receiver.url(), "events": ["*"], "secret": SECRET,
                   "template": slack}),
        )
        .await;
    let reply = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_eq!(reply.json["is_success"], true, "{}", reply.json);
    let request = &receiver.wait_for(1, WAIT).await[0];
    assert!(request.seed_signature_valid && request.standard_signature_valid);
    assert_eq!(
        request.json()["text"],
        "*webhook.test*: Test delivery from webhookd"
    );
    api.stop().await;
}

#[tokio::test]
async fn a_failing_or_slow_receiver_is_reported_and_recorded_as_failed() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let id = api
        .webhook(
            &alice,
            json!({"name": "a", "url": receiver.url(), "events": ["*"], "secret": SECRET,
                   "timeout_ms": 300}),
        )
        .await;
    receiver.fail_next(1, 500);
    let failed = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    assert_status(&failed, StatusCode::OK, "a failed test is still an answer");
    assert_eq!(failed.json["status_code"], 500);
    assert_eq!(failed.json["is_success"], false);
    assert_eq!(failed.json["response"], "receiver says no");
    assert_eq!(failed.json["error_message"], "HTTP 500");

    // The webhook's own timeout applies.
    receiver.hold();
    let slow = api
        .post(&alice, &format!("/webhooks/{id}/test"), json!({}))
        .await;
    receiver.release();
    assert_eq!(slow.json["status_code"], Value::Null);
    assert_eq!(slow.json["is_success"], false);
    assert!(
        slow.json["error_message"]
            .as_str()
            .is_some_and(|e| e.contains("timed out after 300 ms")),
        "{}",
        slow.json
    );

    let failed_list = api
        .get(&alice, &format!("/webhooks/{id}/deliveries?status=failed"))
        .await;
    assert_eq!(failed_list.json["items"].as_array().unwrap().len(), 2);
    let logs = api
        .get(&alice, &format!("/webhooks/{id}/logs?success=false"))
        .await;
    assert_eq!(logs.json["items"].as_array().unwrap().len(), 2);
    // A test never switches the webhook off or starts its failing streak.
    let webhook = api.get(&alice, &format!("/webhooks/{id}")).await;
    assert_eq!(webhook.json["is_active"], true);
    api.stop().await;
}

#[tokio::test]
async fn a_test_delivery_to_a_private_address_is_refused_unless_allowed() {
    let api = Api::spawn_with(&[]).await;
    let alice = api.user("alice", false).await;
    let receiver = Receiver::start(SECRET).await;
    let id = api.quiet_webhook(&alice, "a").await;
    // The API refuses such a URL at save time; a row changed by hand, or a
    // name that resolves to a private address, is refused when sending.
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
    assert_eq!(reply.json["status_code"], Value::Null);
    assert!(reply.json["error_message"].is_string(), "{}", reply.json);
    assert_eq!(receiver.count(), 0);
    api.stop().await;
}

// ---------------------------------------------------------------- logs

/// Pages through `path` (which has a query string) with `limit`, returning
/// every item id in order; asserts each page's size.
async fn page_ids(api: &Api, user: &User, path: &str, limit: usize) -> Vec<Value> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let url = match &cursor {
            None => format!("{path}&limit={limit}"),
            Some(c) => format!("{path}&limit={limit}&cursor={c}"),
        };
        let reply = api.get(user, &url).await;
        assert_status(&reply, StatusCode::OK, &url);
        let items = reply.json["items"].as_array().unwrap();
        assert!(items.len() <= limit);
        ids.extend(items.iter().map(|i| i["id"].clone()));
        match reply.json["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), limit, "only the last page is short");
                cursor = Some(next.to_owned());
            }
            None => return ids,
        }
    }
    panic!("paging never ended");
}

#[tokio::test]
async fn logs_page_newest_first_without_losing_or_repeating_an_attempt() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
    let other = api.quiet_webhook(&alice, "b").await;
    let delivery = api.seed_delivery(id, "task.created", "failed").await;
    let base = api.now().await;
    // 23 attempts, in groups of three sharing one timestamp (a batch write),
    // and the other webhook's attempts in between.
    for i in 0..23 {
        let log = Log {
            webhook_id: id,
            delivery_id: delivery,
            event: "task.created",
            status_code: Some(if i % 2 == 0 { 200 } else { 500 }),
            ms: 5,
            base,
            age_secs: f64::from(i / 3) * 10.0,
        };
        api.seed_log(log).await;
        api.seed_log(Log {
            webhook_id: other,
            ..log
        })
        .await;
    }
    let expected: Vec<Value> = sqlx::query_scalar::<_, i64>(
        "SELECT id FROM webhook_logs WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(id)
    .fetch_all(&api.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(Value::from)
    .collect();
    assert_eq!(expected.len(), 23);
    for limit in [1, 4, 5, 23, 200] {
        let ids = page_ids(&api, &alice, &format!("/webhooks/{id}/logs?"), limit).await;
        assert_eq!(ids, expected, "limit {limit}");
    }

    // Attempts made while a client pages do not shift its later pages.
    let first = api
        .get(&alice, &format!("/webhooks/{id}/logs?limit=5"))
        .await;
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    api.seed_log(Log {
        webhook_id: id,
        delivery_id: delivery,
        event: "task.created",
        status_code: Some(200),
        ms: 1,
        base: api.now().await,
        age_secs: 0.0,
    })
    .await;
    let second = api
        .get(
            &alice,
            &format!("/webhooks/{id}/logs?limit=5&cursor={cursor}"),
        )
        .await;
    let second_ids: Vec<Value> = second.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(second_ids, expected[5..10]);
    api.stop().await;
}

#[tokio::test]
async fn logs_filter_by_event_outcome_time_and_delivery_and_show_bodies_on_request() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
    let d1 = api.seed_delivery(id, "task.created", "failed").await;
    let d2 = api.seed_delivery(id, "deal.won", "succeeded").await;
    let base = api.now().await;
    let log = |delivery_id, event, status_code, age_secs| Log {
        webhook_id: id,
        delivery_id,
        event,
        status_code,
        ms: 7,
        base,
        age_secs,
    };
    let (a, _) = api
        .seed_log(log(d1, "task.created", Some(500), 3600.0))
        .await;
    let (b, _) = api.seed_log(log(d1, "task.created", None, 1800.0)).await;
    let (c, _) = api.seed_log(log(d2, "deal.won", Some(200), 60.0)).await;
    let ids = |reply: &Reply| -> Vec<i64> {
        reply.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let logs = |query: String| {
        let path = format!("/webhooks/{id}/logs?{query}");
        let api = &api;
        let alice = &alice;
        async move { api.get(alice, &path).await }
    };
    assert_eq!(ids(&logs(String::new()).await), [c, b, a]);
    assert_eq!(ids(&logs("event=task.created".into()).await), [b, a]);
    assert_eq!(ids(&logs("success=true".into()).await), [c]);
    assert_eq!(ids(&logs("success=false".into()).await), [b, a]);
    assert_eq!(ids(&logs(format!("delivery_id={d2}")).await), [c]);
    let at = |secs: i64| {
        (base - TimeDelta::seconds(secs))
            .to_rfc3339()
            .replace('+', "%2B")
    };
    assert_eq!(ids(&logs(format!("from={}", at(2000))).await), [c, b]);
    assert_eq!(ids(&logs(format!("to={}", at(1800))).await), [a]);
    assert_eq!(
        ids(&logs(format!("from={}&to={}&success=false", at(4000), at(100))).await),
        [b, a]
    );
    assert_eq!(
        ids(&logs("from=2000-01-01T00:00:00Z&event=deal.won".into()).await),
        [c]
    );

    // Bodies only on request; the columns of the table always.
    let plain = logs(String::new()).await;
    let item = plain.json["items"][0].as_object().unwrap();
    let keys: BTreeSet<&str> = item.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "delivery_id",
            "event",
            "attempt",
            "status_code",
            "response_time_ms",
            "is_success",
            "error_message",
            "created_at"
        ])
    );
    let full = logs("include=bodies".into()).await;
    assert_eq!(full.json["items"][0]["payload"], "sent body");
    assert_eq!(full.json["items"][0]["response"], "answer");
    let one = api.get(&alice, &format!("/webhooks/{id}/logs/{b}")).await;
    assert_status(&one, StatusCode::OK, "one log");
    assert_eq!(one.json["id"], b);
    assert_eq!(one.json["payload"], "sent body");
    assert_eq!(one.json["status_code"], Value::Null);
    // Another webhook's attempt, or none, is not this webhook's.
    let other = api.quiet_webhook(&alice, "b").await;
    let elsewhere = api
        .get(&alice, &format!("/webhooks/{other}/logs/{b}"))
        .await;
    assert_status(&elsewhere, StatusCode::NOT_FOUND, "other webhook's log");
    assert_eq!(elsewhere.json["error"], "log not found");
    let missing = api
        .get(&alice, &format!("/webhooks/{id}/logs/999999"))
        .await;
    assert_status(&missing, StatusCode::NOT_FOUND, "missing log");
    api.stop().await;
}

#[tokio::test]
async fn bad_log_and_delivery_queries_answer_422_naming_the_parameter() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
    let cases = [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("success=yes", "success"),
        ("from=yesterday", "from"),
        ("to=2026-02-30T00:00:00Z", "to"),
        ("delivery_id=42", "delivery_id"),
        ("event=task.exploded", "event"),
        ("include=everything", "include"),
        ("cursor=not-a-cursor", "cursor"),
        ("colour=red", "colour"),
        ("limit=5&limit=6", "limit"),
    ];
    for (query, field) in cases {
        let reply = api
            .get(&alice, &format!("/webhooks/{id}/logs?{query}"))
            .await;
        assert_invalid(&reply, field, query);
    }
    for (query, field) in [
        ("status=lost", "status"),
        ("limit=0", "limit"),
        ("cursor=abc", "cursor"),
        ("success=true", "success"),
    ] {
        let reply = api
            .get(&alice, &format!("/webhooks/{id}/deliveries?{query}"))
            .await;
        assert_invalid(&reply, field, query);
    }
    // A query string that is not one at all.
    let broken = api
        .get(&alice, &format!("/webhooks/{id}/logs?limit=%ZZ"))
        .await;
    assert!(
        matches!(broken.status.as_u16(), 400 | 422),
        "{}",
        broken.status
    );
    assert!(broken.json["error"].is_string());
    api.stop().await;
}

// ---------------------------------------------------------------- deliveries and retry

#[tokio::test]
async fn deliveries_page_newest_first_and_filter_by_status_and_event() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
    for i in 0..12 {
        let status = ["pending", "succeeded", "failed"][i % 3];
        let event = if i % 2 == 0 {
            "task.created"
        } else {
            "deal.won"
        };
        api.seed_delivery(id, event, status).await;
    }
    let expected: Vec<Value> = sqlx::query_scalar::<_, Uuid>(
        "SELECT id FROM deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(id)
    .fetch_all(&api.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|u| Value::from(u.to_string()))
    .collect();
    for limit in [1, 5, 12] {
        let ids = page_ids(&api, &alice, &format!("/webhooks/{id}/deliveries?"), limit).await;
        assert_eq!(ids, expected, "limit {limit}");
    }
    let failed = api
        .get(&alice, &format!("/webhooks/{id}/deliveries?status=failed"))
        .await;
    let items = failed.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    for item in items {
        assert_eq!(item["status"], "failed");
        assert_eq!(item["attempts"], 3);
        assert_eq!(item["last_status_code"], 500);
        assert_eq!(item["last_error"], "HTTP 500");
        assert_eq!(item["next_attempt_at"], Value::Null);
    }
    let pending_deals = api
        .get(
            &alice,
            &format!("/webhooks/{id}/deliveries?status=pending&event=deal.won"),
        )
        .await;
    let items = pending_deals.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items
        .iter()
        .all(|i| i["event"] == "deal.won" && i["next_attempt_at"].is_string()));
    api.stop().await;
}

async fn delivery_state(api: &Api, id: Uuid) -> (String, i32, bool) {
    sqlx::query_as(
        "SELECT status, attempts, next_attempt_at <= now() FROM deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&api.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn retrying_one_delivery_makes_it_pending_and_due_now() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
    let other = api.quiet_webhook(&alice, "b").await;
    let failed = api.seed_delivery(id, "task.created", "failed").await;
    let succeeded = api.seed_delivery(id, "task.created", "succeeded").await;
    let pending = api.seed_delivery(id, "task.created", "pending").await;
    let elsewhere = api.seed_delivery(other, "task.created", "failed").await;
    let retry = |delivery: String| {
        let path = format!("/webhooks/{id}/retry");
        let api = &api;
        let alice = &alice;
        async move {
            api.post(alice, &path, json!({ "delivery_id": delivery }))
                .await
        }
    };

    let reply = retry(failed.to_string()).await;
    assert_status(&reply, StatusCode::OK, "retry failed");
    assert_eq!(reply.json, json!({"retried": 1}));
    // The attempt count is kept: the retry policy counts on from it.
    assert_eq!(
        delivery_state(&api, failed).await,
        ("pending".into(), 3, true)
    );
    // A delivery that succeeded can be sent again too.
    assert_eq!(retry(succeeded.to_string()).await.json["retried"], 1);
    assert_eq!(delivery_state(&api, succeeded).await.0, "pending");

    let again = retry(failed.to_string()).await;
    assert_status(&again, StatusCode::CONFLICT, "already pending");
    assert!(again.json["error"].as_str().unwrap().contains("pending"));
    assert_status(
        &retry(pending.to_string()).await,
        StatusCode::CONFLICT,
        "pending",
    );
    let foreign = retry(elsewhere.to_string()).await;
    assert_status(
        &foreign,
        StatusCode::NOT_FOUND,
        "another webhook's delivery",
    );
    assert_eq!(foreign.json["error"], "delivery not found");
    assert_eq!(delivery_state(&api, elsewhere).await.0, "failed");
    assert_status(
        &retry(Uuid::new_v4().to_string()).await,
        StatusCode::NOT_FOUND,
        "unknown delivery",
    );
    api.stop().await;
}

#[tokio::test]
async fn retrying_all_failed_deliveries_touches_only_this_webhooks_failed_ones() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
    let other = api.quiet_webhook(&alice, "b").await;
    let mut failed = Vec::new();
    for _ in 0..3 {
        failed.push(api.seed_delivery(id, "deal.won", "failed").await);
    }
    let succeeded = api.seed_delivery(id, "deal.won", "succeeded").await;
    let elsewhere = api.seed_delivery(other, "deal.won", "failed").await;

    // Workers are woken at once: the retry sends NOTIFY webhookd_due.
    let mut listener = sqlx::postgres::PgListener::connect_with(&api.db.pool)
        .await
        .unwrap();
    listener
        .listen(webhookd_store::notify::DUE_CHANNEL)
        .await
        .unwrap();

    let path = format!("/webhooks/{id}/retry");
    let reply = api.post(&alice, &path, json!({"all_failed": true})).await;
    assert_status(&reply, StatusCode::OK, "retry all");
    assert_eq!(reply.json, json!({"retried": 3}));
    for delivery in &failed {
        assert_eq!(
            delivery_state(&api, *delivery).await,
            ("pending".into(), 3, true)
        );
    }
    assert_eq!(delivery_state(&api, succeeded).await.0, "succeeded");
    assert_eq!(delivery_state(&api, elsewhere).await.0, "failed");
    let notified = tokio::time::timeout(WAIT, listener.recv()).await;
    assert!(matches!(notified, Ok(Ok(_))), "{notified:?}");

    let nothing_left = api.post(&alice, &path, json!({"all_failed": true})).await;
    assert_eq!(nothing_left.json, json!({"retried": 0}));
    api.stop().await;
}

#[tokio::test]
async fn a_retry_needs_exactly_one_valid_target_and_an_active_webhook() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
    let failed = api.seed_delivery(id, "deal.won", "failed").await;
    let path = format!("/webhooks/{id}/retry");
    let cases = [
        (json!({}), "delivery_id"),
        (json!({"delivery_id": "nope"}), "delivery_id"),
        (json!({"delivery_id": 5}), "delivery_id"),
        (json!({"all_failed": false}), "all_failed"),
        (json!({"all_failed": "yes"}), "all_failed"),
        (
            json!({"all_failed": true, "delivery_id": failed.to_string()}),
            "all_failed",
        ),
        (json!({"everything": true}), "everything"),
    ];
    for (body, field) in cases {
        let reply = api.post(&alice, &path, body.clone()).await;
        assert_invalid(&reply, field, &body.to_string());
    }
    let not_json = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(&alice.token)
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);

    api.send(
        Method::POST,
        &format!("/webhooks/{id}/toggle"),
        Some(&alice.token),
        None,
    )
    .await;
    let off = api.post(&alice, &path, json!({"all_failed": true})).await;
    assert_status(&off, StatusCode::CONFLICT, "inactive webhook");
    assert!(off.json["error"].as_str().unwrap().contains("switched off"));
    assert_eq!(delivery_state(&api, failed).await.0, "failed");
    api.stop().await;
}

// ---------------------------------------------------------------- secret rotation

async fn stored_secrets(api: &Api, id: i64) -> (String, Option<String>, Option<f64>) {
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
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api
        .webhook(
            &alice,
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "secret": SECRET}),
        )
        .await;
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
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
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
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api
        .webhook(
            &alice,
            json!({"name": "a", "url": "https://example.com/h", "events": ["*"], "secret": SECRET}),
        )
        .await;
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

// ---------------------------------------------------------------- statistics

/// `percentile_cont`: linear interpolation between the closest ranks.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

#[track_caller]
fn assert_close(actual: &Value, expected: f64, context: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{context}: {actual}"));
    assert!(
        (actual - expected).abs() < 1e-6,
        "{context}: {actual} != {expected}"
    );
}

struct Seeded {
    webhook_id: i64,
    event: &'static str,
    status_code: Option<i32>,
    ms: i32,
    created_at: DateTime<Utc>,
}

#[tokio::test]
async fn stats_count_attempts_per_hour_and_summarise_per_webhook_and_event() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let admin = api.user("root", true).await;
    let a = api.quiet_webhook(&alice, "A").await;
    let b = api.quiet_webhook(&alice, "B").await;
    let c = api.quiet_webhook(&bob, "C").await;
    let delivery = api.seed_delivery(a, "task.created", "failed").await;
    let now = api.now().await;
    let hour_start = now.duration_trunc(TimeDelta::hours(1)).unwrap();
    let mut seeded = Vec::new();
    let seed = |webhook_id, event, status_code, ms, base: DateTime<Utc>, age_secs: f64| {
        let api = &api;
        async move {
            let (_, created_at) = api
                .seed_log(Log {
                    webhook_id,
                    delivery_id: delivery,
                    event,
                    status_code,
                    ms,
                    base,
                    age_secs,
                })
                .await;
            Seeded {
                webhook_id,
                event,
                status_code,
                ms,
                created_at,
            }
        }
    };
    // A: ten answered attempts two hours ago (the last two 500s), a timeout,
    // and one attempt 30 hours ago (in the 7-day window only).
    for i in 1..=10 {
        let code = if i <= 8 { 200 } else { 500 };
        seeded.push(
            seed(
                a,
                "task.created",
                Some(code),
                i * 100,
                hour_start,
                7200.0 - 600.0,
            )
            .await,
        );
    }
    seeded.push(seed(a, "task.created", None, 5000, hour_start, 6600.0).await);
    seeded.push(seed(a, "task.created", Some(200), 1, now, 30.0 * 3600.0).await);
    // B: three attempts of another event in the current hour.
    for (code, ms) in [(200, 10), (200, 20), (503, 30)] {
        seeded.push(seed(b, "deal.won", Some(code), ms, now, 0.0).await);
    }
    // C: Bob's.
    for _ in 0..4 {
        seeded.push(seed(c, "client.created", Some(200), 50, now, 0.0).await);
    }
    let stats = |user: &User, query: &str| {
        let path = format!("/stats{query}");
        let api = &api;
        let token = user.token.clone();
        async move {
            let reply = api.send(Method::GET, &path, Some(&token), None).await;
            assert_status(&reply, StatusCode::OK, &path);
            reply.json
        }
    };

    let check = |json: &Value, webhooks: &[i64], hours: usize| {
        let from: DateTime<Utc> = json["from"].as_str().unwrap().parse().unwrap();
        let rows: Vec<&Seeded> = seeded
            .iter()
            .filter(|s| webhooks.contains(&s.webhook_id) && s.created_at >= from)
            .collect();
        let hourly = json["hourly"].as_array().unwrap();
        assert_eq!(hourly.len(), hours);
        let mut per_hour: BTreeMap<DateTime<Utc>, (i64, i64)> = BTreeMap::new();
        for s in &rows {
            let hour = s.created_at.duration_trunc(TimeDelta::hours(1)).unwrap();
            let slot = per_hour.entry(hour).or_default();
            if s.status_code.is_some_and(|c| (200..300).contains(&c)) {
                slot.0 += 1;
            } else {
                slot.1 += 1;
            }
        }
        for h in hourly {
            let hour: DateTime<Utc> = h["hour"].as_str().unwrap().parse().unwrap();
            let (success, failure) = per_hour.remove(&hour).unwrap_or_default();
            assert_eq!(
                (h["success"].as_i64(), h["failure"].as_i64()),
                (Some(success), Some(failure)),
                "{hour}"
            );
        }
        assert!(
            per_hour.is_empty(),
            "every attempt falls in an hour: {per_hour:?}"
        );
        let summary = |group: &[&&Seeded], value: &Value, context: &str| {
            let successes = group
                .iter()
                .filter(|s| s.status_code.is_some_and(|c| (200..300).contains(&c)))
                .count();
            assert_eq!(value["attempts"], group.len(), "{context}");
            assert_eq!(value["successes"], successes, "{context}");
            assert_eq!(value["failures"], group.len() - successes, "{context}");
            assert_close(
                &value["success_rate"],
                successes as f64 / group.len() as f64,
                context,
            );
            let mut times: Vec<f64> = group
                .iter()
                .filter(|s| s.status_code.is_some())
                .map(|s| f64::from(s.ms))
                .collect();
            times.sort_by(f64::total_cmp);
            assert_close(&value["p50_ms"], percentile(&times, 0.5), context);
            assert_close(&value["p95_ms"], percentile(&times, 0.95), context);
        };
        summary(&rows.iter().collect::<Vec<_>>(), &json["total"], "total");
        let listed: Vec<i64> = json["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["webhook_id"].as_i64().unwrap())
            .collect();
        let mut expected: Vec<i64> = rows.iter().map(|s| s.webhook_id).collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(listed, expected);
        for w in json["webhooks"].as_array().unwrap() {
            let id = w["webhook_id"].as_i64().unwrap();
            let group: Vec<&&Seeded> = rows.iter().filter(|s| s.webhook_id == id).collect();
            summary(&group, w, &format!("webhook {id}"));
        }
        for e in json["events"].as_array().unwrap() {
            let group: Vec<&&Seeded> = rows.iter().filter(|s| e["event"] == s.event).collect();
            assert!(!group.is_empty());
            summary(&group, e, e["event"].as_str().unwrap());
        }
    };

    let day = stats(&alice, "").await;
    assert_eq!(day["period"], "24h");
    check(&day, &[a, b], 24);
    // The figures the seeding was designed for, spelled out once.
    assert_eq!(day["total"]["attempts"], 14);
    assert_close(&day["webhooks"][0]["p50_ms"], 550.0, "A p50");
    assert_close(&day["webhooks"][0]["p95_ms"], 955.0, "A p95");
    assert_close(&day["webhooks"][1]["p95_ms"], 29.0, "B p95");
    check(&stats(&alice, "?period=7d").await, &[a, b], 168);
    check(
        &stats(&alice, &format!("?user_id={}", alice.id)).await,
        &[a, b],
        24,
    );
    check(&stats(&bob, "").await, &[c], 24);
    check(&stats(&admin, "").await, &[a, b, c], 24);
    check(
        &stats(&admin, &format!("?user_id={}&period=7d", bob.id)).await,
        &[c],
        168,
    );
    let nobody = stats(&admin, "?user_id=424242").await;
    assert_eq!(nobody["total"]["attempts"], 0);
    assert_eq!(nobody["total"]["success_rate"], Value::Null);
    assert_eq!(nobody["total"]["p50_ms"], Value::Null);
    assert_eq!(nobody["webhooks"], json!([]));

    for (query, field) in [
        (format!("?user_id={}", alice.id), "user_id"),
        ("?period=1y".to_owned(), "period"),
        ("?user_id=me".to_owned(), "user_id"),
        ("?window=24h".to_owned(), "window"),
    ] {
        let reply = api.get(&bob, &format!("/stats{query}")).await;
        assert_invalid(&reply, field, &query);
    }
    api.stop().await;
}

#[tokio::test]
async fn the_stats_query_can_be_served_by_the_logs_indexes() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
    let delivery = api.seed_delivery(id, "task.created", "failed").await;
    let now = api.now().await;
    for i in 0..50 {
        api.seed_log(Log {
            webhook_id: id,
            delivery_id: delivery,
            event: "task.created",
            status_code: Some(200),
            ms: 5,
            base: now,
            age_secs: f64::from(i) * 3600.0,
        })
        .await;
    }
    // With sequential scans priced out, a query no index can serve still
    // scans the table; one the indexes serve does not.
    let mut conn = api.db.pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    for scope in [Scope::All, Scope::User(alice.id)] {
        let sql = format!("EXPLAIN {}", stats_sql(scope));
        let mut query = sqlx::query_scalar::<_, String>(&sql).bind(now - TimeDelta::hours(24));
        if let Scope::User(owner) = scope {
            query = query.bind(owner);
        }
        let plan = query.fetch_all(&mut *conn).await.unwrap().join("\n");
        assert!(
            !plan.contains("Seq Scan on webhook_logs"),
            "{scope:?}:\n{plan}"
        );
        assert!(plan.contains("webhook_logs_"), "{scope:?}:\n{plan}");
    }
    drop(conn);
    api.stop().await;
}

// ---------------------------------------------------------------- templates

#[tokio::test]
async fn templates_list_the_presets_and_each_one_is_accepted_as_a_webhook_template() {
    let api = Api::spawn().await;
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
        let created = api
            .post(
                &alice,
                "/webhooks",
                json!({"name": preset["name"], "url": "https://example.com/h",
                       "events": ["*"], "template": preset["template"]}),
            )
            .await;
        assert_status(&created, StatusCode::CREATED, &preset["id"].to_string());
        assert_eq!(created.json["template"], preset["template"]);
    }
    let telegram = &presets[1]["template"];
    let parsed: Value = serde_json::from_str(telegram.as_str().unwrap()).unwrap();
    assert_eq!(parsed["chat_id"], "<chat_id>");
    assert_eq!(presets[4]["template"], Value::Null);
    assert_eq!(presets[3]["name"], "Microsoft Teams");
    api.stop().await;
}

// ---------------------------------------------------------------- OpenAPI

/// The routes SPEC §8 names (plus the ones this API adds), as OpenAPI paths.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/me"),
    ("get", "/api/v1/events"),
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
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_the_router_serves() {
    let api = Api::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.quiet_webhook(&alice, "a").await;
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

// ---------------------------------------------------------------- the whole daemon

#[tokio::test]
async fn a_retried_delivery_is_redelivered_and_gets_exactly_one_more_attempt() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let (_alice, token) = app.create_user("alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.always(500);
    let hook = app
        .create_webhook(
            &token,
            json!({"name": "h", "url": receiver.url(), "events": ["task.created"],
                   "secret": SECRET}),
        )
        .await;
    let id = hook["id"].as_i64().unwrap();
    let message = webhookd_producer::EventMessage::new(
        "task.created",
        json!({"task_id": 1, "title": "t", "status": "pending", "priority": "low"}),
        1_708_435_200,
    )
    .unwrap();
    app.publisher.publish(&message).await.unwrap();
    let state = |app: &TestApp| {
        let pool = app.db.pool.clone();
        async move {
            sqlx::query_as::<_, (Uuid, String, i32)>(
                "SELECT id, status, attempts FROM deliveries WHERE webhook_id = $1",
            )
            .bind(id)
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    };
    let delivery = eventually(WAIT, "the delivery to fail for good", || async {
        state(&app)
            .await
            .filter(|(_, status, _)| status == "failed")
    })
    .await;
    assert_eq!(delivery.2, 2);

    let retry = |body: Value| {
        let url = app.url(&format!("/api/v1/webhooks/{id}/retry"));
        let request = app.http.post(url).bearer_auth(&token).json(&body);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    // Still failing: one more attempt, then failed again (no new schedule).
    let answer = retry(json!({"delivery_id": delivery.0.to_string()})).await;
    assert_eq!(answer, json!({"retried": 1}));
    let after = eventually(WAIT, "the retried attempt to be recorded", || async {
        state(&app)
            .await
            .filter(|(_, status, attempts)| status == "failed" && *attempts == 3)
    })
    .await;
    assert_eq!(after.2, 3);
    assert_eq!(receiver.wait_for(3, WAIT).await.len(), 3);

    // Fixed receiver: retrying all failed ones delivers it.
    receiver.always(200);
    assert_eq!(
        retry(json!({"all_failed": true})).await,
        json!({"retried": 1})
    );
    eventually(WAIT, "the delivery to succeed", || async {
        state(&app)
            .await
            .filter(|(_, status, attempts)| status == "succeeded" && *attempts == 4)
    })
    .await;
    let got = receiver.wait_for(4, WAIT).await;
    assert_eq!(got.len(), 4, "exactly one request per attempt");
    assert!(got
        .iter()
        .all(|r| r.header("x-webhook-id") == delivery.0.to_string()));
    assert_eq!(got[3].header("x-webhook-attempt"), "4");
    app.stop().await;
}
