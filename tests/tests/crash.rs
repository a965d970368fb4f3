//! Workers that die or are stopped mid-work: `kill -9` of the real binary in
//! the middle of a backlog, one of several workers killed, and SIGTERM while
//! requests are in flight. Nothing is lost; duplicates stay within the
//! in-flight window and carry the delivery's own `X-Webhook-Id`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use webhookd_e2e::eventually;
use webhookd_e2e::process::{sample, Deployment};
use webhookd_e2e::{Received, Receiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Bound for a whole backlog to be delivered.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);

/// The in-flight window: unacked messages per worker and deliveries held in
/// memory per worker. Leases are short so a dead worker's deliveries come
/// back quickly.
const PREFETCH: usize = 20;
const MAX_IN_FLIGHT: usize = 60;

fn worker_settings() -> Vec<(&'static str, String)> {
    vec![
        ("WEBHOOKD__BROKER__PREFETCH", PREFETCH.to_string()),
        (
            "WEBHOOKD__DELIVERY__MAX_IN_FLIGHT",
            MAX_IN_FLIGHT.to_string(),
        ),
        ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "1000".to_owned()),
        ("WEBHOOKD__SCHEDULER__LEASE_MARGIN_MS", "500".to_owned()),
    ]
}

fn borrowed<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// What one receiver got, per event id: how many requests, and the delivery
/// ids (`X-Webhook-Id`) they carried.
#[derive(Default)]
struct Tally {
    per_event: HashMap<String, (usize, HashSet<String>)>,
    requests: usize,
}

impl Tally {
    fn of(received: &[Received]) -> Tally {
        let mut tally = Tally::default();
        for request in received {
            let event_id = request.json()["id"].as_str().unwrap_or_default().to_owned();
            let entry = tally.per_event.entry(event_id).or_default();
            entry.0 += 1;
            entry.1.insert(request.header("x-webhook-id").to_owned());
            tally.requests += 1;
        }
        tally
    }

    fn distinct(&self) -> usize {
        self.per_event.len()
    }

    fn duplicates(&self) -> usize {
        self.requests - self.distinct()
    }

    /// Events whose requests did not all carry one delivery id.
    fn mixed_delivery_ids(&self) -> Vec<&String> {
        self.per_event
            .iter()
            .filter(|(_, (_, ids))| ids.len() != 1)
            .map(|(event, _)| event)
            .collect()
    }
}

/// Waits until every receiver has every one of `events` distinct events.
async fn wait_for_all(receivers: &[&Receiver], events: usize) {
    eventually(DRAIN_LIMIT, "every event at every receiver", || async {
        receivers
            .iter()
            .all(|r| Tally::of(&r.received()).distinct() >= events)
            .then_some(())
    })
    .await;
}

/// Checks what the receivers got after the backlog of `events` was drained:
/// every event, signed, one delivery id per event and webhook. Returns the
/// number of duplicate requests.
fn check_received(receivers: &[&Receiver], events: &[webhookd_producer::EventMessage]) -> usize {
    let expected: HashSet<String> = events.iter().map(|e| e.id.to_string()).collect();
    let mut duplicates = 0;
    for receiver in receivers {
        let received = receiver.received();
        assert!(
            received
                .iter()
                .all(|r| r.seed_signature_valid && r.standard_signature_valid),
            "every request is signed"
        );
        assert!(
            received
                .iter()
                .all(|r| r.header("x-webhook-id") == r.header("webhook-id")),
            "both id headers agree"
        );
        let tally = Tally::of(&received);
        let got: HashSet<String> = tally.per_event.keys().cloned().collect();
        assert_eq!(got, expected, "every event, and only those, arrived");
        assert_eq!(
            tally.mixed_delivery_ids(),
            Vec::<&String>::new(),
            "a duplicate carries the X-Webhook-Id of the event's first delivery"
        );
        duplicates += tally.duplicates();
    }
    duplicates
}

#[tokio::test]
async fn a_worker_killed_mid_backlog_loses_nothing_and_duplicates_stay_within_the_in_flight_window()
{
    const EVENTS: usize = 3000;
    let deployment = Deployment::new().await;
    let first = Receiver::start(SECRET).await;
    let second = Receiver::start(SECRET).await;
    deployment.subscribe(&first.url(), SECRET).await;
    deployment.subscribe(&second.url(), SECRET).await;
    let receivers = [&first, &second];
    let events = deployment.publish(EVENTS).await;
    let settings = worker_settings();

    let worker = deployment.worker(&borrowed(&settings)).await;
    let quarter = EVENTS * receivers.len() / 4;
    let at_kill = eventually(DRAIN_LIMIT, "a quarter of the deliveries", || async {
        let got = first.count() + second.count();
        (got >= quarter).then_some(got)
    })
    .await;
    worker.kill().await;
    assert!(
        at_kill < EVENTS * receivers.len(),
        "killed mid-backlog ({at_kill} requests so far)"
    );

    let restarted = deployment.worker(&borrowed(&settings)).await;
    wait_for_all(&receivers, EVENTS).await;
    let duplicates = check_received(&receivers, &events);
    assert!(
        duplicates <= PREFETCH + MAX_IN_FLIGHT,
        "{duplicates} duplicates, more than the in-flight window ({PREFETCH} + {MAX_IN_FLIGHT})"
    );
    eventually(
        DRAIN_LIMIT,
        "every delivery recorded as succeeded",
        || async {
            (deployment.succeeded().await == (EVENTS * receivers.len()) as i64).then_some(())
        },
    )
    .await;
    eprintln!("killed at {at_kill} requests; {duplicates} duplicates");

    restarted.terminate().await;
    deployment.cleanup().await;
}

#[tokio::test]
async fn with_three_workers_one_killed_the_others_keep_delivering_every_event() {
    const EVENTS: usize = 1500;
    let deployment = Deployment::new().await;
    let receiver = Receiver::start(SECRET).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    let events = deployment.publish(EVENTS).await;
    let settings = worker_settings();

    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(deployment.worker(&borrowed(&settings)).await);
    }
    let victim = workers.remove(1);
    let consumed = r#"webhookd_events_consumed_total{event="task.created"}"#;
    eventually(DRAIN_LIMIT, "the victim to take part", || async {
        let mine = sample(&victim.metrics().await, consumed).unwrap_or(0.0);
        (mine > 0.0 && receiver.count() >= EVENTS / 4).then_some(())
    })
    .await;
    let at_kill = receiver.count();
    victim.kill().await;
    assert!(
        at_kill < EVENTS,
        "killed mid-run ({at_kill} requests so far)"
    );

    wait_for_all(&[&receiver], EVENTS).await;
    let duplicates = check_received(&[&receiver], &events);
    assert!(
        duplicates <= PREFETCH + MAX_IN_FLIGHT,
        "{duplicates} duplicates, more than the victim's in-flight window"
    );
    for worker in &workers {
        let delivered = sample(&worker.metrics().await, consumed).unwrap_or(0.0);
        assert!(delivered > 0.0, "every survivor consumed events");
    }
    for worker in workers {
        worker.terminate().await;
    }
    deployment.cleanup().await;
}

// ---------------------------------------------------------------------------
// SIGTERM
// ---------------------------------------------------------------------------

/// One request as a slow receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    delivery_id: String,
    event_id: String,
}

#[derive(Default)]
struct SlowState {
    delay_ms: AtomicU64,
    /// Requests as they arrived.
    started: Mutex<Vec<Hit>>,
    /// Requests answered (with 200): the handler ran to its end.
    answered: Mutex<Vec<Hit>>,
}

/// A receiver on 127.0.0.1 that answers 200 after a delay that the test
/// changes at run time. Signatures are checked by the other tests.
struct SlowReceiver {
    addr: SocketAddr,
    state: Arc<SlowState>,
}

impl SlowReceiver {
    async fn start(delay: Duration) -> SlowReceiver {
        let state = Arc::new(SlowState::default());
        state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook", post(slow_answer))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SlowReceiver { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    fn started(&self) -> Vec<Hit> {
        self.state.started.lock().unwrap().clone()
    }

    fn answered(&self) -> Vec<Hit> {
        self.state.answered.lock().unwrap().clone()
    }

    fn answered_events(&self) -> HashSet<String> {
        self.answered()
            .into_iter()
            .map(|hit| hit.event_id)
            .collect()
    }
}

async fn slow_answer(State(state): State<Arc<SlowState>>, headers: HeaderMap, body: Bytes) {
    let event_id = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hit = Hit {
        delivery_id: headers["x-webhook-id"].to_str().unwrap().to_owned(),
        event_id,
    };
    state.started.lock().unwrap().push(hit.clone());
    let delay = Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
    tokio::time::sleep(delay).await;
    state.answered.lock().unwrap().push(hit);
}

/// Delivery ids that have a successful attempt in `webhook_logs`.
async fn logged_successes(deployment: &Deployment) -> HashSet<String> {
    let ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT delivery_id FROM webhook_logs WHERE is_success")
            .fetch_all(&deployment.db.pool)
            .await
            .unwrap();
    ids.into_iter().map(|id| id.to_string()).collect()
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish_records_them_exits_zero_and_leaves_the_rest_queued()
{
    const EVENTS: usize = 300;
    const GRACE: Duration = Duration::from_millis(5000);
    let deployment = Deployment::new().await;
    let receiver = SlowReceiver::start(Duration::from_millis(500)).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    deployment.publish(EVENTS).await;
    let grace_ms = GRACE.as_millis().to_string();
    let settings = [
        ("WEBHOOKD__BROKER__PREFETCH", "20"),
        ("WEBHOOKD__DELIVERY__MAX_IN_FLIGHT", "40"),
        ("WEBHOOKD__SHUTDOWN__GRACE_PERIOD_MS", grace_ms.as_str()),
    ];
    let mut worker = deployment.worker(&settings).await;
    eventually(
        DRAIN_LIMIT,
        "answered requests and more in flight",
        || async {
            let answered = receiver.answered().len();
            (answered >= 20 && receiver.started().len() > answered).then_some(())
        },
    )
    .await;

    let stopping = Instant::now();
    worker.sigterm();
    let status = worker.wait_exit(GRACE + Duration::from_secs(10)).await;
    let took = stopping.elapsed();
    assert!(
        status.success(),
        "exit 0 after SIGTERM: {status}\n{}",
        worker.logs()
    );
    assert!(
        took <= GRACE + Duration::from_secs(2),
        "exited within the grace period (+ margin): {took:?}"
    );
    let started = receiver.started();
    let answered = receiver.answered();
    assert_eq!(
        started.len(),
        answered.len(),
        "every request in flight at SIGTERM was allowed to finish"
    );
    let logged = logged_successes(&deployment).await;
    let unrecorded: Vec<&Hit> = answered
        .iter()
        .filter(|hit| !logged.contains(&hit.delivery_id))
        .collect();
    assert!(
        unrecorded.is_empty(),
        "every completed request is in webhook_logs; missing: {unrecorded:?}"
    );
    assert!(
        deployment.queue_ready().await > 0,
        "consuming stopped at SIGTERM: the rest of the backlog is still queued"
    );
    assert!(receiver.answered_events().len() < EVENTS);

    receiver.set_delay(Duration::ZERO);
    let next = deployment.worker(&settings).await;
    eventually(
        DRAIN_LIMIT,
        "every event delivered by the next worker",
        || async { (receiver.answered_events().len() == EVENTS).then_some(()) },
    )
    .await;
    next.terminate().await;
    deployment.cleanup().await;
}

#[tokio::test]
async fn sigterm_with_a_grace_period_shorter_than_the_receiver_exits_in_time_and_hands_work_back() {
    const EVENTS: usize = 20;
    const GRACE: Duration = Duration::from_millis(1500);
    let deployment = Deployment::new().await;
    // Slower than the grace period, faster than the request timeout.
    let receiver = SlowReceiver::start(Duration::from_secs(20)).await;
    deployment.subscribe(&receiver.url(), SECRET).await;
    deployment.publish(EVENTS).await;
    let grace_ms = GRACE.as_millis().to_string();
    // Leases of a minute: recovery within the test's bounds proves the
    // unfinished deliveries were handed back rather than left to expire.
    let settings = [
        ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "30000"),
        ("WEBHOOKD__SCHEDULER__LEASE_MARGIN_MS", "30000"),
        ("WEBHOOKD__SHUTDOWN__GRACE_PERIOD_MS", grace_ms.as_str()),
    ];
    let mut worker = deployment.worker(&settings).await;
    eventually(DRAIN_LIMIT, "every event's request in flight", || async {
        (receiver.started().len() == EVENTS).then_some(())
    })
    .await;

    let stopping = Instant::now();
    worker.sigterm();
    let status = worker.wait_exit(GRACE + Duration::from_secs(10)).await;
    let took = stopping.elapsed();
    assert!(
        status.success(),
        "exit 0 after SIGTERM: {status}\n{}",
        worker.logs()
    );
    assert!(
        took <= GRACE + Duration::from_secs(2),
        "exited within the grace period (+ margin) although requests were still running: {took:?}"
    );
    assert!(receiver.answered().is_empty());
    let (pending, due_now, attempts, logs): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*),
                count(*) FILTER (WHERE next_attempt_at <= now()),
                COALESCE(sum(attempts), 0),
                (SELECT count(*) FROM webhook_logs)
         FROM deliveries WHERE status = 'pending'",
    )
    .fetch_one(&deployment.db.pool)
    .await
    .unwrap();
    assert_eq!(pending, EVENTS as i64, "nothing finished");
    assert_eq!(
        due_now, pending,
        "every unfinished delivery is due again now"
    );
    assert_eq!((attempts, logs), (0, 0), "handing back counts no attempt");

    receiver.set_delay(Duration::ZERO);
    let next = deployment.worker(&settings).await;
    eventually(
        Duration::from_secs(20),
        "the handed-back deliveries, well before their leases would end",
        || async { (receiver.answered_events().len() == EVENTS).then_some(()) },
    )
    .await;
    next.terminate().await;
    deployment.cleanup().await;
}
