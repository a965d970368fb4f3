//! `GET /webhooks/{id}/logs` and `/logs/{log_id}`: attempts paged newest
//! first with stable cursors, filtered by event, outcome, time and delivery,
//! bodies only on request; bad log and delivery queries answer 422 naming the
//! parameter. Served by `api::router` against a fresh database with seeded
//! rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use chrono::TimeDelta;
use reqwest::StatusCode;
use serde_json::Value;
use webhookd_e2e::api::{assert_invalid, assert_status, ApiServer, Log, Reply};

#[tokio::test]
async fn logs_page_newest_first_without_losing_or_repeating_an_attempt() {
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
    let other = api.create_quiet_webhook(&alice, "b").await;
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
        let ids = api
            .page_ids(&alice, &format!("/webhooks/{id}/logs?"), limit)
            .await;
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
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
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
    let other = api.create_quiet_webhook(&alice, "b").await;
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
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
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
