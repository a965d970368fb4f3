//! The HTTP clients deliveries are sent with. One shared client serves every
//! delivery without a TLS client certificate; a webhook with one (SPEC §14
//! `mtls`) needs a client of its own, since rustls binds the identity to
//! the client. Those are kept per certificate, keyed by a hash of the
//! certificate and key, in a bounded least-recently-used cache, so their
//! connection pools are reused across deliveries and webhook edits, and a
//! thousand certificates cannot grow a worker's memory without bound.
//!
//! Every client trusts the same roots: the built-in ones plus
//! `delivery.extra_ca_file` (a private CA). Verification is never off.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::{redirect, Certificate, Client, Identity};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::target_policy::GuardedResolver;

/// `delivery.mtls_clients_max`'s default.
pub const DEFAULT_MTLS_CLIENTS_MAX: usize = 256;

/// The TLS settings of every delivery client.
#[derive(Debug, Clone)]
pub struct DeliveryTls {
    /// Trusted besides the built-in roots (`delivery.extra_ca_file`).
    pub extra_roots: Vec<Certificate>,
    /// Clients with a client certificate kept at most.
    pub mtls_clients_max: usize,
}

impl Default for DeliveryTls {
    fn default() -> Self {
        DeliveryTls {
            extra_roots: Vec::new(),
            mtls_clients_max: DEFAULT_MTLS_CLIENTS_MAX,
        }
    }
}

/// Why `delivery.extra_ca_file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ExtraCaError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    Empty { path: String },
    #[error("{path} is not a valid PEM certificate bundle: {source}")]
    Invalid {
        path: String,
        source: reqwest::Error,
    },
}

/// Reads a PEM bundle of CA certificates, checking that a client accepts
/// every one of them (at start-up, so a bad file stops the daemon with a
/// clear message rather than failing deliveries).
pub fn load_extra_ca(path: &Path) -> Result<Vec<Certificate>, ExtraCaError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| ExtraCaError::Read {
        path: shown.clone(),
        source,
    })?;
    let invalid = |source| ExtraCaError::Invalid {
        path: shown.clone(),
        source,
    };
    let roots = Certificate::from_pem_bundle(&pem).map_err(invalid)?;
    if roots.is_empty() {
        return Err(ExtraCaError::Empty { path: shown });
    }
    build_client(false, &roots, None).map_err(invalid)?;
    Ok(roots)
}

/// A TLS client certificate with its key, as a webhook's `mtls` holds them.
/// Its `Debug` shows only the key's hash prefix.
#[derive(Clone)]
pub(crate) struct ClientIdentity {
    key: [u8; 32],
    /// Certificate(s) then key, the form `Identity::from_pem` reads.
    pem: SecretString,
}

impl ClientIdentity {
    pub(crate) fn new(client_cert_pem: &str, client_key_pem: &str) -> Self {
        let pem = format!("{}\n{}\n", client_cert_pem.trim(), client_key_pem.trim());
        let key = Sha256::digest(pem.as_bytes()).into();
        ClientIdentity {
            key,
            pem: SecretString::from(pem),
        }
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ClientIdentity({:02x}{:02x}{:02x}{:02x}…, key redacted)",
            self.key[0], self.key[1], self.key[2], self.key[3]
        )
    }
}

/// Whether a certificate and key make a usable client identity: both parse
/// and a client accepts the pair. Used to validate `mtls` on write.
pub fn check_identity(client_cert_pem: &str, client_key_pem: &str) -> Result<(), String> {
    let identity = ClientIdentity::new(client_cert_pem, client_key_pem);
    build_identity_client(false, &[], &identity).map(|_| ())
}

fn build_identity_client(
    allow_private: bool,
    roots: &[Certificate],
    identity: &ClientIdentity,
) -> Result<Client, String> {
    // Neither message quotes the key: reqwest names the problem, not the bytes.
    let parsed = Identity::from_pem(identity.pem.expose_secret().as_bytes())
        .map_err(|e| format!("invalid client certificate or key: {}", e.without_url()))?;
    build_client(allow_private, roots, Some(parsed))
        .map_err(|e| format!("the client certificate was refused: {}", e.without_url()))
}

/// A delivery client: no proxy, no redirects, connections kept alive per
/// host, and (unless private targets are allowed) names resolved through the
/// SSRF guard.
pub(crate) fn build_client(
    allow_private: bool,
    roots: &[Certificate],
    identity: Option<Identity>,
) -> Result<Client, reqwest::Error> {
    let mut builder = Client::builder()
        // A proxy from HTTP_PROXY & co. would resolve target names itself,
        // around the SSRF guard in our resolver.
        .no_proxy()
        .redirect(redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10));
    if !allow_private {
        builder = builder.dns_resolver(Arc::new(GuardedResolver));
    }
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    if let Some(identity) = identity {
        builder = builder.identity(identity);
    }
    builder.build()
}

/// The shared client and the per-certificate ones.
#[derive(Clone)]
pub(crate) struct TlsClients {
    shared: Client,
    allow_private: bool,
    roots: Arc<[Certificate]>,
    by_identity: Arc<Mutex<Lru<[u8; 32], Client>>>,
}

impl fmt::Debug for TlsClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClients")
            .field("allow_private", &self.allow_private)
            .field("extra_roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl TlsClients {
    pub(crate) fn new(allow_private: bool, tls: DeliveryTls) -> Result<Self, reqwest::Error> {
        Ok(TlsClients {
            shared: build_client(allow_private, &tls.extra_roots, None)?,
            allow_private,
            roots: tls.extra_roots.into(),
            by_identity: Arc::new(Mutex::new(Lru::new(tls.mtls_clients_max))),
        })
    }

    /// The same settings and certificate clients, with a shared client (and
    /// connection pool) of its own (a consumer shard's).
    pub(crate) fn with_own_shared(&self) -> Result<Self, reqwest::Error> {
        Ok(TlsClients {
            shared: build_client(self.allow_private, &self.roots, None)?,
            ..self.clone()
        })
    }

    pub(crate) fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The client for deliveries without a client certificate, and for
    /// OAuth2 token requests.
    pub(crate) fn shared(&self) -> &Client {
        &self.shared
    }

    /// The client presenting `identity`, built on first use.
    pub(crate) fn for_identity(&self, identity: &ClientIdentity) -> Result<Client, String> {
        if let Some(client) = self.lock().get(&identity.key) {
            return Ok(client);
        }
        // Built outside the lock: parsing the PEM and loading roots takes a
        // while, and other webhooks' attempts need the cache meanwhile. Two
        // first attempts at once may both build; the second insert wins.
        let client = build_identity_client(self.allow_private, &self.roots, identity)?;
        self.lock().insert(identity.key, client.clone());
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru<[u8; 32], Client>> {
        // The cache holds no invariant a panic could break halfway.
        self.by_identity
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A map of at most `max` entries that drops the least recently used one.
/// Eviction scans the entries: `max` is a few hundred and an insert happens
/// once per certificate, not per delivery.
pub(crate) struct Lru<K, V> {
    max: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> Lru<K, V> {
    pub(crate) fn new(max: usize) -> Self {
        Lru {
            max: max.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, key: &K) -> Option<V> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(value, used)| {
            *used = tick;
            value.clone()
        })
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.max {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (value, self.tick));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_never_holds_more_than_its_bound_and_drops_the_least_recently_used() {
        let mut lru = Lru::new(3);
        for k in 0..3 {
            lru.insert(k, k * 10);
        }
        assert_eq!(lru.get(&0), Some(0), "0 is now the most recently used");
        lru.insert(3, 30);
        assert_eq!(lru.len(), 3);
        assert_eq!(lru.get(&1), None, "1 was the least recently used");
        assert_eq!(lru.get(&0), Some(0));
        for k in 4..100 {
            lru.insert(k, k);
            assert!(lru.len() <= 3);
        }
        lru.insert(99, 0);
        assert_eq!(lru.get(&99), Some(0), "re-inserting replaces");
        assert_eq!(lru.len(), 3);
        assert_eq!(Lru::<u8, u8>::new(0).max, 1, "a zero bound still keeps one");
    }

    #[test]
    fn an_identity_is_keyed_by_certificate_and_key_and_never_printed() {
        let a = ClientIdentity::new("CERT-A", "KEY-SECRET");
        let b = ClientIdentity::new("CERT-A", "KEY-OTHER");
        assert_ne!(a.key, b.key);
        assert_eq!(a.key, ClientIdentity::new("CERT-A\n", "KEY-SECRET").key);
        assert!(!format!("{a:?}").contains("KEY-SECRET"));
    }

    #[test]
    fn garbage_is_not_an_identity() {
        assert!(check_identity("not a certificate", "not a key").is_err());
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_is_refused_naming_the_file() {
        let missing = load_extra_ca(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/ca.pem"));
        let dir = std::env::temp_dir().join(format!("webhookd-ca-{}", std::process::id()));
        std::fs::write(&dir, "no certificate here").unwrap();
        let empty = load_extra_ca(&dir).unwrap_err();
        let _ = std::fs::remove_file(&dir);
        assert!(matches!(empty, ExtraCaError::Empty { .. }), "{empty}");
    }
}
