//! The broker connection as every part of a worker makes it, and the health
//! of the consumers' connections that `/readyz` reports.

use std::sync::{Arc, Mutex};

use lapin::{Connection, ConnectionProperties, ConnectionStatus};
use secrecy::{ExposeSecret, SecretString};
use tracing::warn;
use webhookd_producer::BrokerUrl;

/// The broker connections `/readyz` reports on: up while every consumer's
/// connection is open, so a broker that goes away shows at once, even while
/// the consumers are busy with a batch. Each consumer reports through its
/// own [`BrokerHealth::session`].
#[derive(Clone, Default)]
pub struct BrokerHealth {
    sessions: Arc<Mutex<Vec<Option<ConnectionStatus>>>>,
    index: usize,
}

impl BrokerHealth {
    /// A view for one more session, which counts as down until it watches a
    /// connection.
    pub(crate) fn session(&self) -> BrokerHealth {
        let mut sessions = self.lock();
        sessions.push(None);
        BrokerHealth {
            sessions: self.sessions.clone(),
            index: sessions.len() - 1,
        }
    }

    /// Reports on `connection` from now on.
    pub fn watch(&self, connection: &Connection) {
        self.set(Some(connection.status().clone()));
    }

    /// No usable connection (a session ended, or none was made).
    pub fn lost(&self) {
        self.set(None);
    }

    /// Every session has an open connection (and there is one at least).
    pub fn is_up(&self) -> bool {
        let sessions = self.lock();
        !sessions.is_empty()
            && sessions
                .iter()
                .all(|s| s.as_ref().is_some_and(ConnectionStatus::connected))
    }

    fn set(&self, status: Option<ConnectionStatus>) {
        let mut sessions = self.lock();
        if sessions.len() <= self.index {
            sessions.resize(self.index + 1, None);
        }
        sessions[self.index] = status;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<ConnectionStatus>>> {
        // Holds plain values: usable whatever a panicking holder was doing.
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Connects as the producer does: through [`BrokerUrl`], so the frame size
/// (hence lapin's buffers) is small unless the URL asks otherwise.
pub async fn connect(url: &SecretString, name: &str) -> Result<Connection, lapin::Error> {
    let url = BrokerUrl::parse(url.expose_secret()).map_err(|invalid| {
        lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            invalid.to_string(),
        ))
    })?;
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect_uri(url.uri().clone(), props).await
}

/// Connects to the first of a cluster's nodes that answers, trying them in
/// order from `first` (wrapping round): the connection and the index of its
/// node, or the last node's error. Logs name a node by its URL with the
/// password masked.
pub async fn connect_any(
    urls: &[SecretString],
    first: usize,
    name: &str,
) -> Result<(Connection, usize), lapin::Error> {
    let mut last_error = None;
    for offset in 0..urls.len() {
        let node = first.wrapping_add(offset) % urls.len();
        match connect(&urls[node], name).await {
            Ok(connection) => return Ok((connection, node)),
            Err(e) => {
                if urls.len() > 1 {
                    warn!(node = %masked(&urls[node]), error = %e, "broker node did not answer; trying the next");
                }
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no broker URL configured",
        ))
    }))
}

/// A node's URL as logs may show it: the password masked.
pub fn masked(url: &SecretString) -> String {
    match BrokerUrl::parse(url.expose_secret()) {
        Ok(url) => url.to_string(),
        Err(_) => "(an invalid URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn no_url_is_an_error_not_a_panic() {
        assert!(connect_any(&[], 3, "test").await.is_err());
    }

    #[test]
    fn a_masked_url_hides_its_password() {
        let url = SecretString::from("amqp://u:hunter2@127.0.0.1:5673/%2f".to_owned());
        assert_eq!(masked(&url), "amqp://u:***@127.0.0.1:5673/%2f");
    }
}
