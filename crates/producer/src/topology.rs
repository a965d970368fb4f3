//! The broker topology shared by the producer and the daemon.
//!
//! [`declare`] is the only place exchanges, queues and bindings are declared.
//! RabbitMQ refuses a redeclaration whose arguments differ (`PRECONDITION_FAILED`),
//! so the producer, `webhookd migrate` and `webhookd run` must all call this one
//! function rather than spell the arguments out themselves.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

/// Default name of the topic exchange CRM services publish to.
pub const DEFAULT_EXCHANGE: &str = "crm.events";
/// Default name of the durable queue the webhookd workers consume.
pub const DEFAULT_QUEUE: &str = "webhookd.events";

/// Header the daemon sets on a message it dead-letters, holding the
/// low-cardinality reason (`MessageError::reason`), so an operator reading the
/// dead-letter queue sees why without digging through logs.
pub const REJECT_REASON_HEADER: &str = "x-webhookd-reject-reason";

/// Routing key binding the queue to the exchange: every event, so a newly
/// added event type needs no topology change.
const ALL_EVENTS: &str = "#";

/// Names of the exchange and queue; the dead-letter names derive from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
}

impl Default for Topology {
    fn default() -> Self {
        Topology::new(DEFAULT_EXCHANGE, DEFAULT_QUEUE)
    }
}

impl Topology {
    pub fn new(exchange: impl Into<String>, queue: impl Into<String>) -> Self {
        Topology {
            exchange: exchange.into(),
            queue: queue.into(),
        }
    }

    /// The fanout exchange rejected messages are dead-lettered to.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.exchange)
    }

    /// The durable queue that keeps dead-lettered messages for inspection.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dlq", self.queue)
    }
}

/// A declaration the broker refused, or a name AMQP cannot carry.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot declare {what}")]
    Declare {
        what: String,
        #[source]
        source: lapin::Error,
    },
    #[error("name `{0}` is longer than the 255 bytes AMQP allows")]
    NameTooLong(String),
}

/// Declares the exchange, the queue with its dead-letter exchange and queue,
/// and the bindings. Idempotent: redeclaring with the same arguments is a no-op
/// for the broker, so every process may call it at start-up.
pub async fn declare(channel: &Channel, topology: &Topology) -> Result<(), TopologyError> {
    let exchange = short(&topology.exchange)?;
    let queue = short(&topology.queue)?;
    let dlx = short(&topology.dead_letter_exchange())?;
    let dlq = short(&topology.dead_letter_queue())?;
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };

    let failed = |what: String| move |source| TopologyError::Declare { what, source };

    channel
        .exchange_declare(
            exchange.clone(),
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await
        .map_err(failed(format!("exchange `{exchange}`")))?;
    channel
        .exchange_declare(
            dlx.clone(),
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await
        .map_err(failed(format!("dead-letter exchange `{dlx}`")))?;
    channel
        .queue_declare(dlq.clone(), durable_queue, FieldTable::default())
        .await
        .map_err(failed(format!("dead-letter queue `{dlq}`")))?;
    channel
        .queue_bind(
            dlq.clone(),
            dlx.clone(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(failed(format!("binding `{dlq}` to `{dlx}`")))?;
    channel
        .queue_declare(queue.clone(), durable_queue, queue_arguments(&dlx))
        .await
        .map_err(failed(format!("queue `{queue}`")))?;
    channel
        .queue_bind(
            queue.clone(),
            exchange.clone(),
            ALL_EVENTS.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(failed(format!("binding `{queue}` to `{exchange}`")))?;
    Ok(())
}

fn queue_arguments(dead_letter_exchange: &ShortString) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dead_letter_exchange.as_str().into()),
    );
    arguments
}

fn short(name: &str) -> Result<ShortString, TopologyError> {
    ShortString::try_new(name).map_err(|_| TopologyError::NameTooLong(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_topology_is_the_contract_names() {
        let t = Topology::default();
        assert_eq!(t.exchange, "crm.events");
        assert_eq!(t.queue, "webhookd.events");
        assert_eq!(t.dead_letter_exchange(), "crm.events.dlx");
        assert_eq!(t.dead_letter_queue(), "webhookd.events.dlq");
    }

    #[test]
    fn the_queue_dead_letters_to_the_dlx() {
        let args = queue_arguments(&"crm.events.dlx".into());
        assert_eq!(
            args.inner().get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("crm.events.dlx".into()))
        );
        assert_eq!(args.inner().len(), 1);
    }

    #[test]
    fn an_overlong_name_is_an_error_not_a_panic() {
        let name = "x".repeat(256);
        assert!(matches!(short(&name), Err(TopologyError::NameTooLong(_))));
        assert!(short(&"x".repeat(255)).is_ok());
    }
}
