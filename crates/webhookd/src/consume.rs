//! The broker consumer: takes CRM events from `webhookd.events`, records their
//! fan-out durably, acks, then hands the new deliveries to the dispatcher.
//!
//! Ack point: a message is acked only after its events and delivery rows are
//! committed. A crash before that means redelivery, which is harmless because
//! fan-out is idempotent (unique on event and webhook). A malformed message is
//! published to the dead-letter exchange with its reason (confirmed) before it
//! is acked, so it is never lost, never requeued in a loop.
//!
//! Two ways from a batch to its deliveries: with a first-attempt window (the
//! default) the first attempts run before anything is written (`fanout.rs`);
//! without one, and for messages the broker redelivers, every delivery is
//! written first and attempted after the ack.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ConnectionStatus};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use uuid::Uuid;
use webhookd_events::{candidate_patterns, derive_event_id, render_envelope, ParsedMessage};
use webhookd_producer::topology::{declare, Topology, REJECT_REASON_HEADER};
use webhookd_producer::BrokerUrl;

use crate::app::Handoff;
use crate::fanout::{holding_messages, with_envelopes, FirstAttempts, Pipeline};
use crate::metrics::Metrics;
use crate::storage::dedicated::DedicatedConnection;
use crate::storage::deliveries::{ClaimedDelivery, Lease};
use crate::storage::fanout::{record_fanout, NewEvent};

/// The longest wait between two attempts to reach the broker.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("broker topology: {0}")]
    Topology(#[from] webhookd_producer::topology::TopologyError),
    #[error("the broker cancelled the consumer")]
    Cancelled,
    #[error("the dead-letter exchange refused a rejected message")]
    DeadLetterNacked,
}

#[derive(Clone)]
pub struct EventConsumer {
    pub url: SecretString,
    pub topology: Topology,
    pub prefetch: u16,
    pub max_message_bytes: usize,
    pub pool: PgPool,
    pub handoff: Handoff,
    pub metrics: Metrics,
    pub lease: Lease,
    /// `None`: every delivery is written before it is attempted.
    pub first_attempts: Option<FirstAttempts>,
    /// Read by `/readyz`.
    pub health: BrokerHealth,
}

/// The broker connections `/readyz` reports on: up while every consumer's
/// connection is open, so a broker that goes away shows at once, even while
/// the consumers are busy with a batch. Each consumer reports through its
/// own [`BrokerHealth::session`].
#[derive(Clone, Default)]
pub struct BrokerHealth {
    sessions: Arc<Mutex<Vec<Option<ConnectionStatus>>>>,
    index: usize,
}

impl BrokerHealth {
    /// A view for one more session, which counts as down until it watches a
    /// connection.
    pub fn session(&self) -> BrokerHealth {
        let mut sessions = self.lock();
        sessions.push(None);
        BrokerHealth {
            sessions: self.sessions.clone(),
            index: sessions.len() - 1,
        }
    }

    /// Reports on `connection` from now on.
    pub fn watch(&self, connection: &Connection) {
        self.set(Some(connection.status().clone()));
    }

    /// No usable connection (a session ended, or none was made).
    pub fn lost(&self) {
        self.set(None);
    }

    /// Every session has an open connection (and there is one at least).
    pub fn is_up(&self) -> bool {
        let sessions = self.lock();
        !sessions.is_empty()
            && sessions
                .iter()
                .all(|s| s.as_ref().is_some_and(ConnectionStatus::connected))
    }

    fn set(&self, status: Option<ConnectionStatus>) {
        let mut sessions = self.lock();
        if sessions.len() <= self.index {
            sessions.resize(self.index + 1, None);
        }
        sessions[self.index] = status;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<ConnectionStatus>>> {
        // Holds plain values: usable whatever a panicking holder was doing.
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl EventConsumer {
    /// Consumes until `cancel`, reconnecting with backoff whenever the broker
    /// goes away.
    pub async fn run(self, cancel: CancellationToken) {
        let mut pause = Duration::from_millis(100);
        let mut db = DedicatedConnection::new(self.pool.clone());
        while !cancel.is_cancelled() {
            match self.session(&mut db, &cancel, &mut pause).await {
                Ok(()) => break,
                Err(e) => {
                    self.health.lost();
                    error!(error = %e, retry_in_ms = pause.as_millis() as u64, "broker session ended; reconnecting");
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
        db: &mut DedicatedConnection,
        cancel: &CancellationToken,
        pause: &mut Duration,
    ) -> Result<(), ConsumeError> {
        let conn = connect(&self.url, "webhookd-consumer").await?;
        let channel = conn.create_channel().await?;
        declare(&channel, &self.topology).await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let dead_letters = conn.create_channel().await?;
        dead_letters
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                self.topology.queue.as_str().into(),
                format!("webhookd-{}", Uuid::new_v4()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.health.watch(&conn);
        *pause = Duration::from_millis(100);
        info!(queue = %self.topology.queue, "consuming");
        let pipeline = self.first_attempts.as_ref().map(|f| f.start(cancel));

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
            while batch.len() < usize::from(self.prefetch) {
                match consumer.next().now_or_never() {
                    Some(Some(Ok(d))) => batch.push(d),
                    _ => break,
                }
            }
            let handled = self
                .handle_batch(db, pipeline.as_ref(), batch, &dead_letters, cancel)
                .await;
            if let Err(e) = handled {
                break Err(e);
            }
        };
        // Batches whose first attempts run are written and acked first.
        if let Some(pipeline) = pipeline {
            pipeline.close().await;
        }
        // Unacked messages go back to the queue when the channel closes.
        let _ = conn.close(200, "webhookd stopping".into()).await;
        result
    }

    async fn handle_batch(
        &self,
        db: &mut DedicatedConnection,
        pipeline: Option<&Pipeline>,
        mut batch: Vec<Delivery>,
        dead_letters: &Channel,
        cancel: &CancellationToken,
    ) -> Result<(), ConsumeError> {
        let events = self.parse(&batch, dead_letters).await?;
        match pipeline {
            // A redelivered message may have been written already, by a
            // worker that died before its ack: written first, its existing
            // deliveries are found and not attempted again.
            Some(pipeline) if batch.iter().all(|d| !d.redelivered) => {
                let messages = batch.len();
                let last = batch.pop();
                pipeline.begin(db, events, last, messages, cancel).await;
                Ok(())
            }
            _ => {
                self.write_first(db, events, &batch, pipeline.is_some(), cancel)
                    .await
            }
        }
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
            match ParsedMessage::parse(&delivery.data, self.max_message_bytes) {
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
                    self.metrics
                        .events_rejected
                        .with_label_values(&[problem.reason()])
                        .inc();
                    warn!(reason = problem.reason(), error = %problem, bytes = delivery.data.len(), "message rejected and dead-lettered");
                }
            }
        }
        Ok(events)
    }

    /// Writes every delivery of the batch, acks, then dispatches them.
    /// `one_by_one`: acks each message on its own, as earlier batches may
    /// still be unwritten in the pipeline (an ack of many would cover them).
    async fn write_first(
        &self,
        db: &mut DedicatedConnection,
        events: Vec<NewEvent>,
        batch: &[Delivery],
        one_by_one: bool,
        cancel: &CancellationToken,
    ) -> Result<(), ConsumeError> {
        let Some(claimed) = self.record(db, &events, cancel).await else {
            return Ok(()); // shutting down: the unacked batch is redelivered
        };
        // The ack goes out while the deliveries are dispatched: waiting for
        // the broker's I/O thread first would only add latency.
        let ack = async {
            if one_by_one {
                for delivery in batch {
                    delivery.ack(BasicAckOptions::default()).await?;
                }
                return Ok(());
            }
            match batch.last() {
                Some(last) => last
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        };
        for event in &events {
            self.metrics
                .events_consumed
                .with_label_values(&[event.event])
                .inc();
        }
        // Attempted even when the ack failed (the broker went away): the
        // deliveries are recorded and leased to this process, and the
        // redelivered messages will not create them again.
        let deliveries = with_envelopes(claimed, &events);
        let (acked, ()) = tokio::join!(ack, self.handoff.dispatch(deliveries, cancel, None));
        Ok(acked?)
    }

    /// Records the fan-out, retrying while the database is away: messages stay
    /// unacked meanwhile, and the prefetch limit stops further deliveries from
    /// the broker. `None` when cancelled first.
    async fn record(
        &self,
        db: &mut DedicatedConnection,
        events: &[NewEvent],
        cancel: &CancellationToken,
    ) -> Option<Vec<ClaimedDelivery>> {
        let failed = holding_messages(&self.metrics, "record_fanout", events.len());
        let lease = self.lease;
        let rows = db
            .until_done(cancel, failed, |conn, _| {
                Box::pin(record_fanout(conn, events, lease))
            })
            .await?;
        self.metrics
            .fanout_written
            .with_label_values(&["not_started"])
            .inc_by(rows.len() as u64);
        Some(rows)
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
                self.topology.dead_letter_exchange().as_str().into(),
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

/// Connects as the producer does: through [`BrokerUrl`], so the frame size
/// (hence lapin's buffers) is small unless the URL asks otherwise.
pub async fn connect(url: &SecretString, name: &str) -> Result<Connection, lapin::Error> {
    let url = BrokerUrl::parse(url.expose_secret()).map_err(|invalid| {
        lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            invalid.to_string(),
        ))
    })?;
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect_uri(url.uri().clone(), props).await
}
