//! The broker consumer, first stage of the pipeline: takes CRM events from
//! `webhookd.events` in batches (what the broker has already pushed, up to
//! the prefetch), parses them and hands the accepted ones to the fan-out
//! (`fanout.rs`). A malformed message is published to the dead-letter
//! exchange with its reason (confirmed) and acked with its batch once the
//! batch is committed, so it is never lost, never requeued in a loop.
//!
//! Nothing is acked here: `commit.rs` acks a batch once it is written.
//! Unacked messages go back to the queue when a session ends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use uuid::Uuid;
use webhookd_events::{
    candidate_patterns, derive_event_id, render_envelope, NewEvent, ParsedMessage,
};
use webhookd_producer::topology::{declare, Topology, REJECT_REASON_HEADER};

use crate::broker::{connect_any, masked, BrokerHealth};
use crate::commit::Messages;
use crate::deliver::Deliverer;
use crate::fanout::{Fanout, Pipeline};
use crate::metrics::events::MessageRejected;
use crate::metrics::Metrics;

/// The longest wait between two attempts to reach the broker.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConsumeError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker topology: {0}")]
    Topology(#[from] webhookd_producer::topology::TopologyError),
    #[error("the broker cancelled the consumer")]
    Cancelled,
    #[error("the dead-letter exchange refused a rejected message")]
    DeadLetterNacked,
}

/// Where a consumer takes its events from.
#[derive(Clone)]
pub struct ConsumerSettings {
    /// The broker's nodes: a session connects to the first that answers,
    /// starting after the node of the session that ended.
    pub urls: Vec<SecretString>,
    pub topology: Topology,
    pub prefetch: u16,
    pub max_message_bytes: usize,
}

#[derive(Clone)]
pub struct EventConsumer {
    settings: ConsumerSettings,
    fanout: Fanout,
    metrics: Metrics,
    /// Read by `/readyz`.
    health: BrokerHealth,
}

impl EventConsumer {
    pub fn new(
        settings: ConsumerSettings,
        fanout: Fanout,
        metrics: Metrics,
        health: BrokerHealth,
    ) -> Self {
        EventConsumer {
            settings,
            fanout,
            metrics,
            health,
        }
    }

    /// The same consumer reporting on a line of its own in the broker
    /// health (one per shard), which counts as down until it connects.
    pub(crate) fn with_own_health(&self) -> Self {
        EventConsumer {
            health: self.health.session(),
            ..self.clone()
        }
    }

    /// The consumer of one of `shards` consumer shards: its own share of the
    /// prefetch, database pool and HTTP client.
    pub(crate) fn for_shard(&self, shards: usize, pool: PgPool, deliverer: Deliverer) -> Self {
        let prefetch = share_of(self.settings.prefetch, shards);
        EventConsumer {
            settings: ConsumerSettings {
                prefetch,
                ..self.settings.clone()
            },
            fanout: self.fanout.for_shard(pool, deliverer, prefetch),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        }
    }

    /// Consumes until `cancel`, reconnecting with backoff whenever the broker
    /// goes away: to the next node of `broker.urls` (round robin), so a
    /// worker leaves a node that stopped without waiting for it.
    pub async fn run(self, cancel: CancellationToken) {
        let mut pause = Duration::from_millis(100);
        let mut node = 0;
        while !cancel.is_cancelled() {
            match self.session(&cancel, &mut pause, &mut node).await {
                Ok(()) => break,
                Err(e) => {
                    self.health.lost();
                    error!(error = %e, retry_in_ms = pause.as_millis() as u64, "broker session ended; reconnecting");
                    node = node.wrapping_add(1);
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
        }
        self.health.lost();
    }

    async fn session(
        &self,
        cancel: &CancellationToken,
        pause: &mut Duration,
        node: &mut usize,
    ) -> Result<(), ConsumeError> {
        let settings = &self.settings;
        let (conn, connected) = connect_any(&settings.urls, *node, "webhookd-consumer").await?;
        *node = connected;
        let channel = conn.create_channel().await?;
        declare(&channel, &settings.topology).await?;
        channel
            .basic_qos(settings.prefetch, BasicQosOptions::default())
            .await?;
        let dead_letters = conn.create_channel().await?;
        dead_letters
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                settings.topology.queue.as_str().into(),
                format!("webhookd-{}", Uuid::new_v4()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.health.watch(&conn);
        *pause = Duration::from_millis(100);
        info!(queue = %settings.topology.queue, node = %settings.urls.get(connected).map(masked).unwrap_or_default(), "consuming");
        let mut pipeline = self.fanout.start(cancel);

        let result = loop {
            let next = tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                next = consumer.next() => next,
            };
            let first = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => break Err(e.into()),
                None => break Err(ConsumeError::Cancelled),
            };
            // Take what the broker has already pushed (up to the prefetch)
            // so one transaction covers many events.
            let mut batch = vec![first];
            while batch.len() < usize::from(settings.prefetch) {
                match consumer.next().now_or_never() {
                    Some(Some(Ok(d))) => batch.push(d),
                    _ => break,
                }
            }
            let handled = self
                .handle_batch(&mut pipeline, batch, &dead_letters, cancel)
                .await;
            if let Err(e) = handled {
                break Err(e);
            }
        };
        // The batches taken are committed and acked first.
        pipeline.close().await;
        // Unacked messages go back to the queue when the channel closes.
        let _ = conn.close(200, "webhookd stopping".into()).await;
        result
    }

    async fn handle_batch(
        &self,
        pipeline: &mut Pipeline,
        mut batch: Vec<Delivery>,
        dead_letters: &Channel,
        cancel: &CancellationToken,
    ) -> Result<(), ConsumeError> {
        let events = self.parse(&batch, dead_letters).await?;
        let redelivered = batch.iter().any(|d| d.redelivered);
        let messages = Messages {
            count: batch.len(),
            last: batch.pop(),
        };
        pipeline
            .fan_out(events, messages, redelivered, cancel)
            .await;
        Ok(())
    }

    /// The accepted events of a batch; the others are dead-lettered.
    async fn parse(
        &self,
        batch: &[Delivery],
        dead_letters: &Channel,
    ) -> Result<Vec<NewEvent>, ConsumeError> {
        let now = chrono::Utc::now().timestamp();
        let mut events = Vec::with_capacity(batch.len());
        for delivery in batch {
            match ParsedMessage::parse(&delivery.data, self.settings.max_message_bytes) {
                Ok(msg) => {
                    let message_id = delivery.properties.message_id().as_ref();
                    let id =
                        derive_event_id(msg.id, message_id.map(|m| m.as_str()), &delivery.data);
                    let timestamp = msg.timestamp.unwrap_or(now);
                    events.push(NewEvent {
                        id,
                        event: msg.event.name,
                        user_id: msg.user_id,
                        body: Arc::from(render_envelope(&id, msg.event.name, timestamp, msg.data)),
                        patterns: candidate_patterns(msg.event.name),
                    });
                }
                Err(problem) => {
                    self.dead_letter(dead_letters, delivery, &problem.to_string())
                        .await?;
                    MessageRejected {
                        reason: problem.reason(),
                        error: &problem,
                        bytes: delivery.data.len(),
                    }
                    .emit(&self.metrics);
                }
            }
        }
        Ok(events)
    }

    async fn dead_letter(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        reason: &str,
    ) -> Result<(), ConsumeError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            REJECT_REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(reason.as_bytes().to_vec())),
        );
        let properties = BasicProperties::default()
            .with_headers(headers)
            .with_delivery_mode(2);
        let confirm = channel
            .basic_publish(
                self.settings
                    .topology
                    .dead_letter_exchange()
                    .as_str()
                    .into(),
                delivery.routing_key.clone(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if confirm.is_nack() {
            return Err(ConsumeError::DeadLetterNacked);
        }
        Ok(())
    }
}

/// One consumer's part of the worker's prefetch (at least 1).
fn share_of(prefetch: u16, consumers: usize) -> u16 {
    let consumers = u16::try_from(consumers.max(1)).unwrap_or(u16::MAX);
    (prefetch / consumers).max(1)
}

#[cfg(test)]
mod tests {
    use super::share_of;

    #[test]
    fn consumers_share_the_prefetch() {
        assert_eq!(share_of(256, 1), 256);
        assert_eq!(share_of(256, 2), 128);
        assert_eq!(share_of(256, 3), 85);
        assert_eq!(share_of(2, 4), 1, "never 0, which would mean unlimited");
        assert_eq!(share_of(256, 0), 256);
    }
}
