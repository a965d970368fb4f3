//! What the web UI keeps with a session between a form's POST and the page
//! it redirects to (migration 0020): the session's flash (one message for
//! the next page, read once) and the one-time keys of submitted forms.

use sqlx::PgPool;

use crate::StorageError;

/// Where a form's one-time key stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: the action is the caller's to do.
    Fresh,
    /// Already done: the redirect its first submission answered.
    Done(String),
    /// Another request with this key is still at work (a double click).
    InProgress,
}

/// Claims `form_key` for the session: `Fresh` once, then what it became.
pub async fn claim_submission(
    pool: &PgPool,
    session_hash: &[u8],
    form_key: &str,
) -> Result<Claim, StorageError> {
    let inserted: Option<bool> = sqlx::query_scalar(
        "INSERT INTO ui_submissions (session_id, form_key) VALUES ($1, $2)
         ON CONFLICT DO NOTHING RETURNING true",
    )
    .bind(session_hash)
    .bind(form_key)
    .fetch_optional(pool)
    .await?;
    if inserted.is_some() {
        return Ok(Claim::Fresh);
    }
    let done: Option<Option<String>> = sqlx::query_scalar(
        "SELECT redirect_to FROM ui_submissions WHERE session_id = $1 AND form_key = $2",
    )
    .bind(session_hash)
    .bind(form_key)
    .fetch_optional(pool)
    .await?;
    Ok(match done.flatten() {
        Some(target) => Claim::Done(target),
        None => Claim::InProgress,
    })
}

/// Records what a claimed submission did and sets the session's flash, in
/// one transaction.
pub async fn finish_submission(
    pool: &PgPool,
    session_hash: &[u8],
    form_key: Option<&str>,
    redirect_to: &str,
    result: Option<serde_json::Value>,
    flash: Option<serde_json::Value>,
) -> Result<(), StorageError> {
    let mut tx = pool.begin().await?;
    if let Some(form_key) = form_key {
        sqlx::query(
            "UPDATE ui_submissions SET redirect_to = $3, result = $4
             WHERE session_id = $1 AND form_key = $2",
        )
        .bind(session_hash)
        .bind(form_key)
        .bind(redirect_to)
        .bind(result)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(flash) = flash {
        sqlx::query("UPDATE ui_sessions SET flash = $2 WHERE id = $1")
            .bind(session_hash)
            .bind(flash)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Frees a key whose action failed, so the form can be sent again.
pub async fn release_submission(
    pool: &PgPool,
    session_hash: &[u8],
    form_key: &str,
) -> Result<(), StorageError> {
    sqlx::query(
        "DELETE FROM ui_submissions
         WHERE session_id = $1 AND form_key = $2 AND redirect_to IS NULL",
    )
    .bind(session_hash)
    .bind(form_key)
    .execute(pool)
    .await?;
    Ok(())
}

/// The result a finished submission kept for its page.
pub async fn submission_result(
    pool: &PgPool,
    session_hash: &[u8],
    form_key: &str,
) -> Result<Option<serde_json::Value>, StorageError> {
    let result: Option<Option<serde_json::Value>> = sqlx::query_scalar(
        "SELECT result FROM ui_submissions WHERE session_id = $1 AND form_key = $2",
    )
    .bind(session_hash)
    .bind(form_key)
    .fetch_optional(pool)
    .await?;
    Ok(result.flatten())
}

/// Sets the session's flash (replacing any unread one).
pub async fn set_flash(
    pool: &PgPool,
    session_hash: &[u8],
    flash: serde_json::Value,
) -> Result<(), StorageError> {
    sqlx::query("UPDATE ui_sessions SET flash = $2 WHERE id = $1")
        .bind(session_hash)
        .bind(flash)
        .execute(pool)
        .await?;
    Ok(())
}

/// Takes the session's flash: whoever reads it first gets it, once.
pub async fn take_flash(
    pool: &PgPool,
    session_hash: &[u8],
) -> Result<Option<serde_json::Value>, StorageError> {
    let taken: Option<serde_json::Value> = sqlx::query_scalar(
        "UPDATE ui_sessions s SET flash = NULL
         FROM (SELECT id, flash FROM ui_sessions WHERE id = $1 FOR UPDATE) old
         WHERE s.id = old.id AND old.flash IS NOT NULL
         RETURNING old.flash",
    )
    .bind(session_hash)
    .fetch_optional(pool)
    .await?;
    Ok(taken)
}
