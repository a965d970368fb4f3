//! Webhook configuration, as the admin API and UI read and change it.
//!
//! Every query takes a [`Scope`] so ownership is enforced by the SQL itself:
//! a row outside the caller's scope is indistinguishable from a missing one.
//! The secret is never read back here; only the delivery path loads it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use webhookd_events::receiver_auth::{AuthView, SECRET_FIELDS};
use webhookd_events::webhook_secrets::{seal_auth, seal_signing};
use webhookd_events::{DeliveryOrder, SecretKeys, StoredAuth};

use crate::breakers::Breaker;
use crate::StorageError;

/// Whose webhooks a query may see or change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the webhooks this user owns.
    User(i64),
    /// Every webhook (admins).
    All,
}

impl Scope {
    /// The `user_id` to filter on, NULL meaning everyone.
    pub(crate) fn owner(self) -> Option<i64> {
        match self {
            Scope::User(id) => Some(id),
            Scope::All => None,
        }
    }
}

/// A webhook without its secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Webhook {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub is_active: bool,
    pub timeout_ms: Option<i32>,
    pub headers: Json<BTreeMap<String, String>>,
    /// The template's JSON text, as given.
    pub template: Option<String>,
    /// Events per batch; `None`: one request per event.
    pub batch_max_events: Option<i32>,
    /// How long the oldest event of a batch may wait for more.
    pub batch_max_wait_ms: i32,
    /// Why the daemon switched the webhook off (410 Gone, failing too long).
    pub disabled_reason: Option<String>,
    /// Until when the secret replaced by the last rotation is still accepted;
    /// `None` outside a rotation's grace period.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The payload filter as given (SPEC §13); `None`: every event.
    pub filter: Option<Json<serde_json::Value>>,
    /// Delays in seconds between attempts; `None`: the global policy.
    pub retry_schedule: Option<Vec<i32>>,
    /// One delivery at a time, in consumption order, or no order (SPEC §13).
    #[sqlx(try_from = "String")]
    pub ordering: DeliveryOrder,
    /// Authentication to the receiver (SPEC §14) without its secrets: the
    /// read strips them in SQL. A JSON value rather than an [`AuthView`] so a
    /// row edited by hand still reads; [`Webhook::auth_view`] types it.
    pub auth: Option<Json<serde_json::Value>>,
    /// Requests per second at most, across every replica (SPEC §14);
    /// `None`: unlimited.
    pub rate_limit_per_s: Option<i32>,
    /// The circuit breaker (read-only: the recorder moves it).
    #[sqlx(flatten)]
    pub breaker: Breaker,
}

impl Webhook {
    /// The receiver authentication's public view; `None` without one (or
    /// for a stored value no type matches).
    pub fn auth_view(&self) -> Option<AuthView> {
        let value = self.auth.as_ref()?;
        serde_json::from_value(value.0.clone()).ok()
    }
}

/// A validated webhook to insert. Its `Debug` hides the secret.
#[derive(Clone)]
pub struct NewWebhook {
    pub user_id: i64,
    pub name: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub is_active: bool,
    pub timeout_ms: Option<i32>,
    pub headers: BTreeMap<String, String>,
    pub template: Option<String>,
    pub batch_max_events: Option<i32>,
    pub batch_max_wait_ms: i32,
    pub filter: Option<serde_json::Value>,
    pub retry_schedule: Option<Vec<i32>>,
    pub ordering: DeliveryOrder,
    pub auth: Option<StoredAuth>,
    pub rate_limit_per_s: Option<i32>,
}

/// A validated partial update: `None` leaves a column as it is; for nullable
/// columns `Some(None)` clears it. Its `Debug` hides the secret.
#[derive(Clone, Default)]
pub struct WebhookChanges {
    pub name: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub secret: Option<String>,
    pub is_active: Option<bool>,
    pub timeout_ms: Option<Option<i32>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub template: Option<Option<String>>,
    pub batch_max_events: Option<Option<i32>>,
    pub batch_max_wait_ms: Option<i32>,
    pub filter: Option<Option<serde_json::Value>>,
    pub retry_schedule: Option<Option<Vec<i32>>>,
    pub ordering: Option<DeliveryOrder>,
    /// `Some(None)` removes it. A value of the stored type that leaves out a
    /// secret field keeps the stored secret.
    pub auth: Option<Option<StoredAuth>>,
    pub rate_limit_per_s: Option<Option<i32>>,
}

impl fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhook")
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &format_args!("[redacted]"))
            .field("is_active", &self.is_active)
            .field("timeout_ms", &self.timeout_ms)
            .field("headers", &self.headers)
            .field("template", &self.template)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_wait_ms", &self.batch_max_wait_ms)
            .field("filter", &self.filter)
            .field("retry_schedule", &self.retry_schedule)
            .field("ordering", &self.ordering)
            .field("auth", &self.auth)
            .field("rate_limit_per_s", &self.rate_limit_per_s)
            .finish()
    }
}

impl fmt::Debug for WebhookChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookChanges")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("events", &self.events)
            .field(
                "secret",
                &self.secret.as_ref().map(|_| format_args!("[redacted]")),
            )
            .field("is_active", &self.is_active)
            .field("timeout_ms", &self.timeout_ms)
            .field("headers", &self.headers)
            .field("template", &self.template)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_wait_ms", &self.batch_max_wait_ms)
            .field("filter", &self.filter)
            .field("retry_schedule", &self.retry_schedule)
            .field("ordering", &self.ordering)
            .field("auth", &self.auth)
            .field("rate_limit_per_s", &self.rate_limit_per_s)
            .finish()
    }
}

impl WebhookChanges {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        let WebhookChanges {
            name,
            url,
            events,
            secret,
            is_active,
            timeout_ms,
            headers,
            template,
            batch_max_events,
            batch_max_wait_ms,
            filter,
            retry_schedule,
            ordering,
            auth,
            rate_limit_per_s,
        } = self;
        name.is_none()
            && url.is_none()
            && events.is_none()
            && secret.is_none()
            && is_active.is_none()
            && timeout_ms.is_none()
            && headers.is_none()
            && template.is_none()
            && batch_max_events.is_none()
            && batch_max_wait_ms.is_none()
            && filter.is_none()
            && retry_schedule.is_none()
            && ordering.is_none()
            && auth.is_none()
            && rate_limit_per_s.is_none()
    }
}

// An expired previous secret reads as none: nothing sweeps it away, and
// every reader applies the same rule.
const COLUMNS: &str = "id, user_id, name, url, events, is_active, timeout_ms, headers, template,
                       batch_max_events, batch_max_wait_ms, disabled_reason,
                       CASE WHEN previous_secret_expires_at > now()
                            THEN previous_secret_expires_at END AS previous_secret_expires_at,
                       created_at, updated_at, filter, retry_schedule, ordering,
                       auth - '{password,token,client_secret,client_key_pem}'::text[] AS auth,
                       rate_limit_per_s,
                       breaker_failures, breaker_opened_at,
                       CASE WHEN breaker_opened_at IS NOT NULL
                            THEN breaker_next_probe_at END AS breaker_next_probe_at,
                       breaker_probe_id IS NOT NULL AS breaker_probing";

/// The webhooks in scope, oldest first.
pub async fn list_webhooks(pool: &PgPool, scope: Scope) -> Result<Vec<Webhook>, StorageError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhooks
         WHERE ($1::int8 IS NULL OR user_id = $1)
         ORDER BY id"
    );
    let rows = sqlx::query_as::<_, Webhook>(&sql)
        .bind(scope.owner())
        .fetch_all(pool)
        .await?;
    Ok(rows)
}

pub async fn find_webhook(
    pool: &PgPool,
    scope: Scope,
    id: i64,
) -> Result<Option<Webhook>, StorageError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhooks
         WHERE id = $1 AND ($2::int8 IS NULL OR user_id = $2)"
    );
    let row = sqlx::query_as::<_, Webhook>(&sql)
        .bind(id)
        .bind(scope.owner())
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// Inserts the webhook; `None` when its owner does not exist. Checking the
/// owner inside the insert avoids a race with a user being deleted. Its
/// secrets are sealed with `keys` (in clear without keys); the id is drawn
/// first because sealing binds each secret to it.
pub async fn create_webhook(
    pool: &PgPool,
    new: &NewWebhook,
    keys: &SecretKeys,
) -> Result<Option<Webhook>, StorageError> {
    let mut conn = pool.acquire().await?;
    insert_webhook(&mut conn, new, keys).await
}

async fn insert_webhook(
    conn: &mut PgConnection,
    new: &NewWebhook,
    keys: &SecretKeys,
) -> Result<Option<Webhook>, StorageError> {
    let id: i64 = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('webhooks', 'id'))")
        .fetch_one(&mut *conn)
        .await?;
    let secret = seal_signing(keys, id, &new.secret)?;
    let auth = new
        .auth
        .as_ref()
        .map(|a| seal_auth(keys, id, a))
        .transpose()?;
    let sql = format!(
        "INSERT INTO webhooks (id, user_id, name, url, events, secret, is_active, timeout_ms,
                               headers, template, batch_max_events, batch_max_wait_ms,
                               filter, retry_schedule, ordering, auth, rate_limit_per_s)
         SELECT $17, u.id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16
         FROM users u WHERE u.id = $1
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as::<_, Webhook>(&sql)
        .bind(new.user_id)
        .bind(&new.name)
        .bind(&new.url)
        .bind(&new.events)
        .bind(&secret)
        .bind(new.is_active)
        .bind(new.timeout_ms)
        .bind(Json(&new.headers))
        .bind(new.template.as_deref())
        .bind(new.batch_max_events)
        .bind(new.batch_max_wait_ms)
        .bind(new.filter.as_ref().map(Json))
        .bind(new.retry_schedule.as_deref())
        .bind(new.ordering.as_str())
        .bind(auth.as_ref().map(|a| Json(a.as_json())))
        .bind(new.rate_limit_per_s)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row)
}

/// What [`create_webhook_within`] did.
#[derive(Debug)]
pub enum Created {
    Webhook(Box<Webhook>),
    /// The owner does not exist.
    NoOwner,
    /// The owner already has `max_per_user` webhooks.
    AtLimit,
}

/// [`create_webhook`], unless the owner already has `max_per_user` webhooks.
/// The owner's row is locked first (`FOR NO KEY UPDATE`: creates of one user
/// queue, foreign-key checks do not), so the count is read after any
/// concurrent create has committed and two creates cannot both pass at the
/// limit.
pub async fn create_webhook_within(
    pool: &PgPool,
    new: &NewWebhook,
    max_per_user: i64,
    keys: &SecretKeys,
) -> Result<Created, StorageError> {
    let mut tx = pool.begin().await?;
    let owner: Option<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE id = $1 FOR NO KEY UPDATE")
            .bind(new.user_id)
            .fetch_optional(&mut *tx)
            .await?;
    if owner.is_none() {
        return Ok(Created::NoOwner);
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks WHERE user_id = $1")
        .bind(new.user_id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= max_per_user {
        return Ok(Created::AtLimit);
    }
    let Some(row) = insert_webhook(&mut tx, new, keys).await? else {
        return Ok(Created::NoOwner);
    };
    tx.commit().await?;
    Ok(Created::Webhook(Box::new(row)))
}

/// Applies the changes to a webhook in scope; `None` when there is none.
/// Setting `is_active` by hand clears `disabled_reason`: the reason described
/// the daemon's decision, which the user has now overridden. Setting the
/// secret here replaces it outright and ends any rotation's grace period
/// ([`rotate_secret`] is the way to keep the old one valid for a while).
/// New secrets are sealed with `keys`; kept `auth` secrets stay as stored.
pub async fn update_webhook(
    pool: &PgPool,
    scope: Scope,
    id: i64,
    changes: &WebhookChanges,
    keys: &SecretKeys,
) -> Result<Option<Webhook>, StorageError> {
    let secret = changes
        .secret
        .as_deref()
        .map(|plain| seal_signing(keys, id, plain))
        .transpose()?;
    let auth = match &changes.auth {
        Some(Some(auth)) => Some(seal_auth(keys, id, auth)?),
        _ => None,
    };
    let sql = format!(
        "UPDATE webhooks SET
             name = COALESCE($3, name),
             url = COALESCE($4, url),
             events = COALESCE($5, events),
             secret = COALESCE($6, secret),
             previous_secret = CASE WHEN $6 IS NULL THEN previous_secret END,
             previous_secret_expires_at = CASE WHEN $6 IS NULL THEN previous_secret_expires_at END,
             is_active = COALESCE($7, is_active),
             disabled_reason = CASE WHEN $7 IS NULL THEN disabled_reason END,
             timeout_ms = CASE WHEN $8 THEN $9 ELSE timeout_ms END,
             headers = COALESCE($10, headers),
             template = CASE WHEN $11 THEN $12 ELSE template END,
             batch_max_events = CASE WHEN $13 THEN $14 ELSE batch_max_events END,
             batch_max_wait_ms = COALESCE($15, batch_max_wait_ms),
             filter = CASE WHEN $16 THEN $17 ELSE filter END,
             retry_schedule = CASE WHEN $18 THEN $19 ELSE retry_schedule END,
             ordering = COALESCE($20, ordering),
             auth = CASE WHEN NOT $21 THEN auth
                         WHEN auth->>'type' = $22->>'type' THEN
                             COALESCE((SELECT jsonb_object_agg(key, value) FROM jsonb_each(auth)
                                       WHERE key = ANY($23)), '{{}}'::jsonb) || $22
                         ELSE $22 END,
             rate_limit_per_s = CASE WHEN $24 THEN $25 ELSE rate_limit_per_s END,
             updated_at = now()
         WHERE id = $1 AND ($2::int8 IS NULL OR user_id = $2)
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as::<_, Webhook>(&sql)
        .bind(id)
        .bind(scope.owner())
        .bind(changes.name.as_deref())
        .bind(changes.url.as_deref())
        .bind(changes.events.as_deref())
        .bind(secret.as_deref())
        .bind(changes.is_active)
        .bind(changes.timeout_ms.is_some())
        .bind(changes.timeout_ms.flatten())
        .bind(changes.headers.as_ref().map(Json))
        .bind(changes.template.is_some())
        .bind(changes.template.clone().flatten())
        .bind(changes.batch_max_events.is_some())
        .bind(changes.batch_max_events.flatten())
        .bind(changes.batch_max_wait_ms)
        .bind(changes.filter.is_some())
        .bind(changes.filter.as_ref().and_then(|f| f.as_ref().map(Json)))
        .bind(changes.retry_schedule.is_some())
        .bind(changes.retry_schedule.as_ref().and_then(|r| r.as_deref()))
        .bind(changes.ordering.map(DeliveryOrder::as_str))
        .bind(changes.auth.is_some())
        .bind(auth.as_ref().map(|a| Json(a.as_json())))
        .bind(&SECRET_FIELDS[..])
        .bind(changes.rate_limit_per_s.is_some())
        .bind(changes.rate_limit_per_s.flatten())
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// Replaces the secret of a webhook in scope, keeping the old one valid for
/// `grace` (deliveries are signed with both meanwhile); `None` when there is
/// no such webhook. A zero grace drops the old secret at once. Only one old
/// secret is kept: rotating again during a grace period ends the older one.
/// The new secret is sealed with `keys`; the old one moves as stored.
pub async fn rotate_secret(
    pool: &PgPool,
    scope: Scope,
    id: i64,
    secret: &str,
    grace: std::time::Duration,
    keys: &SecretKeys,
) -> Result<Option<Webhook>, StorageError> {
    let secret = seal_signing(keys, id, secret)?;
    let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    // Every right-hand side reads the row as it was before the update.
    let sql = format!(
        "UPDATE webhooks SET
             previous_secret = CASE WHEN $4 > 0 THEN secret END,
             previous_secret_expires_at =
                 CASE WHEN $4 > 0 THEN now() + make_interval(secs => $4::float8) END,
             secret = $3,
             updated_at = now()
         WHERE id = $1 AND ($2::int8 IS NULL OR user_id = $2)
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as::<_, Webhook>(&sql)
        .bind(id)
        .bind(scope.owner())
        .bind(&secret)
        .bind(grace_secs)
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// Flips `is_active`; `None` when no webhook in scope has this id.
pub async fn toggle_webhook(
    pool: &PgPool,
    scope: Scope,
    id: i64,
) -> Result<Option<Webhook>, StorageError> {
    let sql = format!(
        "UPDATE webhooks SET is_active = NOT is_active, disabled_reason = NULL, updated_at = now()
         WHERE id = $1 AND ($2::int8 IS NULL OR user_id = $2)
         RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as::<_, Webhook>(&sql)
        .bind(id)
        .bind(scope.owner())
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

/// The latest event the webhook got, as filters see it (the envelope with
/// `user_id`), to try a filter on; `None` before its first event. A batch
/// is skipped: its body is not one event.
pub async fn latest_event(
    pool: &PgPool,
    webhook_id: i64,
) -> Result<Option<serde_json::Value>, StorageError> {
    let row: Option<(String, Option<i64>)> = sqlx::query_as(
        "SELECT e.body, e.user_id FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.webhook_id = $1 AND d.batch_size IS NULL
         ORDER BY d.created_at DESC LIMIT 1",
    )
    .bind(webhook_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(body, user_id)| webhookd_events::filter_subject(&body, user_id)))
}

/// Deletes a webhook in scope (its deliveries and logs go with it); whether
/// there was one.
pub async fn delete_webhook(pool: &PgPool, scope: Scope, id: i64) -> Result<bool, StorageError> {
    let done =
        sqlx::query("DELETE FROM webhooks WHERE id = $1 AND ($2::int8 IS NULL OR user_id = $2)")
            .bind(id)
            .bind(scope.owner())
            .execute(pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn debug_output_never_shows_a_secret() {
        let new = NewWebhook {
            user_id: 1,
            name: "crm".to_owned(),
            url: "https://example.com/hook".to_owned(),
            events: vec!["task.created".to_owned()],
            secret: SECRET.to_owned(),
            is_active: true,
            timeout_ms: None,
            headers: BTreeMap::new(),
            template: None,
            batch_max_events: None,
            batch_max_wait_ms: 1000,
            filter: None,
            retry_schedule: None,
            ordering: DeliveryOrder::Fifo,
            auth: None,
            rate_limit_per_s: Some(50),
        };
        let changes = WebhookChanges {
            secret: Some(SECRET.to_owned()),
            ..WebhookChanges::default()
        };
        for shown in [format!("{new:?}"), format!("{changes:?}")] {
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        assert!(format!("{new:?}").contains("https://example.com/hook"));
    }

    #[test]
    fn reads_strip_every_secret_field_of_auth() {
        let stripped = format!("'{{{}}}'::text[] AS auth", SECRET_FIELDS.join(","));
        assert!(COLUMNS.contains(&stripped), "{COLUMNS}");
    }
}
