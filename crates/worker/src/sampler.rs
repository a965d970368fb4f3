//! Samples gauges that no code path updates on its own: database pool usage,
//! the broker queue's depth and the backlog of unfinished deliveries. Runs
//! in worker roles, every [`SAMPLE_INTERVAL`].

use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::debug;
use webhookd_store::{backlog, breakers};

use crate::broker::connect_any;
use crate::metrics::breaker_events::BreakersSampled;
use crate::metrics::events::{BacklogSampled, PoolSampled, QueueSampled};
use crate::metrics::Metrics;

/// Often enough for alerts and autoscaling, rare enough that the queries and
/// the passive declare cost nothing noticeable.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

pub struct Sampler {
    pub pool: PgPool,
    /// The broker's nodes; the first that answers is sampled.
    pub broker_urls: Vec<SecretString>,
    pub queue: String,
    pub metrics: Metrics,
}

impl Sampler {
    pub async fn run(self, cancel: CancellationToken) {
        // Its own connection: a channel closed by a failed passive declare
        // (queue not there yet) must not disturb the consumer's.
        let mut broker: Option<(Connection, Channel)> = None;
        loop {
            // A sample can hang on an unreachable database or broker; it must
            // not hold up shutdown.
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.sample(&mut broker) => {}
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(SAMPLE_INTERVAL) => {}
            }
        }
        if let Some((conn, _)) = broker {
            let _ = conn.close(200, "webhookd stopping".into()).await;
        }
    }

    async fn sample(&self, broker: &mut Option<(Connection, Channel)>) {
        self.sample_pool();
        if let Err(e) = self.sample_backlog().await {
            debug!(error = %e, "sampling the delivery backlog failed");
        }
        match breakers::count_open(&self.pool).await {
            Ok(open) => BreakersSampled { open }.emit(&self.metrics),
            Err(e) => debug!(error = %e, "sampling the open circuit breakers failed"),
        }
        if let Err(e) = self.sample_queue(broker).await {
            debug!(error = %e, "sampling the broker queue failed");
            if let Some((conn, _)) = broker.take() {
                let _ = conn.close(200, "reconnecting".into()).await;
            }
        }
    }

    fn sample_pool(&self) {
        PoolSampled {
            size: self.pool.size(),
            idle: self.pool.num_idle(),
        }
        .emit(&self.metrics);
    }

    async fn sample_backlog(&self) -> Result<(), sqlx::Error> {
        let (pending, oldest) = backlog::sample_backlog(&self.pool).await?;
        BacklogSampled {
            pending,
            oldest_secs: oldest,
        }
        .emit(&self.metrics);
        Ok(())
    }

    async fn sample_queue(
        &self,
        broker: &mut Option<(Connection, Channel)>,
    ) -> Result<(), lapin::Error> {
        if broker
            .as_ref()
            .is_none_or(|(_, ch)| !ch.status().connected())
        {
            let (conn, _node) = connect_any(&self.broker_urls, 0, "webhookd-sampler").await?;
            let channel = conn.create_channel().await?;
            *broker = Some((conn, channel));
        }
        let Some((_, channel)) = broker.as_ref() else {
            return Ok(());
        };
        // Passive: only reads the queue's counts, never creates it.
        let queue = channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        QueueSampled {
            ready: queue.message_count(),
        }
        .emit(&self.metrics);
        Ok(())
    }
}
