//! The catalogue of events webhooks can subscribe to.
//!
//! Adding an event is one line in [`CATALOGUE`]; everything else (validation of
//! broker messages and subscriptions, `GET /api/v1/events`, `crm-events events`)
//! reads this table.

use serde::Serialize;

/// One event the CRM publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventSpec {
    /// `entity.action`, also the broker routing key.
    pub name: &'static str,
    pub description: &'static str,
}

const fn event(name: &'static str, description: &'static str) -> EventSpec {
    EventSpec { name, description }
}

/// The event sent by "Test" buttons and `POST /webhooks/{id}/test`.
pub const TEST_EVENT: &str = "webhook.test";

/// Sent by webhookd itself when it switches a webhook off (410 Gone, or
/// failing too long); SPEC §13.
pub const WEBHOOK_DISABLED: &str = "webhook.disabled";

/// Sent by webhookd itself when a delivery has failed for good; SPEC §13.
pub const DELIVERY_FAILED: &str = "delivery.failed";

/// The events webhookd publishes about its own webhooks and deliveries
/// (docs/ARCHITECTURE.md, "Operational events"). Private to the owner of the
/// webhook they are about, never delivered to that webhook.
pub const OPERATIONAL_EVENTS: &[&str] = &[WEBHOOK_DISABLED, DELIVERY_FAILED];

/// Every known event, grouped by entity.
pub const CATALOGUE: &[EventSpec] = &[
    event("task.created", "A task was created"),
    event("task.updated", "A task was updated"),
    event("task.completed", "A task was completed"),
    event("task.deleted", "A task was deleted"),
    event("deal.created", "A deal was created"),
    event("deal.won", "A deal was won"),
    event("deal.lost", "A deal was lost"),
    event("client.created", "A client was created"),
    event("comment.added", "A comment was added"),
    event(TEST_EVENT, "A test delivery sent from the UI or API"),
    event(
        WEBHOOK_DISABLED,
        "One of your webhooks was switched off (410 Gone, or failing too long)",
    ),
    event(
        DELIVERY_FAILED,
        "A delivery to one of your webhooks failed for good",
    ),
];

/// Looks an event up by its exact name.
pub fn find_event(name: &str) -> Option<&'static EventSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}

/// Whether `event` is one webhookd publishes about itself.
pub fn is_operational(event: &str) -> bool {
    OPERATIONAL_EVENTS.contains(&event)
}

/// Whether a delivery of `event` that fails for good is reported with a
/// `delivery.failed`: not for operational events (a failing webhook
/// subscribed to `delivery.failed` would report its own reports without
/// end), nor for test deliveries (their outcome is the test's answer). The
/// database applies the same rule (`webhookd_reports_failure`, migration
/// 0011).
pub fn reports_failure(event: &str) -> bool {
    event != TEST_EVENT && !is_operational(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_holds_the_nine_crm_events_the_test_event_and_the_operational_events() {
        let names: Vec<&str> = CATALOGUE.iter().map(|e| e.name).collect();
        assert_eq!(
            names,
            [
                "task.created",
                "task.updated",
                "task.completed",
                "task.deleted",
                "deal.created",
                "deal.won",
                "deal.lost",
                "client.created",
                "comment.added",
                "webhook.test",
                "webhook.disabled",
                "delivery.failed"
            ]
        );
    }

    #[test]
    fn every_event_name_is_entity_dot_action_and_unique() {
        for (i, spec) in CATALOGUE.iter().enumerate() {
            let (entity, action) = spec.name.split_once('.').expect("a dot");
            assert!(!entity.is_empty() && !action.is_empty(), "{}", spec.name);
            assert!(!action.contains('.') && !spec.name.contains('*'));
            assert!(
                CATALOGUE[i + 1..].iter().all(|o| o.name != spec.name),
                "{} twice",
                spec.name
            );
        }
    }

    #[test]
    fn only_failures_of_crm_events_and_batches_are_reported() {
        for name in ["task.created", "comment.added", "batch"] {
            assert!(reports_failure(name), "{name}");
            assert!(!is_operational(name), "{name}");
        }
        for name in [WEBHOOK_DISABLED, DELIVERY_FAILED] {
            assert!(find_event(name).is_some(), "{name} is subscribable");
            assert!(is_operational(name) && !reports_failure(name), "{name}");
        }
        assert!(!reports_failure(TEST_EVENT) && !is_operational(TEST_EVENT));
    }

    #[test]
    fn lookups_are_exact() {
        assert_eq!(find_event("deal.won").map(|e| e.name), Some("deal.won"));
        assert!(find_event("deal.Won").is_none());
        assert!(find_event("deal.*").is_none());
        assert!(find_event("").is_none());
    }
}
