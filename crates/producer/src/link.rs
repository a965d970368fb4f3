//! One connection to the broker with a confirm-mode channel and the topology
//! declared: what the publisher replaces wholesale when the broker goes away.

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::broker_url::BrokerUrl;
use crate::publisher::PublishError;
use crate::topology::{self, Topology};

pub(crate) struct Link {
    connection: Connection,
    pub(crate) channel: Channel,
}

impl Link {
    /// Connects, opens a channel in confirm mode and declares the topology.
    pub(crate) async fn open(
        url: &BrokerUrl,
        topology: &Topology,
        connection_name: &str,
    ) -> Result<Link, PublishError> {
        let connect_error = |source| PublishError::Connect {
            url: url.to_string(),
            source,
        };
        let properties =
            ConnectionProperties::default().with_connection_name(connection_name.into());
        let connection = Connection::connect_uri(url.uri().clone(), properties)
            .await
            .map_err(connect_error)?;
        let link = async {
            let channel = connection.create_channel().await.map_err(connect_error)?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(connect_error)?;
            topology::declare(&channel, topology).await?;
            Ok(channel)
        }
        .await;
        match link {
            Ok(channel) => Ok(Link {
                connection,
                channel,
            }),
            Err(error) => {
                // The TCP connection is up; do not leak it when setup failed.
                Link::close_connection(connection).await;
                Err(error)
            }
        }
    }

    /// False once the broker or the network closed the connection or the
    /// channel (a channel-level error such as a deleted exchange closes only
    /// the channel).
    pub(crate) fn is_open(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Closes without waiting, for a link being replaced after an error.
    pub(crate) fn close_in_background(self) {
        tokio::spawn(Link::close_connection(self.connection));
    }

    pub(crate) async fn close(self) {
        Link::close_connection(self.connection).await;
    }

    async fn close_connection(connection: Connection) {
        // Closing an already broken connection fails; there is nothing to do then.
        if let Err(error) = connection.close(200, "bye".into()).await {
            tracing::debug!(%error, "closing the broker connection");
        }
    }
}
