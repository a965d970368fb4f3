//! The web UI's route table.

use axum::extract::State;
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

use super::assets::{
    serve_script, serve_stylesheet, set_security_headers, SCRIPT_PATH, STYLESHEET_PATH,
};
use super::error::UiError;
use super::fields::{FieldErrors, WebhookInput};
use super::flash::{set_flash, Flash, Notice};
use super::form::FormFields;
use super::live_logs::{self, LiveLogs};
use super::login_csrf::LoginCsrf;
use super::login_throttle::LoginThrottle;
use super::session::Session;
use super::state::{UiState, WebhookPath};
use super::webhook_form::{form_page, Mode};
use super::{
    actions, details, edit, error_page, list, login, logs, paths, replay, settings, stats,
};
use crate::graphql::LiveAttempts;
use webhookd_store::webhooks::find_webhook;

/// The web UI's routes, to be merged next to `api::router`; the logs page
/// updates live from `attempts`. `login_csrf_key` signs the sign-in form's
/// tokens (`http.login_csrf_key`; empty: a random key for this process).
pub fn router(state: UiState, attempts: LiveAttempts, login_csrf_key: &str) -> Router {
    let login_guard = login::LoginGuard {
        csrf: LoginCsrf::new(login_csrf_key),
        throttle: LoginThrottle::default(),
    };
    let live = Router::new()
        .route("/webhook/{id}/logs/live", get(live_logs::stream_logs))
        .with_state(LiveLogs {
            ui: state.clone(),
            attempts,
        });
    Router::new()
        .route("/", get(|| async { Redirect::to(paths::LIST_PATH) }))
        .route("/login", get(login::show_login).post(login::sign_in))
        .route(login::RESUME_PATH, get(resume_form))
        .route("/logout", get(login::show_logout).post(login::sign_out))
        .route("/language/{code}", get(settings::switch_language))
        .route(
            paths::SETTINGS_PATH,
            get(settings::show_settings).post(settings::save_settings),
        )
        .route("/webhook", get(|| async { Redirect::to(paths::LIST_PATH) }))
        .route("/webhook/", get(list::show_list))
        .route("/webhook/new", get(edit::show_new).post(edit::submit_new))
        .route("/webhook/preview", post(edit::preview_template))
        .route("/webhook/stats", get(stats::show_stats))
        .route(
            "/webhook/{id}",
            get(details::show_details).post(actions::delete_at_once),
        )
        .route(
            "/webhook/{id}/edit",
            get(edit::show_edit).post(edit::submit_edit),
        )
        .route(
            "/webhook/{id}/delete",
            get(actions::confirm_delete).post(actions::delete_webhook),
        )
        .route(
            "/webhook/{id}/toggle",
            get(back_to_details).post(actions::toggle_webhook),
        )
        .route(
            "/webhook/{id}/test",
            get(actions::show_test_result).post(actions::test_webhook),
        )
        .route("/webhook/{id}/secret", get(details::show_secret))
        .route(
            "/webhook/{id}/rotate-secret",
            get(back_to_details).post(actions::rotate_secret),
        )
        .route(
            "/webhook/{id}/retry",
            get(back_to_details).post(actions::retry_deliveries),
        )
        .route("/webhook/{id}/logs", get(logs::show_logs))
        .route("/webhook/{id}/logs/{log_id}", get(logs::show_attempt))
        .route(STYLESHEET_PATH, get(serve_stylesheet))
        .route(SCRIPT_PATH, get(serve_script))
        .route(
            "/webhook/{id}/replay",
            get(replay::show_replay_result).post(replay::replay_events),
        )
        .fallback(error_page::not_found)
        .with_state(state.clone())
        .layer(Extension(login_guard.clone()))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            error_page::render_errors,
        ))
        .layer(middleware::from_fn_with_state(
            (state, login_guard),
            login::keep_form_over_sign_in,
        ))
        .merge(live)
        .layer(middleware::from_fn(set_security_headers))
}

/// The action routes answer POST only; a GET (a bookmarked or reloaded
/// result page) goes back to the webhook instead of a bare 405.
async fn back_to_details(WebhookPath(id): WebhookPath) -> Redirect {
    Redirect::to(&paths::details_path(id))
}

/// `GET /resume`: after signing in again, the form whose POST found the
/// session ended, filled in with what was typed (nothing is saved until it
/// is sent again); any other form's page, saying to send it again.
async fn resume_form(State(state): State<UiState>, session: Session) -> Result<Response, UiError> {
    let Some(Flash::Resume { path, body }) = session.flash.clone() else {
        return Ok(Redirect::to(paths::LIST_PATH).into_response());
    };
    let fields = FormFields::parse(body.as_bytes());
    let edited: Option<i64> = path
        .strip_prefix("/webhook/")
        .and_then(|rest| rest.strip_suffix("/edit"))
        .and_then(|id| id.parse().ok());
    let page = if path == "/webhook/new" {
        let input = WebhookInput::from_form(&fields);
        form_page(&session, Mode::Create, &input, &FieldErrors::default())
    } else if let Some(id) = edited {
        let current = find_webhook(&state.pool, session.scope(), id)
            .await?
            .ok_or(UiError::NotFound("webhook"))?;
        let mut input = WebhookInput::from_form(&fields);
        // As `edit::submit_edit`: no secret or owner on the edit form; the
        // stored authentication's secrets stay unless retyped.
        input.secret.clear();
        input.owner.clear();
        input.auth.stored = current.auth_view();
        form_page(&session, Mode::Edit(id), &input, &FieldErrors::default())
    } else {
        set_flash(
            &state.pool,
            &session.id_hash,
            &Flash::Notice(Notice::SignedInAgain),
        )
        .await?;
        return Ok(Redirect::to(&path).into_response());
    };
    Ok(page.into_response())
}
