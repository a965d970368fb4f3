//! `/webhook/{id}/logs`: every attempt, filtered by event, outcome and time
//! range, paginated by cursor (no attempt skipped or shown twice while new
//! ones arrive); `/webhook/{id}/logs/{log_id}`: one attempt in full, with
//! "retry this delivery".

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use maud::{html, Markup};
use uuid::Uuid;
use webhookd_events::delivery::BATCH_EVENT;
use webhookd_events::CATALOGUE;

use super::error::UiError;
use super::form::csrf_input;
use super::i18n::{Lang, Tr};
use super::layout::{body_block, millis, outcome_badge, page, time_el, visible_controls};
use super::paths::{details_path, logs_path};
use super::session::Session;
use super::state::{UiState, WebhookPath};
use crate::api::query::{encode_cursor, QueryParams};
use webhookd_store::logs::{find_log, list_logs, LogEntry, LogFilter};
use webhookd_store::webhooks::find_webhook;

/// The query string, read with the API's parser (repeated parameters
/// refused, the API's cursor format), its errors shown as a page.
pub(crate) struct LogsQuery(QueryParams);

impl<S: Send + Sync> FromRequestParts<S> for LogsQuery {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        Ok(LogsQuery(
            QueryParams::from_request_parts(parts, state).await?,
        ))
    }
}

/// The filter form's values, as typed.
#[derive(Debug, Default)]
struct FilterInput {
    event: String,
    success: String,
    from: String,
    to: String,
    delivery_id: String,
}

impl FilterInput {
    fn read(params: &QueryParams) -> Self {
        let text = |name: &str| params.text(name).unwrap_or("").to_owned();
        FilterInput {
            event: text("event"),
            success: text("success"),
            from: text("from"),
            to: text("to"),
            delivery_id: text("delivery_id"),
        }
    }

    /// The storage filter, or the first problem in words; the times are
    /// written back in the language's format, as they were understood.
    fn check(&mut self, tr: &Tr) -> Result<LogFilter, String> {
        let event = match self.event.as_str() {
            "" => None,
            BATCH_EVENT => Some(BATCH_EVENT.to_owned()),
            name => Some(
                CATALOGUE
                    .iter()
                    .find(|e| e.name == name)
                    .ok_or_else(|| tr.t("logs-error-event"))?
                    .name
                    .to_owned(),
            ),
        };
        let success = match self.success.as_str() {
            "" => None,
            "true" => Some(true),
            "false" => Some(false),
            _ => return Err(tr.t("logs-error-outcome")),
        };
        let time = |text: &mut String, what: &str| match text.trim() {
            "" => Ok(None),
            typed => match parse_time(typed, tr) {
                Some(at) => {
                    *text = input_time(tr, at);
                    Ok(Some(at))
                }
                None => Err(tr.t_with(
                    "logs-error-time",
                    &[
                        ("field", tr.t(what).into()),
                        ("example", tr.t("logs-time-format").into()),
                    ],
                )),
            },
        };
        let from = time(&mut self.from, "logs-from")?;
        let to = time(&mut self.to, "logs-until")?;
        let delivery_id = match self.delivery_id.as_str() {
            "" => None,
            text => Some(
                text.parse::<Uuid>()
                    .map_err(|_| tr.t("logs-error-delivery"))?,
            ),
        };
        Ok(LogFilter {
            event,
            success,
            from,
            to,
            delivery_id,
        })
    }

    /// The filters as a query string, for the pagination links.
    fn query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("event", &self.event),
            ("success", &self.success),
            ("from", &self.from),
            ("to", &self.to),
            ("delivery_id", &self.delivery_id),
        ] {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.finish()
    }
}

/// A time typed in the viewer's zone: in the language's format
/// (`20.02.2026 12:00`, `2026-02-20 12:00`, seconds and time optional), as
/// `datetime-local` sends it (`2026-02-20T12:00`), or RFC 3339 with its own
/// offset.
pub(crate) fn parse_time(text: &str, tr: &Tr) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    const WITH_TIME: &[&str] = &[
        "%d.%m.%Y %H:%M",
        "%d.%m.%Y %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
    ];
    let naive = WITH_TIME
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            ["%d.%m.%Y", "%Y-%m-%d"]
                .iter()
                .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
                .and_then(|day| day.and_hms_opt(0, 0, 0))
        })?;
    // A time the clocks skip (spring forward) is refused; one they pass
    // twice is the first.
    tr.tz
        .from_local_datetime(&naive)
        .earliest()
        .map(|at| at.with_timezone(&Utc))
}

/// A time as the filter fields show it: the viewer's zone, the language's
/// format, to the minute.
fn input_time(tr: &Tr, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&tr.tz);
    match tr.lang {
        Lang::Ru => local.format("%d.%m.%Y %H:%M").to_string(),
        Lang::En => local.format("%Y-%m-%d %H:%M").to_string(),
    }
}

pub(crate) async fn show_logs(
    State(state): State<UiState>,
    session: Session,
    WebhookPath(id): WebhookPath,
    LogsQuery(params): LogsQuery,
) -> Result<Markup, UiError> {
    let tr = &session.tr;
    let webhook = find_webhook(&state.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    let limit = params.limit()?;
    let after = params.cursor::<i64>()?;
    let mut input = FilterInput::read(&params);
    let checked = input.check(tr);
    let page_of_logs = match &checked {
        Ok(filter) => Some(list_logs(&state.pool, id, filter, after.as_ref(), limit, false).await?),
        Err(_) => None,
    };
    let filters = input.query();
    let live = after.is_none() && filters.is_empty();
    let name = visible_controls(&webhook.name);
    let content = html! {
        p class="breadcrumb" { a href=(details_path(id)) { "← " (name) } }
        h1 { (tr.t_with("logs-title", &[("name", name.as_ref().into())])) }
        (filter_form(tr, id, &input, checked.as_ref().err()))
        @if let Some(logs) = &page_of_logs {
            @if live {
                // The newest attempts, unfiltered: the script adds new ones
                // as they are recorded (`live_logs.rs`), labelling their
                // cells from the table's headers.
                div data-live-url={ (logs_path(id)) "/live" } data-live-view=(tr.t("logs-view")) {
                    @if logs.items.is_empty() {
                        p class="muted" data-live-empty { (tr.t("logs-empty")) }
                    }
                    (log_table(tr, id, &logs.items))
                }
            } @else if logs.items.is_empty() {
                p class="muted" { (tr.t("logs-none-match")) }
            } @else {
                (log_table(tr, id, &logs.items))
            }
            nav class="pager" aria-label=(tr.t("logs-pages")) {
                @if after.is_some() {
                    a href={ (logs_path(id)) "?" (filters) } { (tr.t("logs-newest")) }
                }
                @if let Some(next) = &logs.next {
                    a href={ (logs_path(id)) "?" (filters) @if !filters.is_empty() { "&" } "cursor=" (encode_cursor(next)) } {
                        (tr.t("logs-older"))
                    }
                }
            }
        }
    };
    Ok(page(&tr.t("logs-page-title"), &session, content))
}

fn filter_form(tr: &Tr, id: i64, input: &FilterInput, error: Option<&String>) -> Markup {
    // The zone's IANA name is an identifier, not words to translate.
    let zone = tr.tz.name();
    html! {
        form method="get" action=(logs_path(id)) class="filters" aria-label=(tr.t("logs-filter-label")) {
            @if let Some(error) = error {
                p class="field-error" role="alert" { (error) }
            }
            @if !input.delivery_id.is_empty() {
                input type="hidden" name="delivery_id" value=(input.delivery_id);
                p { (tr.t("logs-of-delivery")) " " code { (input.delivery_id) } " · "
                    a href=(logs_path(id)) { (tr.t("logs-show-all")) } }
            }
            div class="field" {
                label for="event" { (tr.t("logs-col-event")) }
                select id="event" name="event" {
                    option value="" { (tr.t("logs-any-event")) }
                    // Event names are English identifiers: marked so, for
                    // screen readers (an option cannot hold a `code`).
                    @for spec in CATALOGUE {
                        option value=(spec.name) lang="en" selected[spec.name == input.event] { (spec.name) }
                    }
                    option value=(BATCH_EVENT) selected[input.event == BATCH_EVENT] { (tr.t("logs-batch-event")) }
                }
            }
            div class="field" {
                label for="success" { (tr.t("logs-col-outcome")) }
                select id="success" name="success" {
                    option value="" { (tr.t("logs-any-outcome")) }
                    option value="true" selected[input.success == "true"] { (tr.t("logs-success")) }
                    option value="false" selected[input.success == "false"] { (tr.t("logs-failure")) }
                }
            }
            div class="field" {
                label for="from" { (tr.t("logs-from")) " " small class="muted" { "(" code translate="no" { (zone) } ")" } }
                input id="from" name="from" type="text" value=(input.from) inputmode="numeric"
                    placeholder=(tr.t("logs-time-format")) aria-describedby="time-hint" autocomplete="off";
            }
            div class="field" {
                label for="to" { (tr.t("logs-until")) " " small class="muted" { "(" code translate="no" { (zone) } ")" } }
                input id="to" name="to" type="text" value=(input.to) inputmode="numeric"
                    placeholder=(tr.t("logs-time-format")) aria-describedby="time-hint" autocomplete="off";
            }
            div class="field actions" {
                button type="submit" { (tr.t("logs-filter")) }
                a href=(logs_path(id)) { (tr.t("logs-reset")) }
            }
            p id="time-hint" class="hint" {
                (tr.t_with("logs-time-hint", &[("example", tr.t("logs-time-format").into())]))
            }
        }
    }
}

fn log_table(tr: &Tr, id: i64, items: &[LogEntry]) -> Markup {
    html! {
        div class="table-wrap" tabindex="0" role="region" aria-label=(tr.t("logs-attempts")) {
            table class="responsive" {
                thead { tr {
                    th scope="col" { (tr.t("logs-col-time")) }
                    th scope="col" { (tr.t("logs-col-event")) }
                    th scope="col" { (tr.t("logs-col-attempt")) }
                    th scope="col" { (tr.t("logs-col-outcome")) }
                    th scope="col" { (tr.t("logs-col-took")) }
                    th scope="col" { (tr.t("logs-col-error")) }
                    th scope="col" { span class="visually-hidden" { (tr.t("logs-col-details")) } }
                } }
                tbody {
                    @for entry in items {
                        tr {
                            td data-label=(tr.t("logs-col-time")) { (time_el(tr, entry.created_at)) }
                            td data-label=(tr.t("logs-col-event")) { (event_cell(tr, id, entry)) }
                            td data-label=(tr.t("logs-col-attempt")) { (entry.attempt) }
                            td data-label=(tr.t("logs-col-outcome")) { (attempt_outcome(tr, entry)) }
                            td data-label=(tr.t("logs-col-took")) { (millis(tr, Some(f64::from(entry.response_time_ms)))) }
                            td data-label=(tr.t("logs-col-error")) class="error-cell" {
                                @if let Some(error) = shown_error(entry) { (visible_controls(error)) }
                            }
                            td data-label=(tr.t("logs-col-details")) {
                                a href={ (logs_path(id)) "/" (entry.id) } {
                                    (tr.t("logs-view"))
                                    span class="visually-hidden" { " " (tr.t_with("logs-attempt-n", &[("id", entry.id.into())])) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The error of an attempt, unless it only repeats the status the outcome
/// already shows (`HTTP 503`): one status per row.
pub(crate) fn shown_error(entry: &LogEntry) -> Option<&str> {
    error_beside_status(entry.error_message.as_deref(), entry.status_code)
}

pub(crate) fn error_beside_status(error: Option<&str>, status: Option<i32>) -> Option<&str> {
    let error = error?;
    match status {
        Some(code) if error.trim() == format!("HTTP {code}") => None,
        _ => Some(error),
    }
}

/// The event's name; a batch's attempt says how many events it sent and
/// opens them.
fn event_cell(tr: &Tr, id: i64, entry: &LogEntry) -> Markup {
    html! {
        code { (entry.event) }
        @if let Some(size) = entry.batch_size {
            " "
            a class="batch-size" href={ (logs_path(id)) "/" (entry.id) "#batch-events" } {
                (tr.t_with("logs-n-events", &[("count", size.into())]))
            }
        }
    }
}

/// `HTTP 200`, or "no response" in the viewer's language.
pub(crate) fn outcome_text(tr: &Tr, status_code: Option<i32>) -> String {
    match status_code {
        Some(code) => format!("HTTP {code}"),
        None => tr.t("logs-no-response"),
    }
}

fn attempt_outcome(tr: &Tr, entry: &LogEntry) -> Markup {
    outcome_badge(Some(entry.is_success), &outcome_text(tr, entry.status_code))
}

pub(crate) async fn show_attempt(
    State(state): State<UiState>,
    session: Session,
    Path((raw_id, raw_log)): Path<(String, String)>,
) -> Result<Markup, UiError> {
    let tr = &session.tr;
    let id: i64 = raw_id.parse().map_err(|_| UiError::NotFound("webhook"))?;
    let log_id: i64 = raw_log.parse().map_err(|_| UiError::NotFound("attempt"))?;
    let webhook = find_webhook(&state.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    let entry = find_log(&state.pool, id, log_id)
        .await?
        .ok_or(UiError::NotFound("attempt"))?;
    let batch = entry
        .batch_size
        .map(|_| batch_events(entry.payload.as_deref()));
    let content = html! {
        p class="breadcrumb" {
            a href=(details_path(id)) { "← " (visible_controls(&webhook.name)) } " · "
            a href=(logs_path(id)) { (tr.t("logs-page-title")) }
        }
        h1 { (tr.t_with("logs-attempt-title", &[("attempt", entry.attempt.into())])) " " code { (entry.event) } }
        dl class="summary" {
            dt { (tr.t("logs-col-outcome")) } dd { (attempt_outcome(tr, &entry)) }
            dt { (tr.t("logs-col-time")) } dd { (time_el(tr, entry.created_at)) }
            dt { (tr.t("logs-col-took")) } dd { (millis(tr, Some(f64::from(entry.response_time_ms)))) }
            dt { (tr.t("logs-delivery")) } dd {
                code { (entry.delivery_id) } " · "
                a href={ (logs_path(id)) "?delivery_id=" (entry.delivery_id) } { (tr.t("logs-all-its-attempts")) }
            }
            @if let Some(error) = shown_error(&entry) {
                dt { (tr.t("logs-col-error")) } dd class="error-text" { (visible_controls(error)) }
            }
        }
        (retry_form(&session, id, &entry, webhook.is_active))
        @if let Some(events) = &batch {
            (batch_table(tr, events, entry.batch_size.unwrap_or_default()))
        }
        h2 { (tr.t("logs-request-headers")) }
        (header_table(tr, "logs-request-headers", entry.request_headers.as_ref().map(|h| &h.0[..])))
        h2 { (tr.t("logs-payload-sent")) }
        (body_block(tr, &tr.t("logs-payload-sent"), entry.payload.as_deref()))
        h2 { (tr.t("logs-response-headers")) }
        (header_table(tr, "logs-response-headers", entry.response_headers.as_ref().map(|h| &h.0[..])))
        h2 { (tr.t("logs-response-received")) }
        (body_block(tr, &tr.t("logs-response-received"), entry.response.as_deref()))
    };
    Ok(page(&tr.t("logs-attempt-page-title"), &session, content))
}

/// An attempt's headers, as logged (masked and bounded by the worker).
fn header_table(tr: &Tr, label: &str, headers: Option<&[[String; 2]]>) -> Markup {
    html! {
        @match headers {
            Some(headers) if !headers.is_empty() => {
                div class="table-wrap" tabindex="0" role="region" aria-label=(tr.t(label)) {
                    table class="headers" {
                        thead { tr {
                            th scope="col" { (tr.t("logs-col-header")) }
                            th scope="col" { (tr.t("logs-col-value")) }
                        } }
                        tbody {
                            @for [name, value] in headers {
                                tr {
                                    th scope="row" { code { (visible_controls(name)) } }
                                    td { code { (visible_controls(value)) } }
                                }
                            }
                        }
                    }
                }
            },
            _ => p class="muted" { (tr.t("logs-headers-none")) },
        }
    }
}

/// One event of a batch body, as sent.
#[derive(serde::Deserialize)]
struct BatchedEvent {
    id: String,
    event: String,
    timestamp: i64,
}

/// The events a batch attempt sent, in order, read from the body it sent
/// (the batch's exact bytes): nothing else to look up, and right even once
/// retention has removed the events.
fn batch_events(payload: Option<&str>) -> Vec<BatchedEvent> {
    #[derive(serde::Deserialize)]
    struct BatchBody {
        events: Vec<BatchedEvent>,
    }
    payload
        .and_then(|body| serde_json::from_str::<BatchBody>(body).ok())
        .map(|body| body.events)
        .unwrap_or_default()
}

fn batch_table(tr: &Tr, events: &[BatchedEvent], size: i32) -> Markup {
    html! {
        h2 id="batch-events" { (tr.t_with("logs-batch-title", &[("count", size.into())])) }
        @if events.is_empty() {
            p { (tr.t("logs-batch-not-batch")) }
        } @else {
            div class="table-wrap" tabindex="0" role="region" aria-label=(tr.t("logs-batch-label")) {
                table class="responsive" {
                    thead { tr {
                        th scope="col" { (tr.t("logs-col-event")) }
                        th scope="col" { (tr.t("logs-col-event-id")) }
                        th scope="col" { (tr.t("logs-col-timestamp")) }
                    } }
                    tbody {
                        @for event in events {
                            tr {
                                td data-label=(tr.t("logs-col-event")) { code { (event.event) } }
                                td data-label=(tr.t("logs-col-event-id")) { code { (event.id) } }
                                td data-label=(tr.t("logs-col-timestamp")) {
                                    @match DateTime::<Utc>::from_timestamp(event.timestamp, 0) {
                                        Some(at) => (time_el(tr, at)),
                                        None => (event.timestamp),
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn retry_form(session: &Session, id: i64, entry: &LogEntry, active: bool) -> Markup {
    let tr = &session.tr;
    html! {
        @if active {
            form method="post" action={ "/webhook/" (id) "/retry" } class="button-row" {
                (csrf_input(session))
                input type="hidden" name="delivery_id" value=(entry.delivery_id);
                button type="submit" { (tr.t("logs-retry")) }
            }
        } @else {
            p class="muted" { (tr.t("logs-retry-off")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    fn utc(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .ok()
    }

    #[test]
    fn times_are_read_in_the_viewers_zone_in_either_format_or_rfc3339() {
        let ru = Tr {
            lang: Lang::Ru,
            tz: Tz::Europe__Moscow,
        };
        let noon_utc = utc("2026-02-20T12:00:00Z");
        assert_eq!(parse_time("20.02.2026 15:00", &ru), noon_utc);
        assert_eq!(parse_time("2026-02-20 15:00", &ru), noon_utc);
        assert_eq!(parse_time("2026-02-20T15:00", &ru), noon_utc);
        assert_eq!(parse_time("2026-02-20T15:00:00", &ru), noon_utc);
        assert_eq!(parse_time("2026-02-20T14:00:00+02:00", &ru), noon_utc);
        assert_eq!(parse_time("20.02.2026", &ru), utc("2026-02-19T21:00:00Z"));
        assert_eq!(parse_time("2026-02-20T12:00", &Tr::default()), noon_utc);
        assert_eq!(parse_time("yesterday", &ru), None);
        let Some(at) = noon_utc else {
            panic!("a valid instant");
        };
        assert_eq!(input_time(&ru, at), "20.02.2026 15:00");
        assert_eq!(input_time(&Tr::default(), at), "2026-02-20 12:00");
    }

    #[test]
    fn filters_are_checked_and_kept_in_the_pagination_query() {
        let mut input = FilterInput {
            event: "task.created".into(),
            success: "false".into(),
            from: "2026-02-20T12:00".into(),
            ..FilterInput::default()
        };
        let filter = input.check(&Tr::default()).expect("valid");
        assert_eq!(filter.event.as_deref(), Some("task.created"));
        assert_eq!(filter.success, Some(false));
        assert!(filter.from.is_some() && filter.to.is_none());
        assert_eq!(
            input.query(),
            "event=task.created&success=false&from=2026-02-20+12%3A00"
        );
        let mut bad = FilterInput {
            event: "nope".into(),
            ..FilterInput::default()
        };
        assert!(bad.check(&Tr::default()).is_err());
    }

    #[test]
    fn an_error_repeating_the_status_is_not_shown_twice() {
        assert_eq!(error_beside_status(Some("HTTP 503"), Some(503)), None);
        assert_eq!(
            error_beside_status(Some("timed out after 5000 ms"), None),
            Some("timed out after 5000 ms")
        );
        assert_eq!(error_beside_status(None, Some(200)), None);
    }
}
