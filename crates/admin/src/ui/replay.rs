//! The webhook page's "send it again" forms: retry the deliveries that failed
//! between two times, and replay stored events since a time. Each calls the
//! JSON API's own function, so the rules, bounds and refusals are the API's.
//!
//! Times are typed in UTC (`datetime-local` fields, labelled so); RFC 3339
//! text with an offset is accepted too.

use axum::extract::State;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};

use super::error::UiError;
use super::form::{csrf_input, CsrfForm, FormFields};
use super::layout::{page, time_el};
use super::paths::details_path;
use super::session::Session;
use super::state::{UiState, WebhookPath};
use crate::api::auth::CurrentUser;
use crate::api::deliveries::RetryRequest;
use crate::api::replay::{self, ReplayRequest, ReplayResult};
use webhookd_store::webhooks::{find_webhook, Webhook};

/// A time typed in a form: RFC 3339, or a `datetime-local` value read as
/// UTC. `None` for empty text.
pub(crate) fn parse_form_time(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, UiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| Some(naive.and_utc()))
        .ok_or_else(|| {
            UiError::BadRequest(format!(
                "{field}: give a date and time in UTC, such as 2025-03-31T12:00"
            ))
        })
}

/// The ranged retry the form asks for, when it gives either bound.
pub(crate) fn range_request(fields: &FormFields) -> Result<Option<RetryRequest>, UiError> {
    let since = parse_form_time("Failed since", fields.get("failed_since"))?;
    let until = parse_form_time("Failed until", fields.get("failed_until"))?;
    Ok((since.is_some() || until.is_some()).then(|| RetryRequest {
        failed_since: since,
        failed_until: until,
        ..RetryRequest::default()
    }))
}

/// A `datetime-local` value (UTC, to the second).
fn local_value(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The two forms, for the webhook's page; nothing for a switched-off
/// webhook (both would be refused).
pub(crate) fn forms(session: &Session, webhook: &Webhook) -> Markup {
    let id = webhook.id;
    html! {
        @if webhook.is_active {
            details class="replay" {
                summary { "Retry failed deliveries of a time range" }
                form method="post" action={ "/webhook/" (id) "/retry" } class="stack" id="retry-range" {
                    (csrf_input(session))
                    p { "Failed deliveries whose last attempt failed in the range are sent again "
                        "(at most 10,000 at a time; submit again for more). Times are UTC; "
                        "leave a bound empty for no limit." }
                    div class="field inline" {
                        label for="failed_since" { "Failed since (UTC)" }
                        input type="datetime-local" step="1" id="failed_since" name="failed_since";
                    }
                    div class="field inline" {
                        label for="failed_until" { "Failed until (UTC)" }
                        input type="datetime-local" step="1" id="failed_until" name="failed_until";
                    }
                    button type="submit" { "Retry failed in range" }
                }
            }
            details class="replay" {
                summary { "Replay past events" }
                (replay_form(session, id, None))
            }
        }
    }
}

fn replay_form(session: &Session, id: i64, since: Option<DateTime<Utc>>) -> Markup {
    html! {
        form method="post" action={ "/webhook/" (id) "/replay" } class="stack" id="replay" {
            (csrf_input(session))
            p { "Stored events this webhook would have received since that time are sent to it, "
                "oldest first, at most 10,000 at a time. Events it already got are not sent again." }
            div class="field inline" {
                label for="since" { "Events since (UTC)" }
                input type="datetime-local" step="1" id="since" name="since" required
                    value=[since.map(local_value)];
            }
            button type="submit" { "Replay events" }
        }
    }
}

/// `POST /webhook/{id}/replay`: replays and shows what was sent, with a form
/// to continue when the window holds more.
pub(crate) async fn replay_events(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Markup, UiError> {
    let since = parse_form_time("Events since", form.fields.get("since"))?
        .ok_or_else(|| UiError::BadRequest("give the time to replay events from".to_owned()))?;
    let user = CurrentUser(form.session.user.clone());
    let result = replay::replay(
        &state,
        &user,
        id,
        ReplayRequest {
            since: Some(since),
            until: None,
        },
    )
    .await?;
    let webhook = find_webhook(&state.pool, form.session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    Ok(result_page(&form.session, &webhook, since, &result))
}

fn result_page(
    session: &Session,
    webhook: &Webhook,
    since: DateTime<Utc>,
    result: &ReplayResult,
) -> Markup {
    let tr = &session.tr;
    let id = webhook.id;
    let content = html! {
        h1 { "Replay to “" (webhook.name) "”" }
        div class="notice" role="status" id="replay-result" {
            @match result.replayed {
                0 => "No event to send",
                1 => "1 event will be sent now",
                n => { (n) " events will be sent now" },
            }
            " (since " (time_el(tr, since)) ")."
            @if result.skipped_existing > 0 {
                " " (result.skipped_existing) " already delivered or pending, not sent again."
            }
        }
        @if result.more {
            p { "More events remain after these." }
            (replay_form(session, id, result.next_since))
        }
        p class="button-row" {
            a class="button" href=(details_path(id)) { "Back to the webhook" }
        }
    };
    page("Replay", session, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_utc_datetime_local_values_or_rfc3339() {
        let at = |text| parse_form_time("t", text).unwrap();
        assert_eq!(at(""), None);
        let noon: DateTime<Utc> = "2025-03-31T12:00:00Z".parse().unwrap();
        assert_eq!(at("2025-03-31T12:00"), Some(noon));
        assert_eq!(at("2025-03-31T12:00:00"), Some(noon));
        assert_eq!(at("2025-03-31T14:00:00+02:00"), Some(noon));
        assert_eq!(local_value(noon), "2025-03-31T12:00:00");
        assert!(parse_form_time("t", "yesterday").is_err());
    }
}
