//! The GraphQL object and input types. Outputs are built from the JSON API's
//! views (one mapping from storage rows, in `api`), inputs are turned into
//! the API's request bodies, so both protocols validate and answer alike.

use std::collections::BTreeMap;

use async_graphql::{InputObject, Json, MaybeUndefined, SimpleObject, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::breaker::Breaker;
use crate::api::deliveries::{DeliveryPage, DeliveryView, RetryResult};
use crate::api::json::Nullable;
use crate::api::logs::{LogPage, LogView};
use crate::api::replay::ReplayResult;
use crate::api::stats::{StatsView, SummaryView};
use crate::api::test_delivery::TestResult;
use crate::api::webhooks::{CreateWebhook, UpdateWebhook, WebhookView, WebhookWithSecret};

/// The token's user.
#[derive(SimpleObject)]
pub(crate) struct Me {
    /// The `user_id` that events carry.
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) is_admin: bool,
    /// May publish events over HTTP (`POST /api/v1/events`), as the JSON
    /// API's `GET /api/v1/me` says: admins always may.
    pub(crate) can_publish: bool,
}

/// One event of the catalogue.
#[derive(SimpleObject)]
pub(crate) struct CatalogueEvent {
    /// `entity.action`, also the broker routing key.
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
}

/// A webhook; its secret is only shown by `createWebhook` and `rotateSecret`.
#[derive(SimpleObject)]
pub(crate) struct Webhook {
    pub(crate) id: ID,
    /// The owner.
    pub(crate) user_id: i64,
    pub(crate) name: String,
    pub(crate) url: String,
    /// Event names or wildcards (`task.*`, `*`).
    pub(crate) events: Vec<String>,
    pub(crate) is_active: bool,
    /// Per-webhook timeout; null for the daemon's default.
    pub(crate) timeout_ms: Option<i32>,
    /// Custom headers sent with every delivery, as a JSON object.
    pub(crate) headers: Json<BTreeMap<String, String>>,
    /// The body template's JSON text; null to send the envelope.
    pub(crate) template: Option<String>,
    /// Events sent per batch at most (2 to 1000); null: one request per event.
    pub(crate) batch_max_events: Option<i32>,
    /// How long a batch's oldest event may wait for more (0 to 60000).
    pub(crate) batch_max_wait_ms: i32,
    /// Why the daemon switched the webhook off (410 Gone, failing too long).
    pub(crate) disabled_reason: Option<String>,
    /// Until when the secret replaced by the last rotation is still accepted.
    pub(crate) previous_secret_expires_at: Option<DateTime<Utc>>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
    /// The payload filter (a JSON object); null: every subscribed event.
    pub(crate) filter: Option<Json<serde_json::Value>>,
    /// Seconds to wait before each retry; null: the daemon's policy.
    pub(crate) retry_schedule: Option<Vec<i32>>,
    /// `none`, or `fifo`: one delivery at a time, in consumption order.
    pub(crate) ordering: String,
    /// Authentication to the receiver (a JSON object with its `type` and
    /// public fields; never a password, token, client secret or key); null:
    /// the signature only.
    pub(crate) auth: Option<Json<serde_json::Value>>,
    /// Requests per second at most, across every worker replica; null: no limit.
    pub(crate) rate_limit_per_s: Option<i32>,
    /// The circuit breaker (read-only).
    pub(crate) breaker: Breaker,
}

impl From<WebhookView> for Webhook {
    fn from(w: WebhookView) -> Self {
        Webhook {
            id: ID::from(w.id),
            user_id: w.user_id,
            name: w.name,
            url: w.url,
            events: w.events,
            is_active: w.is_active,
            timeout_ms: w.timeout_ms,
            headers: Json(w.headers),
            template: w.template,
            batch_max_events: w.batch_max_events,
            batch_max_wait_ms: w.batch_max_wait_ms,
            disabled_reason: w.disabled_reason,
            previous_secret_expires_at: w.previous_secret_expires_at,
            created_at: w.created_at,
            updated_at: w.updated_at,
            filter: w.filter.map(Json),
            retry_schedule: w.retry_schedule,
            ordering: w.ordering,
            auth: w.auth.map(Json),
            rate_limit_per_s: w.rate_limit_per_s,
            breaker: w.breaker.into(),
        }
    }
}

/// A webhook with its secret: the answer to creation and rotation, the only
/// times the secret is shown.
#[derive(SimpleObject)]
#[graphql(name = "WebhookWithSecret")]
pub(crate) struct WebhookWithSecretObject {
    #[graphql(flatten)]
    pub(crate) webhook: Webhook,
    /// Receivers verify signatures with it; store it now.
    pub(crate) secret: String,
}

impl From<WebhookWithSecret> for WebhookWithSecretObject {
    fn from(w: WebhookWithSecret) -> Self {
        WebhookWithSecretObject {
            webhook: w.webhook.into(),
            secret: w.secret,
        }
    }
}

/// `createWebhook`'s input: the fields of `POST /api/v1/webhooks`.
#[derive(InputObject)]
pub(crate) struct CreateWebhookInput {
    /// 1 to 200 characters.
    pub(crate) name: String,
    /// An absolute http(s) URL.
    pub(crate) url: String,
    /// Event names or wildcards, at most 50.
    pub(crate) events: Vec<String>,
    /// 16 to 256 printable ASCII characters; generated (`whsec_...`) when absent.
    pub(crate) secret: Option<String>,
    /// Default true.
    pub(crate) is_active: Option<bool>,
    /// 100 to 60000; the daemon's default when absent.
    pub(crate) timeout_ms: Option<i64>,
    /// At most 20 headers (a JSON object of strings); not the ones webhookd sets.
    pub(crate) headers: Option<Json<BTreeMap<String, String>>>,
    /// A body template's JSON text.
    pub(crate) template: Option<String>,
    /// 2 to 1000: send events in batches of up to this many; not with a template.
    pub(crate) batch_max_events: Option<i64>,
    /// 0 to 60000 (default 1000): how long a batch's oldest event may wait.
    pub(crate) batch_max_wait_ms: Option<i64>,
    /// Admins only: create the webhook for another user.
    pub(crate) user_id: Option<i64>,
    /// A payload filter (a JSON object, SPEC §13): only events it matches.
    pub(crate) filter: Option<Json<serde_json::Value>>,
    /// 1 to 30 delays in seconds replacing the daemon's retry policy.
    pub(crate) retry_schedule: Option<Vec<i64>>,
    /// `none` (default) or `fifo`: one delivery at a time, in consumption order.
    pub(crate) ordering: Option<String>,
    /// Authentication to the receiver (a JSON object): `basic` (username,
    /// password), `bearer` (token), `oauth2` (token_url, client_id,
    /// client_secret, scope?) or `mtls` (client_cert_pem, client_key_pem).
    pub(crate) auth: Option<Json<serde_json::Value>>,
    /// 1 to 10000 requests per second at most, across every replica.
    pub(crate) rate_limit_per_s: Option<i64>,
}

impl From<CreateWebhookInput> for CreateWebhook {
    fn from(i: CreateWebhookInput) -> Self {
        CreateWebhook {
            name: Some(i.name),
            url: Some(i.url),
            events: Some(i.events),
            secret: i.secret,
            is_active: i.is_active,
            timeout_ms: i.timeout_ms,
            headers: i.headers.map(|h| h.0),
            template: i.template,
            batch_max_events: i.batch_max_events,
            batch_max_wait_ms: i.batch_max_wait_ms,
            user_id: i.user_id,
            filter: i.filter.map(|f| f.0),
            retry_schedule: i.retry_schedule,
            ordering: i.ordering,
            auth: i.auth.map(|a| a.0),
            rate_limit_per_s: i.rate_limit_per_s,
        }
    }
}

/// `updateWebhook`'s input: absent fields stay as they are; `null` clears
/// `timeoutMs` and `template` (other fields cannot be null).
#[derive(InputObject)]
pub(crate) struct UpdateWebhookInput {
    pub(crate) name: MaybeUndefined<String>,
    pub(crate) url: MaybeUndefined<String>,
    pub(crate) events: MaybeUndefined<Vec<String>>,
    /// Replaces the secret at once, ending any rotation's grace period.
    pub(crate) secret: MaybeUndefined<String>,
    pub(crate) is_active: MaybeUndefined<bool>,
    pub(crate) timeout_ms: MaybeUndefined<i64>,
    pub(crate) headers: MaybeUndefined<Json<BTreeMap<String, String>>>,
    pub(crate) template: MaybeUndefined<String>,
    /// null switches batching off.
    pub(crate) batch_max_events: MaybeUndefined<i64>,
    pub(crate) batch_max_wait_ms: MaybeUndefined<i64>,
    /// null removes the filter.
    pub(crate) filter: MaybeUndefined<Json<serde_json::Value>>,
    /// null returns to the daemon's retry policy.
    pub(crate) retry_schedule: MaybeUndefined<Vec<i64>>,
    /// `none` or `fifo`.
    pub(crate) ordering: MaybeUndefined<String>,
    /// null removes it; with the stored type, a secret left out is kept.
    pub(crate) auth: MaybeUndefined<Json<serde_json::Value>>,
    /// 1 to 10000; null removes the limit.
    pub(crate) rate_limit_per_s: MaybeUndefined<i64>,
}

fn nullable<T>(value: MaybeUndefined<T>) -> Nullable<T> {
    match value {
        MaybeUndefined::Undefined => Nullable::Absent,
        MaybeUndefined::Null => Nullable::Null,
        MaybeUndefined::Value(v) => Nullable::Value(v),
    }
}

impl From<UpdateWebhookInput> for UpdateWebhook {
    fn from(i: UpdateWebhookInput) -> Self {
        UpdateWebhook {
            name: nullable(i.name),
            url: nullable(i.url),
            events: nullable(i.events),
            secret: nullable(i.secret),
            is_active: nullable(i.is_active),
            timeout_ms: nullable(i.timeout_ms),
            headers: nullable(i.headers.map_value(|h| h.0)),
            template: nullable(i.template),
            batch_max_events: nullable(i.batch_max_events),
            batch_max_wait_ms: nullable(i.batch_max_wait_ms),
            filter: nullable(i.filter.map_value(|f| f.0)),
            retry_schedule: nullable(i.retry_schedule),
            ordering: nullable(i.ordering),
            auth: nullable(i.auth.map_value(|a| a.0)),
            rate_limit_per_s: nullable(i.rate_limit_per_s),
        }
    }
}

/// One delivery: an event for a webhook, and where it stands.
#[derive(SimpleObject)]
pub(crate) struct Delivery {
    /// Sent as `X-Webhook-Id` / `webhook-id` on every attempt.
    pub(crate) id: Uuid,
    pub(crate) event_id: Uuid,
    pub(crate) event: String,
    /// `pending`, `succeeded` or `failed`.
    pub(crate) status: String,
    pub(crate) attempts: i32,
    pub(crate) next_attempt_at: Option<DateTime<Utc>>,
    pub(crate) last_status_code: Option<i32>,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

impl From<DeliveryView> for Delivery {
    fn from(d: DeliveryView) -> Self {
        Delivery {
            id: d.id,
            event_id: d.event_id,
            event: d.event,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A page of deliveries, newest first.
#[derive(SimpleObject)]
#[graphql(name = "DeliveryPage")]
pub(crate) struct DeliveryConnection {
    pub(crate) items: Vec<Delivery>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

impl From<DeliveryPage> for DeliveryConnection {
    fn from(p: DeliveryPage) -> Self {
        DeliveryConnection {
            items: p.items.into_iter().map(Delivery::from).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// One delivery attempt, as recorded in the logs.
#[derive(SimpleObject)]
pub(crate) struct LogEntry {
    pub(crate) id: ID,
    /// The delivery this attempt belongs to: the `X-Webhook-Id` it was sent with.
    pub(crate) delivery_id: Uuid,
    pub(crate) event: String,
    /// 1 for the first attempt of a delivery.
    pub(crate) attempt: i32,
    /// Null when no response came (connection error, timeout).
    pub(crate) status_code: Option<i32>,
    pub(crate) response_time_ms: i32,
    pub(crate) is_success: bool,
    pub(crate) error_message: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
}

impl From<LogView> for LogEntry {
    fn from(l: LogView) -> Self {
        LogEntry {
            id: ID::from(l.id),
            delivery_id: l.delivery_id,
            event: l.event,
            attempt: l.attempt,
            status_code: l.status_code,
            response_time_ms: l.response_time_ms,
            is_success: l.is_success,
            error_message: l.error_message,
            created_at: l.created_at,
        }
    }
}

/// A page of attempts, newest first.
#[derive(SimpleObject)]
#[graphql(name = "LogPage")]
pub(crate) struct LogConnection {
    pub(crate) items: Vec<LogEntry>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub(crate) next_cursor: Option<String>,
}

impl From<LogPage> for LogConnection {
    fn from(p: LogPage) -> Self {
        LogConnection {
            items: p.items.into_iter().map(LogEntry::from).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// What a test delivery's receiver did.
#[derive(SimpleObject)]
#[graphql(name = "TestResult")]
pub(crate) struct TestDeliveryResult {
    /// Null when no response came.
    pub(crate) status_code: Option<i32>,
    pub(crate) response_time_ms: i64,
    pub(crate) is_success: bool,
    /// The response body, cut at `delivery.max_response_bytes`.
    pub(crate) response: Option<String>,
    pub(crate) error_message: Option<String>,
    /// The delivery recorded for this test (its attempt is in the logs).
    pub(crate) delivery_id: Uuid,
}

impl From<TestResult> for TestDeliveryResult {
    fn from(t: TestResult) -> Self {
        TestDeliveryResult {
            status_code: t.status_code.map(i32::from),
            response_time_ms: i64::try_from(t.response_time_ms).unwrap_or(i64::MAX),
            is_success: t.is_success,
            response: t.response,
            error_message: t.error_message,
            delivery_id: t.delivery_id,
        }
    }
}

#[derive(SimpleObject)]
#[graphql(name = "RetryResult")]
pub(crate) struct RetryDeliveriesResult {
    /// How many deliveries are pending again.
    pub(crate) retried: i64,
    /// For a range only: more failed deliveries lie in it; call again.
    pub(crate) more: Option<bool>,
}

impl From<RetryResult> for RetryDeliveriesResult {
    fn from(r: RetryResult) -> Self {
        RetryDeliveriesResult {
            retried: i64::try_from(r.retried).unwrap_or(i64::MAX),
            more: r.more,
        }
    }
}

/// Attempts, successes, failures, success rate and response times.
#[derive(SimpleObject)]
pub(crate) struct Summary {
    pub(crate) attempts: i64,
    pub(crate) successes: i64,
    pub(crate) failures: i64,
    /// Successes over attempts, 0 to 1; null without attempts.
    pub(crate) success_rate: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p95_ms: Option<f64>,
}

impl From<SummaryView> for Summary {
    fn from(s: SummaryView) -> Self {
        Summary {
            attempts: s.attempts,
            successes: s.successes,
            failures: s.failures,
            success_rate: s.success_rate,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
        }
    }
}

#[derive(SimpleObject)]
pub(crate) struct HourStats {
    pub(crate) hour: DateTime<Utc>,
    /// Successful attempts.
    pub(crate) success: i64,
    /// Failed attempts.
    pub(crate) failure: i64,
}

#[derive(SimpleObject)]
pub(crate) struct WebhookStats {
    pub(crate) webhook_id: ID,
    pub(crate) name: String,
    pub(crate) summary: Summary,
}

#[derive(SimpleObject)]
pub(crate) struct EventStats {
    pub(crate) event: String,
    pub(crate) summary: Summary,
}

/// Attempts per hour, and per webhook and event, over a period.
#[derive(SimpleObject)]
pub(crate) struct Stats {
    /// `24h` or `7d`.
    pub(crate) period: &'static str,
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    /// Every hour of the period, oldest first, zeros included.
    pub(crate) hourly: Vec<HourStats>,
    pub(crate) total: Summary,
    pub(crate) webhooks: Vec<WebhookStats>,
    pub(crate) events: Vec<EventStats>,
}

impl From<StatsView> for Stats {
    fn from(s: StatsView) -> Self {
        Stats {
            period: s.period,
            from: s.from,
            to: s.to,
            hourly: s
                .hourly
                .into_iter()
                .map(|h| HourStats {
                    hour: h.hour,
                    success: h.success,
                    failure: h.failure,
                })
                .collect(),
            total: s.total.into(),
            webhooks: s
                .webhooks
                .into_iter()
                .map(|w| WebhookStats {
                    webhook_id: ID::from(w.webhook_id),
                    name: w.name,
                    summary: w.stats.into(),
                })
                .collect(),
            events: s
                .events
                .into_iter()
                .map(|e| EventStats {
                    event: e.event,
                    summary: e.stats.into(),
                })
                .collect(),
        }
    }
}

/// What `replayEvents` did.
#[derive(SimpleObject)]
#[graphql(name = "ReplayResult")]
pub(crate) struct ReplayEventsResult {
    /// New deliveries made.
    pub(crate) replayed: i64,
    /// Matching events the webhook already has a delivery of: not sent again.
    pub(crate) skipped_existing: i64,
    /// The window holds more matching events than one call takes.
    pub(crate) more: bool,
    /// When `more`: the `since` of the next call.
    pub(crate) next_since: Option<DateTime<Utc>>,
}

impl From<ReplayResult> for ReplayEventsResult {
    fn from(r: ReplayResult) -> Self {
        ReplayEventsResult {
            replayed: i64::try_from(r.replayed).unwrap_or(i64::MAX),
            skipped_existing: i64::try_from(r.skipped_existing).unwrap_or(i64::MAX),
            more: r.more,
            next_since: r.next_since,
        }
    }
}
