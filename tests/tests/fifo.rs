//! FIFO webhooks (SPEC §13, `ordering: "fifo"`) end to end: producer →
//! RabbitMQ → two worker processes → receivers on 127.0.0.1 that verify
//! signatures. One delivery at a time, in consumption order, across
//! replicas; a failing head holds back the rest (and nothing else); the
//! order survives `kill -9` and SIGTERM of the worker holding the head;
//! sequencers racing in Postgres let one delivery go at a time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use webhookd_e2e::db::TestDb;
use webhookd_e2e::process::{task_created, Deployment};
use webhookd_e2e::{eventually, Received, Receiver, TestApp};
use webhookd_events::delivery::Lease;
use webhookd_events::NewEvent;
use webhookd_store::fanout::{record_fanout, subscribers};
use webhookd_store::fifo::advance_queues;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);

/// Makes a deployment's webhook FIFO, as `PATCH {"ordering": "fifo"}` would.
async fn make_fifo(deployment: &Deployment, webhook: i64) {
    sqlx::query("UPDATE webhooks SET ordering = 'fifo' WHERE id = $1")
        .bind(webhook)
        .execute(&deployment.db.pool)
        .await
        .unwrap();
}

/// The `task_id` each request carried, in arrival order.
fn task_ids(received: &[Received]) -> Vec<u64> {
    received
        .iter()
        .map(|r| r.json()["data"]["task_id"].as_u64().unwrap())
        .collect()
}

/// How many deliveries the webhook has, whatever their state.
async fn deliveries_of(deployment: &Deployment, webhook: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE webhook_id = $1")
        .bind(webhook)
        .fetch_one(&deployment.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_failing_head_holds_back_a_fifo_webhook_across_two_workers_and_nothing_else() {
    const EVENTS: usize = 8;
    let deployment = Deployment::new().await;
    let ordered = Receiver::start(SECRET).await;
    let unordered = Receiver::start(SECRET).await;
    let fifo = deployment.subscribe(&ordered.url(), SECRET).await;
    make_fifo(&deployment, fifo).await;
    deployment.subscribe(&unordered.url(), SECRET).await;
    ordered.always(500);
    // Small prefetch: both workers take part of the stream. Enough attempts
    // that the head is still being retried when the receiver recovers.
    let settings = [
        ("WEBHOOKD__BROKER__PREFETCH", "2"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "50"),
    ];
    let first = deployment.worker(&settings).await;
    let second = deployment.worker(&settings).await;

    // One at a time, each recorded before the next is published, so the
    // consumption order is the publication order whichever worker takes it.
    for n in 0..EVENTS {
        deployment
            .publisher
            .publish(&task_created(n))
            .await
            .unwrap();
        let want = i64::try_from(n + 1).unwrap();
        eventually(WAIT, "the event recorded", || async {
            (deliveries_of(&deployment, fifo).await == want).then_some(())
        })
        .await;
    }
    // The other webhook gets everything while the head keeps failing.
    unordered.wait_for(EVENTS, WAIT).await;
    eventually(WAIT, "the head retried", || async {
        (ordered.count() >= 3).then_some(())
    })
    .await;
    let ids = task_ids(&ordered.received());
    assert!(
        ids.iter().all(|&id| id == 0),
        "only the head is tried: {ids:?}"
    );
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND status = 'queued'",
    )
    .bind(fifo)
    .fetch_one(&deployment.db.pool)
    .await
    .unwrap();
    assert_eq!(queued, i64::try_from(EVENTS - 1).unwrap());

    // The receiver recovers: the head succeeds, then the rest, in order,
    // each once.
    ordered.always(200);
    let received = eventually(WAIT, "the rest, after the head", || async {
        let received = ordered.received();
        let last = task_ids(&received).last().copied();
        (last == Some(EVENTS as u64 - 1)).then_some(received)
    })
    .await;
    let ids = task_ids(&received);
    let head_attempts = ids.iter().take_while(|&&id| id == 0).count();
    assert!(head_attempts >= 3, "{ids:?}");
    assert_eq!(
        ids[head_attempts..].to_vec(),
        (1..EVENTS as u64).collect::<Vec<_>>(),
        "in order, one each: {ids:?}"
    );
    let head_ids: Vec<&str> = received[..head_attempts]
        .iter()
        .map(|r| r.header("x-webhook-id"))
        .collect();
    assert!(head_ids.windows(2).all(|w| w[0] == w[1]), "{head_ids:?}");
    assert!(received.iter().all(|r| r.seed_signature_valid));
    eventually(WAIT, "every delivery succeeded", || async {
        (deployment.succeeded().await == i64::try_from(2 * EVENTS).unwrap()).then_some(())
    })
    .await;
    assert_eq!(
        deployment.delivery_statuses().await,
        vec![("succeeded".to_owned(), i64::try_from(2 * EVENTS).unwrap())]
    );
    for worker in [first, second] {
        assert!(worker.terminate().await.success());
    }
    deployment.cleanup().await;
}

#[tokio::test]
async fn the_order_survives_kill_9_and_sigterm_of_the_worker_holding_the_head() {
    let deployment = Deployment::new().await;
    let receiver = Receiver::start(SECRET).await;
    let fifo = deployment.subscribe(&receiver.url(), SECRET).await;
    make_fifo(&deployment, fifo).await;
    let settings = [
        ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "2000"),
        ("WEBHOOKD__SCHEDULER__LEASE_MARGIN_MS", "500"),
        ("WEBHOOKD__SHUTDOWN__GRACE_PERIOD_MS", "500"),
    ];
    receiver.hold();
    let worker = deployment.worker(&settings).await;
    deployment.publish(4).await;
    eventually(WAIT, "the head in flight", || async {
        (receiver.held() == 1).then_some(())
    })
    .await;
    // Killed with the head in flight: its lease runs out, and the next
    // worker sends the head again before anything else.
    worker.kill().await;
    let worker = deployment.worker(&settings).await;
    eventually(WAIT, "the head sent again", || async {
        (receiver.count() == 2 && receiver.held() == 1).then_some(())
    })
    .await;
    // SIGTERM with the head in flight: handed back, sent again by the next.
    assert!(worker.terminate().await.success());
    receiver.release();
    let last = deployment.worker(&settings).await;
    let received = receiver.wait_for(6, WAIT).await;
    let ids = task_ids(&received);
    assert_eq!(ids, vec![0, 0, 0, 1, 2, 3], "{ids:?}");
    let head: Vec<&str> = received[..3]
        .iter()
        .map(|r| r.header("x-webhook-id"))
        .collect();
    assert!(head.windows(2).all(|w| w[0] == w[1]), "{head:?}");
    eventually(WAIT, "all succeeded", || async {
        (deployment.succeeded().await == 4).then_some(())
    })
    .await;
    assert!(last.terminate().await.success());
    deployment.cleanup().await;
}

#[tokio::test]
async fn ordering_is_none_by_default_fifo_on_request_and_checked() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let base = json!({"name": "f", "url": "http://127.0.0.1:9/hook", "events": ["*"]});
    let create = |body: Value| app.api(&token, Method::POST, "/api/v1/webhooks", body);
    let (_, plain) = create(base.clone()).await;
    assert_eq!(plain["ordering"], "none", "{plain}");
    let mut body = base.clone();
    body["ordering"] = json!("fifo");
    let (status, created) = create(body).await;
    assert_eq!(status, 201);
    assert_eq!(created["ordering"], "fifo");
    let mut wrong = base.clone();
    wrong["ordering"] = json!("lifo");
    let (status, error) = create(wrong).await;
    assert_eq!(status, 422);
    assert_eq!(error["field"], "ordering", "{error}");

    let id = created["id"].as_i64().unwrap();
    let path = format!("/api/v1/webhooks/{id}");
    let patch = |body: Value| app.api(&token, Method::PATCH, &path, body);
    let (_, off) = patch(json!({"ordering": "none"})).await;
    assert_eq!(off["ordering"], "none");
    for bad in [json!(null), json!("FIFO"), json!(1)] {
        let (status, _) = patch(json!({ "ordering": bad })).await;
        assert!(status == 422 || status == 400, "{bad}: {status}");
    }
    let (_, shown) = app.api(&token, Method::GET, &path, Value::Null).await;
    assert_eq!(shown["ordering"], "none", "kept");
    app.stop().await;
}

/// The delivery ids of the webhook's rows in `status`, oldest event first.
async fn with_status(pool: &sqlx::PgPool, status: &str) -> Vec<uuid::Uuid> {
    sqlx::query_scalar("SELECT d.id FROM deliveries d WHERE d.status = $1 ORDER BY d.event_id")
        .bind(status)
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Eight sequencers at once, as eight replicas would run them.
async fn race(pool: &sqlx::PgPool) -> (i64, i64) {
    let passes = (0..8).map(|_| advance_queues(pool));
    let done = futures_util::future::join_all(passes).await;
    done.into_iter().fold((0, 0), |(let_go, released), pass| {
        let pass = pass.unwrap();
        (let_go + pass.let_go, released + pass.released)
    })
}

#[tokio::test]
async fn racing_sequencers_let_one_delivery_go_at_a_time_in_order_and_a_switch_frees_the_rest() {
    let db = TestDb::create().await;
    let pool = &db.pool;
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'u')")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO webhooks (id, user_id, name, url, events, secret, ordering)
         VALUES (1, 1, 'hook', 'http://127.0.0.1:9/', '{*}', 's', 'fifo')",
    )
    .execute(pool)
    .await
    .unwrap();
    // Time-ordered ids, so `ORDER BY event_id` is the consumption order.
    let events: Vec<NewEvent> = (0..5)
        .map(|_| {
            let id = uuid::Uuid::now_v7();
            NewEvent {
                id,
                event: "task.created",
                user_id: None,
                body: Arc::from(format!(r#"{{"id":"{id}"}}"#)),
                patterns: webhookd_events::candidate_patterns("task.created"),
            }
        })
        .collect();
    let lease = Lease {
        default_timeout_ms: 1000,
        margin_ms: 1000,
    };
    let mut conn = pool.acquire().await.unwrap();
    let routed: Vec<_> = subscribers(&mut conn, &events)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.claim)
        .collect();
    let claims = record_fanout(&mut conn, &events, &routed, lease)
        .await
        .unwrap();
    assert!(claims.iter().all(|c| c.fifo && !c.batching), "{claims:?}");
    let queued = with_status(pool, "queued").await;
    assert_eq!(queued.len(), 5, "written queued, none leased");

    assert_eq!(race(pool).await, (1, 0), "one let go, whoever wins");
    assert_eq!(with_status(pool, "pending").await, vec![queued[0]]);
    assert_eq!(race(pool).await, (0, 0), "the head is still pending");

    // The head succeeds, then the next fails for good: each lets one go.
    for (ended, next) in [("succeeded", 1), ("failed", 2)] {
        sqlx::query("UPDATE deliveries SET status = $1 WHERE status = 'pending'")
            .bind(ended)
            .execute(pool)
            .await
            .unwrap();
        assert_eq!(race(pool).await, (1, 0));
        assert_eq!(with_status(pool, "pending").await, vec![queued[next]]);
    }

    // No longer FIFO: the rest goes at once, beside the head in flight.
    sqlx::query("UPDATE webhooks SET ordering = 'none'")
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(race(pool).await, (0, 2));
    assert_eq!(with_status(pool, "pending").await, queued[2..].to_vec());
    assert!(with_status(pool, "queued").await.is_empty());
    drop(conn);
    db.drop_database().await;
}
