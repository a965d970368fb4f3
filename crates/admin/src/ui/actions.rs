//! The buttons of a webhook: toggle, test, rotate secret, retry, delete.
//! Each is a CSRF-checked POST; each does what its API route does, through
//! the same storage functions (and, for the test, the API's own function).

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use uuid::Uuid;

use super::details::secret_page;
use super::error::UiError;
use super::form::{csrf_input, CsrfForm};
use super::layout::{body_block, outcome_badge, page, Notice};
use super::paths::{details_path, logs_path, LIST_PATH};
use super::replay::range_request;
use super::session::Session;
use super::state::{UiState, WebhookPath};
use crate::api::auth::CurrentUser;
use crate::api::deliveries;
use crate::api::quotas::{Work, BULK_RETRIES_PER_USER};
use crate::api::secrets::{DEFAULT_GRACE_SECS, MAX_GRACE_SECS};
use crate::api::test_delivery::{self, TestResult};
use crate::api::validate;
use crate::api::webhooks::WebhookId;
use webhookd_store::delivery_admin::{retry_delivery, retry_failed_deliveries, RetryOutcome};
use webhookd_store::webhooks::{self as store, find_webhook};

fn redirect_with(id: i64, notice: Notice) -> Response {
    Redirect::to(&format!("{}?{}", details_path(id), notice.query())).into_response()
}

pub(crate) async fn toggle_webhook(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let webhook = store::toggle_webhook(&state.pool, form.session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
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
    Ok(redirect_with(id, notice))
}

/// Sends `webhook.test` now through the API's own test function (same
/// rendering, signing, policy and recording) and shows what came back.
pub(crate) async fn test_webhook(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Markup, UiError> {
    let user = CurrentUser(form.session.user.clone());
    let axum::Json(result) =
        test_delivery::test_webhook(State(state.clone()), user, WebhookId(id)).await?;
    let webhook = find_webhook(&state.pool, form.session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    Ok(test_result_page(&form.session, id, &webhook.name, &result))
}

fn test_result_page(session: &Session, id: i64, name: &str, result: &TestResult) -> Markup {
    let tr = &session.tr;
    let verdict = if result.is_success {
        "Success"
    } else {
        "Failure"
    };
    let content = html! {
        h1 { "Test delivery to “" (name) "”" }
        dl class="summary" id="test-result" {
            dt { "Result" } dd { (outcome_badge(Some(result.is_success), verdict)) }
            dt { "Status" } dd id="test-status" {
                @match result.status_code { Some(code) => { "HTTP " (code) }, None => "no response" }
            }
            dt { "Time" } dd { (result.response_time_ms) " ms" }
            @if let Some(error) = &result.error_message {
                dt { "Error" } dd class="error-text" { (error) }
            }
        }
        h2 { "Response body" }
        (body_block(tr, "Response body", result.response.as_deref()))
        p class="button-row" {
            a class="button" href={ (logs_path(id)) "?delivery_id=" (result.delivery_id) } { "See it in the logs" }
            a class="button" href=(details_path(id)) { "Back to the webhook" }
        }
        form method="post" action={ "/webhook/" (id) "/test" } {
            (csrf_input(session))
            button type="submit" { "Send another test" }
        }
    };
    page("Test delivery", session, content)
}

pub(crate) async fn rotate_secret(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Markup, UiError> {
    let grace_secs = match form.fields.get("grace_period_secs") {
        "" => DEFAULT_GRACE_SECS,
        text => text
            .parse::<i64>()
            .ok()
            .filter(|s| (0..=MAX_GRACE_SECS).contains(s))
            .ok_or_else(|| UiError::BadRequest("choose a grace period from the list".to_owned()))?,
    };
    let secret = validate::check_secret(webhookd_signing::generate_secret())
        .map_err(|e| UiError::Internal(e.to_string()))?;
    let grace = Duration::from_secs(u64::try_from(grace_secs).unwrap_or(0));
    let webhook = store::rotate_secret(
        &state.pool,
        form.session.scope(),
        id,
        &secret,
        grace,
        &state.keys,
    )
    .await?
    .ok_or(UiError::NotFound("webhook"))?;
    tracing::info!(
        webhook_id = id,
        grace_secs,
        "webhook secret rotated in the web UI"
    );
    let explanation = html! {
        p { "Copy the new secret now: it is shown only this once. Put it in the receiver's configuration." }
        @if webhook.previous_secret_expires_at.is_none() {
            p { strong { "The old secret no longer works." } }
        }
    };
    Ok(secret_page(
        &form.session,
        &webhook,
        &secret,
        "Secret rotated",
        explanation,
    ))
}

/// `POST /webhook/{id}/retry`: `delivery_id` for one delivery,
/// `all_failed` for every failed one, or `failed_since` / `failed_until`
/// for those that failed in a range.
pub(crate) async fn retry_deliveries(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let webhook = find_webhook(&state.pool, form.session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    // The scheduler ends pending deliveries of an inactive webhook unattempted.
    if !webhook.is_active {
        return Err(UiError::Conflict(
            "the webhook is switched off; switch it on before retrying".to_owned(),
        ));
    }
    if let Some(request) = range_request(&form.fields)? {
        let user = CurrentUser(form.session.user.clone());
        let result = deliveries::retry(&state, &user, id, request).await?;
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
        return Ok(redirect_with(id, notice));
    }
    let retried = match form.fields.get("delivery_id").trim() {
        "" if form.fields.get("all_failed") == "true" => {
            let _slot =
                state
                    .quotas
                    .begin(Work::BulkRetry, form.session.user.id, BULK_RETRIES_PER_USER)?;
            retry_failed_deliveries(&state.pool, id).await?
        }
        "" => return Err(UiError::BadRequest("choose a delivery to retry".to_owned())),
        text => {
            let delivery_id: Uuid = text.parse().map_err(|_| UiError::NotFound("delivery"))?;
            match retry_delivery(&state.pool, id, delivery_id).await? {
                RetryOutcome::Retried => 1,
                RetryOutcome::NotFound => return Err(UiError::NotFound("delivery")),
                RetryOutcome::AlreadyPending => {
                    return Err(UiError::Conflict(
                        "this delivery is already pending: it will be attempted soon".to_owned(),
                    ))
                }
            }
        }
    };
    tracing::info!(
        webhook_id = id,
        retried,
        "deliveries retried by hand in the web UI"
    );
    Ok(redirect_with(id, Notice::Retried(retried)))
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
    let content = html! {
        section class="narrow" {
            h1 { "Delete “" (name) "”?" }
            p { "The webhook, its deliveries and all their logs are deleted. This cannot be undone." }
            form method="post" action={ "/webhook/" (id) "/delete" } class="button-row" {
                (csrf_input(session))
                input type="hidden" name="confirmed" value="yes";
                button type="submit" class="danger" { "Delete for good" }
                a class="button" href=(details_path(id)) { "Keep it" }
            }
        }
    };
    page("Delete webhook", session, content)
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
    delete_now(&state, &form.session, id).await
}

/// `POST /webhook/{id}`: the seed's delete route, kept working as it was
/// (its pages asked for confirmation before posting).
pub(crate) async fn delete_at_once(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    delete_now(&state, &form.session, id).await
}

async fn delete_now(state: &UiState, session: &Session, id: i64) -> Result<Response, UiError> {
    if !store::delete_webhook(&state.pool, session.scope(), id).await? {
        return Err(UiError::NotFound("webhook"));
    }
    tracing::info!(webhook_id = id, "webhook deleted in the web UI");
    Ok(Redirect::to(&format!("{LIST_PATH}?{}", Notice::Deleted.query())).into_response())
}
