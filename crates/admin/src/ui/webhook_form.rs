//! The markup of the webhook form (`/webhook/new`, `/webhook/{id}/edit`):
//! labelled fields with their hints and errors, event checkboxes grouped by
//! entity, the template editor with presets and its preview.

use maud::{html, Markup};
use webhookd_events::{CATALOGUE, PRESETS};

use super::auth_fields;
use super::fields::{
    check_filter_sample, event_groups, render_preview, sample_event_json, FieldErrors, WebhookInput,
};
use super::form::csrf_input;
use super::layout::page;
use super::paths::details_path;
use super::session::Session;

/// Which form: a new webhook, or an existing one. Defined with the markup
/// that switches on it; `edit` (the handlers) picks one and imports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Create,
    Edit(i64),
}

impl Mode {
    pub(crate) fn action(self) -> String {
        match self {
            Mode::Create => "/webhook/new".to_owned(),
            Mode::Edit(id) => format!("/webhook/{id}/edit"),
        }
    }
}

pub(crate) fn form_page(
    session: &Session,
    mode: Mode,
    input: &WebhookInput,
    errors: &FieldErrors,
) -> Markup {
    let title = match mode {
        Mode::Create => "New webhook",
        Mode::Edit(_) => "Edit webhook",
    };
    let content = html! {
        h1 { (title) }
        @if !errors.is_empty() {
            div class="error-summary" role="alert" aria-labelledby="error-summary-title" {
                h2 id="error-summary-title" { "Please fix these fields" }
                ul { @for (field, message) in errors.all() {
                    li { a href={ "#" (field_id(field)) } { (message) } }
                } }
            }
        }
        form method="post" action=(mode.action()) class="webhook-form" data-preview-url="/webhook/preview" {
            (csrf_input(session))
            // The first submit button is what Enter presses: make it "save",
            // not the preset or preview buttons that come earlier.
            button type="submit" name="action" value="save" class="visually-hidden"
                tabindex="-1" aria-hidden="true" { "Save" }
            (basics(session, mode, input, errors))
            (events_fieldset(input, errors))
            (filter_fieldset(input, errors))
            (template_fieldset(input, errors))
            (delivery_fieldset(input, errors))
            (auth_fields::fieldset(&input.auth, |field| errors.get(field)))
            div class="actions" {
                button type="submit" name="action" value="save" class="primary" {
                    @match mode { Mode::Create => "Create webhook", Mode::Edit(_) => "Save changes" }
                }
                @match mode {
                    Mode::Create => a href="/webhook/" { "Cancel" },
                    Mode::Edit(id) => a href=(details_path(id)) { "Cancel" },
                }
            }
        }
    };
    page(title, session, content)
}

fn field_id(field: &str) -> String {
    if let Some(id) = auth_fields::field_id(field) {
        return id;
    }
    match field {
        "events" => "events-all",
        "user_id" => "owner",
        other => other,
    }
    .to_owned()
}

fn error_text(errors: &FieldErrors, field: &str) -> Markup {
    html! {
        @if let Some(message) = errors.get(field) {
            p class="field-error" id={ (field) "-error" } { (message) }
        }
    }
}

fn described_by(errors: &FieldErrors, field: &str, hint: Option<&str>) -> Option<String> {
    let error = errors.get(field).map(|_| format!("{field}-error"));
    let ids: Vec<String> = error.into_iter().chain(hint.map(str::to_owned)).collect();
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn basics(session: &Session, mode: Mode, input: &WebhookInput, errors: &FieldErrors) -> Markup {
    html! {
        fieldset {
            legend { "Webhook" }
            div class="field" {
                label for="name" { "Name" }
                input id="name" name="name" type="text" value=(input.name) required maxlength="200"
                    aria-invalid=[errors.get("name").map(|_| "true")]
                    aria-describedby=[described_by(errors, "name", None)];
                (error_text(errors, "name"))
            }
            div class="field" {
                label for="url" { "URL" }
                p class="hint" id="url-hint" { "Where events are POSTed: an http:// or https:// address." }
                input id="url" name="url" type="url" value=(input.url) required inputmode="url"
                    spellcheck="false" placeholder="https://hooks.example.com/…"
                    aria-invalid=[errors.get("url").map(|_| "true")]
                    aria-describedby=[described_by(errors, "url", Some("url-hint"))];
                (error_text(errors, "url"))
            }
            div class="field checkbox" {
                input id="is_active" name="is_active" type="checkbox" value="1" checked[input.is_active];
                label for="is_active" { "Active (receives events)" }
            }
            @if mode == Mode::Create {
                div class="field" {
                    label for="secret" { "Signing secret (optional)" }
                    p class="hint" id="secret-hint" { "Leave empty to generate one. 16 to 256 printable characters, no spaces." }
                    input id="secret" name="secret" type="text" value=(input.secret) autocomplete="off"
                        spellcheck="false" aria-invalid=[errors.get("secret").map(|_| "true")]
                        aria-describedby=[described_by(errors, "secret", Some("secret-hint"))];
                    (error_text(errors, "secret"))
                }
                @if session.user.is_admin {
                    div class="field" {
                        label for="owner" { "Owner's user id (optional)" }
                        p class="hint" id="owner-hint" { "Admins: create the webhook for another user. Empty: yourself." }
                        input id="owner" name="owner" type="text" inputmode="numeric" value=(input.owner)
                            aria-invalid=[errors.get("user_id").map(|_| "true")]
                            aria-describedby=[described_by(errors, "user_id", Some("owner-hint"))];
                        (error_text(errors, "user_id"))
                    }
                }
            }
        }
    }
}

fn events_fieldset(input: &WebhookInput, errors: &FieldErrors) -> Markup {
    let checked = |name: &str| input.events.iter().any(|e| e == name);
    html! {
        fieldset aria-describedby=[described_by(errors, "events", Some("events-hint"))] {
            legend { "Events" }
            p class="hint" id="events-hint" { "A wildcard also covers events added to the CRM later." }
            (error_text(errors, "events"))
            div class="field checkbox" {
                input id="events-all" type="checkbox" name="events" value="*" checked[checked("*")];
                label for="events-all" { "Every event " code { "*" } }
            }
            div class="event-groups" {
                @for (entity, names) in event_groups() {
                    @let wildcard = format!("{entity}.*");
                    fieldset class="event-group" {
                        legend { (entity) " events" }
                        div class="field checkbox" {
                            input id={ "events-" (entity) "-all" } type="checkbox" name="events"
                                value=(wildcard) checked[checked(&wildcard)];
                            label for={ "events-" (entity) "-all" } { "All " code { (wildcard) } }
                        }
                        @for name in names {
                            div class="field checkbox" {
                                input id={ "events-" (name) } type="checkbox" name="events"
                                    value=(name) checked[checked(name)];
                                label for={ "events-" (name) } { code { (name) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The filter field, with an example and a check of the filter against an
/// event (pasted, or prefilled with the webhook's latest or a sample).
fn filter_fieldset(input: &WebhookInput, errors: &FieldErrors) -> Markup {
    let sample = match input.filter_sample.trim() {
        "" => sample_event_json(&input.preview_event),
        _ => input.filter_sample.clone(),
    };
    // Shown once there is something to say: after "Check", or a filter
    // typed and the form shown again.
    let verdict = (!input.filter_sample.trim().is_empty())
        .then(|| check_filter_sample(&input.filter, &sample));
    html! {
        fieldset class="filter" {
            legend { "Filter (optional)" }
            div class="field" {
                label for="filter" { "Only events that match (JSON; empty: every subscribed event)" }
                p class="hint" id="filter-hint" {
                    "Keys are paths into the event (" code { "event" } ", " code { "user_id" } ", "
                    code { "data.status" } ", " code { "data.client.name" } "); a value is matched "
                    "exactly, or an object of operators " code { "$eq $ne $gt $gte $lt $lte $in $nin $exists $contains $startsWith" }
                    "; " code { "$and" } ", " code { "$or" } " and " code { "$not" } " combine them. Example: "
                    code { r#"{"data.amount": {"$gte": 100000}, "data.status": {"$in": ["won", "open"]}}"# }
                }
                textarea id="filter" name="filter" rows="4" spellcheck="false"
                    placeholder=r#"{"data.amount": {"$gte": 100000}}"#
                    aria-invalid=[errors.get("filter").map(|_| "true")]
                    aria-describedby=[described_by(errors, "filter", Some("filter-hint"))] {
                    (input.filter)
                }
                (error_text(errors, "filter"))
            }
            div class="field" {
                label for="filter_sample" { "Does this event match?" }
                p class="hint" id="filter-sample-hint" {
                    "Paste an event as delivered (its envelope, with " code { "user_id" } " if it has one), "
                    "or use the one shown: this webhook's latest event, or a sample."
                }
                textarea id="filter_sample" name="filter_sample" rows="6" spellcheck="false"
                    aria-describedby="filter-sample-hint" { (sample) }
                button type="submit" name="action" value="check-filter" formnovalidate { "Check the filter" }
            }
            @if let Some(verdict) = verdict {
                p id="filter-check" role="status" class={ "filter-check " @match verdict {
                    Ok(true) => "matches", Ok(false) => "no-match", Err(_) => "field-error" } } {
                    @match &verdict {
                        Ok(true) => "Matches: this event would be delivered.",
                        Ok(false) => "Does not match: this event would not be delivered.",
                        Err(problem) => (problem),
                    }
                }
            }
        }
    }
}

fn template_fieldset(input: &WebhookInput, errors: &FieldErrors) -> Markup {
    let preview = render_preview(&input.template, &input.preview_event);
    html! {
        fieldset class="template" {
            legend { "Body" }
            div class="field inline" {
                label for="preset" { "Preset" }
                select id="preset" name="preset" data-preset-select {
                    @for preset in PRESETS {
                        @let text = preset.template.unwrap_or_default();
                        option value=(preset.id) data-template=(text) title=(preset.description)
                            selected[text == input.template.trim()] { (preset.name) }
                    }
                }
                button type="submit" name="action" value="apply-preset" data-apply-preset { "Apply preset" }
            }
            div class="field" {
                label for="template" { "Template (JSON; empty sends the raw envelope)" }
                p class="hint" id="template-hint" {
                    "String values may use " code { "{{event}}" } ", " code { "{{id}}" } ", "
                    code { "{{timestamp}}" } " and " code { "{{data.field}}" } ". "
                    "The Telegram preset needs your chat's id in place of " code { "<chat_id>" } "."
                }
                textarea id="template" name="template" rows="10" spellcheck="false"
                    aria-invalid=[errors.get("template").map(|_| "true")]
                    aria-describedby=[described_by(errors, "template", Some("template-hint"))] {
                    (input.template)
                }
                (error_text(errors, "template"))
            }
            div class="field inline" {
                label for="preview_event" { "Preview with" }
                select id="preview_event" name="preview_event" {
                    @for spec in CATALOGUE {
                        option value=(spec.name) selected[spec.name == input.preview_event] { (spec.name) }
                    }
                }
                button type="submit" name="action" value="preview" data-preview-button { "Update preview" }
            }
            section class="preview" aria-labelledby="preview-title" {
                h2 id="preview-title" { "Preview: the body sent for a sample event" }
                div id="preview-error" class="field-error" role="status" hidden[preview.is_ok()] {
                    @if let Err(error) = &preview { (error) }
                }
                pre id="preview-output" tabindex="0" aria-live="polite" hidden[preview.is_err()] {
                    code { @if let Ok(body) = &preview { (body) } }
                }
            }
        }
    }
}

fn delivery_fieldset(input: &WebhookInput, errors: &FieldErrors) -> Markup {
    html! {
        fieldset {
            legend { "Delivery" }
            div class="field" {
                label for="timeout_ms" { "Timeout in milliseconds (optional)" }
                p class="hint" id="timeout-hint" { "100 to 60000; empty uses the daemon's default." }
                input id="timeout_ms" name="timeout_ms" type="number" min="100" max="60000" step="1"
                    inputmode="numeric" value=(input.timeout_ms)
                    aria-invalid=[errors.get("timeout_ms").map(|_| "true")]
                    aria-describedby=[described_by(errors, "timeout_ms", Some("timeout-hint"))];
                (error_text(errors, "timeout_ms"))
            }
            div class="field" {
                label for="batch_max_events" { "Batch size (optional)" }
                p class="hint" id="batch-events-hint" {
                    "2 to 1000: send events together, up to this many per request, as one "
                    code { "batch" } " body with an " code { "events" } " array. "
                    "Empty sends one request per event. Not with a body template."
                }
                input id="batch_max_events" name="batch_max_events" type="number" min="2" max="1000" step="1"
                    inputmode="numeric" value=(input.batch_max_events)
                    aria-invalid=[errors.get("batch_max_events").map(|_| "true")]
                    aria-describedby=[described_by(errors, "batch_max_events", Some("batch-events-hint"))];
                (error_text(errors, "batch_max_events"))
            }
            div class="field" {
                label for="batch_max_wait_ms" { "Longest wait for a batch, in milliseconds" }
                p class="hint" id="batch-wait-hint" {
                    "0 to 60000 (default 1000): a batch is sent when it is full or when its oldest event has waited this long. "
                    "Used only with a batch size."
                }
                input id="batch_max_wait_ms" name="batch_max_wait_ms" type="number" min="0" max="60000" step="1"
                    inputmode="numeric" value=(input.batch_max_wait_ms)
                    aria-invalid=[errors.get("batch_max_wait_ms").map(|_| "true")]
                    aria-describedby=[described_by(errors, "batch_max_wait_ms", Some("batch-wait-hint"))];
                (error_text(errors, "batch_max_wait_ms"))
            }
            div class="field" {
                label for="retry_schedule" { "Retry schedule in seconds (optional)" }
                p class="hint" id="retry-schedule-hint" {
                    "Delays before each retry, separated by commas, e.g. " code { "5, 300, 1800, 7200" }
                    ": 1 to 30 delays of 1 to 604800 seconds, so as many retries after the first attempt. "
                    "Empty uses the daemon's policy (exponential backoff). A receiver's "
                    code { "Retry-After" } " is still honoured."
                }
                input id="retry_schedule" name="retry_schedule" type="text" inputmode="numeric"
                    spellcheck="false" value=(input.retry_schedule)
                    aria-invalid=[errors.get("retry_schedule").map(|_| "true")]
                    aria-describedby=[described_by(errors, "retry_schedule", Some("retry-schedule-hint"))];
                (error_text(errors, "retry_schedule"))
            }
            div class="field" {
                label for="rate_limit_per_s" { "Rate limit, requests per second (optional)" }
                p class="hint" id="rate-limit-hint" {
                    "1 to 10000: at most this many requests in any one second, counted across every worker. "
                    "Events over the limit wait; they are not dropped or failed. Empty means no limit."
                }
                input id="rate_limit_per_s" name="rate_limit_per_s" type="number" min="1" max="10000" step="1"
                    inputmode="numeric" value=(input.rate_limit_per_s)
                    aria-invalid=[errors.get("rate_limit_per_s").map(|_| "true")]
                    aria-describedby=[described_by(errors, "rate_limit_per_s", Some("rate-limit-hint"))];
                (error_text(errors, "rate_limit_per_s"))
            }
            div class="field" {
                label for="headers" { "Custom headers (optional)" }
                p class="hint" id="headers-hint" { "One per line, as " code { "Name: value" } ". At most 20." }
                textarea id="headers" name="headers" rows="3" spellcheck="false"
                    aria-invalid=[errors.get("headers").map(|_| "true")]
                    aria-describedby=[described_by(errors, "headers", Some("headers-hint"))] {
                    (input.headers)
                }
                (error_text(errors, "headers"))
            }
            div class="field checkbox" {
                input id="fifo" name="fifo" type="checkbox" value="1" checked[input.fifo]
                    aria-describedby="fifo-hint";
                label for="fifo" { "Deliver in order, one at a time (FIFO)" }
                p class="hint" id="fifo-hint" {
                    "Each delivery waits until the one before it has succeeded or failed for good, "
                    "so a failing delivery holds back the rest while it is retried."
                }
            }
        }
    }
}
