//! What the GraphQL side is given: the API's state (pool, settings, test
//! client), its own settings, and the live feeds.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::live_attempts::{LiveAttempts, PollSettings};
use super::live_events::{EventSource, LiveEvents};
use super::metrics::GraphqlMetrics;
use super::slots::Slots;
use crate::api::ApiState;

/// The `graphql` settings.
#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    /// Deepest selection a query may nest.
    pub max_depth: usize,
    /// Largest complexity a query may have (a field counts 1; a page
    /// counts its `limit` times its selection).
    pub max_complexity: usize,
    /// Open subscriptions per user on one process.
    pub max_subscriptions_per_user: usize,
    /// Items buffered per subscriber; a subscriber that falls this far
    /// behind is disconnected.
    pub subscriber_buffer: usize,
    /// How often `webhook_logs` is read for watched webhooks.
    pub attempts_poll_interval: Duration,
    /// How far back each read reaches for rows committed late.
    pub attempts_overlap: Duration,
}

#[derive(Clone)]
pub struct GraphqlState {
    pub(crate) api: ApiState,
    pub(crate) config: GraphqlConfig,
    pub(crate) events: LiveEvents,
    pub(crate) attempts: LiveAttempts,
    pub(crate) slots: Slots,
    pub(crate) shutdown: CancellationToken,
}

impl GraphqlState {
    /// The live feeds start nothing until somebody subscribes; `shutdown`
    /// stops them and closes every subscriber's connection.
    pub fn new(
        api: ApiState,
        config: GraphqlConfig,
        source: EventSource,
        metrics: GraphqlMetrics,
        shutdown: CancellationToken,
    ) -> Self {
        let events = LiveEvents::new(
            source,
            config.subscriber_buffer,
            metrics.clone(),
            shutdown.clone(),
        );
        let attempts = LiveAttempts::new(
            api.pool.clone(),
            PollSettings {
                interval: config.attempts_poll_interval,
                overlap: config.attempts_overlap,
                buffer: config.subscriber_buffer,
            },
            metrics.clone(),
            shutdown.clone(),
        );
        let slots = Slots::new(config.max_subscriptions_per_user, metrics);
        GraphqlState {
            api,
            config,
            events,
            attempts,
            slots,
            shutdown,
        }
    }

    /// The attempt feed, which the web UI's live logs page shares.
    pub fn attempts(&self) -> LiveAttempts {
        self.attempts.clone()
    }
}
