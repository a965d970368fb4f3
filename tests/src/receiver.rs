//! Real HTTP receivers on 127.0.0.1 for the end-to-end tests.
//!
//! [`Receiver`] verifies both signatures of every request and answers as the
//! test scripts at run time: statuses, `Retry-After`, redirects, huge bodies,
//! or holding requests open until released. [`ResetServer`] is a raw TCP
//! server that breaks off its answer with a reset, and [`closed_port_url`] a
//! port nothing listens on.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use webhookd_signing::{verify_seed, verify_standard};

/// The longest a held request waits for [`Receiver::release`]: a test that
/// fails before releasing must not leave requests open for ever.
const HOLD_CEILING: Duration = Duration::from_secs(60);

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// Wall-clock time of arrival, to compare with HTTP dates.
    pub received_at: chrono::DateTime<chrono::Utc>,
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
    location: Option<String>,
    /// Answer with a body of this many bytes, streamed.
    body_bytes: Option<usize>,
}

struct Shared {
    secret: String,
    received: Mutex<Vec<Received>>,
    script: Mutex<Script>,
    /// True while new requests are held open.
    holding: watch::Sender<bool>,
    /// Requests being held right now.
    held: AtomicUsize,
    /// Requests whose handler finished, i.e. that got their answer.
    answered: AtomicUsize,
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
            holding: watch::Sender::new(false),
            held: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
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

    /// Answers every later request with a redirect to `location`.
    pub fn redirect(&self, status: u16, location: &str) {
        let mut script = self.shared.script.lock().unwrap();
        script.default_status = status;
        script.location = Some(location.to_owned());
    }

    /// Answers with a body of `bytes` bytes, streamed in chunks.
    pub fn huge_body(&self, bytes: usize) {
        self.shared.script.lock().unwrap().body_bytes = Some(bytes);
    }

    /// Holds every later request open, without an answer, until
    /// [`Receiver::release`] (or a minute).
    pub fn hold(&self) {
        self.shared.holding.send_replace(true);
    }

    /// Answers the held requests and stops holding new ones.
    pub fn release(&self) {
        self.shared.holding.send_replace(false);
    }

    /// Requests held open right now.
    pub fn held(&self) -> usize {
        self.shared.held.load(Ordering::SeqCst)
    }

    /// Requests that got their answer.
    pub fn answered(&self) -> usize {
        self.shared.answered.load(Ordering::SeqCst)
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

/// Counts a request as held while it waits, even if the client gives up and
/// the handler is dropped mid-wait.
struct HeldGuard<'a>(&'a AtomicUsize);

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let now = chrono::Utc::now();
    let seed_signature_valid =
        verify_seed(&shared.secret, &body, &get("x-webhook-signature")).is_ok();
    let standard_signature_valid = verify_standard(
        &shared.secret,
        &get("webhook-id"),
        &get("webhook-timestamp"),
        &body,
        &get("webhook-signature"),
        now.timestamp(),
        300,
    )
    .is_ok();
    shared.received.lock().unwrap().push(Received {
        at: Instant::now(),
        received_at: now,
        headers: headers.clone(),
        body,
        seed_signature_valid,
        standard_signature_valid,
    });
    let mut holding = shared.holding.subscribe();
    if *holding.borrow_and_update() {
        shared.held.fetch_add(1, Ordering::SeqCst);
        let _held = HeldGuard(&shared.held);
        let released = holding.wait_for(|holding| !*holding);
        let _ = tokio::time::timeout(HOLD_CEILING, released).await;
    }
    let response = scripted_response(&shared);
    shared.answered.fetch_add(1, Ordering::SeqCst);
    response
}

fn scripted_response(shared: &Shared) -> Response {
    let mut script = shared.script.lock().unwrap();
    let status = script.next.pop_front().unwrap_or(script.default_status);
    let status = StatusCode::from_u16(status).unwrap();
    let mut out = HeaderMap::new();
    if let Some(value) = &script.retry_after {
        out.insert("retry-after", value.parse().unwrap());
    }
    if let Some(location) = &script.location {
        out.insert("location", location.parse().unwrap());
    }
    if let Some(bytes) = script.body_bytes {
        return (status, out, Body::from_stream(streamed(bytes))).into_response();
    }
    let text = if status.is_success() {
        "ok"
    } else {
        "receiver says no"
    };
    (status, out, text).into_response()
}

/// `total` bytes of `x` in 64 KiB chunks, produced as the client reads them.
fn streamed(total: usize) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    const CHUNK: usize = 64 * 1024;
    futures_util::stream::unfold(total, |left| async move {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK);
        Some((Ok(Bytes::from(vec![b'x'; n])), left - n))
    })
}

/// A raw TCP "receiver" that reads each request, writes the first bytes of a
/// response and then resets the connection (SO_LINGER 0, so the close is a
/// TCP RST rather than an orderly FIN).
pub struct ResetServer {
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl ResetServer {
    pub async fn start() -> ResetServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    if read_request(&mut stream).await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Ty").await;
                        let _ = stream.flush().await;
                    }
                    let _ = stream.set_zero_linger();
                    drop(stream);
                });
            }
        });
        ResetServer { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Requests read in full (each then answered with a reset).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request's head and its `Content-Length` body; false if the
/// client went away first.
async fn read_request(stream: &mut tokio::net::TcpStream) -> bool {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let head_end = data.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return true;
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// The URL of a port on 127.0.0.1 that was just bound and closed again, so
/// connecting to it is refused.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}
