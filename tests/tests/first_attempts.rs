//! First attempts before the fan-out write (`fanout.rs`): an attempt that
//! ends within `delivery.first_attempt_window_ms` is written once, with its
//! outcome; one that outlasts it is written pending (its message acked) and
//! updated when it ends; with no window every delivery is written first.

#![allow(clippy::unwrap_used)]
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;
use webhookd_e2e::db::{count, TestDb};
use webhookd_e2e::process::{queue_counts, sample, task_created, Deployment};
use webhookd_e2e::{eventually, Receiver, Subscribed, TestApp};
use webhookd_events::delivery::{AttemptRecord, ClaimedDelivery, Lease, NextStep};
use webhookd_events::NewEvent;
use webhookd_producer::EventMessage;
use webhookd_store::fanout::{
    prepare_statements, record_fanout, subscribers, write_fanout, FanoutRow, FirstAttempt,
};

const SECRET: &str = "first-attempt-secret";
const WAIT: Duration = Duration::from_secs(15);

/// A delivery's row: status, attempts, whether it was ever updated
/// (`updated_at` differs from `created_at`), and its id.
#[derive(Debug, sqlx::FromRow)]
struct Row {
    id: Uuid,
    status: String,
    attempts: i32,
    updated: bool,
}

async fn delivery(pool: &PgPool, event: Uuid) -> Option<Row> {
    sqlx::query_as::<_, Row>(
        "SELECT id, status, attempts, updated_at <> created_at AS updated
         FROM deliveries WHERE event_id = $1",
    )
    .bind(event)
    .fetch_optional(pool)
    .await
    .expect("query")
}

/// The delivery's row once it has succeeded.
async fn succeeded(app: &TestApp, event: Uuid, what: &str) -> Row {
    eventually(WAIT, what, || async {
        delivery(&app.db.pool, event)
            .await
            .filter(|row| row.status == "succeeded")
    })
    .await
}

async fn logged_attempts(pool: &PgPool, delivery: Uuid) -> Vec<(i32, bool)> {
    sqlx::query_as(
        "SELECT attempt, is_success FROM webhook_logs WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery)
    .fetch_all(pool)
    .await
    .expect("query")
}

/// Nothing left in the queue, neither ready nor delivered and unacked.
async fn acked(app: &TestApp) -> Option<()> {
    (queue_counts(&app.topology.queue) == (0, 0)).then_some(())
}

/// `webhookd_fanout_written_total` for one state of the first attempt.
async fn written(app: &TestApp, first_attempt: &str) -> f64 {
    app.metric(&format!(
        "webhookd_fanout_written_total{{first_attempt=\"{first_attempt}\"}}"
    ))
    .await
}

fn event(title: &str) -> EventMessage {
    EventMessage::new("task.created", json!({"title": title}), 1_708_435_200).unwrap()
}

#[tokio::test]
async fn an_attempt_ending_in_the_window_is_written_once_with_its_outcome() {
    let Subscribed {
        app,
        receiver,
        webhook,
        ..
    } = TestApp::spawn_with_webhook(&[], json!(["task.created"]), SECRET).await;
    let sent = event("fast");
    app.publisher.publish(&sent).await.unwrap();
    let got = receiver.wait_for(1, WAIT).await;

    let row = eventually(WAIT, "the delivery to be written", || async {
        delivery(&app.db.pool, sent.id).await
    })
    .await;
    assert_eq!(row.status, "succeeded");
    assert_eq!(row.attempts, 1);
    assert!(!row.updated, "inserted with its outcome, never updated");
    assert_eq!(got[0].header("x-webhook-id"), row.id.to_string());
    let expected: Uuid = sqlx::query_scalar("SELECT webhookd_delivery_id($1, $2)")
        .bind(sent.id)
        .bind(webhook)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        row.id, expected,
        "the id comes from the event and the webhook"
    );
    assert_eq!(logged_attempts(&app.db.pool, row.id).await, [(1, true)]);
    eventually(WAIT, "the message to be acked", || acked(&app)).await;
    assert_eq!(written(&app, "ended").await, 1.0);
    assert_eq!(written(&app, "running").await, 0.0);
    app.stop().await;
}

#[tokio::test]
async fn an_attempt_outlasting_the_window_is_written_pending_acked_then_updated() {
    let Subscribed { app, receiver, .. } =
        TestApp::spawn_with_webhook(&[], json!(["task.created"]), SECRET).await;
    receiver.hold();
    let sent = event("slow");
    app.publisher.publish(&sent).await.unwrap();
    eventually(WAIT, "the request to be held", || async {
        (receiver.held() == 1).then_some(())
    })
    .await;

    // The window has passed while the receiver keeps the request open.
    let row = eventually(WAIT, "the delivery to be written", || async {
        delivery(&app.db.pool, sent.id).await
    })
    .await;
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    assert!(logged_attempts(&app.db.pool, row.id).await.is_empty());
    eventually(WAIT, "the message to be acked", || acked(&app)).await;

    assert_eq!(written(&app, "running").await, 1.0);
    receiver.release();
    let done = succeeded(&app, sent.id, "the outcome to be recorded").await;
    assert_eq!(done.attempts, 1);
    assert!(done.updated, "the outcome is an update of the pending row");
    assert_eq!(logged_attempts(&app.db.pool, row.id).await, [(1, true)]);
    assert_eq!(receiver.count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn without_a_window_every_delivery_is_written_before_its_attempt() {
    let Subscribed { app, receiver, .. } = TestApp::spawn_with_webhook(
        &[("WEBHOOKD__DELIVERY__FIRST_ATTEMPT_WINDOW_MS", "0")],
        json!(["task.created"]),
        SECRET,
    )
    .await;
    receiver.hold();
    let sent = event("written first");
    app.publisher.publish(&sent).await.unwrap();
    eventually(WAIT, "the request to be held", || async {
        (receiver.held() == 1).then_some(())
    })
    .await;
    let row = delivery(&app.db.pool, sent.id)
        .await
        .expect("written before the attempt began");
    assert_eq!((row.status.as_str(), row.attempts), ("pending", 0));
    // Written, so acked (by the commit, like every batch) while its attempt
    // is still held by the receiver.
    eventually(WAIT, "the written message to be acked", || acked(&app)).await;
    assert_eq!(receiver.held(), 1, "the attempt is still running");
    receiver.release();
    let done = succeeded(&app, sent.id, "the outcome to be recorded").await;
    assert!(done.updated);
    assert_eq!(logged_attempts(&app.db.pool, done.id).await, [(1, true)]);
    assert_eq!(written(&app, "not_started").await, 1.0);
    assert_eq!(written(&app, "ended").await, 0.0);
    app.stop().await;
}

#[tokio::test]
async fn a_first_attempt_that_fails_is_written_with_its_retry_and_retried() {
    let Subscribed { app, receiver, .. } =
        TestApp::spawn_with_webhook(&[], json!(["task.created"]), SECRET).await;
    receiver.fail_next(1, 500);
    let sent = event("fails once");
    app.publisher.publish(&sent).await.unwrap();
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[0].header("x-webhook-id"), got[1].header("x-webhook-id"));
    let done = succeeded(&app, sent.id, "the retry to be recorded").await;
    assert_eq!(done.attempts, 2);
    assert_eq!(
        logged_attempts(&app.db.pool, done.id).await,
        [(1, false), (2, true)]
    );
    app.stop().await;
}

fn new_event(id: Uuid) -> NewEvent {
    NewEvent {
        id,
        event: "task.created",
        user_id: None,
        body: Arc::from(format!(r#"{{"id":"{id}"}}"#)),
        patterns: webhookd_events::candidate_patterns("task.created"),
    }
}

fn success(delivery_id: Uuid, webhook_id: i64, payload: &Arc<str>) -> AttemptRecord {
    AttemptRecord {
        delivery_id,
        webhook_id,
        event: "task.created".into(),
        attempt: 1,
        status_code: Some(200),
        response_time_ms: 3,
        is_success: true,
        payload: payload.clone(),
        response: None,
        error_message: None,
        request_headers: None,
        response_headers: None,
        next: NextStep::Succeeded,
        disable_webhook: false,
        fifo: false,
        probe: false,
    }
}

/// A migrated database with user 1 and its webhooks, each `(id, events)`,
/// all pointing at a closed local port.
async fn db_with_webhooks(webhooks: &[(i64, &[&str])]) -> TestDb {
    let db = TestDb::create().await;
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'u')")
        .execute(&db.pool)
        .await
        .unwrap();
    for (id, events) in webhooks {
        sqlx::query(
            "INSERT INTO webhooks (id, user_id, name, url, events, secret)
             VALUES ($1, 1, 'hook', 'http://127.0.0.1:9/', $2, 's')",
        )
        .bind(id)
        .bind(events)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    db
}

#[tokio::test]
async fn delivery_ids_come_from_the_event_and_the_webhook_and_a_deleted_webhook_gets_no_rows() {
    let db = db_with_webhooks(&[(1, &["task.created"]), (2, &["*"]), (3, &["deal.won"])]).await;
    let event = new_event(Uuid::now_v7());
    let mut conn = db.pool.acquire().await.unwrap();

    let mut claims = subscribed(&mut conn, &event).await;
    claims.sort_by_key(|c| c.webhook_id);
    let webhooks: Vec<i64> = claims.iter().map(|c| c.webhook_id).collect();
    assert_eq!(webhooks, [1, 2], "the two subscribed webhooks");
    let again = subscribed(&mut conn, &event).await;
    for claim in &claims {
        assert_eq!(claim.delivery_id.get_version_num(), 8);
        assert_eq!(claim.delivery_id.as_bytes()[..6], event.id.as_bytes()[..6]);
        assert!(
            again.iter().any(|a| a.delivery_id == claim.delivery_id),
            "the same pair gets the same id"
        );
    }
    assert_ne!(claims[0].delivery_id, claims[1].delivery_id);

    // Webhook 2 is deleted while its first attempt runs.
    sqlx::query("DELETE FROM webhooks WHERE id = 2")
        .execute(&db.pool)
        .await
        .unwrap();
    let records: Vec<AttemptRecord> = claims
        .iter()
        .map(|c| success(c.delivery_id, c.webhook_id, &event.body))
        .collect();
    let rows: Vec<FanoutRow<'_>> = claims
        .iter()
        .zip(&records)
        .map(|(c, record)| FanoutRow {
            delivery_id: c.delivery_id,
            event_id: c.event_id,
            webhook_id: c.webhook_id,
            webhook_failing: c.failing,
            first: FirstAttempt::Made(record),
        })
        .collect();
    let disabled = write_fanout(&mut conn, std::slice::from_ref(&event), &rows, None)
        .await
        .unwrap();
    assert!(disabled.is_empty());
    assert_eq!(count(&db.pool, "SELECT count(*) FROM events").await, 1);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM deliveries WHERE webhook_id = 1 AND status = 'succeeded' AND attempts = 1"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM deliveries WHERE webhook_id = 2"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM webhook_logs WHERE webhook_id = 1"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM webhook_logs WHERE webhook_id = 2"
        )
        .await,
        0
    );

    // Written now: the event gets no new claims, and writing it again (the
    // same event consumed twice at once) keeps the row and logs the attempt.
    assert!(subscribed(&mut conn, &event).await.is_empty());
    write_fanout(&mut conn, std::slice::from_ref(&event), &rows[..1], None)
        .await
        .unwrap();
    assert_eq!(count(&db.pool, "SELECT count(*) FROM deliveries").await, 1);
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM webhook_logs").await,
        2
    );
    drop(conn);
    db.drop_database().await;
}

#[tokio::test]
async fn a_410_on_a_first_attempt_switches_the_webhook_off_in_the_same_write() {
    let db = db_with_webhooks(&[(1, &["task.created"])]).await;
    let event = new_event(Uuid::now_v7());
    let mut conn = db.pool.acquire().await.unwrap();
    let claims = subscribed(&mut conn, &event).await;
    let mut gone = success(claims[0].delivery_id, 1, &event.body);
    gone.status_code = Some(410);
    gone.is_success = false;
    gone.next = NextStep::Failed;
    gone.disable_webhook = true;
    let rows = [FanoutRow {
        delivery_id: claims[0].delivery_id,
        event_id: event.id,
        webhook_id: 1,
        webhook_failing: false,
        first: FirstAttempt::Made(&gone),
    }];
    let disabled = write_fanout(&mut conn, std::slice::from_ref(&event), &rows, None)
        .await
        .unwrap();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].webhook_id, 1);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM webhooks WHERE NOT is_active"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM deliveries WHERE status = 'failed' AND last_status_code = 410"
        )
        .await,
        1
    );
    drop(conn);
    db.drop_database().await;
}

/// A batch that cannot be written when the worker stops is left unacked,
/// and so is every batch queued behind it: an ack of a later batch
/// acknowledges the earlier messages too (acks are cumulative), which would
/// lose the event that was never written.
#[tokio::test]
async fn a_batch_given_up_at_shutdown_keeps_it_and_every_later_batch_unacked() {
    let deployment = Deployment::new().await;
    let receiver = Receiver::start(SECRET).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    // The deliveries of the events listed in `refused` cannot be inserted:
    // their batch's write fails until the row is removed.
    sqlx::raw_sql(
        "CREATE TABLE refused (event_id uuid PRIMARY KEY);
         CREATE FUNCTION refuse_listed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF EXISTS (SELECT 1 FROM refused WHERE event_id = NEW.event_id) THEN
                 RAISE EXCEPTION 'test: event % refused', NEW.event_id;
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_listed BEFORE INSERT ON deliveries
             FOR EACH ROW EXECUTE FUNCTION refuse_listed();",
    )
    .execute(&deployment.db.pool)
    .await
    .unwrap();
    let first = task_created(1);
    let second = task_created(2);
    sqlx::query("INSERT INTO refused VALUES ($1)")
        .bind(first.id)
        .execute(&deployment.db.pool)
        .await
        .unwrap();

    let worker = deployment.worker(&[]).await;
    deployment.publisher.publish(&first).await.unwrap();
    receiver.wait_for(1, WAIT).await;
    eventually(WAIT, "the first batch's write to fail", || async {
        let metrics = worker.metrics().await;
        sample(
            &metrics,
            "webhookd_storage_errors_total{operation=\"write_fanout\"}",
        )
        .filter(|&failed| failed >= 1.0)
    })
    .await;
    // A batch of its own, queued behind the one being retried.
    deployment.publisher.publish(&second).await.unwrap();
    receiver.wait_for(2, WAIT).await;
    worker.terminate().await;

    assert_eq!(
        queue_counts(&deployment.topology.queue),
        (2, 0),
        "both messages are back in the queue"
    );
    assert_eq!(deployment.delivery_statuses().await, vec![]);

    sqlx::query("DELETE FROM refused")
        .execute(&deployment.db.pool)
        .await
        .unwrap();
    let worker = deployment.worker(&[]).await;
    eventually(WAIT, "both events delivered and written", || async {
        (deployment.succeeded().await == 2).then_some(())
    })
    .await;
    eventually(WAIT, "both messages acked", || async {
        (queue_counts(&deployment.topology.queue) == (0, 0)).then_some(())
    })
    .await;
    worker.terminate().await;
    deployment.cleanup().await;
}

/// A consumer shard prepares its statements on a fresh connection before its
/// first batch: the prepared statements (parameter types inferred by
/// Postgres) then serve every fan-out statement with the values bound later.
#[tokio::test]
async fn statements_prepared_ahead_serve_the_fanout_reads_and_writes() {
    let db = db_with_webhooks(&[(1, &["task.*"])]).await;
    let mut conn = db.pool.acquire().await.unwrap();
    prepare_statements(&mut conn).await.unwrap();

    let event = new_event(Uuid::now_v7());
    let claims = subscribed(&mut conn, &event).await;
    assert_eq!(claims.len(), 1);
    let mut failed = success(claims[0].delivery_id, 1, &event.body);
    failed.status_code = Some(500);
    failed.is_success = false;
    failed.next = NextStep::RetryIn(Duration::from_secs(60));
    let rows = [FanoutRow {
        delivery_id: claims[0].delivery_id,
        event_id: event.id,
        webhook_id: 1,
        webhook_failing: false,
        first: FirstAttempt::Made(&failed),
    }];
    // A failure: the streaks' statement runs too.
    write_fanout(&mut conn, std::slice::from_ref(&event), &rows, None)
        .await
        .unwrap();
    let other = new_event(Uuid::now_v7());
    let lease = Lease {
        default_timeout_ms: 10_000,
        margin_ms: 1_000,
    };
    let routed = subscribed(&mut conn, &other).await;
    let recorded = record_fanout(&mut conn, std::slice::from_ref(&other), &routed, lease)
        .await
        .unwrap();
    assert_eq!(recorded.len(), 1);

    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM deliveries WHERE attempts = 1 AND status = 'pending'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM webhooks WHERE failing_since IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(count(&db.pool, "SELECT count(*) FROM deliveries").await, 2);
    drop(conn);
    db.drop_database().await;
}

/// The first-attempt claims `subscribers` reads for one event.
async fn subscribed(conn: &mut sqlx::PgConnection, event: &NewEvent) -> Vec<ClaimedDelivery> {
    subscribers(conn, std::slice::from_ref(event))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.claim)
        .collect()
}
