//! The HTTP server's limits [SPEC §15, issue #19 finding 3]: sockets that
//! dribble their request headers one byte at a time cannot hold the port.
//! `http.max_connections` caps the open connections (the longest-idle one
//! gives way to a new one), `http.header_read_timeout_secs` closes a request
//! whose headers are late, `http.idle_timeout_secs` a connection left unused,
//! `http.request_timeout_secs` a request whose body is late.
//!
//! Every socket stays on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webhookd_e2e::{eventually, TestApp};

/// Generous bounds for outcomes; none of them is a speed requirement.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);
const CLOSED_WITHIN: Duration = Duration::from_secs(30);
/// Between two bytes of a slow socket.
const DRIBBLE: Duration = Duration::from_millis(500);

/// Opens `count` sockets to `addr` that each send a request's headers one
/// byte per [`DRIBBLE`], never finishing them; the counter says how many the
/// server has closed (end of stream, a reset, or an error answer).
async fn open_slow_sockets(addr: SocketAddr, count: usize) -> Arc<AtomicUsize> {
    open_slow_sockets_from(addr, [127, 0, 0, 1], count).await
}

/// [`open_slow_sockets`] from the loopback address `source` (127.0.0.0/8
/// has many), so the server sees distinct clients.
async fn open_slow_sockets_from(
    addr: SocketAddr,
    source: [u8; 4],
    count: usize,
) -> Arc<AtomicUsize> {
    let closed = Arc::new(AtomicUsize::new(0));
    for _ in 0..count {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((source, 0))).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        tokio::spawn(dribble(stream, closed.clone()));
    }
    closed
}

async fn dribble(mut stream: TcpStream, closed: Arc<AtomicUsize>) {
    let head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut answer = [0u8; 256];
    for sent in 0.. {
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(DRIBBLE, stream.read(&mut answer)).await {
            Err(_still_open) => continue,
            Ok(_closed_or_answered) => break,
        }
    }
    closed.fetch_add(1, Ordering::SeqCst);
}

/// Waits until the server has closed at least `count` of the sockets that
/// `closed` counts.
async fn wait_until_closed(closed: &AtomicUsize, count: usize, what: &str) {
    eventually(CLOSED_WITHIN, what, || async {
        (closed.load(Ordering::SeqCst) >= count).then_some(())
    })
    .await;
}

/// A daemon with `overrides`, and Alice's API token.
async fn spawn_with_user(overrides: &[(&str, &str)]) -> (TestApp, String) {
    let app = TestApp::spawn_with(overrides).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    (app, token)
}

async fn assert_health_and_api_answer(app: &TestApp, token: &str) {
    // A fresh client: no connection opened before the slow sockets.
    let client = reqwest::Client::builder()
        .timeout(ANSWER_WITHIN)
        .build()
        .unwrap();
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let me = client
        .get(app.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

/// Everything the server sends on `stream` until it closes it, or `None` if
/// it is still open after [`CLOSED_WITHIN`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    let ended = tokio::time::timeout(CLOSED_WITHIN, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    ended.ok().map(|()| received)
}

fn assert_status_line(received: &[u8], status_line: &str) {
    assert!(
        received.starts_with(status_line.as_bytes()),
        "{}",
        String::from_utf8_lossy(received)
    );
}

#[tokio::test]
async fn slow_sockets_beyond_the_connection_cap_give_way_to_health_checks_and_the_api() {
    // Headers may take a minute here: only the cap can free the port.
    let (app, token) = spawn_with_user(&[
        ("WEBHOOKD__HTTP__MAX_CONNECTIONS", "100"),
        ("WEBHOOKD__HTTP__HEADER_READ_TIMEOUT_SECS", "60"),
        ("WEBHOOKD__HTTP__IDLE_TIMEOUT_SECS", "600"),
    ])
    .await;
    let closed = open_slow_sockets(app.addr, 300).await;

    assert_health_and_api_answer(&app, &token).await;
    // Past the cap the longest-idle sockets were closed: at most 100 remain.
    let what = "the server to close the slow sockets beyond its cap";
    wait_until_closed(&closed, 200, what).await;
    assert_health_and_api_answer(&app, &token).await;
    app.stop().await;
}

#[tokio::test]
async fn headers_that_do_not_arrive_within_the_header_read_timeout_close_the_connection() {
    let (app, token) = spawn_with_user(&[
        ("WEBHOOKD__HTTP__HEADER_READ_TIMEOUT_SECS", "1"),
        ("WEBHOOKD__HTTP__IDLE_TIMEOUT_SECS", "600"),
    ])
    .await;
    let closed = open_slow_sockets(app.addr, 300).await;

    assert_health_and_api_answer(&app, &token).await;
    wait_until_closed(&closed, 300, "the server to close every slow socket").await;
    app.stop().await;
}

#[tokio::test]
async fn a_connection_left_unused_past_the_idle_timeout_is_closed() {
    let app = TestApp::spawn_with(&[
        ("WEBHOOKD__HTTP__HEADER_READ_TIMEOUT_SECS", "600"),
        ("WEBHOOKD__HTTP__IDLE_TIMEOUT_SECS", "1"),
    ])
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    // The answer, then nothing: the connection stays open for keep-alive
    // until the idle timeout closes it (end of stream).
    let received = read_until_closed(&mut stream)
        .await
        .expect("the idle connection was never closed");
    assert_status_line(&received, "HTTP/1.1 200");
    app.stop().await;
}

#[tokio::test]
async fn a_request_body_that_does_not_arrive_within_the_request_timeout_is_answered_503_and_closed()
{
    let (app, token) = spawn_with_user(&[
        ("WEBHOOKD__DELIVERY__TIMEOUT_MS", "1000"),
        ("WEBHOOKD__HTTP__REQUEST_TIMEOUT_SECS", "2"),
        ("WEBHOOKD__HTTP__IDLE_TIMEOUT_SECS", "600"),
    ])
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // Complete headers, then a tenth of the promised body and nothing more:
    // the connection is busy, out of reach of the header and idle timeouts.
    let head = format!(
        "POST /api/v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"name\": "
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let received = read_until_closed(&mut stream)
        .await
        .expect("the slow request was never answered");
    assert_status_line(&received, "HTTP/1.1 503");
    app.stop().await;
}

#[tokio::test]
async fn one_address_past_its_share_loses_its_own_idle_sockets_not_others() {
    let (app, token) = spawn_with_user(&[
        ("WEBHOOKD__HTTP__MAX_CONNECTIONS_PER_CLIENT", "10"),
        ("WEBHOOKD__HTTP__HEADER_READ_TIMEOUT_SECS", "60"),
        ("WEBHOOKD__HTTP__IDLE_TIMEOUT_SECS", "600"),
    ])
    .await;
    let quiet = open_slow_sockets_from(app.addr, [127, 0, 0, 3], 5).await;
    let greedy = open_slow_sockets_from(app.addr, [127, 0, 0, 2], 40).await;

    // The greedy address keeps its 10 newest; the table (1024) is far from
    // full, so only the share can have closed them.
    let what = "the server to close the greedy address's sockets past its share";
    wait_until_closed(&greedy, 30, what).await;
    assert_health_and_api_answer(&app, &token).await;
    assert_eq!(
        quiet.load(Ordering::SeqCst),
        0,
        "the other address's sockets, idle longer, were left alone"
    );
    assert_eq!(greedy.load(Ordering::SeqCst), 30);
    app.stop().await;
}
