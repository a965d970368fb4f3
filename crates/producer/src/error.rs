//! The error of every publisher operation, below the modules that return it so
//! that none of them depends on the publisher.

use std::time::Duration;

use uuid::Uuid;

use crate::broker_url::InvalidBrokerUrl;
use crate::topology::TopologyError;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    InvalidUrl(#[from] InvalidBrokerUrl),
    #[error("cannot connect to the broker at {url}")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("timed out connecting to the broker at {url}")]
    ConnectTimedOut { url: String },
    #[error("no broker URL given")]
    NoBrokerUrl,
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Refused before publishing: the daemon would dead-letter it.
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    /// The broker confirmed the message but no queue is bound to take it.
    #[error("event {id} ({event}) is unroutable: no queue is bound to exchange `{exchange}`")]
    Unroutable {
        id: Uuid,
        event: String,
        exchange: String,
    },
    /// The broker kept refusing the message for `reconnect_timeout` (an
    /// internal error, a full queue, a quorum queue without a majority).
    #[error("the broker refused event {id} ({event})")]
    Nacked { id: Uuid, event: String },
    #[error("lost the broker connection and could not restore it within {timeout:?}")]
    ConnectionLost {
        timeout: Duration,
        #[source]
        last_error: Box<PublishError>,
    },
}
