//! Scaling out: several `webhookd run --role worker` processes on one queue
//! are competing consumers. Every event is delivered and each replica does
//! part of the work, as its own `/metrics` shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use webhookd_e2e::eventually;
use webhookd_e2e::process::{sample, Deployment};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// Slow enough that no single worker gets through the backlog before the
/// others have taken messages of it.
const RECEIVER_DELAY: Duration = Duration::from_millis(15);

/// Event ids received, duplicates included.
type Seen = Arc<Mutex<Vec<String>>>;

async fn slow_answer(State(seen): State<Seen>, body: Bytes) {
    tokio::time::sleep(RECEIVER_DELAY).await;
    let id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    seen.lock().unwrap().push(id);
}

async fn slow_receiver() -> (String, Seen) {
    let seen = Seen::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/hook", post(slow_answer))
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), seen)
}

#[tokio::test]
async fn three_workers_on_one_queue_deliver_every_event_and_each_does_part_of_the_work() {
    const EVENTS: usize = 300;
    let deployment = Deployment::new().await;
    let (url, seen) = slow_receiver().await;
    deployment.subscribe(&url, SECRET).await;
    // All three consume before the backlog arrives, so the broker spreads it.
    let settings = [("WEBHOOKD__BROKER__PREFETCH", "10")];
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(deployment.worker(&settings).await);
    }
    let events = deployment.publish(EVENTS).await;

    let expected: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    eventually(DRAIN_LIMIT, "every event delivered", || async {
        let got: HashSet<String> = seen.lock().unwrap().iter().cloned().collect();
        (got == expected).then_some(())
    })
    .await;
    eventually(DRAIN_LIMIT, "every delivery recorded", || async {
        (deployment.succeeded().await == EVENTS as i64).then_some(())
    })
    .await;

    let delivered = r#"webhookd_deliveries_total{event="task.created",outcome="success"}"#;
    let mut total = 0.0;
    for worker in &workers {
        let mine = sample(&worker.metrics().await, delivered).unwrap_or(0.0);
        assert!(mine > 0.0, "every worker delivered some events");
        total += mine;
    }
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_logs WHERE is_success")
        .fetch_one(&deployment.db.pool)
        .await
        .unwrap();
    assert_eq!(
        total, logged as f64,
        "the replicas' counters add up to the recorded successes"
    );
    for worker in workers {
        worker.terminate().await;
    }
    deployment.cleanup().await;
}
