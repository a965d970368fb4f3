//! Per-user bounds on work the API does on a user's behalf (SPEC §15):
//! synchronous test deliveries (each may hold a connection up to its
//! timeout) and bulk retries (each may rewrite thousands of rows). The
//! counters live in this process's memory: each API replica bounds its own
//! share, which is enough to stop one user from exhausting one process.
//! Every refusal, these and `limits.max_webhooks_per_user`'s, is one
//! [`QuotaRefused`]: a log line and `webhookd_quota_refusals_total{quota}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{IntCounterVec, Opts, Registry};

use super::error::ApiError;
use crate::graphql::metrics::GraphqlMetrics;

/// `Retry-After` of a refusal: tests and retries are short, so soon.
const RETRY_AFTER_SECS: u64 = 2;

/// Bulk retries ("retry all failed", a range) one user may run at once per
/// process: each rewrites up to thousands of rows.
pub(crate) const BULK_RETRIES_PER_USER: usize = 1;

/// Work bounded per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Work {
    Test,
    BulkRetry,
}

impl Work {
    fn quota(self) -> Quota {
        match self {
            Work::Test => Quota::Tests,
            Work::BulkRetry => Quota::BulkRetries,
        }
    }

    fn busy_message(self, limit: usize) -> String {
        match self {
            Work::Test => format!(
                "too many test deliveries in progress for this user (limits.max_concurrent_tests_per_user = {limit}); try again shortly"
            ),
            Work::BulkRetry => format!(
                "a bulk retry is already running for this user (at most {limit} at a time); try again shortly"
            ),
        }
    }
}

/// The `quota` label of `webhookd_quota_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quota {
    /// `limits.max_concurrent_tests_per_user`.
    Tests,
    /// One bulk retry per user at a time.
    BulkRetries,
    /// `limits.max_webhooks_per_user`.
    Webhooks,
}

impl Quota {
    const ALL: [Quota; 3] = [Quota::Tests, Quota::BulkRetries, Quota::Webhooks];

    fn label(self) -> &'static str {
        match self {
            Quota::Tests => "tests",
            Quota::BulkRetries => "bulk_retries",
            Quota::Webhooks => "webhooks",
        }
    }
}

/// A user's request refused by a quota: logged and counted together.
pub(crate) struct QuotaRefused {
    pub(crate) quota: Quota,
    pub(crate) user_id: i64,
    pub(crate) limit: usize,
}

impl QuotaRefused {
    pub(crate) fn emit(&self, quotas: &Quotas) {
        quotas
            .refusals
            .with_label_values(&[self.quota.label()])
            .inc();
        tracing::info!(
            quota = self.quota.label(),
            user_id = self.user_id,
            limit = self.limit,
            "request refused by a per-user quota"
        );
    }
}

/// The work in progress per user, shared by every clone, and the refusals'
/// counter.
#[derive(Debug, Clone)]
pub struct Quotas {
    in_progress: Arc<Mutex<HashMap<(Work, i64), usize>>>,
    refusals: IntCounterVec,
}

/// A slot of `Work` held for a user; given back when dropped, whatever way
/// the request ends (cancelled by a client disconnecting included).
#[derive(Debug)]
pub(crate) struct Slot {
    quotas: Quotas,
    key: (Work, i64),
}

impl Quotas {
    /// Quotas whose refusals are counted with the admin side's metrics
    /// (rendered by `/metrics`).
    pub fn new(metrics: &GraphqlMetrics) -> Result<Self, prometheus::Error> {
        Quotas::registered_in(metrics.registry())
    }

    /// Every label at 0 from the start, so rates and alerts work at once.
    fn registered_in(registry: &Registry) -> Result<Self, prometheus::Error> {
        let refusals = IntCounterVec::new(
            Opts::new(
                "webhookd_quota_refusals_total",
                "Requests refused by a per-user quota (tests: \
                 limits.max_concurrent_tests_per_user, 429; bulk_retries: one bulk retry \
                 per user at a time, 429; webhooks: limits.max_webhooks_per_user, 409)",
            ),
            &["quota"],
        )?;
        registry.register(Box::new(refusals.clone()))?;
        for quota in Quota::ALL {
            refusals.with_label_values(&[quota.label()]);
        }
        Ok(Quotas {
            in_progress: Arc::default(),
            refusals,
        })
    }

    /// Takes one of `limit` slots of `work` for `user_id`, or refuses with
    /// 429 and a `Retry-After`.
    pub(crate) fn begin(&self, work: Work, user_id: i64, limit: usize) -> Result<Slot, ApiError> {
        let key = (work, user_id);
        let mut map = self
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let held = map.entry(key).or_insert(0);
        if *held >= limit {
            drop(map);
            QuotaRefused {
                quota: work.quota(),
                user_id,
                limit,
            }
            .emit(self);
            return Err(ApiError::Busy {
                message: work.busy_message(limit),
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        *held += 1;
        Ok(Slot {
            quotas: self.clone(),
            key,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .quotas
            .in_progress
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = map.get_mut(&self.key) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                // Keeps the map as small as the set of busy users.
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusals(quotas: &Quotas, quota: Quota) -> u64 {
        quotas.refusals.with_label_values(&[quota.label()]).get()
    }

    #[test]
    fn a_user_gets_at_most_limit_slots_and_gets_them_back_when_dropped() {
        let quotas = Quotas::registered_in(&Registry::new()).unwrap();
        let first = quotas.begin(Work::Test, 7, 2).unwrap();
        let second = quotas.begin(Work::Test, 7, 2).unwrap();
        let refused = quotas.begin(Work::Test, 7, 2).unwrap_err();
        assert!(matches!(refused, ApiError::Busy { .. }), "{refused:?}");
        assert!(refused
            .to_string()
            .contains("max_concurrent_tests_per_user"));
        assert_eq!(refusals(&quotas, Quota::Tests), 1);
        assert_eq!(refusals(&quotas, Quota::BulkRetries), 0);
        // Other users and other work are counted apart.
        let _other_user = quotas.begin(Work::Test, 8, 2).unwrap();
        let _retry = quotas.begin(Work::BulkRetry, 7, 1).unwrap();
        drop(first);
        let _again = quotas.begin(Work::Test, 7, 2).unwrap();
        drop(second);
        assert!(quotas.begin(Work::BulkRetry, 7, 1).is_err());
        assert_eq!(refusals(&quotas, Quota::BulkRetries), 1);
    }

    #[test]
    fn an_idle_user_leaves_no_entry_behind() {
        let quotas = Quotas::registered_in(&Registry::new()).unwrap();
        drop(quotas.begin(Work::Test, 7, 1).unwrap());
        assert!(quotas.in_progress.lock().unwrap().is_empty());
    }
}
