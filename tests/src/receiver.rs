//! A real HTTP receiver on 127.0.0.1 that verifies both signatures of every
//! request and answers with statuses the test scripts at run time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use webhookd_signing::{verify_seed, verify_standard};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub seed_signature_valid: bool,
    pub standard_signature_valid: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

#[derive(Default)]
struct Script {
    /// Statuses for the next requests, in order; then `default_status`.
    next: VecDeque<u16>,
    default_status: u16,
    retry_after: Option<String>,
}

struct Shared {
    secret: String,
    received: Mutex<Vec<Received>>,
    script: Mutex<Script>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Starts a receiver verifying signatures made with `secret`.
    pub async fn start(secret: &str) -> Receiver {
        let shared = Arc::new(Shared {
            secret: secret.to_owned(),
            received: Mutex::new(Vec::new()),
            script: Mutex::new(Script {
                default_status: 200,
                ..Script::default()
            }),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, shared }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers the next `n` requests with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        let mut script = self.shared.script.lock().unwrap();
        script.next.extend(std::iter::repeat_n(status, n));
    }

    /// Answers every later request with `status`.
    pub fn always(&self, status: u16) {
        self.shared.script.lock().unwrap().default_status = status;
    }

    pub fn retry_after(&self, value: Option<&str>) {
        self.shared.script.lock().unwrap().retry_after = value.map(str::to_owned);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    /// Waits until at least `n` requests arrived (bounded), and returns them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} requests, expected {n} within {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let now = chrono_now();
    let seed_signature_valid =
        verify_seed(&shared.secret, &body, &get("x-webhook-signature")).is_ok();
    let standard_signature_valid = verify_standard(
        &shared.secret,
        &get("webhook-id"),
        &get("webhook-timestamp"),
        &body,
        &get("webhook-signature"),
        now,
        300,
    )
    .is_ok();
    shared.received.lock().unwrap().push(Received {
        at: Instant::now(),
        headers: headers.clone(),
        body,
        seed_signature_valid,
        standard_signature_valid,
    });
    let mut script = shared.script.lock().unwrap();
    let status = script.next.pop_front().unwrap_or(script.default_status);
    let mut out = HeaderMap::new();
    if let Some(value) = &script.retry_after {
        out.insert("retry-after", value.parse().unwrap());
    }
    let status = StatusCode::from_u16(status).unwrap();
    let text = if status.is_success() {
        "ok"
    } else {
        "receiver says no"
    };
    (status, out, text)
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
