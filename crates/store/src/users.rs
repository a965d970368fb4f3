//! Users and their API tokens.
//!
//! A token is `whk_` followed by the unpadded base64url of 32 random bytes. Only
//! its SHA-256 digest is stored: the token carries 256 bits of entropy, so a
//! fast hash cannot be brute-forced, and lookups stay a single indexed equality.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;

use crate::StorageError;

/// Every API token starts with this, so a leaked one is recognisable by
/// secret scanners and in support tickets.
pub(crate) const TOKEN_PREFIX: &str = "whk_";

const TOKEN_BYTES: usize = 32;
/// The length of `TOKEN_PREFIX` plus 32 bytes in unpadded base64 (43 chars).
const TOKEN_LEN: usize = TOKEN_PREFIX.len() + 43;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    /// The CRM's user id: the `user_id` events carry.
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    /// May publish events over HTTP (`POST /api/v1/events`); admins always may.
    pub can_publish: bool,
    pub(crate) created_at: DateTime<Utc>,
}

impl User {
    /// Whether this user may publish events over HTTP: admins, and users
    /// created or granted as publishers.
    pub fn may_publish(&self) -> bool {
        self.is_admin || self.can_publish
    }
}

/// A row of `webhookd users list`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserSummary {
    pub id: i64,
    pub name: String,
    pub is_admin: bool,
    pub can_publish: bool,
    pub created_at: DateTime<Utc>,
    pub active_tokens: i64,
}

/// A new random API token. Shown to its owner once, never stored.
pub fn generate_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    // ThreadRng is a CSPRNG seeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(TOKEN_PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
    token
}

/// The digest stored in `api_tokens.token_hash`.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `token` has the shape of one we issued: lets garbage be refused
/// without a database round trip.
fn looks_like_token(token: &str) -> bool {
    token.len() == TOKEN_LEN
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Creates a user (not a publisher) and its first token. See
/// [`create_user_with`].
pub async fn create_user(
    pool: &PgPool,
    name: &str,
    id: Option<i64>,
    is_admin: bool,
) -> Result<(User, String), StorageError> {
    create_user_with(pool, name, id, is_admin, false).await
}

/// Creates a user and its first token. With `id` None the user gets the next
/// free id (max + 1); an `id` already taken is a [`StorageError::Conflict`].
/// `can_publish` lets a non-admin publish events over HTTP.
pub async fn create_user_with(
    pool: &PgPool,
    name: &str,
    id: Option<i64>,
    is_admin: bool,
    can_publish: bool,
) -> Result<(User, String), StorageError> {
    let mut tx = pool.begin().await?;
    // Serialises user creation (SHARE ROW EXCLUSIVE conflicts with itself and
    // with plain inserts), so two concurrent `max + 1` cannot pick the same id.
    // Users are created by hand, so the lock is never contended in practice.
    sqlx::query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let id = match id {
        Some(id) => id,
        None => {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM users")
                .fetch_one(&mut *tx)
                .await?
        }
    };
    let user = sqlx::query_as::<_, User>(
        "INSERT INTO users (id, name, is_admin, can_publish) VALUES ($1, $2, $3, $4)
         ON CONFLICT (id) DO NOTHING
         RETURNING id, name, is_admin, can_publish, created_at",
    )
    .bind(id)
    .bind(name)
    .bind(is_admin)
    .bind(can_publish)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| StorageError::Conflict(format!("a user with id {id} already exists")))?;
    let token = insert_token(&mut tx, user.id).await?;
    tx.commit().await?;
    Ok((user, token))
}

pub async fn find_user(pool: &PgPool, id: i64) -> Result<Option<User>, StorageError> {
    let user = sqlx::query_as::<_, User>(
        "SELECT id, name, is_admin, can_publish, created_at FROM users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(user)
}

/// Saves a user's time zone for the web UI (an IANA name the caller has
/// checked), or `None` for the browser's; whether the user exists.
pub async fn set_time_zone(
    pool: &PgPool,
    id: i64,
    time_zone: Option<&str>,
) -> Result<bool, StorageError> {
    let done = sqlx::query("UPDATE users SET time_zone = $2 WHERE id = $1")
        .bind(id)
        .bind(time_zone)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Grants (`true`) or withdraws the right to publish events over HTTP; the
/// user as it now is, `None` when there is no such user.
pub async fn set_publisher(
    pool: &PgPool,
    id: i64,
    can_publish: bool,
) -> Result<Option<User>, StorageError> {
    let user = sqlx::query_as::<_, User>(
        "UPDATE users SET can_publish = $2 WHERE id = $1
         RETURNING id, name, is_admin, can_publish, created_at",
    )
    .bind(id)
    .bind(can_publish)
    .fetch_optional(pool)
    .await?;
    Ok(user)
}

pub async fn list_users(pool: &PgPool) -> Result<Vec<UserSummary>, StorageError> {
    let users = sqlx::query_as::<_, UserSummary>(
        "SELECT u.id, u.name, u.is_admin, u.can_publish, u.created_at,
                COUNT(t.id) FILTER (WHERE t.revoked_at IS NULL) AS active_tokens
         FROM users u
         LEFT JOIN api_tokens t ON t.user_id = u.id
         GROUP BY u.id
         ORDER BY u.id",
    )
    .fetch_all(pool)
    .await?;
    Ok(users)
}

/// Issues one more token for an existing user (older tokens stay valid).
pub async fn issue_token(pool: &PgPool, user_id: i64) -> Result<String, StorageError> {
    let mut tx = pool.begin().await?;
    let token = insert_token(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok(token)
}

/// Revokes every valid token of the user; returns how many were revoked.
pub async fn revoke_tokens(pool: &PgPool, user_id: i64) -> Result<u64, StorageError> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every token of the user and issues a new one, atomically: a failure
/// leaves the old tokens working rather than the user locked out.
pub async fn rotate_token(pool: &PgPool, user_id: i64) -> Result<(String, u64), StorageError> {
    let mut tx = pool.begin().await?;
    let revoked = sqlx::query(
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let token = insert_token(&mut tx, user_id).await?;
    tx.commit().await?;
    Ok((token, revoked))
}

/// The user a valid (issued, not revoked) token belongs to.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<User>, StorageError> {
    if !looks_like_token(token) {
        return Ok(None);
    }
    let user = sqlx::query_as::<_, User>(
        "SELECT u.id, u.name, u.is_admin, u.can_publish, u.created_at
         FROM api_tokens t
         JOIN users u ON u.id = t.user_id
         WHERE t.token_hash = $1 AND t.revoked_at IS NULL",
    )
    .bind(hash_token(token))
    .fetch_optional(pool)
    .await?;
    Ok(user)
}

async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user_id: i64,
) -> Result<String, StorageError> {
    let token = generate_token();
    sqlx::query("INSERT INTO api_tokens (user_id, token_hash) VALUES ($1, $2)")
        .bind(user_id)
        .bind(hash_token(&token))
        .execute(&mut **tx)
        .await?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape_and_differ() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(looks_like_token(&a), "{a}");
        let raw = URL_SAFE_NO_PAD
            .decode(&a[TOKEN_PREFIX.len()..])
            .expect("base64url");
        assert_eq!(raw.len(), TOKEN_BYTES);
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_lookup() {
        let good = generate_token();
        assert!(!looks_like_token(""));
        assert!(!looks_like_token(&good[1..]));
        assert!(!looks_like_token(&format!("{good}x")));
        assert!(!looks_like_token(&good.replace("whk_", "whx_")));
        assert!(!looks_like_token(&format!("whk_{}", "é".repeat(21) + "a")));
    }

    #[test]
    fn the_stored_hash_is_the_sha256_of_the_token() {
        assert_eq!(hash_token("abc").len(), 32);
        assert_eq!(hash_token("abc"), hash_token("abc"));
        assert_ne!(hash_token("abc"), hash_token("abd"));
    }
}
