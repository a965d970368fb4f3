//! SPEC §15 quotas: webhooks per user (409 past `limits.max_webhooks_per_user`,
//! even for concurrent creates) and synchronous tests in progress per user
//! (429 with `Retry-After` past `limits.max_concurrent_tests_per_user`), and
//! bulk retries, one per user at a time (429 with `Retry-After`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use webhookd_e2e::api::{assert_status, hook, id_of, ApiServer, Reply};
use webhookd_e2e::{eventually, Receiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

/// A 429 with a `Retry-After` of at least a second and an error saying `why`.
fn assert_busy(busy: &Reply, why: &str, what: &str) {
    assert_status(busy, StatusCode::TOO_MANY_REQUESTS, what);
    assert!(
        busy.headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "{what}: {:?}",
        busy.headers
    );
    assert!(
        busy.json["error"].as_str().unwrap().contains(why),
        "{what}: {}",
        busy.json
    );
}

/// `webhookd_quota_refusals_total{quota}`: every refusal is counted.
fn refusals(api: &ApiServer, quota: &str) -> f64 {
    api.metric(&format!(
        "webhookd_quota_refusals_total{{quota=\"{quota}\"}}"
    ))
}

#[tokio::test]
async fn creating_past_max_webhooks_per_user_answers_409_naming_the_limit() {
    let api = ApiServer::spawn_with(&[("WEBHOOKD__LIMITS__MAX_WEBHOOKS_PER_USER", "2")]).await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    api.create_webhook(&alice, hook("one")).await;
    let second = api.create_webhook(&alice, hook("two")).await;

    let refused = api.post(&alice, "/webhooks", hook("three")).await;
    assert_status(&refused, StatusCode::CONFLICT, "third webhook");
    let message = refused.json["error"].as_str().unwrap();
    assert!(
        message.contains("limits.max_webhooks_per_user"),
        "{message}"
    );
    assert!(message.contains('2'), "{message}");
    assert_eq!(refusals(&api, "webhooks"), 1.0);
    // Another user's quota is their own; a deletion frees a place.
    api.create_webhook(&bob, hook("bob's")).await;
    let deleted = api
        .delete(&alice, &format!("/webhooks/{}", id_of(&second)))
        .await;
    assert_status(&deleted, StatusCode::NO_CONTENT, "delete");
    api.create_webhook(&alice, hook("three")).await;
}

#[tokio::test]
async fn concurrent_creates_cannot_pass_the_limit_together() {
    let api = ApiServer::spawn_with(&[("WEBHOOKD__LIMITS__MAX_WEBHOOKS_PER_USER", "2")]).await;
    let alice = api.user("alice", false).await;
    let creates = (0..10).map(|i| api.post(&alice, "/webhooks", hook(&format!("h{i}"))));
    let replies = futures_util::future::join_all(creates).await;
    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let refused = replies
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, refused), (2, 8));
    assert_eq!(refusals(&api, "webhooks"), 8.0);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks WHERE user_id = $1")
        .bind(alice.id)
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_test_in_progress_holds_the_users_only_slot_until_it_ends() {
    let api = ApiServer::spawn_with(&[
        ("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
        ("WEBHOOKD__LIMITS__MAX_CONCURRENT_TESTS_PER_USER", "1"),
    ])
    .await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let receiver = Receiver::start(SECRET).await;
    let body = json!({"name": "a", "url": receiver.url(), "events": ["task.created"],
                      "secret": SECRET, "timeout_ms": 60000});
    let id = id_of(&api.create_webhook(&alice, body.clone()).await);
    let bobs = id_of(&api.create_webhook(&bob, body).await);

    receiver.hold();
    let path = format!("/webhooks/{id}/test");
    let held = api.post(&alice, &path, json!({}));
    let second = async {
        eventually(WAIT, "the first test held by the receiver", || async {
            (receiver.held() == 1).then_some(())
        })
        .await;
        let busy = api.post(&alice, &path, json!({})).await;
        // Another user's tests are counted apart.
        receiver.release();
        let bobs = api
            .post(&bob, &format!("/webhooks/{bobs}/test"), json!({}))
            .await;
        (busy, bobs)
    };
    let (first, (busy, bobs)) = tokio::join!(held, second);
    assert_busy(
        &busy,
        "limits.max_concurrent_tests_per_user",
        "second concurrent test",
    );
    assert_eq!(refusals(&api, "tests"), 1.0);
    assert_eq!(refusals(&api, "bulk_retries"), 0.0);
    assert_status(&first, StatusCode::OK, "the held test");
    assert_eq!(first.json["is_success"], true, "{}", first.json);
    assert_status(&bobs, StatusCode::OK, "bob's test");

    let again = api.post(&alice, &path, json!({})).await;
    assert_status(&again, StatusCode::OK, "a test after the first ended");
    assert_eq!(again.json["is_success"], true, "{}", again.json);
}

#[tokio::test]
async fn a_bulk_retry_in_progress_makes_the_users_next_one_wait_with_429() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    let bob = api.user("bob", false).await;
    let alices = api.create_quiet_webhook(&alice, "alice's").await;
    let bobs = api.create_quiet_webhook(&bob, "bob's").await;
    let held = api.seed_delivery(alices, "task.created", "failed").await;
    api.seed_delivery(bobs, "task.created", "failed").await;

    // A row lock taken here keeps alice's "retry all failed" inside its
    // UPDATE, so it is provably in progress while the others ask.
    let mut lock = api.db.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM deliveries WHERE id = $1 FOR UPDATE")
        .bind(held)
        .execute(&mut *lock)
        .await
        .unwrap();
    let path = format!("/webhooks/{alices}/retry");
    let first = api.post(&alice, &path, json!({"all_failed": true}));
    let others = async {
        eventually(
            WAIT,
            "alice's bulk retry waiting on the row lock",
            || async {
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE 'UPDATE deliveries%'",
                )
                .fetch_one(&api.db.pool)
                .await
                .unwrap();
                (waiting == 1).then_some(())
            },
        )
        .await;
        let all_again = api.post(&alice, &path, json!({"all_failed": true})).await;
        let range = api
            .post(
                &alice,
                &path,
                json!({"failed_since": "2020-01-01T00:00:00Z",
                       "failed_until": "2100-01-01T00:00:00Z"}),
            )
            .await;
        let bobs = api
            .post(
                &bob,
                &format!("/webhooks/{bobs}/retry"),
                json!({"all_failed": true}),
            )
            .await;
        lock.commit().await.unwrap();
        (all_again, range, bobs)
    };
    let (first, (all_again, range, bobs)) = tokio::join!(first, others);

    for (busy, what) in [
        (&all_again, "a second retry-all"),
        (&range, "a range retry"),
    ] {
        assert_busy(busy, "bulk retry is already running", what);
    }
    assert_eq!(refusals(&api, "bulk_retries"), 2.0);
    assert_status(&bobs, StatusCode::OK, "bob's own bulk retry");
    assert_eq!(bobs.json["retried"], 1, "{}", bobs.json);
    assert_status(&first, StatusCode::OK, "the held retry");
    assert_eq!(first.json["retried"], 1, "{}", first.json);

    let after = api.post(&alice, &path, json!({"all_failed": true})).await;
    assert_status(&after, StatusCode::OK, "a retry after the first ended");
    assert_eq!(after.json["retried"], 0, "{}", after.json);
}
