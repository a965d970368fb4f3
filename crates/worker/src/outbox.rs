//! The outbox relay: publishes operational events (`delivery.failed`,
//! `webhook.disabled`; SPEC §13) to the events exchange, where they are
//! consumed, fanned out and delivered like any CRM event.
//!
//! The rows are written by database triggers in the statement that records
//! the failure (migration 0011), so whichever stage ended a delivery, the
//! event exists exactly when the failure does. The relay takes the oldest
//! rows (`FOR UPDATE SKIP LOCKED`: every worker runs one), publishes them
//! with publisher confirms through the producer's `Publisher`, and deletes
//! them only after the confirm. A crash in between publishes them again
//! under the same event id, which the fan-out de-duplicates; a broker that
//! is away leaves them waiting in Postgres.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use webhookd_events::EventMessage;
use webhookd_producer::{PublishError, Publisher, PublisherOptions, Topology};
use webhookd_store::outbox::{self, OutboxRow, Taken};
use webhookd_store::StorageError;

use crate::metrics::events::{
    OutboxPublishFailed, OutboxPublished, OutboxRowDropped, OutboxSampled, StorageFailed, Then,
};
use crate::metrics::Metrics;

/// How often an idle relay looks at the outbox. Failures are rare, so a
/// count on an empty table every quarter second costs next to nothing, and
/// needs no connection of its own as a `LISTEN` would.
const POLL: Duration = Duration::from_millis(250);
/// After a failure (database or broker): wait a little before trying again.
const RETRY_PAUSE: Duration = Duration::from_secs(2);
/// Rows published per confirm round and transaction.
const BATCH: i64 = 100;
/// How long a publish waits for a lost broker connection to come back
/// before the rows are handed back for a later pass.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One worker's relay.
pub struct OutboxRelay {
    pub pool: PgPool,
    pub metrics: Metrics,
    /// The broker's nodes (`Publisher::connect_cluster`).
    pub broker_urls: Vec<SecretString>,
    pub topology: Topology,
}

impl OutboxRelay {
    pub async fn run(self, cancel: CancellationToken) {
        // Connected on the first row to publish, so an idle worker holds no
        // second broker connection until it needs one.
        let mut publisher: Option<Publisher> = None;
        loop {
            // Cut off mid-publish, the transaction rolls back and the rows
            // are published again later under the same ids.
            let pause = tokio::select! {
                () = cancel.cancelled() => break,
                pause = self.pass(&mut publisher) => pause,
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        if let Some(publisher) = publisher {
            publisher.close().await;
        }
    }

    /// Publishes what the outbox holds; returns how long to wait before the
    /// next pass.
    async fn pass(&self, publisher: &mut Option<Publisher>) -> Duration {
        let backlog = match outbox::backlog(&self.pool).await {
            Ok(backlog) => backlog,
            Err(error) => return self.storage_failed("outbox_backlog", &error),
        };
        OutboxSampled { backlog }.emit(&self.metrics);
        if backlog == 0 {
            return POLL;
        }
        let publisher = match publisher {
            Some(publisher) => publisher,
            None => match self.connect().await {
                Ok(connected) => publisher.insert(connected),
                Err(error) => {
                    OutboxPublishFailed {
                        error: &error,
                        events: usize::try_from(backlog).unwrap_or(usize::MAX),
                    }
                    .emit();
                    return RETRY_PAUSE;
                }
            },
        };
        loop {
            let taken = match outbox::take(&self.pool, BATCH).await {
                Ok(taken) => taken,
                Err(error) => return self.storage_failed("outbox_take", &error),
            };
            let count = taken.rows.len();
            if count == 0 {
                return POLL; // what is left is held by another replica
            }
            if let Err(pause) = self.publish(publisher, taken).await {
                return pause;
            }
            if i64::try_from(count).unwrap_or(i64::MAX) < BATCH {
                return POLL;
            }
        }
    }

    /// Publishes the rows taken and deletes them; `Err` holds the pause
    /// before trying again.
    async fn publish(&self, publisher: &Publisher, taken: Taken) -> Result<(), Duration> {
        let messages: Vec<EventMessage> = taken.rows.iter().filter_map(to_message).collect();
        if let Err(error) = publisher.publish_many(&messages, |_| {}).await {
            OutboxPublishFailed {
                error: &error,
                events: messages.len(),
            }
            .emit();
            return Err(RETRY_PAUSE); // dropping `taken` hands the rows back
        }
        let events: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
        OutboxPublished { events: &events }.emit(&self.metrics);
        if let Err(error) = taken.delete_published().await {
            // Published but not deleted: published again next time, and
            // de-duplicated by event id.
            return Err(self.storage_failed("outbox_delete", &error));
        }
        Ok(())
    }

    async fn connect(&self) -> Result<Publisher, PublishError> {
        let urls: Vec<&str> = self.broker_urls.iter().map(|u| u.expose_secret()).collect();
        Publisher::connect_cluster(
            &urls,
            self.topology.clone(),
            PublisherOptions {
                reconnect_timeout: RECONNECT_TIMEOUT,
                connection_name: "webhookd-outbox".to_owned(),
                ..PublisherOptions::default()
            },
        )
        .await
    }

    fn storage_failed(&self, operation: &'static str, error: &StorageError) -> Duration {
        StorageFailed {
            operation,
            error,
            then: Then::PublishLater,
        }
        .emit(&self.metrics);
        RETRY_PAUSE
    }
}

/// The broker message of an outbox row (SPEC §5), its id the row's.
fn to_message(row: &OutboxRow) -> Option<EventMessage> {
    let built = serde_json::from_str(&row.data)
        .map_err(|e| e.to_string())
        .and_then(|data| {
            EventMessage::new(&row.event, data, row.timestamp).map_err(|e| e.to_string())
        });
    match built {
        Ok(message) => Some(message.with_id(row.id).with_user_id(row.user_id)),
        Err(error) => {
            OutboxRowDropped {
                event_id: row.id,
                error: &error,
            }
            .emit();
            None
        }
    }
}
