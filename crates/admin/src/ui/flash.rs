//! The flash: what an action leaves for the page it redirects to (a
//! notice, a new secret shown once, a form kept over a new sign-in). It is
//! kept with the session (`ui_sessions.flash`) and read once, by the next
//! page a browser navigates to; never in the URL, so a link cannot make a
//! page claim anything.

use maud::{html, Markup};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::error::UiError;
use super::i18n::Tr;
use webhookd_events::secret_box::SecretKeys;
use webhookd_store::ui_submissions;

/// What an action did, shown on the page it redirects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Notice {
    Created,
    Updated,
    Deleted,
    SwitchedOn,
    SwitchedOff,
    Retried(u64),
    /// Retried a range's first deliveries; more failed in it.
    RetriedMore(u64),
    /// Signed in again after the session ended mid-form: send it again.
    SignedInAgain,
}

impl Notice {
    fn text(self, tr: &Tr) -> String {
        match self {
            Notice::Created => tr.t("notice-created"),
            Notice::Updated => tr.t("notice-updated"),
            Notice::Deleted => tr.t("notice-deleted"),
            Notice::SwitchedOn => tr.t("notice-switched-on"),
            Notice::SwitchedOff => tr.t("notice-switched-off"),
            Notice::Retried(n) => tr.t_with("notice-retried", &[("count", n.into())]),
            Notice::RetriedMore(n) => tr.t_with("notice-retried-more", &[("count", n.into())]),
            Notice::SignedInAgain => tr.t("notice-signed-in-again"),
        }
    }

    pub(crate) fn render(tr: &Tr, notice: Option<Notice>) -> Markup {
        html! {
            @if let Some(notice) = notice {
                div class="notice" role="status" { (notice.text(tr)) }
            }
        }
    }
}

/// One message for the next page.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Flash {
    Notice(Notice),
    /// A webhook's new signing secret, for the one page that shows it;
    /// sealed like the webhook's own secrets (`secrets.encryption_keys`),
    /// since it waits in the database until that page is loaded.
    Secret {
        webhook_id: i64,
        sealed: String,
        created: bool,
    },
    /// A form posted after the session ended (`path`, urlencoded `body`
    /// without its tokens), given back after signing in again.
    Resume {
        path: String,
        body: String,
    },
}

impl Flash {
    /// The flash showing webhook `webhook_id`'s new `secret` once.
    pub(crate) fn secret(
        keys: &SecretKeys,
        webhook_id: i64,
        secret: &str,
        created: bool,
    ) -> Result<Flash, UiError> {
        let sealed = keys
            .seal(secret, &secret_context(webhook_id))
            .map_err(|e| UiError::Internal(e.to_string()))?;
        Ok(Flash::Secret {
            webhook_id,
            sealed,
            created,
        })
    }

    /// The secret of a `Secret` flash for webhook `id`, in clear, and
    /// whether the webhook was just created.
    pub(crate) fn open_secret(&self, keys: &SecretKeys, id: i64) -> Option<(String, bool)> {
        match self {
            Flash::Secret {
                webhook_id,
                sealed,
                created,
            } if *webhook_id == id => keys
                .open(sealed, &secret_context(id))
                .ok()
                .map(|secret| (secret, *created)),
            _ => None,
        }
    }

    pub(crate) fn notice(&self) -> Option<Notice> {
        match self {
            Flash::Notice(notice) => Some(*notice),
            _ => None,
        }
    }
}

/// A sealed flash secret opens only as this webhook's flash secret.
fn secret_context(webhook_id: i64) -> Vec<u8> {
    format!("webhookd:ui-flash:{webhook_id}:signing").into_bytes()
}

/// Leaves `flash` for the session's next page.
pub(crate) async fn set_flash(
    pool: &PgPool,
    session_hash: &[u8],
    flash: &Flash,
) -> Result<(), UiError> {
    let value = serde_json::to_value(flash).map_err(|e| UiError::Internal(e.to_string()))?;
    ui_submissions::set_flash(pool, session_hash, value).await?;
    Ok(())
}

/// Takes the session's flash (an unreadable one, from an older version, is
/// dropped).
pub(crate) async fn take_flash(
    pool: &PgPool,
    session_hash: &[u8],
) -> Result<Option<Flash>, UiError> {
    let taken = ui_submissions::take_flash(pool, session_hash).await?;
    Ok(taken.and_then(|value| serde_json::from_value(value).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flashes_round_trip_through_json() {
        for flash in [
            Flash::Notice(Notice::RetriedMore(10_000)),
            Flash::Notice(Notice::Deleted),
            Flash::Secret {
                webhook_id: 3,
                sealed: "s".to_owned(),
                created: true,
            },
            Flash::Resume {
                path: "/webhook/new".to_owned(),
                body: "name=a".to_owned(),
            },
        ] {
            let value = serde_json::to_value(&flash).unwrap();
            assert!(serde_json::from_value::<Flash>(value).unwrap() == flash);
        }
    }
}
