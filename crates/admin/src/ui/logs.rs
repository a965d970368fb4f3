//! `/webhook/{id}/logs`: every attempt, filtered by event, outcome and time
//! range, paginated by cursor (no attempt skipped or shown twice while new
//! ones arrive); `/webhook/{id}/logs/{log_id}`: one attempt in full, with
//! "retry this delivery".

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use uuid::Uuid;
use webhookd_events::delivery::BATCH_EVENT;
use webhookd_events::CATALOGUE;

use super::error::UiError;
use super::form::csrf_input;
use super::i18n::Tr;
use super::layout::{body_block, outcome_badge, page, time_el};
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

    /// The storage filter, or the first problem in words.
    fn check(&self) -> Result<LogFilter, String> {
        let event = match self.event.as_str() {
            "" => None,
            BATCH_EVENT => Some(BATCH_EVENT.to_owned()),
            name => Some(
                CATALOGUE
                    .iter()
                    .find(|e| e.name == name)
                    .ok_or("Choose an event from the list")?
                    .name
                    .to_owned(),
            ),
        };
        let success = match self.success.as_str() {
            "" => None,
            "true" => Some(true),
            "false" => Some(false),
            _ => return Err("Choose an outcome from the list".to_owned()),
        };
        let time = |text: &str, what: &str| match text {
            "" => Ok(None),
            text => parse_time(text).map(Some).ok_or(format!(
                "“{what}” must be a date and time like 2026-02-20T12:00"
            )),
        };
        let delivery_id = match self.delivery_id.as_str() {
            "" => None,
            text => Some(
                text.parse::<Uuid>()
                    .map_err(|_| "Not a delivery id".to_owned())?,
            ),
        };
        Ok(LogFilter {
            event,
            success,
            from: time(&self.from, "From")?,
            to: time(&self.to, "Until")?,
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

/// A `datetime-local` value (`2026-02-20T12:00`, taken as UTC) or RFC 3339.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
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
    let input = FilterInput::read(&params);
    let checked = input.check();
    let page_of_logs = match &checked {
        Ok(filter) => Some(list_logs(&state.pool, id, filter, after.as_ref(), limit, false).await?),
        Err(_) => None,
    };
    let filters = input.query();
    let live = after.is_none() && filters.is_empty();
    let content = html! {
        p class="breadcrumb" { a href=(details_path(id)) { "← " (webhook.name) } }
        h1 { "Logs of “" (webhook.name) "”" }
        (filter_form(id, &input, checked.as_ref().err()))
        @if let Some(logs) = &page_of_logs {
            @if live {
                // The newest attempts, unfiltered: the script adds new ones
                // as they are recorded (`live_logs.rs`).
                div data-live-url={ (logs_path(id)) "/live" } {
                    @if logs.items.is_empty() {
                        p class="muted" data-live-empty { "No attempts yet." }
                    }
                    (log_table(tr, id, &logs.items))
                }
            } @else if logs.items.is_empty() {
                p class="muted" { "No attempts match." }
            } @else {
                (log_table(tr, id, &logs.items))
            }
            nav class="pager" aria-label="Pages" {
                @if after.is_some() {
                    a href={ (logs_path(id)) "?" (filters) } { "Newest" }
                }
                @if let Some(next) = &logs.next {
                    a href={ (logs_path(id)) "?" (filters) @if !filters.is_empty() { "&" } "cursor=" (encode_cursor(next)) } {
                        "Older attempts →"
                    }
                }
            }
        }
    };
    Ok(page("Logs", &session, content))
}

fn filter_form(id: i64, input: &FilterInput, error: Option<&String>) -> Markup {
    html! {
        form method="get" action=(logs_path(id)) class="filters" aria-label="Filter attempts" {
            @if let Some(error) = error {
                p class="field-error" role="alert" { (error) }
            }
            @if !input.delivery_id.is_empty() {
                input type="hidden" name="delivery_id" value=(input.delivery_id);
                p { "Attempts of delivery " code { (input.delivery_id) } " · "
                    a href=(logs_path(id)) { "show all" } }
            }
            div class="field" {
                label for="event" { "Event" }
                select id="event" name="event" {
                    option value="" { "Any event" }
                    @for spec in CATALOGUE {
                        option value=(spec.name) selected[spec.name == input.event] { (spec.name) }
                    }
                    option value=(BATCH_EVENT) selected[input.event == BATCH_EVENT] { "batch (a batch's attempts)" }
                }
            }
            div class="field" {
                label for="success" { "Outcome" }
                select id="success" name="success" {
                    option value="" { "Any outcome" }
                    option value="true" selected[input.success == "true"] { "Success" }
                    option value="false" selected[input.success == "false"] { "Failure" }
                }
            }
            div class="field" {
                label for="from" { "From (UTC)" }
                input id="from" name="from" type="datetime-local" value=(input.from);
            }
            div class="field" {
                label for="to" { "Until (UTC)" }
                input id="to" name="to" type="datetime-local" value=(input.to);
            }
            div class="field actions" {
                button type="submit" { "Filter" }
                a href=(logs_path(id)) { "Reset" }
            }
        }
    }
}

fn log_table(tr: &Tr, id: i64, items: &[LogEntry]) -> Markup {
    html! {
        div class="table-wrap" tabindex="0" role="region" aria-label="Attempts" {
            table class="responsive" {
                thead { tr {
                    th scope="col" { "Time" }
                    th scope="col" { "Event" }
                    th scope="col" { "Attempt" }
                    th scope="col" { "Outcome" }
                    th scope="col" { "Time taken" }
                    th scope="col" { "Error" }
                    th scope="col" { span class="visually-hidden" { "Details" } }
                } }
                tbody {
                    @for entry in items {
                        tr {
                            td data-label="Time" { (time_el(tr, entry.created_at)) }
                            td data-label="Event" { (event_cell(id, entry)) }
                            td data-label="Attempt" { (entry.attempt) }
                            td data-label="Outcome" { (attempt_outcome(entry)) }
                            td data-label="Time taken" { (entry.response_time_ms) " ms" }
                            td data-label="Error" class="error-cell" {
                                @if let Some(error) = &entry.error_message { (error) }
                            }
                            td data-label="Details" {
                                a href={ (logs_path(id)) "/" (entry.id) } { "View" span class="visually-hidden" { " attempt " (entry.id) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The event's name; a batch's attempt says how many events it sent and
/// opens them.
fn event_cell(id: i64, entry: &LogEntry) -> Markup {
    html! {
        code { (entry.event) }
        @if let Some(size) = entry.batch_size {
            " "
            a class="batch-size" href={ (logs_path(id)) "/" (entry.id) "#batch-events" } {
                (size) @if size == 1 { " event" } @else { " events" }
            }
        }
    }
}

fn attempt_outcome(entry: &LogEntry) -> Markup {
    let text = match entry.status_code {
        Some(code) => format!("HTTP {code}"),
        None => "no response".to_owned(),
    };
    outcome_badge(Some(entry.is_success), &text)
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
            a href=(details_path(id)) { "← " (webhook.name) } " · " a href=(logs_path(id)) { "Logs" }
        }
        h1 { "Attempt " (entry.attempt) " of " code { (entry.event) } }
        dl class="summary" {
            dt { "Outcome" } dd { (attempt_outcome(&entry)) }
            dt { "Time" } dd { (time_el(tr, entry.created_at)) }
            dt { "Time taken" } dd { (entry.response_time_ms) " ms" }
            dt { "Delivery" } dd {
                code { (entry.delivery_id) } " · "
                a href={ (logs_path(id)) "?delivery_id=" (entry.delivery_id) } { "all its attempts" }
            }
            @if let Some(error) = &entry.error_message {
                dt { "Error" } dd class="error-text" { (error) }
            }
        }
        (retry_form(&session, id, &entry, webhook.is_active))
        @if let Some(events) = &batch {
            (batch_table(tr, events, entry.batch_size.unwrap_or_default()))
        }
        h2 { "Payload sent" }
        (body_block(tr, "Payload sent", entry.payload.as_deref()))
        h2 { "Response received" }
        (body_block(tr, "Response received", entry.response.as_deref()))
    };
    Ok(page("Attempt", &session, content))
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
        h2 id="batch-events" { "Events in this batch (" (size) ")" }
        @if events.is_empty() {
            p { "The body sent is not a batch body (edited by hand?)." }
        } @else {
            div class="table-wrap" tabindex="0" role="region" aria-label="Events in this batch" {
                table class="responsive" {
                    thead { tr {
                        th scope="col" { "Event" }
                        th scope="col" { "Event id" }
                        th scope="col" { "Timestamp" }
                    } }
                    tbody {
                        @for event in events {
                            tr {
                                td data-label="Event" { code { (event.event) } }
                                td data-label="Event id" { code { (event.id) } }
                                td data-label="Timestamp" {
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
    html! {
        @if active {
            form method="post" action={ "/webhook/" (id) "/retry" } class="button-row" {
                (csrf_input(session))
                input type="hidden" name="delivery_id" value=(entry.delivery_id);
                button type="submit" { "Retry this delivery" }
            }
        } @else {
            p class="muted" { "The webhook is switched off; switch it on to retry deliveries." }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_from_datetime_local_as_utc_or_from_rfc3339() {
        let expected = DateTime::parse_from_rfc3339("2026-02-20T12:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(parse_time("2026-02-20T12:00"), expected);
        assert_eq!(parse_time("2026-02-20T12:00:00"), expected);
        assert_eq!(parse_time("2026-02-20T14:00:00+02:00"), expected);
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn filters_are_checked_and_kept_in_the_pagination_query() {
        let input = FilterInput {
            event: "task.created".into(),
            success: "false".into(),
            from: "2026-02-20T12:00".into(),
            ..FilterInput::default()
        };
        let filter = input.check().expect("valid");
        assert_eq!(filter.event.as_deref(), Some("task.created"));
        assert_eq!(filter.success, Some(false));
        assert!(filter.from.is_some() && filter.to.is_none());
        assert_eq!(
            input.query(),
            "event=task.created&success=false&from=2026-02-20T12%3A00"
        );
        let bad = FilterInput {
            event: "nope".into(),
            ..FilterInput::default()
        };
        assert!(bad.check().is_err());
    }
}
