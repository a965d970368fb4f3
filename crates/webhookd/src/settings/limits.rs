//! `[limits]`: bounds on what one user's configuration can make the daemon
//! do (SPEC §15), whatever that configuration holds.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LimitsSettings {
    /// A template's rendered body; a delivery past it fails for good.
    pub(crate) max_rendered_body_bytes: usize,
    /// Webhooks one user may own.
    pub(crate) max_webhooks_per_user: i64,
    /// Synchronous test deliveries one user may have in progress per API
    /// process.
    pub(crate) max_concurrent_tests_per_user: usize,
}

impl LimitsSettings {
    /// The first invalid key and what is wrong with it.
    pub(crate) fn invalid_key(&self) -> Option<(&'static str, &'static str)> {
        if !(1024..=64 << 20).contains(&self.max_rendered_body_bytes) {
            return Some((
                "limits.max_rendered_body_bytes",
                "must be between 1024 and 67108864 (64 MiB)",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_webhooks_per_user) {
            return Some((
                "limits.max_webhooks_per_user",
                "must be between 1 and 1000000",
            ));
        }
        if !(1..=1000).contains(&self.max_concurrent_tests_per_user) {
            return Some((
                "limits.max_concurrent_tests_per_user",
                "must be between 1 and 1000",
            ));
        }
        None
    }
}
