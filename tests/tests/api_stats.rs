//! `GET /stats`: attempts per hour and summaries per webhook and event
//! (counts, success rate, percentiles) for a user or, for admins, everyone;
//! and the statistics query of the hours not rolled up served by the logs
//! indexes. Served by
//! `api::router` against a fresh database with seeded log rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use webhookd_e2e::api::{assert_invalid, assert_status, ApiServer, Log, User};
use webhookd_store::response_histogram;
use webhookd_store::stats::{live_sql, RELATIVE_ERROR};
use webhookd_store::webhooks::Scope;

/// `percentile_cont`: linear interpolation between the closest ranks.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

/// Percentiles come from response-time histograms (so that rolled-up hours
/// can be merged): they are within `RELATIVE_ERROR` of `percentile_cont`'s
/// value, exact below 25 ms.
#[track_caller]
fn assert_percentile(actual: &Value, expected: f64, context: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{context}: {actual}"));
    assert!(
        (actual - expected).abs() <= RELATIVE_ERROR * expected + 1e-9,
        "{context}: {actual} not within {RELATIVE_ERROR} of {expected}"
    );
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
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let admin = api.user("root", true).await;
    let a = api.create_quiet_webhook(&alice, "A").await;
    let b = api.create_quiet_webhook(&alice, "B").await;
    let c = api.create_quiet_webhook(&bob, "C").await;
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
            assert_percentile(&value["p50_ms"], percentile(&times, 0.5), context);
            assert_percentile(&value["p95_ms"], percentile(&times, 0.95), context);
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
    assert_percentile(&day["webhooks"][0]["p50_ms"], 550.0, "A p50");
    assert_percentile(&day["webhooks"][0]["p95_ms"], 955.0, "A p95");
    // B's 30 ms shares a bucket with 31 ms (buckets are one millisecond
    // wide only up to 25 ms), so even this one is only within the bound.
    assert_percentile(&day["webhooks"][1]["p95_ms"], 29.0, "B p95");
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
    let api = ApiServer::spawn_with_private_targets().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "a").await;
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
        let sql = format!("EXPLAIN {}", live_sql(scope));
        let mut query = sqlx::query_scalar::<_, String>(&sql)
            .bind(response_histogram::bounds())
            .bind(now - TimeDelta::hours(24))
            .bind(None::<DateTime<Utc>>);
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
