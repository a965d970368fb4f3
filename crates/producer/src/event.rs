//! Typed constructors for the catalogue's events.
//!
//! Each event has a data struct with the payload fields receivers rely on (the
//! original CRM's payloads for `task.created`, `task.completed` and `deal.won`),
//! so a CRM service cannot misspell a field or an event name. Timestamps are
//! RFC 3339 with a numeric offset (`2026-02-20T12:00:00+00:00`), as the original
//! CRM sent them. Optional fields are left out of the JSON when `None`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;
use webhookd_events::{EventMessage, MessageError};

/// A task was created.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskCreated {
    pub task_id: i64,
    pub title: String,
    pub status: String,
    pub priority: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee_id: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_rfc3339"
    )]
    pub due_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// A task was changed; `changed_fields` names what changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskUpdated {
    pub(crate) task_id: i64,
    pub(crate) title: String,
    pub(crate) status: String,
    pub(crate) priority: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) changed_fields: Vec<String>,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) updated_at: DateTime<Utc>,
}

/// A task was completed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskCompleted {
    pub(crate) task_id: i64,
    pub(crate) title: String,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) completed_at: DateTime<Utc>,
}

/// A task was deleted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskDeleted {
    pub(crate) task_id: i64,
    pub(crate) title: String,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) deleted_at: DateTime<Utc>,
}

/// A deal was created.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DealCreated {
    pub(crate) deal_id: i64,
    pub(crate) name: String,
    #[serde(serialize_with = "amount")]
    pub(crate) amount: f64,
    pub(crate) client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stage: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) created_at: DateTime<Utc>,
}

/// A deal was won.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DealWon {
    pub deal_id: i64,
    pub name: String,
    #[serde(serialize_with = "amount")]
    pub amount: f64,
    pub client: String,
    #[serde(serialize_with = "rfc3339")]
    pub won_at: DateTime<Utc>,
}

/// A deal was lost, with the reason when the CRM recorded one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DealLost {
    pub(crate) deal_id: i64,
    pub(crate) name: String,
    #[serde(serialize_with = "amount")]
    pub(crate) amount: f64,
    pub(crate) client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) lost_at: DateTime<Utc>,
}

/// A client was created.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientCreated {
    pub(crate) client_id: i64,
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) phone: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) created_at: DateTime<Utc>,
}

/// A comment was added to a task, a deal or a client (whichever id is set).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommentAdded {
    pub(crate) comment_id: i64,
    pub(crate) text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) task_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deal_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) client_id: Option<i64>,
    #[serde(serialize_with = "rfc3339")]
    pub(crate) created_at: DateTime<Utc>,
}

/// A test delivery (normally sent by the daemon itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookTest {
    pub(crate) message: String,
}

/// Event data that knows its catalogue name. Sealed: implemented only for the
/// structs above, each covered by a test proving it serialises to an object.
pub trait EventData: Serialize + sealed::Sealed {
    const NAME: &'static str;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! event_data {
    ($($ty:ident => $name:literal, $ctor:ident;)*) => {
        $(
            impl sealed::Sealed for $ty {}
            impl EventData for $ty {
                const NAME: &'static str = $name;
            }
        )*

        impl Event {
            $(
                #[doc = concat!("A `", $name, "` message, stamped now, with a new id.")]
                pub fn $ctor(data: $ty) -> EventMessage {
                    Event::from_data(data)
                }
            )*
        }
    };
}

/// Builds broker messages: `Event::task_created(TaskCreated { .. })`.
/// Add `.with_user_id(n)` to make the event private to that CRM user's webhooks.
#[derive(Debug)]
pub struct Event;

event_data! {
    TaskCreated => "task.created", task_created;
    TaskUpdated => "task.updated", task_updated;
    TaskCompleted => "task.completed", task_completed;
    TaskDeleted => "task.deleted", task_deleted;
    DealCreated => "deal.created", deal_created;
    DealWon => "deal.won", deal_won;
    DealLost => "deal.lost", deal_lost;
    ClientCreated => "client.created", client_created;
    CommentAdded => "comment.added", comment_added;
    WebhookTest => "webhook.test", webhook_test;
}

impl Event {
    /// A message for any typed event, stamped now, with a new id.
    pub(crate) fn from_data<D: EventData>(data: D) -> EventMessage {
        // Infallible for the sealed set: plain structs with string keys; the
        // tests below serialise every one of them.
        let data = serde_json::to_value(&data).expect("event data serialises to a JSON object");
        EventMessage {
            id: Uuid::now_v7(),
            event: D::NAME.to_owned(),
            timestamp: now(),
            user_id: None,
            data,
        }
    }

    /// A message for an event without a typed struct yet (added to the
    /// catalogue later). Fails for an unknown event or `data` that is not an
    /// object.
    pub fn custom(event: &str, data: serde_json::Value) -> Result<EventMessage, MessageError> {
        EventMessage::new(event, data, now())
    }
}

/// Unix seconds now, the `timestamp` of a new message.
pub fn now() -> i64 {
    Utc::now().timestamp()
}

fn rfc3339<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    // `false`: `+00:00` rather than `Z`, as the original CRM's PHP `DATE_ATOM`.
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

fn opt_rfc3339<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, s),
        None => s.serialize_none(),
    }
}

/// Whole amounts as JSON integers (`100000`, as the original CRM sent them),
/// fractional ones as numbers with their decimals.
fn amount<S: Serializer>(amount: &f64, s: S) -> Result<S::Ok, S::Error> {
    const EXACT_INTEGER_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53
    if amount.fract() == 0.0 && amount.abs() < EXACT_INTEGER_LIMIT {
        // Exact: the value is integral and within f64's exact integer range.
        s.serialize_i64(*amount as i64)
    } else {
        s.serialize_f64(*amount)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;
    use webhookd_events::{find_event, ParsedMessage, CATALOGUE};

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 20, 12, 0, 0).unwrap()
    }

    fn one_of_each() -> Vec<EventMessage> {
        vec![
            Event::task_created(TaskCreated {
                task_id: 123,
                title: "Новая задача".into(),
                status: "pending".into(),
                priority: "medium".into(),
                assignee_id: None,
                due_at: None,
                created_at: at(),
            }),
            Event::task_updated(TaskUpdated {
                task_id: 123,
                title: "t".into(),
                status: "in_progress".into(),
                priority: "high".into(),
                changed_fields: vec!["status".into()],
                updated_at: at(),
            }),
            Event::task_completed(TaskCompleted {
                task_id: 123,
                title: "Завершённая задача".into(),
                completed_at: at(),
            }),
            Event::task_deleted(TaskDeleted {
                task_id: 123,
                title: "t".into(),
                deleted_at: at(),
            }),
            Event::deal_created(DealCreated {
                deal_id: 456,
                name: "d".into(),
                amount: 10.5,
                client: "c".into(),
                stage: Some("new".into()),
                created_at: at(),
            }),
            Event::deal_won(DealWon {
                deal_id: 456,
                name: "Сделка #456".into(),
                amount: 100000.0,
                client: "ООО Ромашка".into(),
                won_at: at(),
            }),
            Event::deal_lost(DealLost {
                deal_id: 456,
                name: "d".into(),
                amount: 0.0,
                client: "c".into(),
                reason: None,
                lost_at: at(),
            }),
            Event::client_created(ClientCreated {
                client_id: 1,
                name: "c".into(),
                email: Some("a@example.com".into()),
                phone: None,
                created_at: at(),
            }),
            Event::comment_added(CommentAdded {
                comment_id: 1,
                text: "hi".into(),
                author: None,
                task_id: Some(123),
                deal_id: None,
                client_id: None,
                created_at: at(),
            }),
            Event::webhook_test(WebhookTest {
                message: "ping".into(),
            }),
        ]
    }

    #[test]
    fn every_catalogue_event_has_a_typed_constructor_that_the_daemon_accepts() {
        let messages = one_of_each();
        let names: Vec<&str> = messages.iter().map(|m| m.event.as_str()).collect();
        // Operational events are published by webhookd itself (its outbox),
        // not by CRM services.
        let catalogue: Vec<&str> = CATALOGUE
            .iter()
            .map(|e| e.name)
            .filter(|name| !webhookd_events::routing::is_operational(name))
            .collect();
        assert_eq!(names, catalogue);
        for message in &messages {
            assert!(find_event(&message.event).is_some());
            assert!(message.data.is_object(), "{}", message.event);
            let bytes = message.to_bytes();
            let parsed = ParsedMessage::parse(&bytes, 1 << 20).unwrap();
            assert_eq!(parsed.id, Some(message.id));
        }
    }

    #[test]
    fn task_created_has_the_original_crm_payload_shape() {
        let message = &one_of_each()[0];
        assert_eq!(
            message.data,
            json!({
                "task_id": 123,
                "title": "Новая задача",
                "status": "pending",
                "priority": "medium",
                "created_at": "2026-02-20T12:00:00+00:00"
            })
        );
        assert!(message.user_id.is_none());
        assert!((now() - message.timestamp).abs() < 5);
    }

    #[test]
    fn deal_won_keeps_whole_amounts_as_integers() {
        let won = &one_of_each()[5];
        assert_eq!(
            won.data,
            json!({
                "deal_id": 456,
                "name": "Сделка #456",
                "amount": 100000,
                "client": "ООО Ромашка",
                "won_at": "2026-02-20T12:00:00+00:00"
            })
        );
        assert_eq!(one_of_each()[4].data["amount"], json!(10.5));
    }

    #[test]
    fn optional_fields_are_left_out_when_absent_and_present_when_set() {
        let all = one_of_each();
        let client = &all[7].data;
        assert_eq!(client["email"], "a@example.com");
        assert!(client.get("phone").is_none());
        assert!(all[6].data.get("reason").is_none());
        let task = Event::task_created(TaskCreated {
            task_id: 1,
            title: "t".into(),
            status: "pending".into(),
            priority: "low".into(),
            assignee_id: Some(7),
            due_at: Some(at()),
            created_at: at(),
        });
        assert_eq!(task.data["assignee_id"], 7);
        assert_eq!(task.data["due_at"], "2026-02-20T12:00:00+00:00");
    }

    #[test]
    fn each_message_gets_its_own_id() {
        let a = Event::webhook_test(WebhookTest {
            message: "a".into(),
        });
        let b = Event::webhook_test(WebhookTest {
            message: "a".into(),
        });
        assert_ne!(a.id, b.id);
        assert_eq!(a.clone().with_user_id(7).user_id, Some(7));
    }

    #[test]
    fn custom_events_are_checked_against_the_catalogue() {
        let ok = Event::custom("deal.won", json!({"deal_id": 1})).unwrap();
        assert_eq!(ok.event, "deal.won");
        assert!(matches!(
            Event::custom("task.exploded", json!({})),
            Err(MessageError::UnknownEvent(_))
        ));
        assert!(matches!(
            Event::custom("task.created", json!([1])),
            Err(MessageError::WrongType { field: "data", .. })
        ));
    }
}
