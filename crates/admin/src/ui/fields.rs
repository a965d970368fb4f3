//! The webhook form's fields: read from a submitted form or a stored
//! webhook, checked with the API's rules (`api::validate`), so the form and
//! the API accept exactly the same webhooks, and the template preview.

use std::collections::BTreeMap;
use std::fmt;

mod errors;

use axum::http::HeaderName;
use webhookd_events::{
    sample_envelope_in, DeliveryOrder, PresetLanguage, Template, CATALOGUE, TEST_EVENT,
};

use super::auth_fields::AuthInput;
use super::form::FormFields;
use super::i18n::{Lang, Tr};
use crate::api::webhooks::Redacted;
use crate::api::{validate, validate_auth};
use errors::{auth_problem_id, name_problem, template_problem, url_problem};
pub(crate) use errors::{port_problem, FieldError, FieldErrors};
use webhookd_store::webhooks::Webhook;
use webhookd_worker::deliver::DEFAULT_MAX_RENDERED_BODY_BYTES;

/// The event a preview renders when none is picked.
pub(crate) const DEFAULT_PREVIEW_EVENT: &str = "task.created";

/// What the user typed, kept as text so a form with errors shows it again.
/// Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct WebhookInput {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) events: Vec<String>,
    /// Creation only; empty means "generate one".
    pub(crate) secret: String,
    pub(crate) is_active: bool,
    pub(crate) timeout_ms: String,
    /// Empty means "one request per event".
    pub(crate) batch_max_events: String,
    pub(crate) batch_max_wait_ms: String,
    /// One `Name: value` per line.
    pub(crate) headers: String,
    /// JSON text; empty means "send the envelope" (no template).
    pub(crate) template: String,
    pub(crate) preview_event: String,
    /// Admins creating a webhook for another user; empty means themselves.
    pub(crate) owner: String,
    /// The payload filter's JSON text; empty means "every event".
    pub(crate) filter: String,
    /// The event "Check the filter" tries the filter on (JSON, pasted or
    /// prefilled with a recent one).
    pub(crate) filter_sample: String,
    /// Seconds, separated by commas or spaces; empty means the daemon's
    /// policy.
    pub(crate) retry_schedule: String,
    /// One delivery at a time, in order (`ordering: "fifo"`).
    pub(crate) fifo: bool,
    /// Authentication to the receiver (`auth_fields.rs`).
    pub(crate) auth: AuthInput,
    /// Requests per second at most; empty means no limit.
    pub(crate) rate_limit_per_s: String,
}

impl fmt::Debug for WebhookInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookInput")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &Redacted)
            .field("is_active", &self.is_active)
            .field("timeout_ms", &self.timeout_ms)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_wait_ms", &self.batch_max_wait_ms)
            .field("headers", &self.headers)
            .field("template", &self.template)
            .field("preview_event", &self.preview_event)
            .field("owner", &self.owner)
            .field("filter", &self.filter)
            .field("retry_schedule", &self.retry_schedule)
            .field("fifo", &self.fifo)
            .field("auth", &self.auth)
            .field("rate_limit_per_s", &self.rate_limit_per_s)
            .finish()
    }
}

impl Default for WebhookInput {
    fn default() -> Self {
        WebhookInput {
            name: String::new(),
            url: String::new(),
            events: Vec::new(),
            secret: String::new(),
            is_active: true,
            timeout_ms: String::new(),
            batch_max_events: String::new(),
            batch_max_wait_ms: validate::DEFAULT_BATCH_MAX_WAIT_MS.to_string(),
            headers: String::new(),
            template: String::new(),
            preview_event: DEFAULT_PREVIEW_EVENT.to_owned(),
            owner: String::new(),
            filter: String::new(),
            filter_sample: String::new(),
            retry_schedule: String::new(),
            fifo: false,
            auth: AuthInput::default(),
            rate_limit_per_s: String::new(),
        }
    }
}

impl WebhookInput {
    pub(crate) fn from_form(form: &FormFields) -> Self {
        // Browsers send a text area's line breaks as CRLF: an edited
        // template saved unchanged must stay byte for byte what it was
        // (and still be recognised as its preset).
        let text = |name: &str| form.get(name).replace("\r\n", "\n");
        WebhookInput {
            name: form.get("name").to_owned(),
            url: form.get("url").to_owned(),
            events: form.all("events").into_iter().map(str::to_owned).collect(),
            secret: form.get("secret").trim().to_owned(),
            is_active: form.has("is_active"),
            timeout_ms: form.get("timeout_ms").trim().to_owned(),
            batch_max_events: form.get("batch_max_events").trim().to_owned(),
            batch_max_wait_ms: form.get("batch_max_wait_ms").trim().to_owned(),
            headers: text("headers"),
            template: text("template"),
            preview_event: preview_event(form.get("preview_event")).to_owned(),
            owner: form.get("owner").trim().to_owned(),
            filter: text("filter"),
            filter_sample: text("filter_sample"),
            retry_schedule: form.get("retry_schedule").trim().to_owned(),
            fifo: form.has("fifo"),
            auth: AuthInput::from_form(form),
            rate_limit_per_s: form.get("rate_limit_per_s").trim().to_owned(),
        }
    }

    pub(crate) fn from_webhook(webhook: &Webhook) -> Self {
        WebhookInput {
            name: webhook.name.clone(),
            url: webhook.url.clone(),
            events: webhook.events.clone(),
            is_active: webhook.is_active,
            timeout_ms: webhook
                .timeout_ms
                .map(|t| t.to_string())
                .unwrap_or_default(),
            batch_max_events: webhook
                .batch_max_events
                .map(|n| n.to_string())
                .unwrap_or_default(),
            batch_max_wait_ms: webhook.batch_max_wait_ms.to_string(),
            headers: webhook
                .headers
                .0
                .iter()
                .map(|(k, v)| format!("{k}: {v}\n"))
                .collect(),
            template: webhook.template.clone().unwrap_or_default(),
            filter: webhook
                .filter
                .as_ref()
                .and_then(|f| serde_json::to_string_pretty(&f.0).ok())
                .unwrap_or_default(),
            retry_schedule: webhook
                .retry_schedule
                .as_ref()
                .map(|delays| {
                    delays
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            fifo: webhook.ordering == DeliveryOrder::Fifo,
            auth: AuthInput::from_view(webhook.auth_view().as_ref()),
            rate_limit_per_s: webhook
                .rate_limit_per_s
                .map(|n| n.to_string())
                .unwrap_or_default(),
            ..WebhookInput::default()
        }
    }
}

/// An event of the catalogue to preview with; the default otherwise.
pub(crate) fn preview_event(raw: &str) -> &str {
    CATALOGUE
        .iter()
        .find(|e| e.name == raw)
        .map_or(DEFAULT_PREVIEW_EVENT, |e| e.name)
}

/// A form that passed every rule. Its `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct CheckedWebhook {
    pub(crate) name: String,
    pub(crate) url: String,
    pub(crate) events: Vec<String>,
    pub(crate) is_active: bool,
    pub(crate) timeout_ms: Option<i32>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) template: Option<String>,
    pub(crate) batch_max_events: Option<i32>,
    pub(crate) batch_max_wait_ms: i32,
    /// `None`: generate one (creation) or keep it (edit).
    pub(crate) secret: Option<String>,
    /// `None`: the signed-in user.
    pub(crate) owner: Option<i64>,
    pub(crate) filter: Option<serde_json::Value>,
    pub(crate) retry_schedule: Option<Vec<i32>>,
    pub(crate) ordering: DeliveryOrder,
    /// `None`: no auth (or, on edit, none any more).
    pub(crate) auth: Option<webhookd_events::StoredAuth>,
    pub(crate) rate_limit_per_s: Option<i32>,
}

impl fmt::Debug for CheckedWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedWebhook")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("is_active", &self.is_active)
            .field("timeout_ms", &self.timeout_ms)
            .field("headers", &self.headers)
            .field("template", &self.template)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_wait_ms", &self.batch_max_wait_ms)
            .field("secret", &self.secret.as_ref().map(|_| Redacted))
            .field("owner", &self.owner)
            .field("filter", &self.filter)
            .field("retry_schedule", &self.retry_schedule)
            .field("ordering", &self.ordering)
            .field("auth", &self.auth)
            .field("rate_limit_per_s", &self.rate_limit_per_s)
            .finish()
    }
}

/// Checks every field with the API's rules, reporting all problems at once
/// (a form is fixed in one go, unlike an API call), each in the viewer's
/// words: the API's precise message is kept for its JSON clients.
pub(crate) fn check_input(
    input: &WebhookInput,
    allow_private: bool,
    tr: &Tr,
) -> Result<CheckedWebhook, FieldErrors> {
    let mut errors = FieldErrors::default();
    let says = |id: &str| FieldError::new(tr.t(id));
    let name = errors.take("name", validate::check_name(&input.name), |_, _| {
        name_problem(tr, &input.name)
    });
    let url = errors.take(
        "url",
        validate::check_url(&input.url, allow_private),
        |_, message| url_problem(tr, &input.url, message),
    );
    let events = errors.take("events", validate::check_events(&input.events), |_, _| {
        if input.events.is_empty() {
            says("form-err-events-none")
        } else {
            FieldError::new(tr.t_with(
                "form-err-events-many",
                &[("max", validate::MAX_EVENTS.into())],
            ))
        }
    });
    let timeout_ms = errors.number(
        "timeout_ms",
        &input.timeout_ms,
        || says("form-err-timeout"),
        validate::check_timeout_ms,
    );
    let batch_max_events = errors.number(
        "batch_max_events",
        &input.batch_max_events,
        || says("form-err-batch-size"),
        validate::check_batch_max_events,
    );
    let batch_max_wait_ms = errors
        .number(
            "batch_max_wait_ms",
            &input.batch_max_wait_ms,
            || says("form-err-batch-wait"),
            validate::check_batch_max_wait_ms,
        )
        .map(|ms| ms.unwrap_or(validate::DEFAULT_BATCH_MAX_WAIT_MS));
    let filter = match parse_filter(&input.filter) {
        Ok(None) => Some(None),
        Ok(Some(raw)) => errors
            .take("filter", validate::check_filter(raw), |_, message| {
                FieldError::with_code(tr.t("form-err-filter"), message)
            })
            .map(Some),
        Err(detail) => {
            errors.add(
                "filter",
                FieldError::with_code(tr.t("form-err-filter-json"), &detail),
            );
            None
        }
    };
    let retry_schedule = match parse_delays(&input.retry_schedule) {
        Ok(None) => Some(None),
        Ok(Some(delays)) => errors
            .take(
                "retry_schedule",
                validate::check_retry_schedule(&delays),
                |_, message| FieldError::with_code(tr.t("form-err-retry-range"), message),
            )
            .map(Some),
        Err(part) => {
            errors.add(
                "retry_schedule",
                FieldError::with_code(tr.t("form-err-retry-number"), &part),
            );
            None
        }
    };
    let headers = check_header_lines(&input.headers, tr, &mut errors);
    let template = match input.template.trim() {
        "" => Some(None),
        text => errors
            .take(
                "template",
                validate::check_template(text.to_owned()),
                |_, message| template_problem(tr, text, message),
            )
            .map(Some),
    };
    if let (Some(Some(batch)), Some(template)) = (batch_max_events, &template) {
        if validate::check_batch_without_template(Some(batch), template.as_deref()).is_err() {
            errors.add("batch_max_events", says("form-err-batch-template"));
        }
    }
    let secret = match input.secret.as_str() {
        "" => Some(None),
        text => errors
            .take("secret", validate::check_secret(text.to_owned()), |_, _| {
                says("form-err-secret")
            })
            .map(Some),
    };
    let auth = errors.take("auth", input.auth.check(allow_private), |field, message| {
        FieldError::with_code(tr.t(auth_problem_id(field)), message)
    });
    if let (Some(auth), Some(headers)) = (&auth, &headers) {
        let conflict = validate_auth::check_no_authorization_header(auth.is_some(), headers);
        errors.take("auth", conflict, |_, _| {
            FieldError::with_code(tr.t("form-err-auth-header"), "Authorization")
        });
    }
    let rate_limit_per_s = errors.number(
        "rate_limit_per_s",
        &input.rate_limit_per_s,
        || says("form-err-rate-limit"),
        validate::check_rate_limit_per_s,
    );
    let owner = match input.owner.as_str() {
        "" => Some(None),
        text => match text.parse::<i64>() {
            Ok(id) => Some(Some(id)),
            Err(_) => {
                errors.add("user_id", says("form-err-owner-number"));
                None
            }
        },
    };
    match (
        name,
        url,
        events,
        timeout_ms,
        (batch_max_events, batch_max_wait_ms),
        headers,
        template,
        secret,
        owner,
        (filter, retry_schedule, auth),
    ) {
        (
            Some(name),
            Some(url),
            Some(events),
            Some(timeout_ms),
            (Some(batch_max_events), Some(batch_max_wait_ms)),
            Some(headers),
            Some(template),
            Some(secret),
            Some(owner),
            (Some(filter), Some(retry_schedule), Some(auth)),
        ) if errors.is_empty() => Ok(CheckedWebhook {
            name,
            url,
            events,
            is_active: input.is_active,
            timeout_ms,
            headers,
            template,
            batch_max_events,
            batch_max_wait_ms,
            secret,
            owner,
            filter,
            retry_schedule,
            ordering: if input.fifo {
                DeliveryOrder::Fifo
            } else {
                DeliveryOrder::None
            },
            auth,
            // Checked above: an error there leaves `errors` non-empty.
            rate_limit_per_s: rate_limit_per_s.flatten(),
        }),
        _ => Err(errors),
    }
}

/// The filter field's JSON; `None` when it is empty; the parser's message
/// otherwise.
fn parse_filter(text: &str) -> Result<Option<serde_json::Value>, String> {
    match text.trim() {
        "" => Ok(None),
        text => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// "5, 300, 1800" (commas or spaces) into delays; `None` when empty; the
/// first part that is not a number otherwise.
fn parse_delays(text: &str) -> Result<Option<Vec<i64>>, String> {
    let parts: Vec<&str> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Ok(None);
    }
    parts
        .iter()
        .map(|p| p.parse::<i64>().map_err(|_| (*p).to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Whether `filter` (the field's text) lets `sample` (an event as JSON: an
/// envelope, with `user_id` if it has one) through; what is wrong
/// otherwise.
pub(crate) fn check_filter_sample(filter: &str, sample: &str, tr: &Tr) -> Result<bool, FieldError> {
    let filter = match parse_filter(filter)
        .map_err(|e| FieldError::with_code(tr.t("form-err-filter-json"), &e))?
    {
        None => return Ok(true),
        Some(raw) => webhookd_events::Filter::parse(&raw)
            .map_err(|e| FieldError::with_code(tr.t("form-err-filter"), &e.to_string()))?,
    };
    let mut subject: serde_json::Value = serde_json::from_str(sample.trim())
        .map_err(|e| FieldError::with_code(tr.t("form-err-sample-json"), &e.to_string()))?;
    let Some(envelope) = subject.as_object_mut() else {
        return Err(FieldError::new(tr.t("form-err-sample-object")));
    };
    envelope.entry("user_id").or_insert(serde_json::Value::Null);
    Ok(filter.matches(&subject))
}

/// A sample envelope of `event` to check a filter on, pretty-printed.
pub(crate) fn sample_event_json(event: &str, tr: &Tr) -> String {
    sample_envelope_in(preview_event(event), preset_language(tr))
        .and_then(|e| serde_json::to_string_pretty(&e).ok())
        .unwrap_or_default()
}

/// The language presets and samples are shown in for this viewer.
pub(crate) fn preset_language(tr: &Tr) -> PresetLanguage {
    match tr.lang {
        Lang::En => PresetLanguage::En,
        Lang::Ru => PresetLanguage::Ru,
    }
}

/// `Name: value` lines (blank lines ignored) into a header map, checked
/// line by line with the API's rules so every bad line is reported at once.
fn check_header_lines(
    text: &str,
    tr: &Tr,
    errors: &mut FieldErrors,
) -> Option<BTreeMap<String, String>> {
    let mut headers = BTreeMap::new();
    let mut lowercase = std::collections::HashSet::new();
    let mut bad = false;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = |id: &str| tr.t_with(id, &[("line", (number + 1).into())]);
        let Some((name, value)) = line.split_once(':') else {
            errors.add(
                "headers",
                FieldError::with_code(at("form-err-header-colon"), line),
            );
            bad = true;
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if !lowercase.insert(name.to_ascii_lowercase()) {
            errors.add(
                "headers",
                FieldError::with_code(at("form-err-header-twice"), name),
            );
            bad = true;
            continue;
        }
        let one = BTreeMap::from([(name.to_owned(), value.to_owned())]);
        if validate::check_headers(one).is_err() {
            let id = match HeaderName::from_bytes(name.as_bytes()) {
                Err(_) => "form-err-header-name",
                Ok(parsed) if validate::is_reserved_header(parsed.as_str()) => {
                    "form-err-header-reserved"
                }
                Ok(_) => "form-err-header-value",
            };
            errors.add("headers", FieldError::with_code(at(id), name));
            bad = true;
            continue;
        }
        headers.insert(name.to_owned(), value.to_owned());
    }
    if bad {
        return None;
    }
    errors.take("headers", validate::check_headers(headers), |_, _| {
        FieldError::new(tr.t_with(
            "form-err-header-many",
            &[("max", validate::MAX_HEADERS.into())],
        ))
    })
}

/// The body a webhook with this template would send for a sample `event`
/// (in the viewer's language), pretty-printed; the template's error
/// otherwise. An empty template sends the envelope itself.
pub(crate) fn render_preview(template: &str, event: &str, tr: &Tr) -> Result<String, FieldError> {
    let problem = |e: &dyn std::fmt::Display| {
        FieldError::with_code(tr.t("form-err-template"), &e.to_string())
    };
    let envelope = sample_envelope_in(preview_event(event), preset_language(tr))
        .ok_or_else(|| FieldError::new(tr.t("form-err-preview-sample")))?;
    let body = match template.trim() {
        "" => envelope,
        text => {
            let parsed = Template::parse(text).map_err(|e| problem(&e))?;
            // A preview renders a small sample, but a template of many
            // placeholders still multiplies it: the delivery cap's default
            // bounds it too.
            let rendered = parsed
                .render_capped(&envelope, DEFAULT_MAX_RENDERED_BODY_BYTES)
                .map_err(|e| problem(&e))?;
            serde_json::from_str(&rendered).map_err(|e| problem(&e))?
        }
    };
    serde_json::to_string_pretty(&body).map_err(|e| problem(&e))
}

/// The catalogue's events grouped by entity (`task`, `deal`, ...), in
/// catalogue order; the test event is left out (tests reach every webhook).
pub(crate) fn event_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for spec in CATALOGUE.iter().filter(|e| e.name != TEST_EVENT) {
        let entity = spec.name.split('.').next().unwrap_or(spec.name);
        match groups.iter_mut().find(|(e, _)| *e == entity) {
            Some((_, names)) => names.push(spec.name),
            None => groups.push((entity, vec![spec.name])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN: Tr = Tr {
        lang: Lang::En,
        tz: chrono_tz::Tz::UTC,
    };
    const RU: Tr = Tr {
        lang: Lang::Ru,
        tz: chrono_tz::Tz::UTC,
    };

    #[test]
    fn debug_output_never_shows_a_typed_or_checked_secret() {
        let typed = WebhookInput {
            secret: "whsec_typed-in-the-form".into(),
            ..WebhookInput::default()
        };
        let shown = format!("{typed:?}");
        assert!(!shown.contains("typed-in-the-form"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        let checked = CheckedWebhook {
            name: "n".into(),
            url: "http://127.0.0.1:9/".into(),
            events: vec!["*".into()],
            is_active: true,
            timeout_ms: None,
            headers: BTreeMap::new(),
            template: None,
            batch_max_events: None,
            batch_max_wait_ms: 1000,
            filter: None,
            retry_schedule: None,
            secret: Some("whsec_checked-secret".into()),
            owner: None,
            ordering: DeliveryOrder::None,
            auth: None,
            rate_limit_per_s: None,
        };
        let shown = format!("{checked:?}");
        assert!(!shown.contains("checked-secret"), "{shown}");
    }

    fn valid() -> WebhookInput {
        WebhookInput {
            name: " Deals ".into(),
            url: "https://hooks.example.com/x".into(),
            events: vec!["deal.*".into(), "task.created".into()],
            timeout_ms: "5000".into(),
            headers: "Authorization: Bearer abc\n\nX-Team: sales\n".into(),
            template: r#"{"text": "{{data.name}}"}"#.into(),
            ..WebhookInput::default()
        }
    }

    #[test]
    fn a_valid_form_is_checked_with_the_api_rules() {
        let checked = check_input(&valid(), false, &EN).expect("valid");
        assert_eq!(checked.name, "Deals");
        assert_eq!(checked.timeout_ms, Some(5000));
        assert_eq!(
            checked.headers.get("X-Team").map(String::as_str),
            Some("sales")
        );
        assert_eq!(checked.secret, None);
        let blank_optional = WebhookInput {
            timeout_ms: String::new(),
            batch_max_events: String::new(),
            batch_max_wait_ms: validate::DEFAULT_BATCH_MAX_WAIT_MS.to_string(),
            headers: String::new(),
            template: "  ".into(),
            ..valid()
        };
        let checked = check_input(&blank_optional, false, &EN).expect("valid");
        assert_eq!((checked.timeout_ms, checked.template), (None, None));
    }

    #[test]
    fn the_rate_limit_is_checked_like_the_api_and_empty_means_none() {
        assert_eq!(
            check_input(&valid(), false, &EN)
                .expect("valid")
                .rate_limit_per_s,
            None
        );
        let limited = WebhookInput {
            rate_limit_per_s: "50".into(),
            ..valid()
        };
        assert_eq!(
            check_input(&limited, false, &EN)
                .expect("valid")
                .rate_limit_per_s,
            Some(50)
        );
        for bad in ["0", "10001", "2.5", "fast"] {
            let input = WebhookInput {
                rate_limit_per_s: bad.into(),
                ..valid()
            };
            let errors = check_input(&input, false, &EN).expect_err(bad);
            assert!(errors.get("rate_limit_per_s").is_some(), "{bad}");
        }
    }

    #[test]
    fn the_fifo_box_sets_the_ordering() {
        assert_eq!(
            check_input(&valid(), false, &EN).expect("valid").ordering,
            DeliveryOrder::None
        );
        let fifo = WebhookInput {
            fifo: true,
            ..valid()
        };
        assert_eq!(
            check_input(&fifo, false, &EN).expect("valid").ordering,
            DeliveryOrder::Fifo
        );
    }

    #[test]
    fn every_bad_field_is_reported_at_once_under_its_name() {
        let bad = WebhookInput {
            name: String::new(),
            url: "ftp://x".into(),
            events: vec![],
            timeout_ms: "soon".into(),
            headers: "no colon here".into(),
            template: "{".into(),
            secret: "short".into(),
            ..WebhookInput::default()
        };
        let errors = check_input(&bad, false, &EN).expect_err("invalid");
        for field in [
            "name",
            "url",
            "events",
            "timeout_ms",
            "headers",
            "template",
            "secret",
        ] {
            assert!(errors.get(field).is_some(), "{field}: {errors:?}");
        }
        let reserved = WebhookInput {
            headers: "X-Webhook-Signature: forged".into(),
            ..valid()
        };
        assert!(check_input(&reserved, false, &EN)
            .expect_err("reserved")
            .get("headers")
            .is_some());
    }

    #[test]
    fn text_areas_keep_their_line_breaks_as_typed_not_as_browsers_send_them() {
        let form = FormFields::parse(b"template=%7B%0D%0A%7D&headers=A%3A+1%0D%0AB%3A+2&name=n");
        let input = WebhookInput::from_form(&form);
        assert_eq!(input.template, "{\n}");
        assert_eq!(input.headers, "A: 1\nB: 2");
    }

    #[test]
    fn every_bad_header_line_is_reported_with_its_number() {
        let mut errors = FieldErrors::default();
        let ok = check_header_lines("A: 1\nB:2: 3", &EN, &mut errors);
        assert_eq!(
            ok,
            Some(BTreeMap::from([
                ("A".into(), "1".into()),
                ("B".into(), "2: 3".into())
            ]))
        );
        assert!(errors.is_empty());
        let text = "X-Team sales\nX-Webhook-Id: forged\nX-Ok: fine\nbad name: 1\nx-ok: again";
        assert_eq!(check_header_lines(text, &RU, &mut errors), None);
        let lines: Vec<String> = errors
            .get("headers")
            .expect("header errors")
            .iter()
            .map(|e| format!("{} {}", e.text, e.code.clone().unwrap_or_default()))
            .collect();
        assert_eq!(lines.len(), 4, "{lines:?}");
        for (line, (number, name)) in lines.iter().zip([
            (1, "X-Team sales"),
            (2, "X-Webhook-Id"),
            (4, "bad name"),
            (5, "x-ok"),
        ]) {
            assert!(line.starts_with(&format!("Строка {number}:")), "{line}");
            assert!(line.ends_with(name), "{line}");
        }
    }

    #[test]
    fn errors_are_listed_in_the_forms_order_in_the_viewers_words() {
        let bad = WebhookInput {
            name: "Deals \u{202E}fdp.exe".into(),
            url: "ftp://x".into(),
            events: vec![],
            template: r#"{"chat_id": "<chat_id>", "text": "x"}"#.into(),
            headers: "nope".into(),
            timeout_ms: "5".into(),
            ..WebhookInput::default()
        };
        let errors = check_input(&bad, false, &RU).expect_err("invalid");
        let fields: Vec<&str> = errors.ordered().iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["name", "url", "events", "template", "timeout_ms", "headers"]
        );
        let first = |field: &str| errors.get(field).expect(field)[0].clone();
        assert!(first("name").text.contains("невидимые символы"));
        assert_eq!(first("name").code.as_deref(), Some("U+202E"));
        assert!(first("url").text.contains("http://"));
        assert_eq!(first("template").code.as_deref(), Some("<chat_id>"));
        assert!(first("events").text.contains("хотя бы одно событие"));
    }

    #[test]
    fn the_preview_renders_the_template_or_the_envelope_or_says_what_is_wrong() {
        let telegram = r#"{"chat_id": "42", "text": "{{event}}: {{data.title}}"}"#;
        let body = render_preview(telegram, "task.created", &EN).expect("renders");
        assert!(
            body.contains(r#""text": "task.created: Call the client back""#),
            "{body}"
        );
        let envelope = render_preview("", "deal.won", &EN).expect("renders");
        assert!(envelope.contains(r#""event": "deal.won""#), "{envelope}");
        assert!(render_preview("{", "task.created", &EN).is_err());
        let amplifying = format!(r#"{{"t": "{}"}}"#, "{{data}}".repeat(8000));
        let refused = render_preview(&amplifying, "task.created", &EN).unwrap_err();
        assert!(
            refused
                .code
                .is_some_and(|c| c.contains("limits.max_rendered_body_bytes")),
            "the cap is named"
        );
        let russian = render_preview(telegram, "task.created", &RU).expect("renders");
        assert!(russian.contains("Перезвонить клиенту"), "{russian}");
        assert!(render_preview("", "no.such", &EN)
            .expect("default event")
            .contains("task.created"));
    }

    #[test]
    fn events_are_grouped_by_entity_without_the_test_event() {
        let groups = event_groups();
        let entities: Vec<&str> = groups.iter().map(|(e, _)| *e).collect();
        assert_eq!(
            entities,
            ["task", "deal", "client", "comment", "webhook", "delivery"]
        );
        assert_eq!(groups[0].1.len(), 4);
        // webhook.test is sent on demand, never offered as a subscription.
        assert_eq!(groups[4].1, ["webhook.disabled"]);
    }

    #[test]
    fn a_filter_and_a_retry_schedule_are_read_from_their_text() {
        let input = WebhookInput {
            filter: r#"{"data.amount": {"$gte": 100}}"#.into(),
            retry_schedule: "5, 300 1800".into(),
            ..valid()
        };
        let checked = check_input(&input, false, &EN).expect("valid");
        assert_eq!(
            checked.filter,
            Some(serde_json::json!({"data.amount": {"$gte": 100}}))
        );
        assert_eq!(checked.retry_schedule, Some(vec![5, 300, 1800]));

        let bad = WebhookInput {
            filter: r#"{"data.amount": {"$near": 1}}"#.into(),
            retry_schedule: "5, soon".into(),
            ..valid()
        };
        let errors = check_input(&bad, false, &EN).expect_err("invalid");
        let filter = errors.get("filter").expect("filter error")[0]
            .code
            .clone()
            .unwrap_or_default();
        assert!(
            filter.contains("data.amount") && filter.contains("$near"),
            "{filter}"
        );
        assert!(errors.get("retry_schedule").is_some());
        let zero = WebhookInput {
            retry_schedule: "0".into(),
            filter: "[1]".into(),
            ..valid()
        };
        let errors = check_input(&zero, false, &EN).expect_err("invalid");
        assert!(errors
            .get("retry_schedule")
            .and_then(|m| m[0].code.clone())
            .is_some_and(|m| m.contains("delay 0")));
        assert!(errors.get("filter").is_some());
    }

    #[test]
    fn the_filter_check_says_whether_an_event_passes_or_what_is_wrong() {
        let filter = r#"{"data.status": {"$in": ["won"]}, "user_id": 7}"#;
        let won = r#"{"event": "deal.won", "user_id": 7, "data": {"status": "won"}}"#;
        let lost = r#"{"event": "deal.won", "user_id": 7, "data": {"status": "lost"}}"#;
        assert_eq!(check_filter_sample(filter, won, &EN), Ok(true));
        assert_eq!(check_filter_sample(filter, lost, &EN), Ok(false));
        // No user_id in the pasted event: it is an event without a user.
        let no_user = r#"{"event": "deal.won", "data": {"status": "won"}}"#;
        assert_eq!(check_filter_sample(filter, no_user, &EN), Ok(false));
        assert_eq!(
            check_filter_sample(r#"{"user_id": null}"#, no_user, &EN),
            Ok(true)
        );
        assert_eq!(
            check_filter_sample("", lost, &EN),
            Ok(true),
            "no filter passes all"
        );
        assert!(check_filter_sample(filter, "not json", &EN).is_err());
        assert!(check_filter_sample(filter, "[]", &EN).is_err());
        assert!(check_filter_sample(r#"{"a": {"$bad": 1}}"#, won, &EN).is_err());
        assert!(sample_event_json("deal.won", &EN).contains("deal.won"));
    }
}
