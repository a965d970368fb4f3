//! What is wrong with a webhook form's fields, in the viewer's words: the
//! API's messages name JSON fields for programs, so each refusal is mapped
//! to a sentence of the form's own (`locales/*/form.ftl`), with the API's
//! precise detail beside it as code. Problems are kept per field and listed
//! in the order the form shows its fields.

use maud::{html, Markup};

use crate::api::error::ApiError;
use crate::api::validate;
use crate::ui::i18n::Tr;

/// One problem of a field, in the viewer's language. `code` is a technical
/// token or the API's precise message, shown as code beside the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub(crate) text: String,
    pub(crate) code: Option<String>,
}

impl FieldError {
    pub(crate) fn new(text: String) -> Self {
        FieldError { text, code: None }
    }

    /// The API quotes names in backticks (Markdown for JSON clients); a
    /// page shows them plain.
    pub(crate) fn with_code(text: String, code: &str) -> Self {
        FieldError {
            text,
            code: Some(code.replace('`', "")),
        }
    }

    pub(crate) fn render(&self) -> Markup {
        html! {
            (self.text)
            @if let Some(code) = &self.code { " " code { (code) } }
        }
    }
}

/// The fields in the order the form shows them: errors are listed in it.
const FORM_ORDER: &[&str] = &[
    "name",
    "url",
    "secret",
    "user_id",
    "events",
    "filter",
    "template",
    "timeout_ms",
    "batch_max_events",
    "batch_max_wait_ms",
    "retry_schedule",
    "rate_limit_per_s",
    "headers",
    "auth",
];

fn form_position(field: &str) -> usize {
    let base = field.split('.').next().unwrap_or(field);
    FORM_ORDER
        .iter()
        .position(|f| *f == base)
        .unwrap_or(FORM_ORDER.len())
}

/// The problems of a submitted form, by field name (the API's field names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldErrors(Vec<(String, Vec<FieldError>)>);

impl FieldErrors {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn get(&self, field: &str) -> Option<&[FieldError]> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_slice())
    }

    pub(crate) fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// Every field's problems, in the form's order.
    pub(crate) fn ordered(&self) -> Vec<(&str, &[FieldError])> {
        let mut all: Vec<(&str, &[FieldError])> = self
            .0
            .iter()
            .map(|(f, m)| (f.as_str(), m.as_slice()))
            .collect();
        all.sort_by_key(|(field, _)| form_position(field));
        all
    }

    /// Records a problem of a field (a field may have several: header
    /// lines).
    pub(crate) fn add(&mut self, field: &str, error: FieldError) {
        match self.0.iter_mut().find(|(f, _)| f == field) {
            Some((_, errors)) => errors.push(error),
            None => self.0.push((field.to_owned(), vec![error])),
        }
    }

    /// A whole number typed in `field`: `Some(None)` when left blank, the
    /// checked value, or `None` with `problem` recorded.
    pub(crate) fn number<T>(
        &mut self,
        field: &str,
        text: &str,
        problem: impl FnOnce() -> FieldError,
        check: impl FnOnce(i64) -> Result<T, ApiError>,
    ) -> Option<Option<T>> {
        if text.is_empty() {
            return Some(None);
        }
        match text.parse::<i64>().ok().map(check) {
            Some(Ok(value)) => Some(Some(value)),
            _ => {
                self.add(field, problem());
                None
            }
        }
    }

    /// Keeps the value of a check, or records under the field it names (or
    /// `field`) what `human` makes of the API's precise message.
    pub(crate) fn take<T>(
        &mut self,
        field: &str,
        result: Result<T, ApiError>,
        human: impl FnOnce(&str, &str) -> FieldError,
    ) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(ApiError::Invalid {
                field: named,
                message,
            }) => {
                let named = named.as_deref().unwrap_or(field);
                self.add(named, human(named, &message));
                None
            }
            Err(other) => {
                self.add(field, human(field, &other.to_string()));
                None
            }
        }
    }
}

/// What is wrong with a name the API refused, in people's words.
pub(crate) fn name_problem(tr: &Tr, raw: &str) -> FieldError {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 {
        FieldError::new(tr.t("form-err-name-empty"))
    } else if chars > validate::MAX_NAME_CHARS {
        FieldError::new(tr.t_with(
            "form-err-name-long",
            &[
                ("max", validate::MAX_NAME_CHARS.into()),
                ("count", chars.into()),
            ],
        ))
    } else {
        // Control or bidi characters: invisible, so say which.
        let found: Vec<String> = name
            .chars()
            .filter(|&c| c.is_control() || validate::is_bidi_control(c))
            .map(|c| format!("U+{:04X}", u32::from(c)))
            .collect();
        FieldError::with_code(tr.t("form-err-name-invisible"), &found.join(" "))
    }
}

/// What is wrong with a URL the API refused: the API's message says it
/// precisely, the form says it plainly.
pub(crate) fn url_problem(tr: &Tr, raw: &str, message: &str) -> FieldError {
    let text = raw.trim();
    let lower = text.to_ascii_lowercase();
    let id = if text.is_empty() {
        "form-err-url-empty"
    } else if text.len() > validate::MAX_URL_LEN {
        "form-err-url-long"
    } else if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "form-err-url-spaces"
    } else if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        "form-err-url-scheme"
    } else if message.contains("credentials") {
        "form-err-url-credentials"
    } else if message.contains("not a valid URL") || message.contains("must name a host") {
        "form-err-url-invalid"
    } else {
        return FieldError::with_code(tr.t("form-err-url-refused"), message);
    };
    FieldError::new(tr.t(id))
}

pub(crate) fn template_problem(tr: &Tr, text: &str, message: &str) -> FieldError {
    if let Some(placeholder) = webhookd_events::unfilled_placeholder(text) {
        return FieldError::with_code(tr.t("form-err-template-chat-id"), placeholder);
    }
    if text.len() > validate::MAX_TEMPLATE_LEN {
        return FieldError::new(tr.t("form-err-template-long"));
    }
    FieldError::with_code(tr.t("form-err-template"), message)
}

pub(crate) fn auth_problem_id(field: &str) -> &'static str {
    match field {
        "auth" | "auth.type" => "form-err-auth-type",
        _ => "form-err-auth-field",
    }
}

/// The URL's port against `delivery.allowed_ports`, in people's words.
pub(crate) fn port_problem(tr: &Tr, message: &str) -> FieldError {
    FieldError::with_code(tr.t("form-err-url-port"), message)
}
