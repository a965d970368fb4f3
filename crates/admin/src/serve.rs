//! Serving a router over HTTP/1.1 with the server limits of SPEC §15
//! (`http.header_read_timeout_secs`, `http.idle_timeout_secs`,
//! `http.max_connections`, `http.request_timeout_secs`), in place of
//! `axum::serve`, which has none of them: hyper's own header-read timeout,
//! the connection table of [`crate::connections`] for the cap and the idle
//! timeout, and `request_timeout` for slow bodies and handlers.
//!
//! Each request carries `ConnectInfo<SocketAddr>` (the peer of the socket),
//! as with axum's `into_make_service_with_connect_info`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::connections::{Admitted, ConnectionTable};
use crate::request_timeout::limit_request_time;

/// After a failed `accept` (out of file descriptors, most likely), wait a
/// little instead of spinning on the same error.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The server limits (docs/OPERATIONS.md, `http.*`).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A request's headers must have arrived within this.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections at most; past it the longest-idle one is closed.
    pub max_connections: usize,
    /// Open connections per client address at most (0: no limit); past it
    /// that client's longest-idle one is closed.
    pub max_connections_per_client: usize,
    /// A request must be read and answered (its head) within this.
    pub request_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` fires, then stops accepting,
/// lets each connection finish its request in flight and returns when every
/// connection has closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    stop: CancellationToken,
) -> io::Result<()> {
    let router = router.layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        limit_request_time,
    ));
    let table = ConnectionTable::new(
        limits.max_connections,
        limits.max_connections_per_client,
        limits.idle_timeout,
    );
    let connections = TaskTracker::new();
    loop {
        let (stream, remote) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Some(admitted) = table.admit(remote.ip()) else {
            debug!(%remote, "HTTP connection refused: every connection it could replace has a request in flight");
            continue;
        };
        connections.spawn(serve_connection(
            stream,
            remote,
            router.clone(),
            admitted,
            limits.header_read_timeout,
            stop.clone(),
        ));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    router: Router,
    admitted: Admitted,
    header_read_timeout: Duration,
    stop: CancellationToken,
) {
    let admitted = Arc::new(admitted);
    let tracking = admitted.clone();
    let router = TowerToHyperService::new(router);
    let service = service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        // Busy until the response body is finished or dropped: a stream
        // (server-sent events, a live log) keeps its connection busy.
        let busy = tracking.begin_request();
        let answer = router.call(request);
        async move {
            let response = answer.await?;
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _held = &busy;
                    frame
                }))
            }))
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let idle_deadline = admitted.idle_deadline();
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    debug!(%remote, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            () = stop.cancelled(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            // Dropping the connection closes the socket; it has no request
            // in flight.
            () = admitted.evicted.notified() => return,
            () = tokio::time::sleep_until(idle_deadline) => {
                if admitted.idle_deadline() <= tokio::time::Instant::now() {
                    return;
                }
            }
        }
    }
}
