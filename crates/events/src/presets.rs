//! Body template presets for common receivers (chat tools and no-code
//! platforms), and sample data for every catalogue event so a template can be
//! previewed before it is saved.
//!
//! Event data differs per entity (a task has a `title`, a deal and a client a
//! `name`, a comment a `text`, a test delivery a `message`, a failed delivery
//! its `last_error`), and a missing value renders as empty text. So the
//! presets put `{{data.title}}{{data.name}}{{data.text}}{{data.message}}
//! {{data.last_error}}` side by side: exactly one of them is present for each
//! catalogue event, and one preset reads well for all of them.

use serde::Serialize;
use serde_json::Value;

use crate::catalogue::{DELIVERY_FAILED, TEST_EVENT, WEBHOOK_DISABLED};

/// One preset as `GET /api/v1/templates` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Preset {
    /// Stable identifier (`slack`, `telegram`, ...).
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// The template's JSON text, or `None` for the raw envelope.
    pub template: Option<&'static str>,
}

/// The headline of any catalogue event: the one of these fields it has.
macro_rules! headline {
    () => {
        "{{data.title}}{{data.name}}{{data.text}}{{data.message}}{{data.last_error}}"
    };
}

const SLACK: &str = concat!(
    r#"{
  "text": "*{{event}}*: "#,
    headline!(),
    r#"",
  "unfurl_links": false
}"#
);

const TELEGRAM: &str = concat!(
    r#"{
  "chat_id": "<chat_id>",
  "text": "{{event}}: "#,
    headline!(),
    r#"",
  "disable_web_page_preview": true
}"#
);

// `allowed_mentions` with no `parse` entry: CRM text such as "@everyone"
// must never ping a whole Discord server.
const DISCORD: &str = concat!(
    r#"{
  "content": "**{{event}}**: "#,
    headline!(),
    r#"",
  "allowed_mentions": {"parse": []}
}"#
);

// The Adaptive Card message that Teams "Workflows" webhooks accept (the
// older Office 365 connector MessageCards are retired).
const TEAMS: &str = concat!(
    r#"{
  "type": "message",
  "attachments": [
    {
      "contentType": "application/vnd.microsoft.card.adaptive",
      "content": {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
          {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": "{{event}}", "wrap": true},
          {"type": "TextBlock", "text": ""#,
    headline!(),
    r#"", "wrap": true},
          {"type": "FactSet", "facts": [
            {"title": "Event id", "value": "{{id}}"},
            {"title": "Timestamp", "value": "{{timestamp}}"}
          ]}
        ]
      }
    }
  ]
}"#
);

/// Every preset, in the order a picker shows them.
pub const PRESETS: &[Preset] = &[
    Preset {
        id: "slack",
        name: "Slack",
        description: "Slack incoming webhook: a one-line message with the event and its headline",
        template: Some(SLACK),
    },
    Preset {
        id: "telegram",
        name: "Telegram",
        description: "Telegram Bot API sendMessage (URL https://api.telegram.org/bot<token>/sendMessage); replace <chat_id> with the chat's id",
        template: Some(TELEGRAM),
    },
    Preset {
        id: "discord",
        name: "Discord",
        description: "Discord channel webhook: a message with the event and its headline, mentions disabled",
        template: Some(DISCORD),
    },
    Preset {
        id: "teams",
        name: "Microsoft Teams",
        description: "Teams Workflows webhook: an Adaptive Card titled with the event",
        template: Some(TEAMS),
    },
    Preset {
        id: "raw",
        name: "Raw envelope",
        description: "No template: the envelope {id, event, timestamp, data} as is, for Zapier, Make and your own servers",
        template: None,
    },
];

/// Looks a preset up by its id.
pub fn find_preset(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id == id)
}

/// Sample `data` per catalogue event, shaped like what the CRM publishes.
const SAMPLE_DATA: &[(&str, &str)] = &[
    (
        "task.created",
        r#"{"task_id": 123, "title": "Call the client back", "status": "pending", "priority": "high", "assignee_id": 7, "created_at": "2026-02-20T12:00:00+00:00"}"#,
    ),
    (
        "task.updated",
        r#"{"task_id": 123, "title": "Call the client back", "status": "in_progress", "priority": "high", "changed_fields": ["status"], "updated_at": "2026-02-20T12:30:00+00:00"}"#,
    ),
    (
        "task.completed",
        r#"{"task_id": 123, "title": "Call the client back", "completed_at": "2026-02-20T13:00:00+00:00"}"#,
    ),
    (
        "task.deleted",
        r#"{"task_id": 123, "title": "Call the client back", "deleted_at": "2026-02-20T14:00:00+00:00"}"#,
    ),
    (
        "deal.created",
        r#"{"deal_id": 55, "name": "Annual licence", "amount": 100000, "client": "ACME", "stage": "proposal", "created_at": "2026-02-20T12:00:00+00:00"}"#,
    ),
    (
        "deal.won",
        r#"{"deal_id": 55, "name": "Annual licence", "amount": 100000, "client": "ACME", "won_at": "2026-02-21T09:00:00+00:00"}"#,
    ),
    (
        "deal.lost",
        r#"{"deal_id": 56, "name": "Support contract", "amount": 2500.5, "client": "Globex", "reason": "budget", "lost_at": "2026-02-21T09:00:00+00:00"}"#,
    ),
    (
        "client.created",
        r#"{"client_id": 9, "name": "ACME", "email": "ops@acme.example", "phone": "+1 555 0100", "created_at": "2026-02-20T12:00:00+00:00"}"#,
    ),
    (
        "comment.added",
        r#"{"comment_id": 301, "text": "Sent the \"final\" offer {{data.title}}\nпо почте 🎉", "author": "Ann", "task_id": 123, "created_at": "2026-02-20T15:00:00+00:00"}"#,
    ),
    (
        TEST_EVENT,
        r#"{"message": "Test delivery from webhookd", "webhook_id": 1}"#,
    ),
    (
        WEBHOOK_DISABLED,
        r#"{"webhook_id": 12, "name": "Deals to Slack", "url": "https://hooks.slack.com/services/T000/B000/XXXX", "reason": "the receiver answered 410 Gone"}"#,
    ),
    (
        DELIVERY_FAILED,
        r#"{"webhook_id": 12, "delivery_id": "0192f1d2-0000-8000-8000-00000000002a", "event_id": "0192f1d2-0000-7000-8000-000000000001", "event": "deal.won", "attempts": 12, "last_status_code": 503, "last_error": "HTTP 503"}"#,
    ),
];

/// Sample `data` for a catalogue event, for previews; `None` for an event
/// without one (a test makes sure every catalogue event has one).
pub(crate) fn sample_data(event: &str) -> Option<Value> {
    let (_, text) = SAMPLE_DATA.iter().find(|(name, _)| *name == event)?;
    serde_json::from_str(text).ok()
}

/// A whole sample envelope for an event, as a template sees it.
pub fn sample_envelope(event: &str) -> Option<Value> {
    Some(serde_json::json!({
        "id": "0192f1d2-0000-7000-8000-000000000001",
        "event": event,
        "timestamp": 1_771_588_800,
        "data": sample_data(event)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Template, CATALOGUE};

    /// Every string in a JSON document, concatenated.
    fn text_of(value: &Value) -> String {
        match value {
            Value::String(s) => s.clone(),
            Value::Array(items) => items.iter().map(text_of).collect(),
            Value::Object(map) => map.values().map(text_of).collect(),
            _ => String::new(),
        }
    }

    #[test]
    fn every_catalogue_event_has_object_sample_data() {
        for spec in CATALOGUE {
            let data = sample_data(spec.name).unwrap_or_else(|| panic!("{}", spec.name));
            assert!(data.is_object(), "{}", spec.name);
        }
        assert_eq!(SAMPLE_DATA.len(), CATALOGUE.len());
    }

    #[test]
    fn every_preset_parses_and_renders_valid_json_with_the_headline_for_every_event() {
        for preset in PRESETS {
            let Some(text) = preset.template else {
                continue;
            };
            let template = Template::parse(text).unwrap_or_else(|e| panic!("{}: {e}", preset.id));
            for spec in CATALOGUE {
                let envelope = sample_envelope(spec.name).expect("sample");
                let rendered = template.render(&envelope);
                let value: Value = serde_json::from_str(&rendered)
                    .unwrap_or_else(|e| panic!("{} / {}: {e}", preset.id, spec.name));
                let data = &envelope["data"];
                let headline = ["title", "name", "text", "message", "last_error"]
                    .iter()
                    .find_map(|k| data[k].as_str())
                    .expect("a headline field");
                assert!(
                    text_of(&value).contains(headline),
                    "{} / {}: {rendered}",
                    preset.id,
                    spec.name
                );
                assert!(value.is_object(), "{}", preset.id);
                assert!(
                    !rendered.contains("{{event}}"),
                    "{}: placeholders are replaced",
                    preset.id
                );
            }
        }
    }

    #[test]
    fn the_chat_presets_have_the_shape_each_service_expects() {
        let render = |id: &str| -> Value {
            let text = find_preset(id)
                .and_then(|p| p.template)
                .expect("a template");
            let envelope = sample_envelope("deal.won").expect("sample");
            serde_json::from_str(&Template::parse(text).expect("parses").render(&envelope))
                .expect("JSON")
        };
        assert_eq!(render("slack")["text"], "*deal.won*: Annual licence");
        let telegram = render("telegram");
        assert_eq!(telegram["chat_id"], "<chat_id>");
        assert_eq!(telegram["text"], "deal.won: Annual licence");
        assert_eq!(render("discord")["content"], "**deal.won**: Annual licence");
        assert_eq!(
            render("discord")["allowed_mentions"]["parse"],
            Value::Array(vec![])
        );
        let teams = render("teams");
        let card = &teams["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][0]["text"], "deal.won");
        assert_eq!(card["body"][1]["text"], "Annual licence");
    }

    #[test]
    fn preset_ids_are_unique_and_the_raw_envelope_has_no_template() {
        for (i, preset) in PRESETS.iter().enumerate() {
            assert!(PRESETS[i + 1..].iter().all(|p| p.id != preset.id));
        }
        assert_eq!(find_preset("raw").map(|p| p.template), Some(None));
        assert!(find_preset("nope").is_none());
    }
}
