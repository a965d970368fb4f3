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
];

/// Looks an event up by its exact name.
pub fn find_event(name: &str) -> Option<&'static EventSpec> {
    CATALOGUE.iter().find(|spec| spec.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_holds_the_nine_crm_events_and_the_test_event() {
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
                "webhook.test"
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
    fn lookups_are_exact() {
        assert_eq!(find_event("deal.won").map(|e| e.name), Some("deal.won"));
        assert!(find_event("deal.Won").is_none());
        assert!(find_event("deal.*").is_none());
        assert!(find_event("").is_none());
    }
}
