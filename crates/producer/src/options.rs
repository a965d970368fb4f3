//! The publisher's settings, below the link and the pipeline that read them.

use std::time::Duration;

/// Tuning knobs; [`Default`] suits a CRM service.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// How long to keep trying to restore a lost connection before a publish
    /// fails with [`PublishError::ConnectionLost`]. Also bounds the first
    /// connection attempt.
    ///
    /// [`PublishError::ConnectionLost`]: crate::PublishError::ConnectionLost
    pub reconnect_timeout: Duration,
    /// Messages published but not yet confirmed, at most, per `publish_many`.
    pub max_in_flight: usize,
    /// Shown in the RabbitMQ management UI and `rabbitmqctl list_connections`.
    pub connection_name: String,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            reconnect_timeout: Duration::from_secs(30),
            max_in_flight: 1000,
            connection_name: "webhookd-producer".to_owned(),
        }
    }
}
