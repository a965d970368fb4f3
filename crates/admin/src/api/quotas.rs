//! Per-user bounds on work the API does on a user's behalf (SPEC §15):
//! synchronous test deliveries (each may hold a connection up to its
//! timeout) and bulk retries (each may rewrite thousands of rows). The
//! counters live in this process's memory: each API replica bounds its own
//! share, which is enough to stop one user from exhausting one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::error::ApiError;

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

/// The work in progress per user, shared by every clone.
#[derive(Debug, Clone, Default)]
pub struct Quotas {
    in_progress: Arc<Mutex<HashMap<(Work, i64), usize>>>,
}

/// A slot of `Work` held for a user; given back when dropped, whatever way
/// the request ends (cancelled by a client disconnecting included).
#[derive(Debug)]
pub(crate) struct Slot {
    quotas: Quotas,
    key: (Work, i64),
}

impl Quotas {
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

    #[test]
    fn a_user_gets_at_most_limit_slots_and_gets_them_back_when_dropped() {
        let quotas = Quotas::default();
        let first = quotas.begin(Work::Test, 7, 2).unwrap();
        let second = quotas.begin(Work::Test, 7, 2).unwrap();
        let refused = quotas.begin(Work::Test, 7, 2).unwrap_err();
        assert!(matches!(refused, ApiError::Busy { .. }), "{refused:?}");
        assert!(refused
            .to_string()
            .contains("max_concurrent_tests_per_user"));
        // Other users and other work are counted apart.
        let _other_user = quotas.begin(Work::Test, 8, 2).unwrap();
        let _retry = quotas.begin(Work::BulkRetry, 7, 1).unwrap();
        drop(first);
        let _again = quotas.begin(Work::Test, 7, 2).unwrap();
        drop(second);
        assert!(quotas.begin(Work::BulkRetry, 7, 1).is_err());
    }

    #[test]
    fn an_idle_user_leaves_no_entry_behind() {
        let quotas = Quotas::default();
        drop(quotas.begin(Work::Test, 7, 1).unwrap());
        assert!(quotas.in_progress.lock().unwrap().is_empty());
    }
}
