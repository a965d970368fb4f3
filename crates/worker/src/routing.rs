//! Routing at fan-out: of the webhooks subscribed to an event (by name and
//! the privacy rule, read in SQL), which get it: each webhook's payload
//! filter, and the rules of operational events. Decided before any delivery
//! row exists, so an event a webhook does not want costs it nothing.
//!
//! A filter is compiled once per webhook version (its `updated_at`) and kept
//! for the worker's consumers together: the subscriber read carries only
//! the version, and a filter's text is read once per edit. Each event is
//! parsed into the value filters see at most once, and only when one of
//! its subscribers needs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use uuid::Uuid;
use webhookd_events::delivery::ClaimedDelivery;
use webhookd_events::routing::{
    is_operational, operational_event_reaches, StoredFilter, Subscriber,
};
use webhookd_events::{filter_subject, Filter, NewEvent};

use crate::metrics::events::FilterUnusable;

/// Compiled filters kept, at most; past it the cache starts over (a
/// recompile costs microseconds, an unbounded map costs memory for ever).
const MAX_FILTERS: usize = 4096;

/// The compiled filters of a worker, shared by its consumers.
#[derive(Clone, Default)]
pub(crate) struct Router {
    filters: Arc<Mutex<HashMap<i64, Compiled>>>,
}

struct Compiled {
    version: i64,
    /// `None`: no filter at that version, or one that does not parse.
    filter: Option<Arc<Filter>>,
    /// The stored filter no longer parses (written under other rules): it
    /// matches nothing, and says so once per version.
    unusable: bool,
}

impl Router {
    /// The webhooks of `subscribers` whose filter, at the version read, is
    /// not compiled here: read their filters ([`webhookd_store::fanout::filters`])
    /// and pass them to [`Router::route`].
    pub(crate) fn uncompiled(&self, subscribers: &[Subscriber]) -> Vec<i64> {
        let filters = self.filters.lock().unwrap_or_else(PoisonError::into_inner);
        let mut missing: Vec<i64> = subscribers
            .iter()
            .filter(|s| {
                s.filter_version.is_some_and(|version| {
                    filters
                        .get(&s.claim.webhook_id)
                        .is_none_or(|c| c.version < version)
                })
            })
            .map(|s| s.claim.webhook_id)
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// The claims of `subscribers` that their events reach. `fetched`: the
    /// filters [`Router::uncompiled`] asked for, compiled and kept here.
    pub(crate) fn route(
        &self,
        events: &[NewEvent],
        subscribers: Vec<Subscriber>,
        fetched: Vec<StoredFilter>,
    ) -> Vec<ClaimedDelivery> {
        if subscribers
            .iter()
            .all(|s| s.filter_version.is_none() && !is_operational(&s.claim.event))
        {
            return subscribers.into_iter().map(|s| s.claim).collect();
        }
        let mut filters = self.filters.lock().unwrap_or_else(PoisonError::into_inner);
        // Room first, so none of this batch's filters is dropped before use.
        if filters.len() + fetched.len() > MAX_FILTERS {
            filters.clear();
        }
        for stored in fetched {
            learn(&mut filters, stored);
        }
        let mut subjects: HashMap<Uuid, Subject<'_>> = events
            .iter()
            .map(|e| (e.id, Subject::Unparsed(e)))
            .collect();
        subscribers
            .into_iter()
            .filter(|s| {
                let operational = is_operational(&s.claim.event);
                if s.filter_version.is_none() && !operational {
                    return true;
                }
                let Some(subject) = subjects.get_mut(&s.claim.event_id).and_then(Subject::value)
                else {
                    return false;
                };
                if operational
                    && !operational_event_reaches(
                        subject.value,
                        subject.user_id,
                        s.claim.webhook_id,
                        s.owner_id,
                    )
                {
                    return false;
                }
                if s.filter_version.is_none() {
                    return true;
                }
                // Compiled from a read at least as recent as the subscriber
                // read; a newer edit's filter is the one to apply.
                match filters.get(&s.claim.webhook_id) {
                    Some(Compiled {
                        filter: Some(f), ..
                    }) => f.matches(subject.value),
                    // Removed since the subscriber read: every event.
                    Some(Compiled {
                        filter: None,
                        unusable: false,
                        ..
                    }) => true,
                    Some(Compiled { unusable: true, .. }) | None => false,
                }
            })
            .map(|s| s.claim)
            .collect()
    }
}

/// Compiles `stored` into the cache unless a version as recent is there.
fn learn(cache: &mut HashMap<i64, Compiled>, stored: StoredFilter) {
    if cache
        .get(&stored.webhook_id)
        .is_some_and(|c| c.version >= stored.version)
    {
        return;
    }
    let (filter, unusable) = match stored.json.as_deref().map(Filter::parse_str) {
        None => (None, false),
        Some(Ok(filter)) => (Some(Arc::new(filter)), false),
        Some(Err(error)) => {
            FilterUnusable {
                webhook_id: stored.webhook_id,
                error: &error,
            }
            .emit();
            (None, true)
        }
    };
    cache.insert(
        stored.webhook_id,
        Compiled {
            version: stored.version,
            filter,
            unusable,
        },
    );
}

/// An event as filters see it, parsed on first use.
enum Subject<'a> {
    Unparsed(&'a NewEvent),
    Parsed {
        value: Value,
        user_id: Option<i64>,
    },
    /// Its envelope is not a JSON object (it always is: webhookd rendered
    /// it); it then reaches no filtered webhook.
    Unusable,
}

struct SubjectRef<'s> {
    value: &'s Value,
    user_id: Option<i64>,
}

impl Subject<'_> {
    fn value(&mut self) -> Option<SubjectRef<'_>> {
        if let Subject::Unparsed(event) = self {
            *self = match filter_subject(&event.body, event.user_id) {
                Some(value) => Subject::Parsed {
                    value,
                    user_id: event.user_id,
                },
                None => Subject::Unusable,
            };
        }
        match self {
            Subject::Parsed { value, user_id } => Some(SubjectRef {
                value,
                user_id: *user_id,
            }),
            Subject::Unparsed(_) | Subject::Unusable => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use uuid::Uuid;
    use webhookd_events::candidate_patterns;

    use super::*;

    fn event(body: &str, user_id: Option<i64>) -> NewEvent {
        NewEvent {
            id: Uuid::now_v7(),
            event: "deal.won",
            user_id,
            body: Arc::from(body),
            patterns: candidate_patterns("deal.won"),
        }
    }

    fn subscriber(event: &NewEvent, webhook_id: i64, filter_version: Option<i64>) -> Subscriber {
        Subscriber {
            claim: ClaimedDelivery {
                delivery_id: Uuid::now_v7(),
                event_id: event.id,
                event: event.event.to_owned(),
                attempts: 0,
                body: None,
                webhook_id,
                url: "http://127.0.0.1:9/".into(),
                secret: "whsec_test-secret-0123456789".into(),
                previous_secret: None,
                headers: serde_json::json!({}),
                template: None,
                timeout_ms: None,
                is_active: true,
                failing: false,
                batching: false,
                batch_size: None,
                retry_schedule: None,
                fifo: false,
                auth: None,
                rate_limit_per_s: None,
                breaker_open: false,
                probe: false,
            },
            owner_id: 7,
            filter_version,
        }
    }

    fn stored(webhook_id: i64, version: i64, json: Option<&str>) -> StoredFilter {
        StoredFilter {
            webhook_id,
            version,
            json: json.map(str::to_owned),
        }
    }

    fn routed(claims: &[ClaimedDelivery]) -> Vec<(Uuid, i64)> {
        claims.iter().map(|c| (c.event_id, c.webhook_id)).collect()
    }

    #[test]
    fn a_filter_is_read_once_per_version_and_applied_to_every_event() {
        let router = Router::default();
        let big = event(r#"{"event":"deal.won","data":{"amount":500}}"#, None);
        let small = event(r#"{"event":"deal.won","data":{"amount":5}}"#, None);
        let subscribers = || {
            vec![
                subscriber(&big, 1, Some(10)),
                subscriber(&small, 1, Some(10)),
                subscriber(&big, 2, None),
                subscriber(&small, 2, None),
            ]
        };
        assert_eq!(router.uncompiled(&subscribers()), [1]);
        let filter = r#"{"data.amount": {"$gte": 100}}"#;
        let claims = router.route(
            &[big.clone(), small.clone()],
            subscribers(),
            vec![stored(1, 10, Some(filter))],
        );
        assert_eq!(
            routed(&claims),
            [(big.id, 1), (big.id, 2), (small.id, 2)],
            "the filtered webhook gets the big deal only"
        );
        assert!(
            router.uncompiled(&subscribers()).is_empty(),
            "compiled once"
        );

        // An edit (a later version) is read again; removed, every event.
        let edited: Vec<Subscriber> = subscribers()
            .into_iter()
            .map(|mut s| {
                s.filter_version = s.filter_version.map(|_| 11);
                s
            })
            .collect();
        assert_eq!(router.uncompiled(&edited), [1]);
        let claims = router.route(
            &[big.clone(), small.clone()],
            edited,
            vec![stored(1, 11, None)],
        );
        assert_eq!(claims.len(), 4);
    }

    #[test]
    fn a_filter_that_no_longer_parses_matches_nothing() {
        let router = Router::default();
        let deal = event(r#"{"event":"deal.won","data":{}}"#, None);
        let claims = router.route(
            std::slice::from_ref(&deal),
            vec![subscriber(&deal, 1, Some(1)), subscriber(&deal, 2, None)],
            vec![stored(1, 1, Some(r#"{"data.x": {"$bogus": 1}}"#))],
        );
        assert_eq!(routed(&claims), [(deal.id, 2)]);
    }

    #[test]
    fn operational_events_reach_the_owners_other_webhooks_only() {
        let router = Router::default();
        let mut failed = event(
            r#"{"event":"delivery.failed","data":{"webhook_id":1}}"#,
            Some(7),
        );
        failed.event = "delivery.failed";
        let mut about_itself = subscriber(&failed, 1, None);
        about_itself.claim.event = "delivery.failed".into();
        let mut other = subscriber(&failed, 2, None);
        other.claim.event = "delivery.failed".into();
        let mut admins = subscriber(&failed, 3, None);
        admins.claim.event = "delivery.failed".into();
        admins.owner_id = 1;
        let claims = router.route(
            std::slice::from_ref(&failed),
            vec![about_itself, other, admins],
            Vec::new(),
        );
        assert_eq!(routed(&claims), [(failed.id, 2)]);
    }
}
