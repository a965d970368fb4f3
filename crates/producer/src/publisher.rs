//! Publishing with publisher confirms, pipelining and reconnection.
//!
//! Every message is published `mandatory`, persistent, and counts as published
//! only once the broker confirmed it. When the connection or channel breaks,
//! the publisher reconnects with exponential backoff, redeclares the topology
//! and republishes every message whose confirm it did not receive. A message
//! may therefore reach the queue twice (at-least-once); the daemon
//! de-duplicates by event id, which is also the AMQP `message_id`.

use lapin::types::ShortString;
use webhookd_events::{find_event, EventMessage};

use crate::broker_url::BrokerUrl;
use crate::link::{open_any, SharedLink};
use crate::pipeline::Batch;
use crate::topology::{Topology, TopologyError};

// Defined below the link and the pipeline, which use them too; re-exported so
// that `publisher::PublishError` and `publisher::PublisherOptions` still name them.
pub use crate::error::PublishError;
pub use crate::options::PublisherOptions;

/// A confirmed-publish client for the `crm.events` exchange. Cheap to share:
/// wrap it in an `Arc` and call it from any number of tasks.
pub struct Publisher {
    exchange: ShortString,
    options: PublisherOptions,
    link: SharedLink,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("urls", &self.link.urls())
            .field("topology", self.link.topology())
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
        Publisher::connect_cluster(&[url], topology, options).await
    }

    /// Connects to the first of the nodes of a RabbitMQ cluster that
    /// answers, trying them in the order given (each for at most
    /// `reconnect_timeout` divided by their number, one second at least).
    /// When the connection is lost later, the publisher reconnects to the
    /// next node, round robin, and republishes what was not confirmed.
    pub async fn connect_cluster(
        urls: &[impl AsRef<str>],
        topology: Topology,
        options: PublisherOptions,
    ) -> Result<Publisher, PublishError> {
        let urls = urls
            .iter()
            .map(|url| BrokerUrl::parse(url.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let exchange = ShortString::try_new(topology.exchange.as_str())
            .map_err(|_| TopologyError::NameTooLong(topology.exchange.clone()))?;
        let nodes = u32::try_from(urls.len().max(1)).unwrap_or(u32::MAX);
        let per_node = (options.reconnect_timeout / nodes).max(std::time::Duration::from_secs(1));
        let (link, node) =
            open_any(&urls, 0, per_node, &topology, &options.connection_name).await?;
        Ok(Publisher {
            exchange,
            options,
            link: SharedLink::new(urls, topology, link, node),
        })
    }

    /// How many times the connection was re-established since `connect`.
    pub fn reconnect_count(&self) -> u64 {
        self.link.reconnect_count()
    }

    /// Publishes one message and waits for the broker's confirm.
    pub async fn publish(&self, message: &EventMessage) -> Result<(), PublishError> {
        self.publish_many(std::slice::from_ref(message), |_| {})
            .await
    }

    /// Publishes one message whose body was serialised already (its `id`,
    /// `event` and `timestamp` must be `message`'s: they route it and name
    /// it in the AMQP properties), and waits for the broker's confirm. For
    /// a body whose `data` must go out byte for byte
    /// ([`EventMessage::to_bytes_with_data`]).
    pub async fn publish_body(
        &self,
        message: &EventMessage,
        body: Vec<u8>,
    ) -> Result<(), PublishError> {
        let routing_keys = vec![routing_key(message)?];
        Batch::new(
            &self.link,
            &self.exchange,
            &self.options,
            std::slice::from_ref(message),
            vec![body],
            routing_keys,
            |_| {},
        )
        .run()
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
        let bodies = messages.iter().map(EventMessage::to_bytes).collect();
        Batch::new(
            &self.link,
            &self.exchange,
            &self.options,
            messages,
            bodies,
            routing_keys,
            on_progress,
        )
        .run()
        .await
    }

    /// Closes the connection; call it on shutdown once publishing is done. A
    /// later publish would reconnect.
    pub async fn close(&self) {
        self.link.close().await;
    }
}

fn routing_key(message: &EventMessage) -> Result<ShortString, PublishError> {
    // Catalogue names are short, so `try_new` cannot fail after the lookup.
    find_event(&message.event)
        .and_then(|spec| ShortString::try_new(spec.name).ok())
        .ok_or_else(|| PublishError::UnknownEvent(message.event.clone()))
}
