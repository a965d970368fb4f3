//! The markup of the webhook form (`/webhook/new`, `/webhook/{id}/edit`):
//! labelled fields with their hints and errors, event checkboxes grouped by
//! entity, the template editor with presets and its preview.

use maud::{html, Markup};
use webhookd_events::{preset_of, CATALOGUE, PRESETS};

use super::auth_fields;
use super::fields::{
    check_filter_sample, event_groups, preset_language, render_preview, sample_event_json,
    FieldError, FieldErrors, WebhookInput,
};
use super::form::csrf_input;
use super::i18n::Tr;
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
    let tr = &session.tr;
    let title = match mode {
        Mode::Create => tr.t("form-title-new"),
        Mode::Edit(_) => tr.t("form-title-edit"),
    };
    let content = html! {
        h1 { (title) }
        @if !errors.is_empty() {
            div class="error-summary" role="alert" aria-labelledby="error-summary-title" {
                h2 id="error-summary-title" { (tr.t("form-errors-title")) }
                ul { @for (field, problems) in errors.ordered() {
                    li { a href={ "#" (field_id(field)) } {
                        @for (i, problem) in problems.iter().enumerate() {
                            @if i > 0 { "; " }
                            (problem.render())
                        }
                    } }
                } }
            }
        }
        // JSON and header text areas are marked `translate="no"`: code, not
        // prose. `novalidate`: the server checks every field and says what is wrong
        // with each at once, in the page's language; the browser's own check
        // stops at the first field, in the browser's language.
        form method="post" action=(mode.action()) class="webhook-form" novalidate
            data-preview-url="/webhook/preview" {
            (csrf_input(session))
            // The first submit button is what Enter presses: make it "save",
            // not the preset or preview buttons that come earlier.
            button type="submit" name="action" value="save" class="visually-hidden"
                tabindex="-1" aria-hidden="true" { (tr.t("form-save")) }
            (basics(tr, session, mode, input, errors))
            (events_fieldset(tr, input, errors))
            (filter_fieldset(tr, input, errors))
            (template_fieldset(tr, input, errors))
            (delivery_fieldset(tr, input, errors))
            (auth_fields::fieldset(tr, &input.auth, |field| errors.get(field).map(error_lines)))
            div class="actions" {
                button type="submit" name="action" value="save" class="primary" {
                    @match mode { Mode::Create => (tr.t("form-create")), Mode::Edit(_) => (tr.t("form-save-changes")) }
                }
                @match mode {
                    Mode::Create => a href="/webhook/" { (tr.t("form-cancel")) },
                    Mode::Edit(id) => a href=(details_path(id)) { (tr.t("form-cancel")) },
                }
            }
        }
    };
    page(&title, session, content)
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

/// A field's problems, one per line.
fn error_lines(problems: &[FieldError]) -> Markup {
    html! {
        @for (i, problem) in problems.iter().enumerate() {
            @if i > 0 { br; }
            (problem.render())
        }
    }
}

fn error_text(errors: &FieldErrors, field: &str) -> Markup {
    html! {
        @if let Some(problems) = errors.get(field) {
            p class="field-error" id={ (field) "-error" } { (error_lines(problems)) }
        }
    }
}

fn invalid(errors: &FieldErrors, field: &str) -> Option<&'static str> {
    errors.has(field).then_some("true")
}

fn described_by(errors: &FieldErrors, field: &str, hint: Option<&str>) -> Option<String> {
    let error = errors.has(field).then(|| format!("{field}-error"));
    let ids: Vec<String> = error.into_iter().chain(hint.map(str::to_owned)).collect();
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn basics(
    tr: &Tr,
    session: &Session,
    mode: Mode,
    input: &WebhookInput,
    errors: &FieldErrors,
) -> Markup {
    html! {
        fieldset {
            legend { (tr.t("form-legend-webhook")) }
            div class="field" {
                label for="name" { (tr.t("form-name")) }
                input id="name" name="name" type="text" value=(input.name) required maxlength="200"
                    aria-invalid=[invalid(errors, "name")]
                    aria-describedby=[described_by(errors, "name", None)];
                (error_text(errors, "name"))
            }
            div class="field" {
                label for="url" { (tr.t("form-url")) }
                p class="hint" id="url-hint" { (tr.t("form-url-hint")) }
                input id="url" name="url" type="url" value=(input.url) required inputmode="url"
                    spellcheck="false" placeholder=(tr.t("form-url-placeholder"))
                    aria-invalid=[invalid(errors, "url")]
                    aria-describedby=[described_by(errors, "url", Some("url-hint"))];
                (error_text(errors, "url"))
            }
            div class="field checkbox" {
                input id="is_active" name="is_active" type="checkbox" value="1" checked[input.is_active];
                label for="is_active" { (tr.t("form-active")) }
            }
            @if mode == Mode::Create {
                div class="field" {
                    label for="secret" { (tr.t("form-secret")) }
                    p class="hint" id="secret-hint" { (tr.t("form-secret-hint")) }
                    input id="secret" name="secret" type="text" value=(input.secret) autocomplete="off"
                        spellcheck="false" aria-invalid=[invalid(errors, "secret")]
                        aria-describedby=[described_by(errors, "secret", Some("secret-hint"))];
                    (error_text(errors, "secret"))
                }
                @if session.user.is_admin {
                    div class="field" {
                        label for="owner" { (tr.t("form-owner")) }
                        p class="hint" id="owner-hint" { (tr.t("form-owner-hint")) }
                        input id="owner" name="owner" type="text" inputmode="numeric" value=(input.owner)
                            aria-invalid=[invalid(errors, "user_id")]
                            aria-describedby=[described_by(errors, "user_id", Some("owner-hint"))];
                        (error_text(errors, "user_id"))
                    }
                }
            }
        }
    }
}

/// An entity's name for its group of event checkboxes.
fn entity_legend(tr: &Tr, entity: &str) -> String {
    match entity {
        "task" | "deal" | "client" | "comment" | "webhook" | "delivery" => {
            tr.t(&format!("form-events-of-{entity}"))
        }
        other => other.to_owned(),
    }
}

fn events_fieldset(tr: &Tr, input: &WebhookInput, errors: &FieldErrors) -> Markup {
    let checked = |name: &str| input.events.iter().any(|e| e == name);
    let bad = invalid(errors, "events");
    let described = described_by(errors, "events", Some("events-hint"));
    html! {
        fieldset aria-describedby=[described.clone()] {
            legend { (tr.t("form-legend-events")) }
            p class="hint" id="events-hint" { (tr.t("form-events-hint")) }
            (error_text(errors, "events"))
            div class="field checkbox" {
                input id="events-all" type="checkbox" name="events" value="*" checked[checked("*")]
                    aria-invalid=[bad] aria-describedby=[described];
                label for="events-all" { (tr.t("form-events-every")) " " code { "*" } }
            }
            div class="event-groups" {
                @for (entity, names) in event_groups() {
                    @let wildcard = format!("{entity}.*");
                    fieldset class="event-group" {
                        legend { (entity_legend(tr, entity)) }
                        div class="field checkbox" {
                            input id={ "events-" (entity) "-all" } type="checkbox" name="events"
                                value=(wildcard) checked[checked(&wildcard)] aria-invalid=[bad];
                            label for={ "events-" (entity) "-all" } { (tr.t("form-events-all-of")) " " code { (wildcard) } }
                        }
                        @for name in names {
                            div class="field checkbox" {
                                input id={ "events-" (name) } type="checkbox" name="events"
                                    value=(name) checked[checked(name)] aria-invalid=[bad];
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
fn filter_fieldset(tr: &Tr, input: &WebhookInput, errors: &FieldErrors) -> Markup {
    let sample = match input.filter_sample.trim() {
        "" => sample_event_json(&input.preview_event, tr),
        _ => input.filter_sample.clone(),
    };
    // Shown once there is something to say: after "Check", or a filter
    // typed and the form shown again.
    let verdict = (!input.filter_sample.trim().is_empty())
        .then(|| check_filter_sample(&input.filter, &sample, tr));
    html! {
        fieldset class="filter" {
            legend { (tr.t("form-legend-filter")) }
            div class="field" {
                label for="filter" { (tr.t("form-filter")) }
                p class="hint" id="filter-hint" {
                    (tr.t("form-filter-hint-paths")) " "
                    code { "event" } ", " code { "user_id" } ", "
                    code { "data.status" } ", " code { "data.client.name" } ". "
                    (tr.t("form-filter-hint-operators")) " "
                    code { "$eq $ne $gt $gte $lt $lte $in $nin $exists $contains $startsWith" }
                    "; " code { "$and" } ", " code { "$or" } ", " code { "$not" } ". "
                    (tr.t("form-filter-hint-example")) " "
                    code { r#"{"data.amount": {"$gte": 100000}, "data.status": {"$in": ["won", "open"]}}"# }
                }
                textarea id="filter" name="filter" rows="4" spellcheck="false" translate="no"
                    aria-invalid=[invalid(errors, "filter")]
                    aria-describedby=[described_by(errors, "filter", Some("filter-hint"))] {
                    (input.filter)
                }
                (error_text(errors, "filter"))
            }
            div class="field" {
                label for="filter_sample" { (tr.t("form-filter-sample")) }
                p class="hint" id="filter-sample-hint" { (tr.t("form-filter-sample-hint")) }
                textarea id="filter_sample" name="filter_sample" rows="6" spellcheck="false" translate="no"
                    aria-describedby="filter-sample-hint" { (sample) }
                button type="submit" name="action" value="check-filter" formnovalidate { (tr.t("form-filter-check")) }
            }
            @if let Some(verdict) = verdict {
                p id="filter-check" role="status" class={ "filter-check " @match verdict {
                    Ok(true) => "matches", Ok(false) => "no-match", Err(_) => "field-error" } } {
                    @match &verdict {
                        Ok(true) => (tr.t("form-filter-matches")),
                        Ok(false) => (tr.t("form-filter-no-match")),
                        Err(problem) => (problem.render()),
                    }
                }
            }
        }
    }
}

/// The preset option that is selected: the preset whose text the template
/// is, or "Custom" (naming the preset it was made from, when it can tell).
fn template_fieldset(tr: &Tr, input: &WebhookInput, errors: &FieldErrors) -> Markup {
    let preview = render_preview(&input.template, &input.preview_event, tr);
    let lang = preset_language(tr);
    let origin = preset_of(&input.template);
    let exact = origin.filter(|(_, exact)| *exact).map(|(p, _)| p.id);
    let custom_label = match origin {
        Some((preset, false)) => tr.t_with(
            "form-preset-custom-from",
            &[("preset", preset.text(lang).name.into())],
        ),
        _ => tr.t("form-preset-custom"),
    };
    html! {
        fieldset class="template" {
            legend { (tr.t("form-legend-body")) }
            div class="field inline" {
                label for="preset" { (tr.t("form-preset")) }
                select id="preset" name="preset" data-preset-select {
                    @for preset in PRESETS {
                        @let text = preset.text(lang);
                        // Brand names stay in English on every page.
                        option value=(preset.id) data-template=(text.template.unwrap_or_default())
                            title=(text.description) lang=[(text.name == preset.name).then_some("en")]
                            selected[exact == Some(preset.id)] { (text.name) }
                    }
                    @if exact.is_none() {
                        option value="custom" selected data-custom { (custom_label) }
                    }
                }
                button type="submit" name="action" value="apply-preset" formnovalidate
                    data-apply-preset { (tr.t("form-preset-apply")) }
            }
            div class="field" {
                label for="template" { (tr.t("form-template")) }
                p class="hint" id="template-hint" {
                    (tr.t("form-template-hint-placeholders")) " "
                    code { "{{event}}" } ", " code { "{{id}}" } ", "
                    code { "{{timestamp}}" } ", " code { "{{data.field}}" } ". "
                    (tr.t("form-template-hint-chat-id")) " " code { "<chat_id>" } "."
                }
                textarea id="template" name="template" rows="10" spellcheck="false" translate="no"
                    aria-invalid=[invalid(errors, "template")]
                    aria-describedby=[described_by(errors, "template", Some("template-hint"))] {
                    (input.template)
                }
                (error_text(errors, "template"))
            }
            div class="field inline" {
                label for="preview_event" { (tr.t("form-preview-with")) }
                select id="preview_event" name="preview_event" {
                    @for spec in CATALOGUE {
                        option value=(spec.name) selected[spec.name == input.preview_event] { (spec.name) }
                    }
                }
                button type="submit" name="action" value="preview" formnovalidate
                    data-preview-button { (tr.t("form-preview-update")) }
            }
            section class="preview" aria-labelledby="preview-title" {
                h2 id="preview-title" { (tr.t("form-preview-title")) }
                div id="preview-error" class="field-error" role="status" hidden[preview.is_ok()] {
                    @if let Err(problem) = &preview { (problem.render()) }
                }
                pre id="preview-output" tabindex="0" aria-live="polite" hidden[preview.is_err()] {
                    code { @if let Ok(body) = &preview { (body) } }
                }
            }
        }
    }
}

/// One optional number field of the delivery settings, with its hint.
struct NumberField<'a> {
    field: &'a str,
    hint_id: &'a str,
    min: &'a str,
    max: &'a str,
    value: &'a str,
}

fn number_field(tr: &Tr, errors: &FieldErrors, spec: &NumberField<'_>, hint: Markup) -> Markup {
    let field = spec.field;
    html! {
        div class="field" {
            label for=(field) { (tr.t(&format!("form-{}", field.replace('_', "-")))) }
            p class="hint" id=(spec.hint_id) { (hint) }
            input id=(field) name=(field) type="number" min=(spec.min) max=(spec.max) step="1"
                inputmode="numeric" value=(spec.value)
                aria-invalid=[invalid(errors, field)]
                aria-describedby=[described_by(errors, field, Some(spec.hint_id))];
            (error_text(errors, field))
        }
    }
}

fn delivery_fieldset(tr: &Tr, input: &WebhookInput, errors: &FieldErrors) -> Markup {
    let timeout = NumberField {
        field: "timeout_ms",
        hint_id: "timeout-hint",
        min: "100",
        max: "60000",
        value: &input.timeout_ms,
    };
    let batch = NumberField {
        field: "batch_max_events",
        hint_id: "batch-events-hint",
        min: "2",
        max: "1000",
        value: &input.batch_max_events,
    };
    let wait = NumberField {
        field: "batch_max_wait_ms",
        hint_id: "batch-wait-hint",
        min: "0",
        max: "60000",
        value: &input.batch_max_wait_ms,
    };
    let rate = NumberField {
        field: "rate_limit_per_s",
        hint_id: "rate-limit-hint",
        min: "1",
        max: "10000",
        value: &input.rate_limit_per_s,
    };
    html! {
        fieldset {
            legend { (tr.t("form-legend-delivery")) }
            (number_field(tr, errors, &timeout, html! { (tr.t("form-timeout-ms-hint")) }))
            (number_field(tr, errors, &batch, html! {
                (tr.t("form-batch-max-events-hint")) " " code { "batch" } ", " code { "events" } "."
            }))
            (number_field(tr, errors, &wait, html! { (tr.t("form-batch-max-wait-ms-hint")) }))
            div class="field" {
                label for="retry_schedule" { (tr.t("form-retry-schedule")) }
                p class="hint" id="retry-schedule-hint" {
                    (tr.t("form-retry-schedule-hint")) " " code { "5, 300, 1800, 7200" } ". "
                    (tr.t("form-retry-schedule-hint-after")) " " code { "Retry-After" } "."
                }
                input id="retry_schedule" name="retry_schedule" type="text" inputmode="numeric"
                    spellcheck="false" value=(input.retry_schedule)
                    aria-invalid=[invalid(errors, "retry_schedule")]
                    aria-describedby=[described_by(errors, "retry_schedule", Some("retry-schedule-hint"))];
                (error_text(errors, "retry_schedule"))
            }
            (number_field(tr, errors, &rate, html! { (tr.t("form-rate-limit-per-s-hint")) }))
            div class="field" {
                label for="headers" { (tr.t("form-headers")) }
                p class="hint" id="headers-hint" {
                    (tr.t("form-headers-hint")) " " code { "Name: value" } "."
                }
                textarea id="headers" name="headers" rows="3" spellcheck="false" translate="no"
                    aria-invalid=[invalid(errors, "headers")]
                    aria-describedby=[described_by(errors, "headers", Some("headers-hint"))] {
                    (input.headers)
                }
                (error_text(errors, "headers"))
            }
            div class="field checkbox" {
                input id="fifo" name="fifo" type="checkbox" value="1" checked[input.fifo]
                    aria-describedby="fifo-hint";
                label for="fifo" { (tr.t("form-fifo")) }
                p class="hint" id="fifo-hint" { (tr.t("form-fifo-hint")) }
            }
        }
    }
}
