//! One connection to the broker with a confirm-mode channel and the topology
//! declared: what the publisher replaces wholesale when the broker goes away.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::{Mutex, MutexGuard};
use tokio::time::Instant;

use crate::broker_url::BrokerUrl;
use crate::error::PublishError;
use crate::options::PublisherOptions;
use crate::topology::{self, Topology};

pub(crate) struct Link {
    connection: Connection,
    pub(crate) channel: Channel,
}

impl Link {
    /// Connects, opens a channel in confirm mode and declares the topology.
    pub(crate) async fn open(
        url: &BrokerUrl,
        topology: &Topology,
        connection_name: &str,
    ) -> Result<Link, PublishError> {
        let connect_error = |source| PublishError::Connect {
            url: url.to_string(),
            source,
        };
        let properties =
            ConnectionProperties::default().with_connection_name(connection_name.into());
        let connection = Connection::connect_uri(url.uri().clone(), properties)
            .await
            .map_err(connect_error)?;
        let link = async {
            let channel = connection.create_channel().await.map_err(connect_error)?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(connect_error)?;
            topology::declare(&channel, topology).await?;
            Ok(channel)
        }
        .await;
        match link {
            Ok(channel) => Ok(Link {
                connection,
                channel,
            }),
            Err(error) => {
                // The TCP connection is up; do not leak it when setup failed.
                Link::close_connection(connection).await;
                Err(error)
            }
        }
    }

    /// False once the broker or the network closed the connection or the
    /// channel (a channel-level error such as a deleted exchange closes only
    /// the channel).
    pub(crate) fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Closes without waiting, for a link being replaced after an error.
    pub(crate) fn close_in_background(self) {
        tokio::spawn(Link::close_connection(self.connection));
    }

    pub(crate) async fn close(self) {
        Link::close_connection(self.connection).await;
    }

    async fn close_connection(connection: Connection) {
        // Closing an already broken connection fails; there is nothing to do then.
        if let Err(error) = connection.close(200, "bye".into()).await {
            tracing::debug!(%error, "closing the broker connection");
        }
    }
}

/// Opens a link to the first of `urls` that answers, trying them in order
/// from `first`; each attempt bounded by `per_node`. The index of the node
/// connected to, or the last node's error.
pub(crate) async fn open_any(
    urls: &[BrokerUrl],
    first: usize,
    per_node: Duration,
    topology: &Topology,
    connection_name: &str,
) -> Result<(Link, usize), PublishError> {
    let mut last_error = PublishError::NoBrokerUrl;
    for offset in 0..urls.len() {
        let node = first.wrapping_add(offset) % urls.len();
        let url = &urls[node];
        let attempt = tokio::time::timeout(per_node, Link::open(url, topology, connection_name))
            .await
            .unwrap_or_else(|_| {
                Err(PublishError::ConnectTimedOut {
                    url: url.to_string(),
                })
            });
        match attempt {
            Ok(link) => return Ok((link, node)),
            // A mismatching queue is the same on every node of a cluster.
            Err(PublishError::Topology(error)) if error.is_mismatch() => {
                return Err(PublishError::Topology(error))
            }
            Err(error) => {
                if urls.len() > 1 {
                    tracing::warn!(node = %url, error = %describe(&error), "broker node did not answer; trying the next");
                }
                last_error = error;
            }
        }
    }
    Err(last_error)
}

/// The link every task of one publisher sends through, with what it takes to
/// open a new one when the broker goes away.
pub(crate) struct SharedLink {
    /// The cluster's nodes; a lost link is replaced by one to the next.
    urls: Vec<BrokerUrl>,
    topology: Topology,
    /// Held while sending (so delivery tags match the order frames are
    /// written) and while reconnecting, never while awaiting confirms.
    state: Mutex<LinkState>,
    reconnects: AtomicU64,
}

pub(crate) struct LinkState {
    pub(crate) link: Option<Link>,
    /// Incremented on every new link, so a task reporting a broken link can
    /// tell whether another task already replaced it.
    pub(crate) generation: u64,
    /// Index in `urls` of the node the link goes (or went) to.
    node: usize,
}

impl SharedLink {
    pub(crate) fn new(
        urls: Vec<BrokerUrl>,
        topology: Topology,
        link: Link,
        node: usize,
    ) -> SharedLink {
        SharedLink {
            urls,
            topology,
            state: Mutex::new(LinkState {
                link: Some(link),
                generation: 0,
                node,
            }),
            reconnects: AtomicU64::new(0),
        }
    }

    pub(crate) fn urls(&self) -> &[BrokerUrl] {
        &self.urls
    }

    pub(crate) fn topology(&self) -> &Topology {
        &self.topology
    }

    pub(crate) fn reconnect_count(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub(crate) async fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state.lock().await
    }

    pub(crate) async fn close(&self) {
        if let Some(link) = self.state.lock().await.link.take() {
            link.close().await;
        }
    }

    /// Replaces the link of `failed_generation` (unless another task already
    /// did), retrying with exponential backoff until `deadline`. Each attempt
    /// goes to the next node of the list (round robin), starting with the one
    /// after the node that was lost.
    pub(crate) async fn restore_link(
        &self,
        failed_generation: u64,
        deadline: Instant,
        options: &PublisherOptions,
    ) -> Result<(), PublishError> {
        let mut state = self.state.lock().await;
        if state.generation != failed_generation && state.link.as_ref().is_some_and(Link::is_open) {
            return Ok(());
        }
        if let Some(old) = state.link.take() {
            old.close_in_background();
        }
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            // At least one attempt, even when the deadline passed while the
            // in-flight confirms were settling.
            let budget = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            let node = (state.node + 1) % self.urls.len().max(1);
            state.node = node;
            let Some(url) = self.urls.get(node) else {
                return Err(PublishError::NoBrokerUrl);
            };
            let attempt = tokio::time::timeout(
                budget,
                Link::open(url, &self.topology, &options.connection_name),
            )
            .await
            .unwrap_or_else(|_| {
                Err(PublishError::ConnectTimedOut {
                    url: url.to_string(),
                })
            });
            let error = match attempt {
                Ok(link) => {
                    state.link = Some(link);
                    state.generation += 1;
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(generation = state.generation, node = %url, "reconnected to the broker");
                    return Ok(());
                }
                Err(error) => error,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            if remaining <= delay {
                return Err(PublishError::ConnectionLost {
                    timeout: options.reconnect_timeout,
                    last_error: Box::new(error),
                });
            }
            tracing::warn!(
                error = %describe(&error),
                retry_in = ?delay,
                "reconnecting to the broker failed"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

/// The error and its causes on one line, for logs. lapin's errors repeat
/// their cause in their own message, so a cause already quoted is skipped.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}
