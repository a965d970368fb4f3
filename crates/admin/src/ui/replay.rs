//! The webhook page's "send it again" forms: retry the deliveries that failed
//! between two times, and replay stored events since a time. Each calls the
//! JSON API's own function, so the rules, bounds and refusals are the API's.
//!
//! Both answer with a redirect (post/redirect/get), once per submitted form.
//!
//! Times are typed in UTC (`datetime-local` fields, labelled so); RFC 3339
//! text with an offset is accepted too.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};

use super::error::UiError;
use super::form::{csrf_input, CsrfForm, FormFields};
use super::i18n::Tr;
use super::layout::{page, time_el};
use super::paths::details_path;
use super::session::Session;
use super::state::{UiState, WebhookPath};
use super::submission::{self, Begun, ResultQuery};
use crate::api::auth::CurrentUser;
use crate::api::deliveries::RetryRequest;
use crate::api::replay::{self, ReplayRequest, ReplayResult};
use webhookd_store::webhooks::{find_webhook, Webhook};

/// A time typed in a form: RFC 3339, or a `datetime-local` value read as
/// UTC. `None` for empty text.
pub(crate) fn parse_form_time(
    tr: &Tr,
    field: &str,
    text: &str,
) -> Result<Option<DateTime<Utc>>, UiError> {
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
            UiError::BadRequest(tr.t_with("replay-bad-time", &[("field", field.into())]))
        })
}

/// The ranged retry the form asks for, when it gives either bound.
pub(crate) fn range_request(tr: &Tr, fields: &FormFields) -> Result<Option<RetryRequest>, UiError> {
    let since = parse_form_time(tr, &tr.t("replay-failed-since"), fields.get("failed_since"))?;
    let until = parse_form_time(tr, &tr.t("replay-failed-until"), fields.get("failed_until"))?;
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
    let tr = &session.tr;
    let id = webhook.id;
    html! {
        @if webhook.is_active {
            details class="replay" {
                summary { (tr.t("replay-range-summary")) }
                form method="post" action={ "/webhook/" (id) "/retry" } class="stack" id="retry-range" {
                    (csrf_input(session))
                    p { (tr.t("replay-range-help")) }
                    div class="field inline" {
                        label for="failed_since" { (tr.t("replay-failed-since")) }
                        input type="datetime-local" step="1" id="failed_since" name="failed_since";
                    }
                    div class="field inline" {
                        label for="failed_until" { (tr.t("replay-failed-until")) }
                        input type="datetime-local" step="1" id="failed_until" name="failed_until";
                    }
                    button type="submit" { (tr.t("replay-range-button")) }
                }
            }
            details class="replay" {
                summary { (tr.t("replay-summary")) }
                (replay_form(session, id, None))
            }
        }
    }
}

fn replay_form(session: &Session, id: i64, since: Option<DateTime<Utc>>) -> Markup {
    let tr = &session.tr;
    html! {
        form method="post" action={ "/webhook/" (id) "/replay" } class="stack" id="replay" {
            (csrf_input(session))
            p { (tr.t("replay-help")) }
            div class="field inline" {
                label for="since" { (tr.t("replay-since")) }
                input type="datetime-local" step="1" id="since" name="since" required
                    value=[since.map(local_value)];
            }
            button type="submit" { (tr.t("replay-button")) }
        }
    }
}

/// What a replay did, kept with its submission for the result page.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReplayView {
    since: DateTime<Utc>,
    replayed: u64,
    skipped_existing: u64,
    more: bool,
    next_since: Option<DateTime<Utc>>,
}

/// `POST /webhook/{id}/replay`: replays once per submission, then redirects
/// to what was sent (with a form to continue when the window holds more).
pub(crate) async fn replay_events(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let tr = &form.session.tr;
    let since = parse_form_time(tr, &tr.t("replay-since"), form.fields.get("since"))?
        .ok_or_else(|| UiError::BadRequest(tr.t("replay-since-missing")))?;
    let sub = match submission::begin(&state.pool, &form, &details_path(id)).await? {
        Begun::Act(sub) => sub,
        Begun::Repeat(response) => return Ok(response),
    };
    let user = CurrentUser(form.session.user.clone());
    let replayed = replay::replay(
        &state,
        &user,
        id,
        ReplayRequest {
            since: Some(since),
            until: None,
        },
    )
    .await;
    let result: ReplayResult = sub.check(&state.pool, replayed).await?;
    let view = ReplayView {
        since,
        replayed: result.replayed,
        skipped_existing: result.skipped_existing,
        more: result.more,
        next_since: result.next_since,
    };
    let target = match sub.key() {
        Some(key) => format!("/webhook/{id}/replay?form={key}"),
        None => details_path(id),
    };
    sub.finish_with(&state.pool, &target, Some(&view), None)
        .await
}

/// `GET /webhook/{id}/replay?form=KEY`: what this session's replay `KEY`
/// sent; anything else goes back to the webhook.
pub(crate) async fn show_replay_result(
    State(state): State<UiState>,
    session: Session,
    WebhookPath(id): WebhookPath,
    Query(query): Query<ResultQuery>,
) -> Result<Response, UiError> {
    let kept = query
        .kept::<ReplayView>(&state.pool, &session.id_hash)
        .await?;
    let Some(view) = kept else {
        return Ok(Redirect::to(&details_path(id)).into_response());
    };
    let webhook = find_webhook(&state.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    Ok(result_page(&session, &webhook, &view).into_response())
}

fn result_page(session: &Session, webhook: &Webhook, result: &ReplayView) -> Markup {
    let tr = &session.tr;
    let id = webhook.id;
    let content = html! {
        h1 { (tr.t_with("replay-result-title", &[("name", webhook.name.clone().into())])) }
        div class="notice" role="status" id="replay-result" {
            (tr.t_with("replay-result-sent", &[("count", result.replayed.into())]))
            " " (tr.t("replay-result-since")) " " (time_el(tr, result.since))
            @if result.skipped_existing > 0 {
                " " (tr.t_with("replay-result-skipped", &[("count", result.skipped_existing.into())]))
            }
        }
        @if result.more {
            p { (tr.t("replay-result-more")) }
            (replay_form(session, id, result.next_since))
        }
        p class="button-row" {
            a class="button" href=(details_path(id)) { (tr.t("replay-back")) }
        }
    };
    page(&tr.t("replay-page-title"), session, content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_utc_datetime_local_values_or_rfc3339() {
        let tr = Tr::default();
        let at = |text| parse_form_time(&tr, "t", text).unwrap();
        assert_eq!(at(""), None);
        let noon: DateTime<Utc> = "2025-03-31T12:00:00Z".parse().unwrap();
        assert_eq!(at("2025-03-31T12:00"), Some(noon));
        assert_eq!(at("2025-03-31T12:00:00"), Some(noon));
        assert_eq!(at("2025-03-31T14:00:00+02:00"), Some(noon));
        assert_eq!(local_value(noon), "2025-03-31T12:00:00");
        assert!(parse_form_time(&tr, "t", "yesterday").is_err());
    }
}
