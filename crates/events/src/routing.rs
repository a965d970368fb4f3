//! Which subscribed webhooks an event reaches beyond its name and the
//! privacy rule of §5 (applied in SQL): each webhook's payload filter, and
//! the rules of operational events (SPEC §13). Decided in the fan-out, in
//! Rust, before any delivery row exists.

use serde_json::Value;

pub use crate::catalogue::is_operational;
use crate::delivery::ClaimedDelivery;

/// A webhook subscribed to an event, as the fan-out reads it: the claim for
/// its first attempt and what routing needs to know of the webhook.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub claim: ClaimedDelivery,
    pub owner_id: i64,
    /// The webhook has a filter, of this version (its `updated_at` in
    /// microseconds: any edit changes it). Only the version travels with
    /// every event; the text is read when that version is not compiled yet.
    pub filter_version: Option<i64>,
}

/// A webhook's filter as stored, read when its version is not compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFilter {
    pub webhook_id: i64,
    pub version: i64,
    /// `None`: the webhook has no filter (any more).
    pub json: Option<String>,
}

/// Whether an operational event reaches a webhook: only its owner's webhooks
/// (not admins', unlike other events with a `user_id`: it speaks of one
/// user's webhooks), and never the webhook it is about, so a webhook that
/// fails cannot feed on events about its own failures. `subject` is the
/// event as filters see it ([`crate::filter_subject`]).
pub fn operational_event_reaches(
    subject: &Value,
    event_user: Option<i64>,
    webhook_id: i64,
    owner_id: i64,
) -> bool {
    let about = subject.pointer("/data/webhook_id").and_then(Value::as_i64);
    event_user == Some(owner_id) && about != Some(webhook_id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue::DELIVERY_FAILED;

    fn about(webhook_id: i64) -> Value {
        json!({"event": DELIVERY_FAILED, "user_id": 7, "data": {"webhook_id": webhook_id}})
    }

    #[test]
    fn an_operational_event_reaches_its_owners_other_webhooks_only() {
        assert!(operational_event_reaches(&about(1), Some(7), 2, 7));
        assert!(
            !operational_event_reaches(&about(1), Some(7), 1, 7),
            "not the webhook it is about"
        );
        assert!(
            !operational_event_reaches(&about(1), Some(7), 3, 8),
            "not another user, admin or not"
        );
        assert!(
            !operational_event_reaches(&about(1), None, 2, 7),
            "never without an owner"
        );
    }

    #[test]
    fn an_operational_event_without_a_webhook_id_still_reaches_the_owner() {
        let subject = json!({"data": {}});
        assert!(operational_event_reaches(&subject, Some(7), 2, 7));
    }
}
