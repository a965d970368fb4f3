//! One-time form submissions: every form carries a random key (`_form`,
//! written by `form::csrf_input`); the first POST of a key does the action
//! and records the redirect it answered, and a POST of the same key again
//! (a refresh of the result, the back button) gets that same redirect
//! without acting again. A POST without a key acts every time.
//! Results a page shows again on reload (a test's answer, a replay's
//! counts) are kept with the key; secrets never are (they go in the flash).
//!
//! ```ignore
//! let sub = match submission::begin(&state.pool, &form, &fallback).await? {
//!     Begun::Act(sub) => sub,
//!     Begun::Repeat(response) => return Ok(response),
//! };
//! let done = sub.check(&state.pool, do_the_action().await).await?;
//! sub.finish(&state.pool, &target, Some(&Flash::Notice(..))).await
//! ```

use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use sqlx::PgPool;

use super::error::UiError;
use super::flash::Flash;
use super::form::{CsrfForm, FORM_KEY_FIELD};
use super::session::random_token;
use webhookd_store::ui_submissions::{self, Claim};

/// What `begin` found.
pub(crate) enum Begun {
    /// A new submission: act, then `finish`.
    Act(Submission),
    /// Done before: its redirect (or, while it still runs, `fallback`).
    Repeat(Response),
}

/// A claimed submission, to be finished or released.
pub(crate) struct Submission {
    session_hash: Vec<u8>,
    key: Option<String>,
}

/// Claims the form's one-time key.
pub(crate) async fn begin(
    pool: &PgPool,
    form: &CsrfForm,
    fallback: &str,
) -> Result<Begun, UiError> {
    let session_hash = form.session.id_hash.clone();
    let sent = form.fields.get(FORM_KEY_FIELD).trim();
    // A form without a key (a script, an old page) acts every time; it gets
    // one of its own for its result page. Ours are 43 characters.
    let fresh;
    let key = if sent.is_empty() || sent.len() > 128 {
        fresh = random_token();
        fresh.as_str()
    } else {
        sent
    };
    Ok(
        match ui_submissions::claim_submission(pool, &session_hash, key).await? {
            Claim::Fresh => Begun::Act(Submission {
                session_hash,
                key: Some(key.to_owned()),
            }),
            Claim::Done(target) => {
                tracing::info!("web UI form submitted again: answered with its first redirect");
                Begun::Repeat(Redirect::to(&target).into_response())
            }
            Claim::InProgress => Begun::Repeat(Redirect::to(fallback).into_response()),
        },
    )
}

impl Submission {
    /// The form's key, when it had one.
    pub(crate) fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Passes the action's outcome through, releasing the key when it
    /// failed so the form can be sent again.
    pub(crate) async fn check<T, E: Into<UiError>>(
        &self,
        pool: &PgPool,
        outcome: Result<T, E>,
    ) -> Result<T, UiError> {
        match outcome {
            Ok(value) => Ok(value),
            Err(e) => {
                self.release(pool).await;
                Err(e.into())
            }
        }
    }

    /// Releases the key (the action did nothing: a refused form).
    pub(crate) async fn release(&self, pool: &PgPool) {
        if let Some(key) = &self.key {
            if let Err(e) = ui_submissions::release_submission(pool, &self.session_hash, key).await
            {
                tracing::warn!(error = %e, "web UI submission key not released");
            }
        }
    }

    /// Records the redirect (and `flash` for the next page) and answers it.
    pub(crate) async fn finish(
        self,
        pool: &PgPool,
        target: &str,
        flash: Option<&Flash>,
    ) -> Result<Response, UiError> {
        self.finish_with(pool, target, None::<&()>, flash).await
    }

    /// As `finish`, keeping `result` for the result page (shown again on a
    /// reload: `result`).
    pub(crate) async fn finish_with<R: Serialize>(
        self,
        pool: &PgPool,
        target: &str,
        result: Option<&R>,
        flash: Option<&Flash>,
    ) -> Result<Response, UiError> {
        let to_json = |v: serde_json::Result<serde_json::Value>| {
            v.map_err(|e| UiError::Internal(e.to_string()))
        };
        let result = result
            .map(|r| to_json(serde_json::to_value(r)))
            .transpose()?;
        let flash = flash
            .map(|f| to_json(serde_json::to_value(f)))
            .transpose()?;
        ui_submissions::finish_submission(
            pool,
            &self.session_hash,
            self.key.as_deref(),
            target,
            result,
            flash,
        )
        .await?;
        Ok(Redirect::to(target).into_response())
    }
}

/// The `?form=KEY` of a result page (`/webhook/{id}/test`, `…/replay`).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ResultQuery {
    form: Option<String>,
}

impl ResultQuery {
    /// What this session's submission `KEY` kept for its result page; `None`
    /// without a key, for another session's or an unknown one.
    pub(crate) async fn kept<R: serde::de::DeserializeOwned>(
        &self,
        pool: &PgPool,
        session_hash: &[u8],
    ) -> Result<Option<R>, UiError> {
        let Some(key) = self.form.as_deref() else {
            return Ok(None);
        };
        let kept = ui_submissions::submission_result(pool, session_hash, key).await?;
        Ok(kept.and_then(|value| serde_json::from_value(value).ok()))
    }
}
