//! Routing at fan-out: of the webhooks subscribed to an event (by name and
//! the privacy rule, read in SQL), which get it: each webhook's payload
//! filter, and the rules of operational events. Decided before any delivery
//! row exists, so an event a webhook does not want costs it nothing.
//!
//! A filter is compiled once per webhook version (its `updated_at`) and kept
//! for the worker's consumers together; each event is parsed into the value
//! filters see at most once, and only when one of its subscribers needs it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use uuid::Uuid;
use webhookd_events::delivery::ClaimedDelivery;
use webhookd_events::routing::{
    is_operational, operational_event_reaches, StoredFilter, Subscriber,
};
use webhookd_events::{Filter, NewEvent};

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
    /// `None`: the stored filter no longer parses (written by a version
    /// with other rules); it then matches nothing, and says so once.
    filter: Option<Arc<Filter>>,
}

impl Router {
    /// The claims of `subscribers` that their events reach.
    pub(crate) fn route(
        &self,
        events: &[NewEvent],
        subscribers: Vec<Subscriber>,
    ) -> Vec<ClaimedDelivery> {
        if subscribers
            .iter()
            .all(|s| s.filter.is_none() && !is_operational(&s.claim.event))
        {
            return subscribers.into_iter().map(|s| s.claim).collect();
        }
        let mut subjects: HashMap<Uuid, Subject<'_>> = events
            .iter()
            .map(|e| (e.id, Subject::Unparsed(e)))
            .collect();
        let mut filters = self.filters.lock().unwrap_or_else(PoisonError::into_inner);
        subscribers
            .into_iter()
            .filter(|s| {
                let operational = is_operational(&s.claim.event);
                if s.filter.is_none() && !operational {
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
                match &s.filter {
                    None => true,
                    Some(stored) => compiled(&mut filters, s.claim.webhook_id, stored)
                        .is_some_and(|f| f.matches(subject.value)),
                }
            })
            .map(|s| s.claim)
            .collect()
    }
}

/// `stored` compiled, from the cache when its version is there.
fn compiled(
    cache: &mut HashMap<i64, Compiled>,
    webhook_id: i64,
    stored: &StoredFilter,
) -> Option<Arc<Filter>> {
    if let Some(hit) = cache
        .get(&webhook_id)
        .filter(|c| c.version == stored.version)
    {
        return hit.filter.clone();
    }
    let filter = match Filter::parse_str(&stored.json) {
        Ok(filter) => Some(Arc::new(filter)),
        Err(error) => {
            FilterUnusable {
                webhook_id,
                error: &error,
            }
            .emit();
            None
        }
    };
    if cache.len() >= MAX_FILTERS {
        cache.clear();
    }
    cache.insert(
        webhook_id,
        Compiled {
            version: stored.version,
            filter: filter.clone(),
        },
    );
    filter
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
            *self = match serde_json::from_str::<Value>(&event.body) {
                Ok(Value::Object(mut envelope)) => {
                    envelope.insert(
                        "user_id".into(),
                        event.user_id.map_or(Value::Null, Value::from),
                    );
                    Subject::Parsed {
                        value: Value::Object(envelope),
                        user_id: event.user_id,
                    }
                }
                Ok(_) | Err(_) => Subject::Unusable,
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
