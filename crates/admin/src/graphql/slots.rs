//! The cap on open subscriptions per user (`graphql.max_subscriptions_per_user`,
//! per process), and the open-subscriptions gauge: a [`Slot`] is held for a
//! subscription's whole life and given back when its stream is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::{coded, TOO_MANY_SUBSCRIPTIONS};
use super::metrics::{
    GraphqlMetrics, Kind, SubscriptionClosed, SubscriptionOpened, SubscriptionRefused,
};

#[derive(Clone)]
pub(crate) struct Slots {
    open: Arc<Mutex<HashMap<i64, usize>>>,
    per_user: usize,
    metrics: GraphqlMetrics,
}

impl Slots {
    pub(crate) fn new(per_user: usize, metrics: GraphqlMetrics) -> Self {
        Slots {
            open: Arc::default(),
            per_user,
            metrics,
        }
    }

    /// A slot for one more of `user_id`'s subscriptions, or the error to
    /// answer when they have as many as allowed.
    pub(crate) fn take(&self, feed: Kind, user_id: i64) -> async_graphql::Result<Slot> {
        {
            let mut open = self.lock();
            let count = open.entry(user_id).or_default();
            if *count >= self.per_user {
                drop(open);
                SubscriptionRefused {
                    feed,
                    user_id,
                    limit: self.per_user,
                }
                .emit(&self.metrics);
                return Err(coded(
                    TOO_MANY_SUBSCRIPTIONS,
                    format!(
                        "at most {} subscriptions may be open at once per user",
                        self.per_user
                    ),
                ));
            }
            *count += 1;
        }
        Ok(Slot {
            slots: self.clone(),
            feed,
            user_id,
            opened: false,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        // Plain counts: usable whatever a panicking holder was doing.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One subscription's place under its user's cap.
pub(crate) struct Slot {
    slots: Slots,
    feed: Kind,
    user_id: i64,
    opened: bool,
}

impl Slot {
    /// The subscription streams from now on: it counts as open.
    pub(crate) fn open(&mut self) {
        if !self.opened {
            self.opened = true;
            SubscriptionOpened {
                feed: self.feed,
                user_id: self.user_id,
            }
            .emit(&self.slots.metrics);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut open = self.slots.lock();
            if let Some(count) = open.get_mut(&self.user_id) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    open.remove(&self.user_id);
                }
            }
        }
        if self.opened {
            SubscriptionClosed {
                feed: self.feed,
                user_id: self.user_id,
            }
            .emit(&self.slots.metrics);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_at_most_the_cap_and_a_dropped_slot_frees_its_place() {
        let slots = Slots::new(2, GraphqlMetrics::new().unwrap());
        let first = slots.take(Kind::Events, 1).unwrap();
        let _second = slots.take(Kind::DeliveryAttempts, 1).unwrap();
        assert!(slots.take(Kind::Events, 1).is_err());
        assert!(slots.take(Kind::Events, 2).is_ok(), "other users are apart");
        drop(first);
        assert!(slots.take(Kind::Events, 1).is_ok());
    }

    #[test]
    fn only_opened_slots_move_the_gauge() {
        let metrics = GraphqlMetrics::new().unwrap();
        let slots = Slots::new(5, metrics.clone());
        let mut slot = slots.take(Kind::Events, 1).unwrap();
        let unopened = slots.take(Kind::Events, 1).unwrap();
        slot.open();
        assert!(metrics
            .render()
            .contains(r#"webhookd_graphql_subscriptions{kind="events"} 1"#));
        drop(unopened);
        drop(slot);
        assert!(metrics
            .render()
            .contains(r#"webhookd_graphql_subscriptions{kind="events"} 0"#));
    }
}
