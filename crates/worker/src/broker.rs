//! The broker connection as every part of a worker makes it, and the health
//! of the consumers' connections that `/readyz` reports.

use std::sync::{Arc, Mutex};

use lapin::{Connection, ConnectionProperties, ConnectionStatus};
use secrecy::{ExposeSecret, SecretString};
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
