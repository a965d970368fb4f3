//! The live event stream behind `subscription { events }`.
//!
//! Workers compete for the shared queue, so a subscriber on this API process
//! would see only the events its own worker (if any) consumed. Instead each
//! API process taps the exchange itself: while it has at least one
//! subscriber it holds a server-named, exclusive, auto-delete queue bound to
//! the exchange with `#`, consumed without acks. The broker copies every
//! event into it whichever worker consumes the original, and drops it when
//! the tap's connection closes. The workers' queue is never touched.
//!
//! The tap never waits for a subscriber: each has a bounded buffer, filled
//! with `try_send`; a full one cuts its subscriber off. The tap's own queue
//! is bounded by the broker (`x-max-length`, oldest dropped first), so a tap
//! that falls behind cannot grow the broker's memory either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use secrecy::SecretString;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;
use webhookd_events::routing::is_operational;
use webhookd_events::{derive_event_id, is_visible_to, EventPattern, ParsedMessage};
use webhookd_producer::topology::{declare, Topology};
use webhookd_worker::broker::connect_any;

use super::feed::Feed;
use super::metrics::{GraphqlMetrics, ItemsStreamed, Kind, MessageSkipped, SubscriberTooSlow};

/// Messages the broker keeps for a tap that falls behind; older ones go.
const TAP_QUEUE_MAX_LENGTH: i32 = 10_000;
/// How long a new subscription waits for the tap to be bound to the
/// exchange before it is refused (the broker is away).
const READY_WAIT: Duration = Duration::from_secs(10);
const MIN_RECONNECT_PAUSE: Duration = Duration::from_millis(100);
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(5);

/// Where the events come from.
#[derive(Debug, Clone)]
pub struct EventSource {
    /// The broker's nodes (`broker.urls`, else `broker.url`): the tap
    /// connects to the first that answers and, when its session ends, tries
    /// the next first.
    pub urls: Vec<SecretString>,
    pub topology: Topology,
    /// Larger messages are skipped, as workers dead-letter them.
    pub max_message_bytes: usize,
}

/// An event as published, parsed once and shared by every subscriber.
#[derive(Debug)]
pub(crate) struct LiveEvent {
    pub(crate) id: Uuid,
    pub(crate) event: &'static str,
    pub(crate) timestamp: i64,
    pub(crate) user_id: Option<i64>,
    pub(crate) data: serde_json::Value,
}

/// Which events a subscriber gets.
pub(crate) struct EventFilter {
    pub(crate) viewer_id: i64,
    pub(crate) viewer_is_admin: bool,
    /// `None`: every event.
    pub(crate) patterns: Option<Vec<EventPattern>>,
}

impl EventFilter {
    fn admits(&self, event: &LiveEvent) -> bool {
        // Operational events speak of one user's webhooks: only that user
        // sees them (not admins), as at fan-out.
        let visible = if is_operational(event.event) {
            event.user_id == Some(self.viewer_id)
        } else {
            is_visible_to(event.user_id, self.viewer_id, self.viewer_is_admin)
        };
        visible
            && self
                .patterns
                .as_ref()
                .is_none_or(|patterns| patterns.iter().any(|p| p.matches(event.event)))
    }
}

/// The broker is away: no tap could be bound in time.
#[derive(Debug, thiserror::Error)]
#[error("the event stream is unavailable (the broker cannot be reached); try again")]
pub(crate) struct Unavailable;

#[derive(Clone)]
pub(crate) struct LiveEvents {
    inner: Arc<Inner>,
}

struct Inner {
    source: EventSource,
    buffer: usize,
    metrics: GraphqlMetrics,
    shutdown: CancellationToken,
    hub: Mutex<Hub>,
    /// The generation of the tap that is bound and consuming, if any.
    ready: watch::Sender<Option<u64>>,
}

#[derive(Default)]
struct Hub {
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
    /// The running tap: its generation and its stop switch.
    tap: Option<(u64, CancellationToken)>,
    generations: u64,
}

struct Subscriber {
    filter: EventFilter,
    items: mpsc::Sender<Arc<LiveEvent>>,
    cut_off: CancellationToken,
}

impl LiveEvents {
    pub(crate) fn new(
        source: EventSource,
        buffer: usize,
        metrics: GraphqlMetrics,
        shutdown: CancellationToken,
    ) -> Self {
        LiveEvents {
            inner: Arc::new(Inner {
                source,
                buffer,
                metrics,
                shutdown,
                hub: Mutex::default(),
                ready: watch::Sender::new(None),
            }),
        }
    }

    /// Joins the stream: every event published from the moment this returns
    /// that `filter` admits. Cancels `cut_off` if the subscriber falls a
    /// whole buffer behind.
    pub(crate) async fn subscribe(
        &self,
        filter: EventFilter,
        cut_off: CancellationToken,
    ) -> Result<Feed<Arc<LiveEvent>>, Unavailable> {
        let (sender, receiver) = mpsc::channel(self.inner.buffer);
        let (id, generation) = {
            let mut hub = self.inner.lock();
            let id = hub.next_id;
            hub.next_id += 1;
            hub.subscribers.insert(
                id,
                Subscriber {
                    filter,
                    items: sender,
                    cut_off,
                },
            );
            let generation = match &hub.tap {
                Some((generation, _)) => *generation,
                None => self.inner.start_tap(&mut hub),
            };
            (id, generation)
        };
        let membership = Membership {
            inner: self.inner.clone(),
            id,
        };
        let mut ready = self.inner.ready.subscribe();
        let bound = tokio::time::timeout(
            READY_WAIT,
            ready.wait_for(|bound| *bound == Some(generation)),
        )
        .await;
        match bound {
            Ok(Ok(_)) => Ok(Feed::new(receiver, membership)),
            _ => Err(Unavailable),
        }
    }
}

/// A subscriber's place in the hub; the last one out stops the tap.
struct Membership {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut hub = self.inner.lock();
        hub.subscribers.remove(&self.id);
        if hub.subscribers.is_empty() {
            if let Some((_, stop)) = hub.tap.take() {
                stop.cancel();
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        // Plain maps: usable whatever a panicking holder was doing.
        self.hub
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a tap (called with the hub locked) and returns its generation.
    fn start_tap(self: &Arc<Self>, hub: &mut Hub) -> u64 {
        hub.generations += 1;
        let generation = hub.generations;
        let stop = self.shutdown.child_token();
        hub.tap = Some((generation, stop.clone()));
        tokio::spawn(run_tap(self.clone(), generation, stop));
        generation
    }

    fn set_ready(&self, generation: u64) {
        self.ready.send_replace(Some(generation));
    }

    /// Only the tap that is ready says it no longer is: a stopping tap must
    /// not unready its successor.
    fn set_unready(&self, generation: u64) {
        self.ready.send_if_modified(|bound| {
            let mine = *bound == Some(generation);
            if mine {
                *bound = None;
            }
            mine
        });
    }

    /// Hands one broker message to every subscriber it is for.
    fn dispatch(&self, delivery: &Delivery) {
        let event = match parse(delivery, self.source.max_message_bytes) {
            Ok(event) => Arc::new(event),
            Err(problem) => {
                MessageSkipped {
                    reason: problem.reason(),
                    error: &problem,
                    bytes: delivery.data.len(),
                }
                .emit(&self.metrics);
                return;
            }
        };
        let mut streamed = 0;
        let mut too_slow = Vec::new();
        let mut gone = Vec::new();
        let mut hub = self.lock();
        for (id, subscriber) in &hub.subscribers {
            if !subscriber.filter.admits(&event) {
                continue;
            }
            match subscriber.items.try_send(event.clone()) {
                Ok(()) => streamed += 1,
                Err(mpsc::error::TrySendError::Full(_)) => too_slow.push(*id),
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push(*id),
            }
        }
        for id in gone {
            hub.subscribers.remove(&id);
        }
        for id in too_slow {
            if let Some(subscriber) = hub.subscribers.remove(&id) {
                subscriber.cut_off.cancel();
                SubscriberTooSlow {
                    feed: Kind::Events,
                    user_id: subscriber.filter.viewer_id,
                    buffer: self.buffer,
                }
                .emit(&self.metrics);
            }
        }
        drop(hub);
        if streamed > 0 {
            ItemsStreamed {
                feed: Kind::Events,
                count: streamed,
            }
            .emit(&self.metrics);
        }
    }
}

/// A broker message as the workers read it (`webhookd_worker::consume`):
/// the same parser, the same event id, the same default timestamp.
fn parse(
    delivery: &Delivery,
    max_bytes: usize,
) -> Result<LiveEvent, webhookd_events::MessageError> {
    let message = ParsedMessage::parse(&delivery.data, max_bytes)?;
    let message_id = delivery.properties.message_id().as_ref();
    let id = derive_event_id(message.id, message_id.map(|m| m.as_str()), &delivery.data);
    // Checked by the parser to be a JSON object any parser reads.
    let data = serde_json::from_str(message.data.get())
        .map_err(|e| webhookd_events::MessageError::NotJson(e.to_string()))?;
    Ok(LiveEvent {
        id,
        event: message.event.name,
        timestamp: message
            .timestamp
            .unwrap_or_else(|| chrono::Utc::now().timestamp()),
        user_id: message.user_id,
        data,
    })
}

/// The tap: reconnects with backoff until `stop` (no subscriber left, or
/// shutdown).
async fn run_tap(inner: Arc<Inner>, generation: u64, stop: CancellationToken) {
    let mut pause = MIN_RECONNECT_PAUSE;
    let mut node = 0;
    while !stop.is_cancelled() {
        match tap_session(&inner, generation, &stop, &mut node).await {
            Ok(()) => break,
            Err(e) => {
                // The node that failed is tried last next time.
                node = node.wrapping_add(1);
                inner.set_unready(generation);
                warn!(error = %e, "event stream: broker session ended; reconnecting");
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
    }
    inner.set_unready(generation);
}

#[derive(Debug, thiserror::Error)]
enum TapError {
    #[error(transparent)]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    Topology(#[from] webhookd_producer::topology::TopologyError),
    #[error("the broker closed the consumer")]
    Closed,
}

async fn tap_session(
    inner: &Inner,
    generation: u64,
    stop: &CancellationToken,
    node: &mut usize,
) -> Result<(), TapError> {
    let source = &inner.source;
    let (conn, connected) = connect_any(&source.urls, *node, "webhookd-graphql-events").await?;
    *node = connected;
    let channel = conn.create_channel().await?;
    // Idempotent, as every `webhookd run` does: the exchange exists even if
    // no worker has started yet.
    declare(&channel, &source.topology).await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongInt(TAP_QUEUE_MAX_LENGTH),
    );
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            source.topology.exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            format!("webhookd-graphql-{}", Uuid::new_v4()).into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    inner.set_ready(generation);
    info!(queue = %queue.name(), "event stream: tapping the exchange");
    let result = loop {
        let next = tokio::select! {
            () = stop.cancelled() => break Ok(()),
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => inner.dispatch(&delivery),
            Some(Err(e)) => break Err(e.into()),
            None => break Err(TapError::Closed),
        }
    };
    // Closing the connection deletes the exclusive queue.
    let _ = conn.close(200, "no subscriber left".into()).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &'static str, user_id: Option<i64>) -> LiveEvent {
        LiveEvent {
            id: Uuid::nil(),
            event: name,
            timestamp: 0,
            user_id,
            data: serde_json::json!({}),
        }
    }

    fn filter(viewer_id: i64, admin: bool, patterns: Option<&[&str]>) -> EventFilter {
        EventFilter {
            viewer_id,
            viewer_is_admin: admin,
            patterns: patterns.map(|p| p.iter().map(|p| EventPattern::parse(p).unwrap()).collect()),
        }
    }

    #[test]
    fn a_filter_admits_matching_events_its_viewer_may_see() {
        let tasks = filter(7, false, Some(&["task.*"]));
        assert!(tasks.admits(&event("task.created", None)));
        assert!(tasks.admits(&event("task.created", Some(7))));
        assert!(!tasks.admits(&event("task.created", Some(8))));
        assert!(!tasks.admits(&event("deal.won", None)));
        let admin = filter(1, true, None);
        assert!(admin.admits(&event("deal.won", Some(8))));
    }

    #[test]
    fn operational_events_are_their_owners_alone_admins_included() {
        let owner = filter(7, false, None);
        let admin = filter(1, true, None);
        for name in ["delivery.failed", "webhook.disabled"] {
            assert!(owner.admits(&event(name, Some(7))), "{name}");
            assert!(!admin.admits(&event(name, Some(7))), "{name}");
            assert!(!owner.admits(&event(name, Some(8))), "{name}");
        }
        assert!(admin.admits(&event("delivery.failed", Some(1))));
    }
}
