//! The buttons of a webhook: toggle, test, rotate secret, retry, delete.
//! Each is a CSRF-checked POST; each does what its API route does, through
//! the same storage functions (and, for the test, the API's own function),
//! once per submitted form (`submission`), and answers with a redirect
//! (post/redirect/get): a reload repeats nothing.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::details::secret_path;
use super::error::UiError;
use super::flash::Flash;
use super::form::{csrf_input, CsrfForm};
use super::layout::{body_block, outcome_badge, page, Notice};
use super::paths::{details_path, logs_path, LIST_PATH};
use super::replay::range_request;
use super::session::Session;
use super::state::{UiState, WebhookPath};
use super::submission::{self, Begun, ResultQuery, Submission};
use crate::api::auth::CurrentUser;
use crate::api::deliveries;
use crate::api::quotas::{Work, BULK_RETRIES_PER_USER};
use crate::api::secrets::{DEFAULT_GRACE_SECS, MAX_GRACE_SECS};
use crate::api::test_delivery::{self, TestResult};
use crate::api::validate;
use crate::api::webhooks::WebhookId;
use webhookd_store::delivery_admin::{
    is_test_delivery, retry_delivery, retry_failed_deliveries_but_tests, RetryOutcome,
};
use webhookd_store::webhooks::{self as store, find_webhook};

/// Claims the form's one-time key; a repeat gets its first redirect.
macro_rules! begin_once {
    ($state:expr, $form:expr, $fallback:expr) => {
        match submission::begin(&$state.pool, &$form, $fallback).await? {
            Begun::Act(sub) => sub,
            Begun::Repeat(response) => return Ok(response),
        }
    };
}

pub(crate) async fn toggle_webhook(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let back = details_path(id);
    let sub = begin_once!(state, form, &back);
    let toggled = store::toggle_webhook(&state.pool, form.session.scope(), id).await;
    let webhook = sub
        .check(&state.pool, toggled)
        .await?
        .ok_or(UiError::NotFound("webhook"));
    let webhook = sub.check(&state.pool, webhook).await?;
    tracing::info!(
        webhook_id = id,
        is_active = webhook.is_active,
        "webhook toggled in the web UI"
    );
    let notice = if webhook.is_active {
        Notice::SwitchedOn
    } else {
        Notice::SwitchedOff
    };
    sub.finish(&state.pool, &back, Some(&Flash::Notice(notice)))
        .await
}

/// A test's answer as its result page shows it (kept with the submission,
/// so reloading the page shows it again rather than sending another).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TestView {
    name: String,
    is_success: bool,
    status_code: Option<u16>,
    response_time_ms: u64,
    error_message: Option<String>,
    response: Option<String>,
    delivery_id: Uuid,
}

/// Sends `webhook.test` now through the API's own test function (same
/// rendering, signing, policy and recording), then redirects to its result.
pub(crate) async fn test_webhook(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let sub = begin_once!(state, form, &details_path(id));
    send_test(&state, &form, id, sub).await
}

/// Sends one test for a claimed submission and redirects to its result.
async fn send_test(
    state: &UiState,
    form: &CsrfForm,
    id: i64,
    sub: Submission,
) -> Result<Response, UiError> {
    let user = CurrentUser(form.session.user.clone());
    let sent = test_delivery::test_webhook(State(state.clone()), user, WebhookId(id)).await;
    let axum::Json(result) = sub.check(&state.pool, sent).await?;
    let found = find_webhook(&state.pool, form.session.scope(), id).await;
    let name = sub
        .check(&state.pool, found)
        .await?
        .map(|w| w.name)
        .unwrap_or_default();
    let view = test_view(name, result);
    let target = match sub.key() {
        Some(key) => format!("{}?form={key}", test_path(id)),
        None => details_path(id),
    };
    sub.finish_with(&state.pool, &target, Some(&view), None)
        .await
}

fn test_view(name: String, result: TestResult) -> TestView {
    TestView {
        name,
        is_success: result.is_success,
        status_code: result.status_code,
        response_time_ms: result.response_time_ms,
        error_message: result.error_message,
        response: result.response,
        delivery_id: result.delivery_id,
    }
}

fn test_path(id: i64) -> String {
    format!("/webhook/{id}/test")
}

/// `GET /webhook/{id}/test?form=KEY`: the answer of this session's test
/// submission `KEY`; anything else goes back to the webhook.
pub(crate) async fn show_test_result(
    State(state): State<UiState>,
    session: Session,
    WebhookPath(id): WebhookPath,
    Query(query): Query<ResultQuery>,
) -> Result<Response, UiError> {
    let kept = query
        .kept::<TestView>(&state.pool, &session.id_hash)
        .await?;
    Ok(match kept {
        Some(view) => test_result_page(&session, id, &view).into_response(),
        None => Redirect::to(&details_path(id)).into_response(),
    })
}

fn test_result_page(session: &Session, id: i64, result: &TestView) -> Markup {
    let tr = &session.tr;
    let verdict = if result.is_success {
        tr.t("actions-test-success")
    } else {
        tr.t("actions-test-failure")
    };
    let content = html! {
        h1 { (tr.t_with("actions-test-title-of", &[("name", result.name.clone().into())])) }
        dl class="summary" id="test-result" {
            dt { (tr.t("actions-test-result")) } dd { (outcome_badge(Some(result.is_success), &verdict)) }
            dt { (tr.t("actions-test-status")) } dd id="test-status" {
                @match result.status_code { Some(code) => { code { "HTTP " (code) } }, None => (tr.t("actions-test-no-response")) }
            }
            dt { (tr.t("actions-test-time")) } dd { (tr.t_with("actions-test-ms", &[("ms", result.response_time_ms.into())])) }
            @if let Some(error) = &result.error_message {
                dt { (tr.t("actions-test-error")) } dd class="error-text" lang="en" { (error) }
            }
        }
        h2 { (tr.t("actions-test-body")) }
        (body_block(tr, &tr.t("actions-test-body"), result.response.as_deref()))
        p class="button-row" {
            a class="button" href={ (logs_path(id)) "?delivery_id=" (result.delivery_id) } { (tr.t("actions-test-in-logs")) }
            a class="button" href=(details_path(id)) { (tr.t("actions-back-to-webhook")) }
        }
        form method="post" action=(test_path(id)) {
            (csrf_input(session))
            button type="submit" { (tr.t("actions-test-again")) }
        }
    };
    page(&tr.t("actions-test-page-title"), session, content)
}

/// `POST /webhook/{id}/rotate-secret`: asks first (`confirmed=yes`, set by
/// the script's `confirm()` or the confirmation page), then rotates once
/// per submission and shows the new secret once, after a redirect.
pub(crate) async fn rotate_secret(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let tr = &form.session.tr;
    let grace_secs = match form.fields.get("grace_period_secs") {
        "" => DEFAULT_GRACE_SECS,
        text => text
            .parse::<i64>()
            .ok()
            .filter(|s| (0..=MAX_GRACE_SECS).contains(s))
            .ok_or_else(|| UiError::BadRequest(tr.t("actions-rotate-bad-grace")))?,
    };
    if form.fields.get("confirmed") != "yes" {
        let webhook = find_webhook(&state.pool, form.session.scope(), id)
            .await?
            .ok_or(UiError::NotFound("webhook"))?;
        return Ok(
            confirm_rotate_page(&form.session, &webhook.name, id, grace_secs).into_response(),
        );
    }
    let sub = begin_once!(state, form, &details_path(id));
    let secret = validate::check_secret(webhookd_signing::generate_secret())
        .map_err(|e| UiError::Internal(e.to_string()));
    let secret = sub.check(&state.pool, secret).await?;
    let grace = Duration::from_secs(u64::try_from(grace_secs).unwrap_or(0));
    let rotated = store::rotate_secret(
        &state.pool,
        form.session.scope(),
        id,
        &secret,
        grace,
        &state.keys,
    )
    .await;
    let webhook = sub.check(&state.pool, rotated).await?;
    let webhook = sub
        .check(&state.pool, webhook.ok_or(UiError::NotFound("webhook")))
        .await?;
    tracing::info!(
        webhook_id = id,
        grace_secs,
        "webhook secret rotated in the web UI"
    );
    let flash = Flash::secret(&state.keys, webhook.id, &secret, false);
    let flash = sub.check(&state.pool, flash).await?;
    sub.finish(&state.pool, &secret_path(id), Some(&flash))
        .await
}

/// The rotation's confirmation step, for browsers without JavaScript.
fn confirm_rotate_page(session: &Session, name: &str, id: i64, grace_secs: i64) -> Markup {
    let tr = &session.tr;
    let content = html! {
        section class="narrow" {
            h1 { (tr.t_with("actions-rotate-confirm-title", &[("name", name.into())])) }
            p { (tr.t("actions-rotate-confirm-text")) }
            @if grace_secs == 0 {
                p class="error-text" { strong { (tr.t("actions-rotate-confirm-revoke")) } }
            }
            form method="post" action={ "/webhook/" (id) "/rotate-secret" } class="button-row" {
                (csrf_input(session))
                input type="hidden" name="grace_period_secs" value=(grace_secs);
                input type="hidden" name="confirmed" value="yes";
                button type="submit" class=[(grace_secs == 0).then_some("danger")] { (tr.t("actions-rotate-confirm-yes")) }
                a class="button" href=(details_path(id)) { (tr.t("actions-rotate-confirm-no")) }
            }
        }
    };
    page(&tr.t("actions-rotate-confirm-page-title"), session, content)
}

/// `POST /webhook/{id}/retry`: `delivery_id` for one delivery,
/// `all_failed` for every failed one, or `failed_since` / `failed_until`
/// for those that failed in a range.
pub(crate) async fn retry_deliveries(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let tr = &form.session.tr;
    let webhook = find_webhook(&state.pool, form.session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    // The scheduler ends pending deliveries of an inactive webhook unattempted.
    if !webhook.is_active {
        return Err(UiError::Conflict(tr.t("actions-retry-switched-off")));
    }
    let back = details_path(id);
    if let Some(request) = range_request(tr, &form.fields)? {
        let sub = begin_once!(state, form, &back);
        let user = CurrentUser(form.session.user.clone());
        let retried = deliveries::retry(&state, &user, id, request).await;
        let result = sub.check(&state.pool, retried).await?;
        tracing::info!(
            webhook_id = id,
            retried = result.retried,
            "failed deliveries of a range retried in the web UI"
        );
        let notice = if result.more == Some(true) {
            Notice::RetriedMore(result.retried)
        } else {
            Notice::Retried(result.retried)
        };
        return sub
            .finish(&state.pool, &back, Some(&Flash::Notice(notice)))
            .await;
    }
    let sub = begin_once!(state, form, &back);
    // A test is one attempt, not a schedule: retrying a failed one sends
    // one more test now, shown like the first.
    if let Ok(delivery_id) = form.fields.get("delivery_id").trim().parse::<Uuid>() {
        let is_test = is_test_delivery(&state.pool, id, delivery_id).await;
        if sub.check(&state.pool, is_test).await? == Some(true) {
            return send_test(&state, &form, id, sub).await;
        }
    }
    let retried = retry_now(&state, &form, id).await;
    let retried = sub.check(&state.pool, retried).await?;
    tracing::info!(
        webhook_id = id,
        retried,
        "deliveries retried by hand in the web UI"
    );
    sub.finish(
        &state.pool,
        &back,
        Some(&Flash::Notice(Notice::Retried(retried))),
    )
    .await
}

/// Retries one delivery (`delivery_id`) or every failed one (`all_failed`).
async fn retry_now(state: &UiState, form: &CsrfForm, id: i64) -> Result<u64, UiError> {
    let tr = &form.session.tr;
    Ok(match form.fields.get("delivery_id").trim() {
        "" if form.fields.get("all_failed") == "true" => {
            let _slot =
                state
                    .quotas
                    .begin(Work::BulkRetry, form.session.user.id, BULK_RETRIES_PER_USER)?;
            retry_failed_deliveries_but_tests(&state.pool, id).await?
        }
        "" => return Err(UiError::BadRequest(tr.t("actions-retry-choose"))),
        text => {
            let delivery_id: Uuid = text.parse().map_err(|_| UiError::NotFound("delivery"))?;
            match retry_delivery(&state.pool, id, delivery_id).await? {
                RetryOutcome::Retried => 1,
                RetryOutcome::NotFound => return Err(UiError::NotFound("delivery")),
                RetryOutcome::AlreadyPending => {
                    return Err(UiError::Conflict(tr.t("actions-retry-already-pending")))
                }
            }
        }
    })
}

/// `GET /webhook/{id}/delete`: the confirmation step, for browsers without
/// JavaScript (with it, the details page asks with `confirm()`).
pub(crate) async fn confirm_delete(
    State(state): State<UiState>,
    session: Session,
    WebhookPath(id): WebhookPath,
) -> Result<Markup, UiError> {
    let webhook = find_webhook(&state.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    Ok(confirm_page(&session, id, &webhook.name))
}

fn confirm_page(session: &Session, id: i64, name: &str) -> Markup {
    let tr = &session.tr;
    let content = html! {
        section class="narrow" {
            h1 { (tr.t_with("actions-delete-title", &[("name", name.into())])) }
            p { (tr.t("actions-delete-text")) }
            form method="post" action={ "/webhook/" (id) "/delete" } class="button-row" {
                (csrf_input(session))
                input type="hidden" name="confirmed" value="yes";
                button type="submit" class="danger" { (tr.t("actions-delete-yes")) }
                a class="button" href=(details_path(id)) { (tr.t("actions-delete-no")) }
            }
        }
    };
    page(&tr.t("actions-delete-page-title"), session, content)
}

/// `POST /webhook/{id}/delete`: deletes once confirmed (`confirmed=yes`, set
/// by the confirmation page or the script's `confirm()`), else asks first.
pub(crate) async fn delete_webhook(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    if form.fields.get("confirmed") != "yes" {
        let webhook = find_webhook(&state.pool, form.session.scope(), id)
            .await?
            .ok_or(UiError::NotFound("webhook"))?;
        return Ok(confirm_page(&form.session, id, &webhook.name).into_response());
    }
    delete_now(&state, &form, id).await
}

/// `POST /webhook/{id}`: the seed's delete route, kept working as it was
/// (its pages asked for confirmation before posting).
pub(crate) async fn delete_at_once(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    delete_now(&state, &form, id).await
}

async fn delete_now(state: &UiState, form: &CsrfForm, id: i64) -> Result<Response, UiError> {
    let sub = begin_once!(state, form, LIST_PATH);
    let deleted = store::delete_webhook(&state.pool, form.session.scope(), id).await;
    if !sub.check(&state.pool, deleted).await? {
        sub.release(&state.pool).await;
        return Err(UiError::NotFound("webhook"));
    }
    tracing::info!(webhook_id = id, "webhook deleted in the web UI");
    sub.finish(
        &state.pool,
        LIST_PATH,
        Some(&Flash::Notice(Notice::Deleted)),
    )
    .await
}
