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

/// How many times a quorum queue hands a message out before dead-lettering
/// it. webhookd never requeues on purpose: a message comes back only when the
/// session holding it ends (a worker crash, a lost node), so reaching this
/// means the message itself kills its consumers, and it is parked in the
/// dead-letter queue instead of taking every worker down in turn.
pub const QUORUM_DELIVERY_LIMIT: i64 = 20;

/// `broker.queue_type`: what kind of queue the main and dead-letter queues are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum QueueType {
    /// A queue on one RabbitMQ node (the historic default).
    #[default]
    Classic,
    /// A Raft-replicated queue on a RabbitMQ cluster: a majority of its
    /// nodes keeps it, so nothing is lost when one of three stops.
    Quorum,
}

impl QueueType {
    /// The setting's value as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

impl std::fmt::Display for QueueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `broker.queue_type` that is neither `classic` nor `quorum`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a queue type: use classic or quorum")]
pub struct UnknownQueueType(pub String);

impl std::str::FromStr for QueueType {
    type Err = UnknownQueueType;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim().to_ascii_lowercase().as_str() {
            "classic" => Ok(QueueType::Classic),
            "quorum" => Ok(QueueType::Quorum),
            _ => Err(UnknownQueueType(value.to_owned())),
        }
    }
}

/// Names of the exchange and queue (the dead-letter names derive from them)
/// and the type of the queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub exchange: String,
    pub queue: String,
    pub queue_type: QueueType,
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
            queue_type: QueueType::Classic,
        }
    }

    /// The same names with queues of `queue_type`.
    pub fn with_queue_type(self, queue_type: QueueType) -> Self {
        Topology { queue_type, ..self }
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
    /// The queue exists with other arguments, most likely the other type:
    /// RabbitMQ never converts a queue, so the operator has to.
    #[error(
        "queue `{queue}` already exists with other arguments than broker.queue_type = \
         {wanted} asks for ({broker_says}); RabbitMQ cannot change a queue's type: \
         drain broker.queue and its dead-letter queue (`<broker.queue>.dlq`), delete \
         both and restart webhookd with the new type, or set broker.queue to a new name (docs/OPERATIONS.md, \"Migrating a classic queue \
         to quorum\")"
    )]
    QueueMismatch {
        queue: String,
        wanted: QueueType,
        broker_says: String,
    },
}

impl TopologyError {
    /// True when restarting cannot help: the broker holds a queue that does
    /// not match the settings (as opposed to a broker that is unreachable).
    pub fn is_mismatch(&self) -> bool {
        matches!(self, TopologyError::QueueMismatch { .. })
    }
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
    // Quorum queues must be durable, not exclusive, not auto-delete: the
    // same options as the classic ones.
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let queue_type = topology.queue_type;

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
        .queue_declare(
            dlq.clone(),
            durable_queue,
            dead_letter_queue_arguments(queue_type),
        )
        .await
        .map_err(|source| queue_failed(&dlq, "dead-letter queue", queue_type, source))?;
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
        .queue_declare(
            queue.clone(),
            durable_queue,
            queue_arguments(&dlx, queue_type),
        )
        .await
        .map_err(|source| queue_failed(&queue, "queue", queue_type, source))?;
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

/// A refused queue declaration; `PRECONDITION_FAILED` (406) means the queue
/// exists with other arguments.
fn queue_failed(
    queue: &ShortString,
    what: &str,
    wanted: QueueType,
    source: lapin::Error,
) -> TopologyError {
    if let lapin::ErrorKind::ProtocolError(amqp) = source.kind() {
        if amqp.get_id() == PRECONDITION_FAILED {
            return TopologyError::QueueMismatch {
                queue: queue.to_string(),
                wanted,
                broker_says: amqp.get_message().to_string(),
            };
        }
    }
    TopologyError::Declare {
        what: format!("{what} `{queue}`"),
        source,
    }
}

/// AMQP's reply code for a redeclaration with different arguments.
const PRECONDITION_FAILED: u16 = 406;

/// The main queue's arguments. Classic: exactly those of every release so
/// far (a restart must redeclare an existing queue identically). Quorum:
/// - `x-dead-letter-strategy: at-least-once`, so a message the broker
///   dead-letters stays in the queue until the dead-letter queue has
///   confirmed it (the default, at-most-once, may drop it when a node dies
///   on the way); it needs `x-overflow: reject-publish`, which without a
///   length limit changes nothing else;
/// - `x-delivery-limit` ([`QUORUM_DELIVERY_LIMIT`]).
fn queue_arguments(dead_letter_exchange: &ShortString, queue_type: QueueType) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dead_letter_exchange.as_str().into()),
    );
    if queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments.insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        );
        arguments.insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
        arguments.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(QUORUM_DELIVERY_LIMIT),
        );
    }
    arguments
}

/// The dead-letter queue's: none for classic (as always), the type alone
/// for quorum (it dead-letters nowhere further).
fn dead_letter_queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut arguments = FieldTable::default();
    if queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
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
        let args = queue_arguments(&"crm.events.dlx".into(), QueueType::Classic);
        assert_eq!(
            args.inner().get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("crm.events.dlx".into()))
        );
        assert_eq!(args.inner().len(), 1, "classic queues keep their arguments");
        assert!(dead_letter_queue_arguments(QueueType::Classic)
            .inner()
            .is_empty());
    }

    #[test]
    fn quorum_queues_dead_letter_at_least_once_with_a_delivery_limit() {
        let args = queue_arguments(&"crm.events.dlx".into(), QueueType::Quorum);
        let get = |key: &str| args.inner().get(key).cloned();
        assert_eq!(
            get("x-queue-type"),
            Some(AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(
            get("x-dead-letter-exchange"),
            Some(AMQPValue::LongString("crm.events.dlx".into()))
        );
        assert_eq!(
            get("x-dead-letter-strategy"),
            Some(AMQPValue::LongString("at-least-once".into()))
        );
        assert_eq!(
            get("x-overflow"),
            Some(AMQPValue::LongString("reject-publish".into()))
        );
        assert_eq!(
            get("x-delivery-limit"),
            Some(AMQPValue::LongLongInt(QUORUM_DELIVERY_LIMIT))
        );
        let dlq = dead_letter_queue_arguments(QueueType::Quorum);
        assert_eq!(
            dlq.inner().get("x-queue-type"),
            Some(&AMQPValue::LongString("quorum".into()))
        );
        assert_eq!(dlq.inner().len(), 1);
    }

    #[test]
    fn queue_types_parse_from_the_setting() {
        assert_eq!("classic".parse(), Ok(QueueType::Classic));
        assert_eq!(" Quorum ".parse(), Ok(QueueType::Quorum));
        let error = "stream".parse::<QueueType>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "`stream` is not a queue type: use classic or quorum"
        );
        assert_eq!(QueueType::default(), QueueType::Classic);
        assert_eq!(Topology::default().queue_type, QueueType::Classic);
    }

    #[test]
    fn an_overlong_name_is_an_error_not_a_panic() {
        let name = "x".repeat(256);
        assert!(matches!(short(&name), Err(TopologyError::NameTooLong(_))));
        assert!(short(&"x".repeat(255)).is_ok());
    }
}
