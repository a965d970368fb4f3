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
//!
//! The CRM's people read these messages, so each preset and each sample
//! comes in English and Russian ([`PresetLanguage`]): whoever applies a
//! preset gets its message in their language.

use serde::Serialize;
use serde_json::Value;

use crate::catalogue::{DELIVERY_FAILED, TEST_EVENT, WEBHOOK_DISABLED};

/// The languages presets and samples are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresetLanguage {
    #[default]
    En,
    Ru,
}

impl PresetLanguage {
    /// `ru`, `ru-RU`: Russian; anything else English.
    pub fn from_code(code: &str) -> PresetLanguage {
        let primary = code.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("ru") {
            PresetLanguage::Ru
        } else {
            PresetLanguage::En
        }
    }
}

/// A preset's texts in one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PresetText {
    pub name: &'static str,
    pub description: &'static str,
    /// The template's JSON text, or `None` for the raw envelope.
    pub template: Option<&'static str>,
}

/// One preset as `GET /api/v1/templates` lists it. The fields are the
/// English texts; [`Preset::text`] gives either language's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Preset {
    /// Stable identifier (`slack`, `telegram`, ...).
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    /// The template's JSON text, or `None` for the raw envelope.
    pub template: Option<&'static str>,
    #[serde(skip)]
    pub ru: PresetText,
}

impl Preset {
    pub fn text(&self, lang: PresetLanguage) -> PresetText {
        match lang {
            PresetLanguage::En => PresetText {
                name: self.name,
                description: self.description,
                template: self.template,
            },
            PresetLanguage::Ru => self.ru,
        }
    }

    /// The template's text in every language (`""` for none).
    fn templates(&self) -> [&'static str; 2] {
        [
            self.template.unwrap_or_default(),
            self.ru.template.unwrap_or_default(),
        ]
    }
}

/// The preset a stored template comes from: exactly one of its texts
/// (`exact`), or made from one and edited since (same top-level keys, such
/// as Telegram's with its `chat_id` filled in). `None` when neither.
pub fn preset_of(template: &str) -> Option<(&'static Preset, bool)> {
    let text = template.trim();
    if let Some(exact) = PRESETS.iter().find(|p| p.templates().contains(&text)) {
        return Some((exact, true));
    }
    let keys = |text: &str| -> Option<Vec<String>> {
        match serde_json::from_str::<Value>(text).ok()? {
            Value::Object(map) => Some(map.keys().cloned().collect()),
            _ => None,
        }
    };
    let typed = keys(text)?;
    PRESETS
        .iter()
        .find(|p| p.template.and_then(keys).as_ref() == Some(&typed))
        .map(|p| (p, false))
}

/// A preset's placeholder the user must replace before the template is of
/// any use (`<chat_id>` of Telegram's), if one is still in `template`.
pub fn unfilled_placeholder(template: &str) -> Option<&'static str> {
    const PLACEHOLDERS: &[&str] = &["<chat_id>"];
    PLACEHOLDERS
        .iter()
        .copied()
        .find(|p| template.contains(&format!("\"{p}\"")))
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

const SLACK_RU: &str = concat!(
    r#"{
  "text": "Новое событие *{{event}}*: "#,
    headline!(),
    r#"",
  "unfurl_links": false
}"#
);

const TELEGRAM_RU: &str = concat!(
    r#"{
  "chat_id": "<chat_id>",
  "text": "Новое событие {{event}}: "#,
    headline!(),
    r#"",
  "disable_web_page_preview": true
}"#
);

const DISCORD_RU: &str = concat!(
    r#"{
  "content": "Новое событие **{{event}}**: "#,
    headline!(),
    r#"",
  "allowed_mentions": {"parse": []}
}"#
);

const TEAMS_RU: &str = concat!(
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
          {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": "Новое событие {{event}}", "wrap": true},
          {"type": "TextBlock", "text": ""#,
    headline!(),
    r#"", "wrap": true},
          {"type": "FactSet", "facts": [
            {"title": "Идентификатор события", "value": "{{id}}"},
            {"title": "Время", "value": "{{timestamp}}"}
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
        ru: PresetText {
            name: "Slack",
            description: "Входящий вебхук Slack: одна строка с событием и его заголовком",
            template: Some(SLACK_RU),
        },
    },
    Preset {
        id: "telegram",
        name: "Telegram",
        description: "Telegram Bot API sendMessage (URL https://api.telegram.org/bot<token>/sendMessage); replace <chat_id> with the chat's id",
        template: Some(TELEGRAM),
        ru: PresetText {
            name: "Telegram",
            description: "Метод sendMessage ботов Telegram (адрес https://api.telegram.org/bot<token>/sendMessage); замените <chat_id> на идентификатор чата",
            template: Some(TELEGRAM_RU),
        },
    },
    Preset {
        id: "discord",
        name: "Discord",
        description: "Discord channel webhook: a message with the event and its headline, mentions disabled",
        template: Some(DISCORD),
        ru: PresetText {
            name: "Discord",
            description: "Вебхук канала Discord: сообщение с событием и его заголовком, без упоминаний",
            template: Some(DISCORD_RU),
        },
    },
    Preset {
        id: "teams",
        name: "Microsoft Teams",
        description: "Teams Workflows webhook: an Adaptive Card titled with the event",
        template: Some(TEAMS),
        ru: PresetText {
            name: "Microsoft Teams",
            description: "Вебхук Workflows в Teams: карточка Adaptive Card с названием события",
            template: Some(TEAMS_RU),
        },
    },
    Preset {
        id: "raw",
        name: "Raw envelope",
        description: "No template: the envelope {id, event, timestamp, data} as is, for Zapier, Make and your own servers",
        template: None,
        ru: PresetText {
            name: "Конверт как есть",
            description: "Без шаблона: конверт события как есть, для сервисов автоматизации и ваших серверов",
            template: None,
        },
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

/// The Russian sample's human texts, over the English sample's fields (ids,
/// amounts and dates are the same in both).
const SAMPLE_DATA_RU: &[(&str, &str)] = &[
    ("task.created", r#"{"title": "Перезвонить клиенту"}"#),
    ("task.updated", r#"{"title": "Перезвонить клиенту"}"#),
    ("task.completed", r#"{"title": "Перезвонить клиенту"}"#),
    ("task.deleted", r#"{"title": "Перезвонить клиенту"}"#),
    (
        "deal.created",
        r#"{"name": "Годовая лицензия", "client": "ООО «Ромашка»"}"#,
    ),
    (
        "deal.won",
        r#"{"name": "Годовая лицензия", "client": "ООО «Ромашка»"}"#,
    ),
    (
        "deal.lost",
        r#"{"name": "Договор на поддержку", "client": "АО «Глобус»", "reason": "бюджет"}"#,
    ),
    ("client.created", r#"{"name": "ООО «Ромашка»"}"#),
    (
        "comment.added",
        r#"{"text": "Отправил «финальное» предложение {{data.title}}\nпо почте 🎉", "author": "Анна"}"#,
    ),
    (
        TEST_EVENT,
        r#"{"message": "Тестовая доставка от webhookd"}"#,
    ),
    (
        WEBHOOK_DISABLED,
        r#"{"name": "Сделки в Slack", "reason": "получатель ответил 410 Gone"}"#,
    ),
];

/// Sample `data` for a catalogue event, for previews; `None` for an event
/// without one (a test makes sure every catalogue event has one).
#[cfg(test)]
pub(crate) fn sample_data(event: &str) -> Option<Value> {
    sample_data_in(event, PresetLanguage::En)
}

fn sample_data_in(event: &str, lang: PresetLanguage) -> Option<Value> {
    let (_, text) = SAMPLE_DATA.iter().find(|(name, _)| *name == event)?;
    let mut data: Value = serde_json::from_str(text).ok()?;
    if lang == PresetLanguage::Ru {
        let russian = SAMPLE_DATA_RU
            .iter()
            .find(|(name, _)| *name == event)
            .and_then(|(_, text)| serde_json::from_str::<Value>(text).ok());
        if let (Some(Value::Object(fields)), Some(target)) = (russian, data.as_object_mut()) {
            target.extend(fields);
        }
    }
    Some(data)
}

/// A whole sample envelope for an event, as a template sees it.
pub fn sample_envelope(event: &str) -> Option<Value> {
    sample_envelope_in(event, PresetLanguage::En)
}

/// [`sample_envelope`] with its human texts in `lang`.
pub fn sample_envelope_in(event: &str, lang: PresetLanguage) -> Option<Value> {
    Some(serde_json::json!({
        "id": "0192f1d2-0000-7000-8000-000000000001",
        "event": event,
        "timestamp": 1_771_588_800,
        "data": sample_data_in(event, lang)?,
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
    fn russian_presets_render_for_every_event_with_russian_samples() {
        for preset in PRESETS {
            let Some(text) = preset.text(PresetLanguage::Ru).template else {
                assert_eq!(preset.template, None, "{}", preset.id);
                continue;
            };
            let template = Template::parse(text).unwrap_or_else(|e| panic!("{}: {e}", preset.id));
            for spec in CATALOGUE {
                let envelope = sample_envelope_in(spec.name, PresetLanguage::Ru).expect("sample");
                let rendered = template.render(&envelope);
                let value: Value = serde_json::from_str(&rendered)
                    .unwrap_or_else(|e| panic!("{} / {}: {e}", preset.id, spec.name));
                assert!(value.is_object(), "{}", preset.id);
            }
        }
        let envelope = sample_envelope_in("task.created", PresetLanguage::Ru).expect("sample");
        assert_eq!(envelope["data"]["title"], "Перезвонить клиенту");
        assert_eq!(envelope["data"]["task_id"], 123, "the rest as in English");
        assert_eq!(PresetLanguage::from_code("ru-RU"), PresetLanguage::Ru);
        assert_eq!(PresetLanguage::from_code("de"), PresetLanguage::En);
    }

    #[test]
    fn a_stored_template_is_traced_to_its_preset_exactly_or_by_its_shape() {
        let telegram = find_preset("telegram").expect("telegram");
        let english = telegram.template.expect("a template");
        assert_eq!(preset_of(english), Some((telegram, true)));
        let russian = telegram.ru.template.expect("a template");
        assert_eq!(preset_of(russian), Some((telegram, true)));
        let filled = english.replace("<chat_id>", "-100200");
        assert_eq!(preset_of(&filled), Some((telegram, false)));
        assert_eq!(preset_of(""), find_preset("raw").map(|p| (p, true)));
        assert_eq!(preset_of(r#"{"chat_id": 1}"#), None);
        assert_eq!(preset_of("not json"), None);
        assert_eq!(unfilled_placeholder(english), Some("<chat_id>"));
        assert_eq!(unfilled_placeholder(&filled), None);
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
