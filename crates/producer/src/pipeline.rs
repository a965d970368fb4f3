//! Pipelining for `publish_many`: a sliding window of messages awaiting their
//! confirm, refilled as confirms arrive, with the unconfirmed ones republished
//! after the publisher restores a broken link.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use lapin::types::ShortString;
use lapin::{Confirmation, PublisherConfirm};
use tokio::time::Instant;
use webhookd_events::EventMessage;

use crate::publisher::{PublishError, Publisher};

/// A sent message awaiting its confirm, tagged with what is needed to
/// republish it.
pub(crate) struct InFlight {
    pub(crate) index: usize,
    pub(crate) generation: u64,
    pub(crate) confirm: PublisherConfirm,
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
pub(crate) struct BatchState<'a> {
    pub(crate) messages: &'a [EventMessage],
    pub(crate) routing_keys: Vec<ShortString>,
    /// Indexes of messages to send, including those to republish.
    pub(crate) pending: VecDeque<usize>,
    pub(crate) in_flight: FuturesUnordered<InFlight>,
    confirmed: usize,
    /// The generation of a link found broken; set until it is replaced.
    pub(crate) broken: Option<u64>,
    /// Since when publishing has been failing; cleared by any confirm.
    outage_since: Option<Instant>,
    rejected: Option<PublishError>,
}

pub(crate) struct Batch<'a, F> {
    publisher: &'a Publisher,
    state: BatchState<'a>,
    on_progress: F,
}

impl<'a, F: FnMut(usize)> Batch<'a, F> {
    pub(crate) fn new(
        publisher: &'a Publisher,
        messages: &'a [EventMessage],
        routing_keys: Vec<ShortString>,
        on_progress: F,
    ) -> Self {
        Batch {
            publisher,
            state: BatchState {
                messages,
                routing_keys,
                pending: (0..messages.len()).collect(),
                in_flight: FuturesUnordered::new(),
                confirmed: 0,
                broken: None,
                outage_since: None,
                rejected: None,
            },
            on_progress,
        }
    }

    pub(crate) async fn run(mut self) -> Result<(), PublishError> {
        loop {
            let batch = &mut self.state;
            if batch.broken.is_none() && batch.rejected.is_none() && !batch.pending.is_empty() {
                self.publisher.send_window(batch).await;
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
        let deadline = since + self.publisher.options.reconnect_timeout;
        self.publisher.restore_link(generation, deadline).await?;
        Ok(true)
    }

    fn settle(&mut self, (index, generation, result): (usize, u64, lapin::Result<Confirmation>)) {
        let batch = &mut self.state;
        let message = &batch.messages[index];
        match result {
            Ok(Confirmation::Ack(None) | Confirmation::NotRequested) => {
                batch.confirmed += 1;
                batch.outage_since = None;
                (self.on_progress)(batch.confirmed);
            }
            Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                let error = self.publisher.unroutable(batch.messages, &returned);
                batch.rejected.get_or_insert(error);
            }
            Ok(Confirmation::Nack(None)) => {
                batch.rejected.get_or_insert(PublishError::Nacked {
                    id: message.id,
                    event: message.event.clone(),
                });
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
