//! Pipelining for `publish_many`: a sliding window of messages awaiting their
//! confirm, refilled as confirms arrive, with the unconfirmed ones republished
//! after the publisher restores a broken link.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use lapin::message::BasicReturnMessage;
use lapin::options::BasicPublishOptions;
use lapin::types::ShortString;
use lapin::{BasicProperties, Confirmation, PublisherConfirm};
use tokio::time::Instant;
use uuid::Uuid;
use webhookd_events::EventMessage;

use crate::error::PublishError;
use crate::link::SharedLink;
use crate::options::PublisherOptions;

/// AMQP `delivery_mode` for messages written to disk by the broker.
const PERSISTENT: u8 = 2;

/// The pause before republishing a refused (nacked) message.
const NACK_PAUSE: std::time::Duration = std::time::Duration::from_millis(200);

/// A sent message awaiting its confirm, tagged with what is needed to
/// republish it.
struct InFlight {
    index: usize,
    generation: u64,
    confirm: PublisherConfirm,
}

impl Future for InFlight {
    type Output = (usize, u64, lapin::Result<Confirmation>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        Pin::new(&mut this.confirm)
            .poll(cx)
            .map(|result| (this.index, this.generation, result))
    }
}

/// The progress of one `publish_many` call.
struct BatchState<'a> {
    messages: &'a [EventMessage],
    /// Each message's body, serialised once (a republish sends the same
    /// bytes).
    bodies: Vec<Vec<u8>>,
    routing_keys: Vec<ShortString>,
    /// Indexes of messages to send, including those to republish.
    pending: VecDeque<usize>,
    in_flight: FuturesUnordered<InFlight>,
    confirmed: usize,
    /// The generation of a link found broken; set until it is replaced.
    broken: Option<u64>,
    /// Since when publishing has been failing; cleared by any confirm.
    outage_since: Option<Instant>,
    /// Since when the broker has been refusing messages; cleared by any
    /// confirm. A quorum queue refuses while it elects a new leader (a node
    /// stopped): refused messages are republished, after a pause, for up to
    /// `reconnect_timeout`, then the refusal is the error.
    nacked_since: Option<Instant>,
    /// A refused message waits in `pending`: pause before sending again.
    pause: bool,
    rejected: Option<PublishError>,
}

pub(crate) struct Batch<'a, F> {
    link: &'a SharedLink,
    exchange: &'a ShortString,
    options: &'a PublisherOptions,
    state: BatchState<'a>,
    on_progress: F,
}

impl<'a, F: FnMut(usize)> Batch<'a, F> {
    pub(crate) fn new(
        link: &'a SharedLink,
        exchange: &'a ShortString,
        options: &'a PublisherOptions,
        messages: &'a [EventMessage],
        bodies: Vec<Vec<u8>>,
        routing_keys: Vec<ShortString>,
        on_progress: F,
    ) -> Self {
        Batch {
            link,
            exchange,
            options,
            state: BatchState {
                messages,
                bodies,
                routing_keys,
                pending: (0..messages.len()).collect(),
                in_flight: FuturesUnordered::new(),
                confirmed: 0,
                broken: None,
                outage_since: None,
                nacked_since: None,
                pause: false,
                rejected: None,
            },
            on_progress,
        }
    }

    pub(crate) async fn run(mut self) -> Result<(), PublishError> {
        loop {
            let batch = &mut self.state;
            if std::mem::take(&mut batch.pause) {
                tokio::time::sleep(NACK_PAUSE).await;
            }
            let batch = &mut self.state;
            if batch.broken.is_none() && batch.rejected.is_none() && !batch.pending.is_empty() {
                self.send_window().await;
            }
            let Some(settled) = self.state.in_flight.next().await else {
                if !self.recover().await? {
                    return Ok(());
                }
                continue;
            };
            self.settle(settled);
            // Confirms often arrive together (multiple-acks); take them all
            // before refilling the window, to lock the link once per batch.
            while let Some(Some(settled)) = self.state.in_flight.next().now_or_never() {
                self.settle(settled);
            }
        }
    }

    /// Sends as many of the pending messages as the window allows.
    async fn send_window(&mut self) {
        let batch = &mut self.state;
        let state = self.link.lock().await;
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
        // Every publish queues its frames (and takes its confirm's delivery
        // tag) on its first poll; awaiting them together makes one hand-over
        // to the connection's I/O thread per window instead of one per
        // message.
        let sends = indexes.iter().map(|&index| {
            link.channel.basic_publish(
                self.exchange.clone(),
                batch.routing_keys[index].clone(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &batch.bodies[index],
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

    /// With nothing in flight: returns the rejection, or restores a broken
    /// link. `Ok(false)` when everything is confirmed.
    async fn recover(&mut self) -> Result<bool, PublishError> {
        let batch = &mut self.state;
        if let Some(rejected) = batch.rejected.take() {
            return Err(rejected);
        }
        let Some(generation) = batch.broken.take() else {
            return Ok(!batch.pending.is_empty());
        };
        let since = *batch.outage_since.get_or_insert_with(Instant::now);
        let deadline = since + self.options.reconnect_timeout;
        self.link
            .restore_link(generation, deadline, self.options)
            .await?;
        Ok(true)
    }

    fn settle(&mut self, (index, generation, result): (usize, u64, lapin::Result<Confirmation>)) {
        let batch = &mut self.state;
        let message = &batch.messages[index];
        match result {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {
                batch.confirmed += 1;
                batch.outage_since = None;
                batch.nacked_since = None;
                (self.on_progress)(batch.confirmed);
            }
            Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                let error = unroutable(&self.link.topology().exchange, batch.messages, &returned);
                batch.rejected.get_or_insert(error);
            }
            Ok(Confirmation::Nack(None)) => {
                let since = *batch.nacked_since.get_or_insert_with(Instant::now);
                if since.elapsed() < self.options.reconnect_timeout {
                    // At-least-once: a refused message may still have been
                    // enqueued; the daemon de-duplicates by event id.
                    batch.pending.push_back(index);
                    batch.pause = true;
                } else {
                    batch.rejected.get_or_insert(PublishError::Nacked {
                        id: message.id,
                        event: message.event.clone(),
                    });
                }
            }
            Err(error) => {
                // Every in-flight confirm fails with the same error: say it once.
                if batch.broken.is_none() {
                    tracing::warn!(%error, "broker connection lost; unconfirmed events will be republished");
                }
                batch.pending.push_back(index);
                batch.broken.get_or_insert(generation);
            }
        }
    }
}

fn unroutable(
    exchange: &str,
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
        exchange: exchange.to_owned(),
    }
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
