//! What `POST /api/v1/events` shares between requests: the broker publisher
//! and the metrics. Apart from the handler (`ingest.rs`), which needs the
//! API state that holds this.

use super::ingest_broker::{IngestBroker, IngestConfig};
use super::ingest_metrics::IngestMetrics;
use crate::graphql::metrics::GraphqlMetrics;

/// The ingest's publisher and metrics, shared by every request.
#[derive(Clone)]
pub struct Ingest {
    pub(crate) broker: IngestBroker,
    pub(crate) metrics: IngestMetrics,
}

impl Ingest {
    /// Registers the ingest's metrics with the admin side's (rendered by
    /// `/metrics`); connects to the broker only on the first event.
    pub fn new(config: IngestConfig, metrics: &GraphqlMetrics) -> Result<Self, prometheus::Error> {
        Ok(Ingest {
            broker: IngestBroker::new(config),
            metrics: IngestMetrics::register(metrics.registry())?,
        })
    }

    /// Closes the ingest's broker connection (on shutdown, after the server
    /// stopped).
    pub async fn close(&self) {
        self.broker.close().await;
    }
}
