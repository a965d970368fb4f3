//! Web UI sessions (`ui_sessions`, migration 0004).
//!
//! The browser holds a random cookie value; the table holds its SHA-256, the
//! user, the API token the session was opened with, and the session's CSRF
//! token. A session is valid until `expires_at` and while its API token is not
//! revoked, so `webhookd users revoke|rotate` signs browsers out as well.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};

use crate::users::{hash_token, User};
use crate::StorageError;

/// A live session and its user. Its `Debug` hides the CSRF token.
#[derive(Clone, PartialEq, Eq)]
pub struct UiSession {
    pub user: User,
    /// Compared with the `_csrf` field of every form the session posts.
    pub csrf_token: String,
    /// The user's chosen IANA time zone; `None`: the browser's.
    pub time_zone: Option<String>,
    pub(crate) expires_at: DateTime<Utc>,
}

impl fmt::Debug for UiSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UiSession")
            .field("user", &self.user)
            .field("csrf_token", &format_args!("[redacted]"))
            .field("time_zone", &self.time_zone)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    name: String,
    is_admin: bool,
    can_publish: bool,
    created_at: DateTime<Utc>,
    csrf_token: String,
    time_zone: Option<String>,
    expires_at: DateTime<Utc>,
}

impl From<Row> for UiSession {
    fn from(r: Row) -> Self {
        UiSession {
            user: User {
                id: r.id,
                name: r.name,
                is_admin: r.is_admin,
                can_publish: r.can_publish,
                created_at: r.created_at,
            },
            csrf_token: r.csrf_token,
            time_zone: r.time_zone,
            expires_at: r.expires_at,
        }
    }
}

/// Opens a session for the owner of a valid API token: `session_hash` is the
/// SHA-256 of the cookie value. `None` when the token is unknown or revoked,
/// checked in the same statement so a token revoked meanwhile cannot open one.
pub async fn create_session(
    pool: &PgPool,
    api_token: &str,
    session_hash: &[u8],
    csrf_token: &str,
    lifetime: Duration,
) -> Result<Option<UiSession>, StorageError> {
    let lifetime_secs = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
    let row = sqlx::query_as::<_, Row>(
        "WITH opened AS (
             INSERT INTO ui_sessions (id, user_id, token_id, csrf_token, expires_at)
             SELECT $1, t.user_id, t.id, $2, now() + make_interval(secs => $3::float8)
             FROM api_tokens t
             WHERE t.token_hash = $4 AND t.revoked_at IS NULL
             RETURNING user_id, csrf_token, expires_at
         )
         SELECT u.id, u.name, u.is_admin, u.can_publish, u.created_at, o.csrf_token, u.time_zone, o.expires_at
         FROM opened o JOIN users u ON u.id = o.user_id",
    )
    .bind(session_hash)
    .bind(csrf_token)
    .bind(lifetime_secs)
    .bind(hash_token(api_token))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(UiSession::from))
}

/// The live session whose cookie hashes to `session_hash`.
pub async fn find_session(
    pool: &PgPool,
    session_hash: &[u8],
) -> Result<Option<UiSession>, StorageError> {
    let row = sqlx::query_as::<_, Row>(
        "SELECT u.id, u.name, u.is_admin, u.can_publish, u.created_at, s.csrf_token, u.time_zone, s.expires_at
         FROM ui_sessions s
         JOIN users u ON u.id = s.user_id
         JOIN api_tokens t ON t.id = s.token_id
         WHERE s.id = $1 AND s.expires_at > now() AND t.revoked_at IS NULL",
    )
    .bind(session_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(UiSession::from))
}

/// Ends a session (sign-out); whether there was one.
pub async fn delete_session(pool: &PgPool, session_hash: &[u8]) -> Result<bool, StorageError> {
    let done = sqlx::query("DELETE FROM ui_sessions WHERE id = $1")
        .bind(session_hash)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Deletes up to `batch` expired sessions; returns how many. Called at each
/// sign-in, so a busy UI's table stays small between retention passes (which
/// delete the rest with `delete_expired`); a small batch keeps the sign-in
/// fast whatever has piled up.
pub async fn delete_expired_sessions(pool: &PgPool, batch: i64) -> Result<u64, StorageError> {
    let done = delete_expired(batch).execute(pool).await?;
    Ok(done.rows_affected())
}

/// The statement deleting up to `batch` expired sessions.
pub(crate) fn delete_expired(batch: i64) -> Query<'static, Postgres, PgArguments> {
    sqlx::query(
        "DELETE FROM ui_sessions WHERE id IN (
             SELECT id FROM ui_sessions WHERE expires_at <= now() LIMIT $1
         )",
    )
    .bind(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_csrf_token() {
        let session = UiSession {
            user: User {
                id: 1,
                name: "ada".to_owned(),
                is_admin: false,
                can_publish: false,
                created_at: Utc::now(),
            },
            csrf_token: "csrf-Zx8wQ2pLk7".to_owned(),
            time_zone: None,
            expires_at: Utc::now(),
        };
        let shown = format!("{session:?}");
        assert!(!shown.contains("csrf-Zx8wQ2pLk7"), "{shown}");
        assert!(shown.contains("ada"), "{shown}");
    }
}
