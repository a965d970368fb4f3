//! The API process's publisher for `POST /api/v1/events`: the producer's
//! confirmed, `mandatory`, persistent [`Publisher`] on the configured
//! exchange and broker nodes, connected on the first event (so an API
//! process that never ingests never connects) and kept: it restores a lost
//! connection by itself on the next publish.
//!
//! Every publish is bounded: an event not confirmed within
//! [`IngestConfig::confirm_timeout`] is reported unavailable, and the
//! handler answers 503, never 202 without a confirm. After a failure
//! further requests fail fast for [`COOL_DOWN`], so an outage does not
//! pile up requests each waiting for the bound.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;
use webhookd_events::EventMessage;
use webhookd_producer::{PublishError, Publisher, PublisherOptions, Topology};

/// How long requests are answered 503 without trying after the broker
/// failed one.
const COOL_DOWN: Duration = Duration::from_secs(1);

/// What the ingest publishes to, from the `broker` settings.
#[derive(Clone)]
pub struct IngestConfig {
    /// The broker nodes, tried in order (`broker.urls`, else `broker.url`).
    pub urls: Vec<SecretString>,
    pub topology: Topology,
    /// `broker.max_message_bytes`: the consumer's limit, so nothing is
    /// accepted that it would dead-letter as too large.
    pub max_message_bytes: usize,
    /// The longest a request waits for the broker (connecting, and the
    /// confirm) before answering 503.
    pub confirm_timeout: Duration,
}

impl std::fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URLs hold the broker's password.
        f.debug_struct("IngestConfig")
            .field("nodes", &self.urls.len())
            .field("topology", &self.topology)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("confirm_timeout", &self.confirm_timeout)
            .finish()
    }
}

/// Why an event could not be handed to the broker; it was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unavailable {
    #[error("the broker failed moments ago; not retrying yet")]
    CoolingDown,
    #[error("the broker did not confirm the event within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

#[derive(Clone)]
pub(crate) struct IngestBroker {
    config: Arc<IngestConfig>,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    publisher: Option<Arc<Publisher>>,
    /// Until when requests fail fast after a failure.
    cooling_until: Option<Instant>,
}

impl IngestBroker {
    pub(crate) fn new(config: IngestConfig) -> Self {
        IngestBroker {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    pub(crate) fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Publishes `message` and waits for the broker's confirm, within the
    /// bound.
    pub(crate) async fn publish(
        &self,
        message: &EventMessage,
        body: Vec<u8>,
    ) -> Result<(), Unavailable> {
        let bound = self.config.confirm_timeout;
        let result = match tokio::time::timeout(bound, self.try_publish(message, body)).await {
            Ok(result) => result,
            Err(_) => Err(Unavailable::TimedOut(bound)),
        };
        // A refusal during the cool-down must not extend it: under steady
        // traffic the cool-down would never end and the broker, back, never
        // be tried again.
        if result
            .as_ref()
            .is_err_and(|e| !matches!(e, Unavailable::CoolingDown))
        {
            let mut state = self.state.lock().await;
            state.cooling_until = Some(Instant::now() + COOL_DOWN);
            // A fresh connection after the cool-down rather than the failed
            // one's own reconnecting, whose backoff may outlast every
            // request's bound once the broker is back.
            if let Some(failed) = state.publisher.take() {
                tokio::spawn(async move { failed.close().await });
            }
        }
        result
    }

    /// Closes the broker connection, if one was opened; on shutdown, once
    /// no request is served any more.
    pub(crate) async fn close(&self) {
        let publisher = self.state.lock().await.publisher.take();
        if let Some(publisher) = publisher {
            publisher.close().await;
        }
    }

    async fn try_publish(&self, message: &EventMessage, body: Vec<u8>) -> Result<(), Unavailable> {
        let publisher = self.publisher().await?;
        publisher.publish_body(message, body).await?;
        Ok(())
    }

    /// The publisher, connecting it first if needed. The lock is held while
    /// connecting, so concurrent first requests open one connection.
    async fn publisher(&self) -> Result<Arc<Publisher>, Unavailable> {
        let mut state = self.state.lock().await;
        if state
            .cooling_until
            .is_some_and(|until| Instant::now() < until)
        {
            return Err(Unavailable::CoolingDown);
        }
        if let Some(publisher) = &state.publisher {
            return Ok(publisher.clone());
        }
        let urls: Vec<&str> = self
            .config
            .urls
            .iter()
            .map(|url| url.expose_secret())
            .collect();
        let options = PublisherOptions {
            // Within the request's bound: a publish on a lost connection
            // gives up reconnecting in time for the handler to answer 503.
            reconnect_timeout: self.config.confirm_timeout,
            max_in_flight: 1,
            connection_name: "webhookd-api-ingest".to_owned(),
        };
        let publisher = Arc::new(
            Publisher::connect_cluster(&urls, self.config.topology.clone(), options).await?,
        );
        tracing::info!("HTTP ingest connected to the broker");
        state.publisher = Some(publisher.clone());
        Ok(publisher)
    }
}
