//! `/metrics` against what really happened: the scrape is parsed with a
//! Prometheus text-format parser (as Prometheus itself would read it), and
//! every counter is compared with the deliveries made and the rows written.

#![allow(clippy::unwrap_used)]
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use serde_json::json;
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);

fn task_created(n: usize) -> EventMessage {
    EventMessage::new(
        "task.created",
        json!({"task_id": n, "title": format!("task {n}"), "status": "pending", "priority": "medium"}),
        1708435200,
    )
    .unwrap()
}

async fn scrape(app: &TestApp) -> Scrape {
    let text = app.metrics_text().await;
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid exposition format")
}

/// The value of the sample `name` whose labels include `labels`; a histogram
/// gives its total count (the `+Inf` bucket).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

async fn log_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM webhook_logs")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_counters_of_a_scrape_equal_the_deliveries_actually_made() {
    let app = TestApp::spawn().await;
    let (_user, token) = app.create_user("Alice", Some(7), false).await;
    let steady = Receiver::start(SECRET).await;
    let flaky = Receiver::start(SECRET).await;
    // The flaky receiver's first answer is a 500: one attempt is retried.
    flaky.fail_next(1, 500);
    for receiver in [&steady, &flaky] {
        app.create_webhook_to(&token, &receiver.url(), json!(["task.created"]), SECRET)
            .await;
    }

    const EVENTS: usize = 5;
    for n in 0..EVENTS {
        app.publisher.publish(&task_created(n)).await.unwrap();
    }
    steady.wait_for(EVENTS, WAIT).await;
    flaky.wait_for(EVENTS + 1, WAIT).await;
    // 5 events × 2 webhooks, plus the one retry: 11 attempts, all recorded.
    let attempts = 2 * EVENTS + 1;
    eventually(WAIT, "every attempt recorded", || async {
        (log_rows(&app).await == attempts as i64).then_some(())
    })
    .await;
    let succeeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status = 'succeeded'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(succeeded, 2 * EVENTS as i64, "every delivery succeeded");

    let delivered = [("event", "task.created"), ("outcome", "success")];
    let metrics = eventually(WAIT, "the counters to catch up", || async {
        let metrics = scrape(&app).await;
        (value(&metrics, "webhookd_deliveries_total", &delivered) == Some((2 * EVENTS) as f64))
            .then_some(metrics)
    })
    .await;
    let counter = |name: &str, labels: &[(&str, &str)]| value(&metrics, name, labels);
    assert_eq!(
        counter(
            "webhookd_events_consumed_total",
            &[("event", "task.created")]
        ),
        Some(EVENTS as f64)
    );
    assert_eq!(
        counter("webhookd_events_consumed_total", &[("event", "deal.won")]),
        Some(0.0),
        "other events' series exist at 0"
    );
    assert_eq!(
        counter(
            "webhookd_deliveries_total",
            &[("event", "task.created"), ("outcome", "retry")]
        ),
        Some(1.0)
    );
    assert_eq!(
        counter(
            "webhookd_deliveries_total",
            &[("event", "task.created"), ("outcome", "failed")]
        ),
        Some(0.0)
    );
    assert_eq!(counter("webhookd_retries_scheduled_total", &[]), Some(1.0));
    assert_eq!(
        counter("webhookd_delivery_duration_seconds", &[]),
        Some(attempts as f64),
        "one duration observation per attempt"
    );
    assert_eq!(
        counter("webhookd_delivery_duration_seconds_count", &[]),
        Some(attempts as f64)
    );
    let outcomes: f64 = ["success", "retry", "failed"]
        .iter()
        .filter_map(|o| {
            counter(
                "webhookd_deliveries_total",
                &[("event", "task.created"), ("outcome", o)],
            )
        })
        .sum();
    assert_eq!(
        outcomes,
        log_rows(&app).await as f64,
        "one webhook_logs row per counted attempt"
    );
    for (class, expected) in [
        ("2xx", 2 * EVENTS),
        ("3xx", 0),
        ("4xx", 0),
        ("5xx", 1),
        ("error", 0),
    ] {
        assert_eq!(
            counter("webhookd_http_responses_total", &[("class", class)]),
            Some(expected as f64),
            "responses of class {class}"
        );
    }
    // Both receivers listen on 127.0.0.1: one host label for all attempts.
    assert_eq!(
        counter(
            "webhookd_endpoint_requests_total",
            &[("host", "127.0.0.1"), ("class", "2xx")]
        ),
        Some(10.0)
    );
    assert_eq!(
        counter(
            "webhookd_endpoint_requests_total",
            &[("host", "127.0.0.1"), ("class", "5xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        counter(
            "webhookd_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );
    assert_eq!(counter("webhookd_deliveries_in_flight", &[]), Some(0.0));
    assert_eq!(counter("webhookd_webhooks_disabled_total", &[]), Some(0.0));

    app.stop().await;
}

#[tokio::test]
async fn the_sampled_gauges_show_the_pool_the_queue_and_a_delivery_held_open() {
    let app = TestApp::spawn().await;
    let (_user, token) = app.create_user("Alice", Some(7), false).await;
    let slow = Receiver::start(SECRET).await;
    slow.hold();
    app.create_webhook_to(&token, &slow.url(), json!(["task.created"]), SECRET)
        .await;
    app.publisher.publish(&task_created(1)).await.unwrap();
    eventually(WAIT, "the request held open", || async {
        (slow.held() == 1).then_some(())
    })
    .await;

    // The sampler runs every 5 s; a scrape after the next sample shows the
    // unfinished delivery, the drained queue and connections in the pool.
    // The queue is sampled after the database (over its own broker
    // connection, opened on the first pass), so wait for both.
    let idle_labels = [("state", "idle")];
    let ready = [("queue_state", "ready")];
    let metrics = eventually(WAIT, "a sample with the held delivery", || async {
        let metrics = scrape(&app).await;
        let oldest = value(&metrics, "webhookd_oldest_pending_delivery_seconds", &[])?;
        value(&metrics, "webhookd_broker_queue_messages", &ready)?;
        (value(&metrics, "webhookd_deliveries_pending", &[]) == Some(1.0) && oldest > 0.0)
            .then_some(metrics)
    })
    .await;
    assert_eq!(
        value(
            &metrics,
            "webhookd_broker_queue_messages",
            &[("queue_state", "ready")]
        ),
        Some(0.0),
        "the event was consumed"
    );
    let idle = value(&metrics, "webhookd_db_pool_connections", &idle_labels).unwrap();
    let active = value(
        &metrics,
        "webhookd_db_pool_connections",
        &[("state", "active")],
    )
    .unwrap();
    assert!(
        idle + active >= 1.0,
        "the pool has connections: {idle} idle, {active} active"
    );

    slow.release();
    slow.wait_for(1, WAIT).await;
    eventually(WAIT, "the backlog sampled empty", || async {
        let metrics = scrape(&app).await;
        (value(&metrics, "webhookd_deliveries_pending", &[]) == Some(0.0)
            && value(&metrics, "webhookd_oldest_pending_delivery_seconds", &[]) == Some(0.0))
        .then_some(())
    })
    .await;
    app.stop().await;
}
