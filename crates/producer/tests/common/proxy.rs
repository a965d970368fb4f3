//! A TCP proxy in front of RabbitMQ that a test can cut, to play a broker
//! outage (connections dropped, new ones refused) without disturbing the real
//! broker the other tests share.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lapin::uri::AMQPUri;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use super::broker_url;

pub struct Proxy {
    url: String,
    shared: Arc<Shared>,
    accept_loop: AbortHandle,
}

#[derive(Default)]
struct Shared {
    down: AtomicBool,
    refused: AtomicUsize,
    connections: Mutex<Vec<AbortHandle>>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let mut uri: AMQPUri = broker_url().parse().expect("broker URL");
        let upstream = format!("{}:{}", uri.authority.host, uri.authority.port);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        uri.authority.host = "127.0.0.1".into();
        uri.authority.port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Shared::default());
        let accept_loop = tokio::spawn(accept(listener, upstream, shared.clone())).abort_handle();
        Proxy {
            url: uri.to_string(),
            shared,
            accept_loop,
        }
    }

    /// The broker URL through this proxy.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops every proxied connection and refuses new ones.
    pub fn cut(&self) {
        let mut connections = self.shared.connections.lock().expect("lock");
        self.shared.down.store(true, Ordering::SeqCst);
        for connection in connections.drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.shared.down.store(false, Ordering::SeqCst);
    }

    /// Connection attempts refused while cut.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept_loop.abort();
    }
}

async fn accept(listener: TcpListener, upstream: String, shared: Arc<Shared>) {
    while let Ok((mut client, _)) = listener.accept().await {
        // Under the lock, so `cut` cannot miss a connection being set up.
        let mut connections = shared.connections.lock().expect("lock");
        if shared.down.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            continue; // dropping `client` closes it
        }
        let upstream = upstream.clone();
        let connection = tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        connections.push(connection.abort_handle());
    }
}
