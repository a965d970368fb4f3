//! Publishing with publisher confirms, pipelining and reconnection.
//!
//! Every message is published `mandatory`, persistent, and counts as published
//! only once the broker confirmed it. When the connection or channel breaks,
//! the publisher reconnects with exponential backoff, redeclares the topology
//! and republishes every message whose confirm it did not receive. A message
//! may therefore reach the queue twice (at-least-once); the daemon
//! de-duplicates by event id, which is also the AMQP `message_id`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use lapin::message::BasicReturnMessage;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::BasicProperties;
use tokio::sync::Mutex;
use tokio::time::Instant;
use uuid::Uuid;
use webhookd_events::{find_event, EventMessage};

use crate::broker_url::{BrokerUrl, InvalidBrokerUrl};
use crate::link::Link;
use crate::pipeline::{Batch, BatchState, InFlight};
use crate::topology::{Topology, TopologyError};

/// AMQP `delivery_mode` for messages written to disk by the broker.
const PERSISTENT: u8 = 2;

/// Tuning knobs; [`Default`] suits a CRM service.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// How long to keep trying to restore a lost connection before a publish
    /// fails with [`PublishError::ConnectionLost`]. Also bounds the first
    /// connection attempt.
    pub reconnect_timeout: Duration,
    /// Messages published but not yet confirmed, at most, per `publish_many`.
    pub max_in_flight: usize,
    /// Shown in the RabbitMQ management UI and `rabbitmqctl list_connections`.
    pub connection_name: String,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            reconnect_timeout: Duration::from_secs(30),
            max_in_flight: 1000,
            connection_name: "webhookd-producer".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    InvalidUrl(#[from] InvalidBrokerUrl),
    #[error("cannot connect to the broker at {url}")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("timed out connecting to the broker at {url}")]
    ConnectTimedOut { url: String },
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Refused before publishing: the daemon would dead-letter it.
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    /// The broker confirmed the message but no queue is bound to take it.
    #[error("event {id} ({event}) is unroutable: no queue is bound to exchange `{exchange}`")]
    Unroutable {
        id: Uuid,
        event: String,
        exchange: String,
    },
    /// The broker refused the message (an internal error or a full queue).
    #[error("the broker refused event {id} ({event})")]
    Nacked { id: Uuid, event: String },
    #[error("lost the broker connection and could not restore it within {timeout:?}")]
    ConnectionLost {
        timeout: Duration,
        #[source]
        last_error: Box<PublishError>,
    },
}

/// A confirmed-publish client for the `crm.events` exchange. Cheap to share:
/// wrap it in an `Arc` and call it from any number of tasks.
pub struct Publisher {
    url: BrokerUrl,
    topology: Topology,
    exchange: ShortString,
    pub(crate) options: PublisherOptions,
    /// Held while sending (so delivery tags match the order frames are
    /// written) and while reconnecting, never while awaiting confirms.
    state: Mutex<State>,
    reconnects: AtomicU64,
}

struct State {
    link: Option<Link>,
    /// Incremented on every new link, so a task reporting a broken link can
    /// tell whether another task already replaced it.
    generation: u64,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("url", &self.url)
            .field("topology", &self.topology)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Connects with default options. See [`Publisher::connect_with`].
    pub async fn connect(url: &str, topology: Topology) -> Result<Publisher, PublishError> {
        Publisher::connect_with(url, topology, PublisherOptions::default()).await
    }

    /// Connects, opens a confirm-mode channel and declares the topology. The
    /// first connection is tried once, so a wrong URL or a broker that is down
    /// shows at start-up; reconnection with backoff applies to a connection
    /// lost later.
    pub async fn connect_with(
        url: &str,
        topology: Topology,
        options: PublisherOptions,
    ) -> Result<Publisher, PublishError> {
        let url = BrokerUrl::parse(url)?;
        let exchange = ShortString::try_new(topology.exchange.as_str())
            .map_err(|_| TopologyError::NameTooLong(topology.exchange.clone()))?;
        let link = tokio::time::timeout(
            options.reconnect_timeout,
            Link::open(&url, &topology, &options.connection_name),
        )
        .await
        .map_err(|_| PublishError::ConnectTimedOut {
            url: url.to_string(),
        })??;
        Ok(Publisher {
            url,
            topology,
            exchange,
            options,
            state: Mutex::new(State {
                link: Some(link),
                generation: 0,
            }),
            reconnects: AtomicU64::new(0),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// How many times the connection was re-established since `connect`.
    pub fn reconnect_count(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Publishes one message and waits for the broker's confirm.
    pub async fn publish(&self, message: &EventMessage) -> Result<(), PublishError> {
        self.publish_many(std::slice::from_ref(message), |_| {})
            .await
    }

    /// Publishes messages with up to `max_in_flight` awaiting their confirm at
    /// once. `on_progress` receives the number confirmed so far. Unknown events
    /// are refused before anything is sent. On an unroutable or refused
    /// message no further message is sent and that error is returned once the
    /// in-flight ones are settled; the others may have been published.
    pub async fn publish_many(
        &self,
        messages: &[EventMessage],
        on_progress: impl FnMut(usize),
    ) -> Result<(), PublishError> {
        let mut routing_keys = Vec::with_capacity(messages.len());
        for message in messages {
            routing_keys.push(routing_key(message)?);
        }
        Batch::new(self, messages, routing_keys, on_progress)
            .run()
            .await
    }

    /// Closes the connection; call it on shutdown once publishing is done. A
    /// later publish would reconnect.
    pub async fn close(&self) {
        if let Some(link) = self.state.lock().await.link.take() {
            link.close().await;
        }
    }

    /// Sends as many of `batch`'s pending messages as its window allows.
    pub(crate) async fn send_window(&self, batch: &mut BatchState<'_>) {
        let state = self.state.lock().await;
        let generation = state.generation;
        let Some(link) = state.link.as_ref().filter(|link| link.is_open()) else {
            batch.broken.get_or_insert(generation);
            return;
        };
        let room = self
            .options
            .max_in_flight
            .max(1)
            .saturating_sub(batch.in_flight.len());
        let indexes: Vec<usize> = (0..room).map_while(|_| batch.pending.pop_front()).collect();
        let bodies: Vec<Vec<u8>> = indexes
            .iter()
            .map(|&index| batch.messages[index].to_bytes())
            .collect();
        // Every publish queues its frames (and takes its confirm's delivery
        // tag) on its first poll; awaiting them together makes one hand-over
        // to the connection's I/O thread per window instead of one per
        // message.
        let sends = indexes.iter().zip(&bodies).map(|(&index, body)| {
            link.channel.basic_publish(
                self.exchange.clone(),
                batch.routing_keys[index].clone(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                properties(&batch.messages[index]),
            )
        });
        let results = futures_util::future::join_all(sends).await;
        let mut failed = None;
        for (index, sent) in indexes.into_iter().zip(results) {
            match sent {
                Ok(confirm) => batch.in_flight.push(InFlight {
                    index,
                    generation,
                    confirm,
                }),
                Err(error) => {
                    batch.pending.push_front(index);
                    failed.get_or_insert(error);
                }
            }
        }
        if let Some(error) = failed {
            tracing::warn!(%error, "publishing failed; reconnecting");
            batch.broken.get_or_insert(generation);
        }
    }

    /// Replaces the link of `failed_generation` (unless another task already
    /// did), retrying with exponential backoff until `deadline`.
    pub(crate) async fn restore_link(
        &self,
        failed_generation: u64,
        deadline: Instant,
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
            let attempt = tokio::time::timeout(
                budget,
                Link::open(&self.url, &self.topology, &self.options.connection_name),
            )
            .await
            .unwrap_or_else(|_| {
                Err(PublishError::ConnectTimedOut {
                    url: self.url.to_string(),
                })
            });
            let error = match attempt {
                Ok(link) => {
                    state.link = Some(link);
                    state.generation += 1;
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(generation = state.generation, "reconnected to the broker");
                    return Ok(());
                }
                Err(error) => error,
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let delay = delays.next().unwrap_or(Duration::from_secs(5));
            if remaining <= delay {
                return Err(PublishError::ConnectionLost {
                    timeout: self.options.reconnect_timeout,
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

    pub(crate) fn unroutable(
        &self,
        messages: &[EventMessage],
        returned: &BasicReturnMessage,
    ) -> PublishError {
        // RabbitMQ's returns and multiple-acks may resolve a different confirm
        // than the returned message's own, so identify it by its message id.
        let returned_id = returned
            .delivery
            .properties
            .message_id()
            .as_ref()
            .and_then(|id| Uuid::parse_str(id.as_str()).ok());
        let message = messages.iter().find(|m| Some(m.id) == returned_id);
        PublishError::Unroutable {
            id: returned_id.unwrap_or_default(),
            event: message.map_or_else(
                || returned.delivery.routing_key.to_string(),
                |m| m.event.clone(),
            ),
            exchange: self.topology.exchange.clone(),
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

fn routing_key(message: &EventMessage) -> Result<ShortString, PublishError> {
    // Catalogue names are short, so `try_new` cannot fail after the lookup.
    find_event(&message.event)
        .and_then(|spec| ShortString::try_new(spec.name).ok())
        .ok_or_else(|| PublishError::UnknownEvent(message.event.clone()))
}

fn properties(message: &EventMessage) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type("application/json".into())
        .with_message_id(message.id.to_string().into());
    match u64::try_from(message.timestamp) {
        Ok(timestamp) => properties.with_timestamp(timestamp),
        Err(_) => properties,
    }
}
