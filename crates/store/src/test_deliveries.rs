//! Test deliveries (`POST /webhooks/{id}/test`, the UI's Test button): the
//! webhook's delivery settings, and the record of the one attempt, written
//! like a real delivery's so it shows in the logs and the statistics.

use std::fmt;

use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use webhookd_events::StoredAuth;

use crate::webhooks::Scope;
use crate::StorageError;

/// What a delivery to one webhook needs, secrets included (its `Debug`
/// hides them).
#[derive(Clone, sqlx::FromRow)]
pub struct DeliveryTarget {
    pub user_id: i64,
    pub url: String,
    pub secret: String,
    /// The secret replaced by a rotation, while its grace period runs.
    pub previous_secret: Option<String>,
    pub headers: Json<serde_json::Value>,
    pub template: Option<String>,
    pub timeout_ms: Option<i32>,
    /// Authentication to the receiver, secrets included (SPEC §14).
    pub auth: Option<Json<serde_json::Value>>,
}

impl fmt::Debug for DeliveryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryTarget")
            .field("user_id", &self.user_id)
            .field("url", &self.url)
            .field("secret", &format_args!("[redacted]"))
            .field(
                "previous_secret",
                &self
                    .previous_secret
                    .as_ref()
                    .map(|_| format_args!("[redacted]")),
            )
            .field("headers", &self.headers)
            .field("template", &self.template)
            .field("timeout_ms", &self.timeout_ms)
            .field(
                "auth",
                &self.auth.as_ref().map(|a| StoredAuth::new(a.0.clone())),
            )
            .finish()
    }
}

/// The delivery settings of a webhook in scope.
pub async fn find_delivery_target(
    pool: &PgPool,
    scope: Scope,
    webhook_id: i64,
) -> Result<Option<DeliveryTarget>, StorageError> {
    let row = sqlx::query_as::<_, DeliveryTarget>(
        "SELECT user_id, url, secret,
                CASE WHEN previous_secret_expires_at > now() THEN previous_secret END
                    AS previous_secret,
                headers, template, timeout_ms, auth
         FROM webhooks
         WHERE id = $1 AND ($2::int8 IS NULL OR user_id = $2)",
    )
    .bind(webhook_id)
    .bind(scope.owner())
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

/// A test delivery after its one attempt.
#[derive(Debug, Clone)]
pub struct TestDeliveryRecord {
    pub event_id: Uuid,
    pub delivery_id: Uuid,
    pub webhook_id: i64,
    /// The webhook's owner: the test event is private to them, like a CRM
    /// event carrying their `user_id`.
    pub user_id: i64,
    pub event: String,
    /// The envelope, as stored for every event.
    pub envelope: std::sync::Arc<str>,
    /// The body actually sent (the envelope or the rendered template).
    pub payload: std::sync::Arc<str>,
    pub status_code: Option<i32>,
    pub response_time_ms: i32,
    pub is_success: bool,
    pub response: Option<String>,
    pub error_message: Option<String>,
}

/// Writes the event, its delivery in its final state (one attempt made,
/// `succeeded` or `failed`: a test is never retried on its own) and the
/// attempt's log row, in one transaction. Returns the log row's id.
///
/// Unlike a real delivery, a test leaves the webhook alone: a 410 does not
/// switch it off and a failure does not start its failing streak, because
/// testing a half-configured receiver is what the button is for.
///
/// A log row whose day has no `webhook_logs` partition gets one, and the
/// transaction is tried once more.
pub async fn record_test_delivery(
    pool: &PgPool,
    record: &TestDeliveryRecord,
) -> Result<i64, StorageError> {
    match record_test_delivery_once(pool, record).await {
        Err(e) if crate::partitions::is_missing_partition(&e) => {
            let mut conn = pool.acquire().await?;
            crate::partitions::ensure_for_now(&mut conn).await?;
            record_test_delivery_once(pool, record).await
        }
        result => result,
    }
}

async fn record_test_delivery_once(
    pool: &PgPool,
    record: &TestDeliveryRecord,
) -> Result<i64, StorageError> {
    let mut tx = pool.begin().await?;
    // Stands in for a foreign key (migration 0005): a webhook deleted while
    // its test ran gets no rows.
    let exists: Option<i64> =
        sqlx::query_scalar("SELECT id FROM webhooks WHERE id = $1 FOR KEY SHARE")
            .bind(record.webhook_id)
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_none() {
        return Err(StorageError::Conflict(
            "the webhook was deleted while it was being tested".to_owned(),
        ));
    }
    sqlx::query("INSERT INTO events (id, event, user_id, body) VALUES ($1, $2, $3, $4)")
        .bind(record.event_id)
        .bind(&record.event)
        .bind(record.user_id)
        .bind(&*record.envelope)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, last_status_code,
                                 last_error)
         VALUES ($1, $2, $3, $4, 1, $5, $6)",
    )
    .bind(record.delivery_id)
    .bind(record.event_id)
    .bind(record.webhook_id)
    .bind(if record.is_success {
        "succeeded"
    } else {
        "failed"
    })
    .bind(record.status_code)
    .bind(record.error_message.as_deref())
    .execute(&mut *tx)
    .await?;
    let log_id: i64 = sqlx::query_scalar(
        "INSERT INTO webhook_logs (delivery_id, webhook_id, event, attempt, status_code,
             response_time_ms, is_success, payload, response, error_message)
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9)
         RETURNING id",
    )
    .bind(record.delivery_id)
    .bind(record.webhook_id)
    .bind(&record.event)
    .bind(record.status_code)
    .bind(record.response_time_ms)
    .bind(record.is_success)
    .bind(&*record.payload)
    .bind(record.response.as_deref())
    .bind(record.error_message.as_deref())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(log_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let target = DeliveryTarget {
            user_id: 1,
            url: "https://example.com/hook".to_owned(),
            secret: "whsec_current_MfKQ9r8GKYqrTwjUPD8".to_owned(),
            previous_secret: Some("whsec_previous_ILPZIo2LaLaSw".to_owned()),
            headers: Json(serde_json::json!({})),
            template: None,
            timeout_ms: None,
            auth: Some(Json(
                serde_json::json!({"type": "bearer", "token": "whsec_token"}),
            )),
        };
        let shown = format!("{target:?}");
        assert!(!shown.contains("whsec_"), "{shown}");
        assert!(shown.contains("https://example.com/hook"), "{shown}");
    }
}
