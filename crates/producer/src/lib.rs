//! Publish CRM events to webhookd through RabbitMQ.
//!
//! A CRM service builds an [`EventMessage`] with a typed constructor
//! ([`Event::task_created`], ...) and hands it to a [`Publisher`], which
//! returns once the broker has confirmed the message to disk. The publisher
//! declares the exchange and queue itself ([`topology::declare`]), so events
//! published before any webhookd worker has started are kept; it publishes
//! `mandatory`, so an event no queue would take is an error instead of a silent
//! drop; and it survives broker restarts by reconnecting and republishing what
//! was not confirmed (at-least-once: the daemon de-duplicates by event id).
//!
//! # Embedding in a CRM service
//!
//! ```no_run
//! use std::sync::Arc;
//! use chrono::Utc;
//! use webhookd_producer::{Event, Publisher, PublishError, TaskCreated, Topology};
//!
//! struct TaskService {
//!     events: Arc<Publisher>,
//! }
//!
//! impl TaskService {
//!     async fn create_task(&self, owner_id: i64, title: &str) -> Result<i64, PublishError> {
//!         let task_id = 123; // ... insert the task ...
//!         let event = Event::task_created(TaskCreated {
//!             task_id,
//!             title: title.to_owned(),
//!             status: "pending".into(),
//!             priority: "medium".into(),
//!             assignee_id: None,
//!             due_at: None,
//!             created_at: Utc::now(),
//!         })
//!         // Only this user's webhooks (and admins') receive it.
//!         .with_user_id(owner_id);
//!         self.events.publish(&event).await?;
//!         Ok(task_id)
//!     }
//! }
//!
//! # async fn start() -> Result<(), PublishError> {
//! // One publisher per process, shared by every request handler.
//! let events = Arc::new(
//!     Publisher::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Topology::default()).await?,
//! );
//! let tasks = TaskService { events };
//! tasks.create_task(7, "Call the client").await?;
//! # Ok(()) }
//! ```
//!
//! Events without a typed struct yet go through [`Event::custom`]; bulk
//! imports through [`Publisher::publish_many`], which keeps up to
//! [`PublisherOptions::max_in_flight`] messages awaiting their confirm.

pub(crate) mod broker_url;
mod error;
pub mod event;
mod link;
pub mod ndjson;
mod options;
mod pipeline;
pub(crate) mod publisher;
pub mod topology;

pub use broker_url::{BrokerUrl, InvalidBrokerUrl};
pub use event::{
    ClientCreated, CommentAdded, DealCreated, DealLost, DealWon, Event, EventData, TaskCompleted,
    TaskCreated, TaskDeleted, TaskUpdated, WebhookTest,
};
pub use publisher::{PublishError, Publisher, PublisherOptions};
pub use topology::{
    declare, QueueType, Topology, TopologyError, UnknownQueueType, REJECT_REASON_HEADER,
};
pub use webhookd_events::{EventMessage, MessageError};
