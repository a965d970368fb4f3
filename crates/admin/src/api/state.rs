//! What every API handler (and web UI page) is given.

use std::time::Duration;

use sqlx::PgPool;
use webhookd_events::SecretKeys;
use webhookd_worker::deliver::Deliverer;
use webhookd_worker::target_policy::PortPolicy;

use super::ingest_state::Ingest;
use super::quotas::Quotas;

#[derive(Clone)]
pub struct ApiState {
    pub pool: PgPool,
    pub config: ApiConfig,
    /// Sends test deliveries, through the same code as real ones.
    pub deliverer: Deliverer,
    /// Seal the secrets written and open those a test delivery sends with
    /// (SPEC §15).
    pub keys: SecretKeys,
    /// Tests and bulk retries in progress per user (`quotas.rs`).
    pub quotas: Quotas,
    /// Publishes the events posted to `POST /api/v1/events` (`ingest.rs`).
    pub ingest: Ingest,
}

/// The delivery settings the API applies to what it validates and tests.
#[derive(Debug, Clone, Copy)]
pub struct ApiConfig {
    /// Whether webhooks may target private addresses (local development).
    pub allow_private_targets: bool,
    /// A test delivery's timeout when its webhook sets none.
    pub default_timeout: Duration,
    /// How long events are kept (`retention.logs_days`): a replay reaches
    /// no further back.
    pub retention_days: u32,
    /// Whether the web UI's cookies are `Secure` (and `__Host-` named).
    pub secure_cookies: SecureCookies,
    /// Webhooks one user may own (`limits.max_webhooks_per_user`).
    pub max_webhooks_per_user: i64,
    /// Test deliveries one user may have in progress on this process
    /// (`limits.max_concurrent_tests_per_user`).
    pub max_concurrent_tests_per_user: usize,
    /// Ports webhook URLs may name (`delivery.allowed_ports`).
    pub allowed_ports: PortPolicy,
}

/// `http.secure_cookies`: `Auto` trusts the proxy's `X-Forwarded-Proto` /
/// `Forwarded` (a cookie set over plain HTTP must not be `Secure`, or the
/// browser drops it); `Always` for deployments served only over HTTPS, where
/// a forgotten or stripped header must not downgrade the cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureCookies {
    Always,
    Never,
    Auto,
}

impl ApiState {
    /// Whether webhooks may target private addresses (local development).
    pub(crate) fn allow_private_targets(&self) -> bool {
        self.config.allow_private_targets
    }
}
