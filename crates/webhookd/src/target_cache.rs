//! Targets built once per webhook, not once per attempt. Parsing the URL and
//! the headers and keying two HMACs cost more than signing a body, and every
//! delivery of a webhook would repeat them. Each claimed row carries its
//! webhook's current settings, so an entry serves only while they are
//! unchanged: an edit or a secret rotation applies from the next attempt on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::deliver::{Target, TargetRow};

/// Entries kept at most. Reaching it empties the cache: rebuilding a target
/// is cheap, and memory stays bounded however many webhooks there are.
pub const DEFAULT_CAPACITY: usize = 4096;

pub struct TargetCache {
    entries: Mutex<HashMap<i64, Entry>>,
    capacity: usize,
    default_timeout: Duration,
}

/// A built target and the row fields it was built from. No `Debug`: it holds
/// secrets.
struct Entry {
    url: String,
    secret: String,
    previous_secret: Option<String>,
    headers: serde_json::Value,
    template: Option<String>,
    timeout_ms: Option<i32>,
    target: Arc<Target>,
}

impl Entry {
    fn built_from(&self, row: &TargetRow<'_>) -> bool {
        self.url == row.url
            && self.secret == row.secret
            && self.previous_secret.as_deref() == row.previous_secret
            && self.template.as_deref() == row.template
            && self.timeout_ms == row.timeout_ms
            && &self.headers == row.headers
    }
}

impl TargetCache {
    pub fn new(default_timeout: Duration, capacity: usize) -> Self {
        TargetCache {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            default_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Entry>> {
        // A panic while holding the lock leaves at worst a stale entry, which
        // the next row comparison replaces.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The target for `row`: the cached one when the row is unchanged, else
    /// a new one (cached in turn). Fails as [`Target::from_row`] does; a
    /// failure is not cached.
    pub fn target(&self, row: TargetRow<'_>) -> Result<Arc<Target>, String> {
        if let Some(entry) = self.lock().get(&row.webhook_id) {
            if entry.built_from(&row) {
                return Ok(entry.target.clone());
            }
        }
        let target = Arc::new(Target::from_row(row, self.default_timeout)?);
        let entry = Entry {
            url: row.url.to_owned(),
            secret: row.secret.to_owned(),
            previous_secret: row.previous_secret.map(str::to_owned),
            headers: row.headers.clone(),
            template: row.template.map(str::to_owned),
            timeout_ms: row.timeout_ms,
            target: target.clone(),
        };
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&row.webhook_id) {
            entries.clear();
        }
        entries.insert(row.webhook_id, entry);
        Ok(target)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row<'a>(webhook_id: i64, secret: &'a str, headers: &'a serde_json::Value) -> TargetRow<'a> {
        TargetRow {
            webhook_id,
            url: "http://127.0.0.1:9/hook",
            secret,
            previous_secret: None,
            headers,
            template: None,
            timeout_ms: Some(1000),
        }
    }

    #[test]
    fn an_unchanged_row_reuses_its_target() {
        let cache = TargetCache::new(Duration::from_secs(5), 8);
        let headers = json!({"X-Team": "crm"});
        let first = cache.target(row(1, "s1", &headers)).expect("target");
        let second = cache.target(row(1, "s1", &headers)).expect("target");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(
            second.headers,
            vec![("X-Team".to_owned(), "crm".to_owned())]
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn any_changed_field_builds_a_new_target() {
        let cache = TargetCache::new(Duration::from_secs(5), 8);
        let headers = json!({});
        let original = cache.target(row(1, "s1", &headers)).expect("target");

        let rotated = cache.target(row(1, "s2", &headers)).expect("target");
        assert!(!Arc::ptr_eq(&original, &rotated));
        assert_ne!(
            original.signer.sign_seed(b"{}"),
            rotated.signer.sign_seed(b"{}"),
            "the new secret signs"
        );

        let with_previous = cache
            .target(TargetRow {
                previous_secret: Some("s1"),
                ..row(1, "s2", &headers)
            })
            .expect("target");
        assert!(with_previous.previous_signer.is_some());

        let other_headers = json!({"X-A": "b"});
        let edited = cache.target(row(1, "s2", &other_headers)).expect("target");
        assert_eq!(edited.headers.len(), 1);

        let moved = cache
            .target(TargetRow {
                url: "http://127.0.0.1:10/other",
                timeout_ms: Some(250),
                ..row(1, "s2", &other_headers)
            })
            .expect("target");
        assert_eq!(moved.url.as_ref().map(|u| u.port()), Ok(Some(10)));
        assert_eq!(moved.timeout, Duration::from_millis(250));
        assert_eq!(cache.len(), 1, "one entry per webhook");
    }

    #[test]
    fn a_broken_template_fails_and_is_not_cached() {
        let cache = TargetCache::new(Duration::from_secs(5), 8);
        let headers = json!({});
        let broken = cache.target(TargetRow {
            template: Some("{{ unclosed"),
            ..row(1, "s1", &headers)
        });
        assert!(broken.is_err_and(|e| e.starts_with("invalid template")));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn reaching_the_capacity_starts_afresh() {
        let cache = TargetCache::new(Duration::from_secs(5), 3);
        let headers = json!({});
        for id in 1..=3 {
            cache.target(row(id, "s", &headers)).expect("target");
        }
        assert_eq!(cache.len(), 3);
        let again = cache.target(row(2, "s", &headers)).expect("target");
        assert_eq!(cache.len(), 3, "a known webhook does not evict");
        cache.target(row(4, "s", &headers)).expect("target");
        assert_eq!(cache.len(), 1, "a new one past the cap empties the cache");
        let rebuilt = cache.target(row(2, "s", &headers)).expect("target");
        assert!(!Arc::ptr_eq(&again, &rebuilt));
    }
}
