//! `/webhook/new` and `/webhook/{id}/edit`: the webhook form, with event
//! checkboxes grouped by entity, template presets and a preview.
//!
//! Without JavaScript the form's secondary buttons ("Apply preset", "Update
//! preview") post it back and the page is rendered again with the preset or
//! the preview; with it, the script does both in place, the preview through
//! `POST /webhook/preview`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::Markup;
use serde::Deserialize;
use webhookd_events::find_preset;

use super::details::secret_path;
use super::error::UiError;
use super::fields::{
    check_input, port_problem, preset_language, render_preview, CheckedWebhook, FieldError,
    FieldErrors, WebhookInput,
};
use super::flash::{Flash, Notice};
use super::form::CsrfForm;
use super::i18n::Tr;
use super::paths::{details_path, LIST_PATH};
use super::session::Session;
use super::state::{UiState, WebhookPath};
use super::submission::{self, Begun};
use super::webhook_form::{form_page, Mode};
use crate::api::error::ApiError;
use crate::api::validate::check_url_port;
use crate::api::webhook_quota::create_within_quota;
use webhookd_store::webhooks::{self as store, NewWebhook, WebhookChanges};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NewQuery {
    /// Start from this preset (`telegram`, ...): links from the docs.
    preset: Option<String>,
}

pub(crate) async fn show_new(session: Session, Query(query): Query<NewQuery>) -> Markup {
    let mut input = WebhookInput::default();
    if let Some(template) = query
        .preset
        .as_deref()
        .and_then(find_preset)
        .and_then(|p| p.text(preset_language(&session.tr)).template)
    {
        template.clone_into(&mut input.template);
    }
    form_page(&session, Mode::Create, &input, &FieldErrors::default())
}

pub(crate) async fn submit_new(
    State(state): State<UiState>,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let session = &form.session;
    let mut input = WebhookInput::from_form(&form.fields);
    if redisplay(
        &mut input,
        form.fields.get("action"),
        form.fields.get("preset"),
        &session.tr,
    ) {
        return Ok(
            form_page(session, Mode::Create, &input, &FieldErrors::default()).into_response(),
        );
    }
    let checked = match check_input(&input, state.allow_private_targets(), &session.tr) {
        Ok(checked) => checked,
        Err(errors) => return Ok(invalid(session, Mode::Create, &input, &errors)),
    };
    if let Err(refused) = check_url_port(&checked.url, state.config.allowed_ports) {
        let mut errors = FieldErrors::default();
        errors.add("url", port_problem(&session.tr, &refused.to_string()));
        return Ok(invalid(session, Mode::Create, &input, &errors));
    }
    let owner = checked.owner.unwrap_or(session.user.id);
    if owner != session.user.id && !session.user.is_admin {
        let mut errors = FieldErrors::default();
        errors.add(
            "user_id",
            FieldError::new(session.tr.t("form-err-owner-admin")),
        );
        return Ok(invalid(session, Mode::Create, &input, &errors));
    }
    // One webhook per submitted form: a reload of the result repeats nothing.
    let sub = match submission::begin(&state.pool, &form, LIST_PATH).await? {
        Begun::Act(sub) => sub,
        Begun::Repeat(response) => return Ok(response),
    };
    let secret = checked
        .secret
        .clone()
        .unwrap_or_else(webhookd_signing::generate_secret);
    let new = new_webhook(checked, owner, secret.clone());
    // Past `limits.max_webhooks_per_user` the API's 409 message is shown.
    let created = match create_within_quota(&state, &new).await {
        Ok(created) => created,
        Err(ApiError::Invalid { .. }) => {
            sub.release(&state.pool).await;
            let mut errors = FieldErrors::default();
            let missing = session
                .tr
                .t_with("form-err-owner-missing", &[("id", owner.into())]);
            errors.add("user_id", FieldError::new(missing));
            return Ok(invalid(session, Mode::Create, &input, &errors));
        }
        Err(other) => return sub.check(&state.pool, Err(other)).await,
    };
    tracing::info!(
        webhook_id = created.id,
        user_id = created.user_id,
        "webhook created in the web UI"
    );
    let flash = Flash::secret(&state.keys, created.id, &secret, true);
    let flash = sub.check(&state.pool, flash).await?;
    sub.finish(&state.pool, &secret_path(created.id), Some(&flash))
        .await
}

fn new_webhook(checked: CheckedWebhook, owner: i64, secret: String) -> NewWebhook {
    NewWebhook {
        user_id: owner,
        name: checked.name,
        url: checked.url,
        events: checked.events,
        secret,
        is_active: checked.is_active,
        timeout_ms: checked.timeout_ms,
        headers: checked.headers,
        template: checked.template,
        batch_max_events: checked.batch_max_events,
        batch_max_wait_ms: checked.batch_max_wait_ms,
        filter: checked.filter,
        retry_schedule: checked.retry_schedule,
        ordering: checked.ordering,
        auth: checked.auth,
        rate_limit_per_s: checked.rate_limit_per_s,
    }
}

pub(crate) async fn show_edit(
    State(state): State<UiState>,
    session: Session,
    WebhookPath(id): WebhookPath,
) -> Result<Markup, UiError> {
    let webhook = store::find_webhook(&state.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    let mut input = WebhookInput::from_webhook(&webhook);
    input.filter_sample = store::latest_event(&state.pool, id)
        .await?
        .and_then(|event| serde_json::to_string_pretty(&event).ok())
        .unwrap_or_default();
    Ok(form_page(
        &session,
        Mode::Edit(id),
        &input,
        &FieldErrors::default(),
    ))
}

pub(crate) async fn submit_edit(
    State(state): State<UiState>,
    WebhookPath(id): WebhookPath,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let session = &form.session;
    let current = store::find_webhook(&state.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    let mut input = WebhookInput::from_form(&form.fields);
    // The edit form has neither a secret (rotation does that) nor an owner.
    input.secret.clear();
    input.owner.clear();
    // Secrets of the stored auth type may be left empty to keep them.
    input.auth.stored = current.auth_view();
    if redisplay(
        &mut input,
        form.fields.get("action"),
        form.fields.get("preset"),
        &session.tr,
    ) {
        return Ok(
            form_page(session, Mode::Edit(id), &input, &FieldErrors::default()).into_response(),
        );
    }
    let checked = match check_input(&input, state.allow_private_targets(), &session.tr) {
        Ok(checked) => checked,
        Err(errors) => return Ok(invalid(session, Mode::Edit(id), &input, &errors)),
    };
    if let Err(refused) = check_url_port(&checked.url, state.config.allowed_ports) {
        let mut errors = FieldErrors::default();
        errors.add("url", port_problem(&session.tr, &refused.to_string()));
        return Ok(invalid(session, Mode::Edit(id), &input, &errors));
    }
    let changes = WebhookChanges {
        name: Some(checked.name),
        url: Some(checked.url),
        events: Some(checked.events),
        secret: None,
        // Only a real change: setting it clears the daemon's `disabled_reason`.
        is_active: (checked.is_active != current.is_active).then_some(checked.is_active),
        timeout_ms: Some(checked.timeout_ms),
        headers: Some(checked.headers),
        template: Some(checked.template),
        batch_max_events: Some(checked.batch_max_events),
        batch_max_wait_ms: Some(checked.batch_max_wait_ms),
        filter: Some(checked.filter),
        retry_schedule: Some(checked.retry_schedule),
        ordering: Some(checked.ordering),
        auth: Some(checked.auth),
        rate_limit_per_s: Some(checked.rate_limit_per_s),
    };
    let back = details_path(id);
    let sub = match submission::begin(&state.pool, &form, &back).await? {
        Begun::Act(sub) => sub,
        Begun::Repeat(response) => return Ok(response),
    };
    let updated = store::update_webhook(&state.pool, session.scope(), id, &changes, &state.keys)
        .await
        .map_err(UiError::from)
        .and_then(|found| found.ok_or(UiError::NotFound("webhook")));
    sub.check(&state.pool, updated).await?;
    tracing::info!(webhook_id = id, "webhook updated in the web UI");
    let flash = Flash::Notice(Notice::Updated);
    sub.finish(&state.pool, &back, Some(&flash)).await
}

/// Handles the form's secondary buttons; true when the form is only to be
/// shown again (nothing saved). A preset is applied in the viewer's
/// language.
fn redisplay(input: &mut WebhookInput, action: &str, preset: &str, tr: &Tr) -> bool {
    match action {
        "apply-preset" => {
            if let Some(preset) = find_preset(preset) {
                let text = preset.text(preset_language(tr));
                input.template = text.template.unwrap_or_default().to_owned();
            }
            true
        }
        "preview" | "check-filter" => true,
        _ => false,
    }
}

fn invalid(session: &Session, mode: Mode, input: &WebhookInput, errors: &FieldErrors) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        form_page(session, mode, input, errors),
    )
        .into_response()
}

/// `POST /webhook/preview` (the script's live preview): `{ok, body}` or
/// `{ok: false, error, detail}` (words in the viewer's language, the
/// technical detail shown as code) for the form's `template` and
/// `preview_event`.
pub(crate) async fn preview_template(form: CsrfForm) -> Json<serde_json::Value> {
    let rendered = render_preview(
        form.fields.get("template"),
        form.fields.get("preview_event"),
        &form.session.tr,
    );
    Json(match rendered {
        Ok(body) => serde_json::json!({"ok": true, "body": body}),
        Err(problem) => serde_json::json!({
            "ok": false,
            "error": problem.text,
            "detail": problem.code,
        }),
    })
}
