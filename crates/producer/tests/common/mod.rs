//! A real RabbitMQ per test, isolated by names: every test declares its own
//! exchange and queue (suffixed with a UUID) and deletes them when its
//! `TestBroker` drops, even after a failed assertion, so tests run in parallel.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

pub mod proxy;

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use uuid::Uuid;
use webhookd_producer::{declare, Publisher, PublisherOptions, Topology};

/// Longest any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub fn broker_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub struct TestBroker {
    pub topology: Topology,
    pub channel: Channel,
    /// Kept open for `channel`.
    connection: Connection,
}

impl TestBroker {
    /// Unique names and a connection of the test's own, to inspect the queue.
    /// Nothing is declared yet.
    pub async fn new() -> TestBroker {
        let suffix = Uuid::new_v4().simple().to_string();
        let topology = Topology::new(
            format!("test.{suffix}.events"),
            format!("test.{suffix}.queue"),
        );
        let connection = Connection::connect(&broker_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672 (see README: the test command starts it)");
        let channel = connection.create_channel().await.expect("channel");
        TestBroker {
            topology,
            channel,
            connection,
        }
    }

    pub async fn declare(&self) {
        declare(&self.channel, &self.topology)
            .await
            .expect("declare");
    }

    pub async fn publisher(&self) -> Publisher {
        self.publisher_with(PublisherOptions::default()).await
    }

    pub async fn publisher_with(&self, options: PublisherOptions) -> Publisher {
        self.publisher_at(&broker_url(), options).await
    }

    pub async fn publisher_at(&self, url: &str, options: PublisherOptions) -> Publisher {
        Publisher::connect_with(url, self.topology.clone(), options)
            .await
            .expect("publisher connects")
    }

    /// Takes the next message of `queue`, if any.
    pub async fn get_from(&self, queue: &str) -> Option<BasicGetMessage> {
        self.channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .expect("basic_get")
    }

    pub async fn get(&self) -> Option<BasicGetMessage> {
        self.get_from(&self.topology.queue.clone()).await
    }

    pub async fn message_count(&self) -> u32 {
        self.channel
            .queue_declare(
                self.topology.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("the queue exists")
            .message_count()
    }

    /// Consumes the queue until every id in `expected` has been seen; returns
    /// all deliveries, duplicates included. Fails after `PATIENCE`.
    pub async fn consume_until(&self, expected: &HashSet<Uuid>) -> Vec<Delivery> {
        let mut consumer = self
            .channel
            .basic_consume(
                self.topology.queue.as_str().into(),
                format!("test-{}", Uuid::new_v4()).into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("basic_consume");
        let mut missing = expected.clone();
        let mut deliveries = Vec::new();
        let outcome = tokio::time::timeout(PATIENCE, async {
            while !missing.is_empty() {
                let delivery = consumer
                    .next()
                    .await
                    .expect("consumer open")
                    .expect("delivery");
                if let Some(id) = message_id(&delivery) {
                    missing.remove(&id);
                }
                deliveries.push(delivery);
            }
        })
        .await;
        assert!(
            outcome.is_ok(),
            "{} of {} messages never arrived",
            missing.len(),
            expected.len()
        );
        deliveries
    }

    /// Deletes the queue only, leaving the exchange with nothing bound.
    pub async fn delete_queue(&self) {
        self.channel
            .queue_delete(
                self.topology.queue.as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await
            .expect("queue_delete");
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let topology = self.topology.clone();
        // Drop cannot await; a thread with its own runtime and connection
        // deletes the test's exchanges and queues whatever state the test's
        // own connection is in.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(delete_topology(&topology));
        });
        let _ = cleanup.join();
    }
}

async fn delete_topology(topology: &Topology) {
    let Ok(connection) = Connection::connect(&broker_url(), ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        for queue in [topology.queue.clone(), topology.dead_letter_queue()] {
            let _ = channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [topology.exchange.clone(), topology.dead_letter_exchange()] {
            let _ = channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = connection.close(200, "test done".into()).await;
}

pub fn message_id(delivery: &Delivery) -> Option<Uuid> {
    delivery
        .properties
        .message_id()
        .as_ref()
        .and_then(|id| Uuid::parse_str(id.as_str()).ok())
}

/// Polls `attempt` every 20 ms until it yields a value; fails after `PATIENCE`.
pub async fn eventually<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
