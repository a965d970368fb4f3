//! `POST /webhooks/{id}/test`: a synchronous `webhook.test` delivery, sent
//! like a real one and recorded like one.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use webhookd_events::{SecretKeys, StoredAuth, TEST_EVENT};

use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::quotas::Work;
use super::state::ApiState;
use super::webhooks::WebhookId;
use webhookd_events::delivery::Verdict;
use webhookd_store::test_deliveries::{
    find_delivery_target, record_test_delivery, DeliveryTarget, TestDeliveryRecord,
};
use webhookd_worker::deliver::{AttemptOutcome, Target, TargetRow};

/// What the test delivery's receiver did.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TestResult {
    /// Null when no response came (connection refused, timeout, refused target).
    pub(crate) status_code: Option<u16>,
    pub(crate) response_time_ms: u64,
    /// A 2xx answer.
    pub(crate) is_success: bool,
    /// The response body, cut at `delivery.max_response_bytes`.
    pub(crate) response: Option<String>,
    pub(crate) error_message: Option<String>,
    /// The delivery recorded for this test (its attempt is in the logs).
    pub(crate) delivery_id: Uuid,
}

/// Sends a `webhook.test` event to the webhook now, through the same code as
/// real deliveries (template, both signatures, the webhook's timeout and
/// headers, the private-address policy), and waits for the answer. The attempt
/// is logged like any other. Inactive webhooks can be tested too; a test
/// never switches a webhook off and is not retried on its own.
#[utoipa::path(
    post,
    path = "/webhooks/{id}/test",
    tag = "deliveries",
    params(("id" = i64, Path, description = "The webhook's id")),
    responses(
        (status = 200, description = "The attempt was made (whatever the receiver answered)", body = TestResult),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too many of this user's tests in progress (`limits.max_concurrent_tests_per_user`); see `Retry-After`", body = ErrorBody),
    )
)]
pub(crate) async fn test_webhook(
    State(state): State<ApiState>,
    user: CurrentUser,
    WebhookId(id): WebhookId,
) -> Result<Json<TestResult>, ApiError> {
    send_test(&state, &user, id).await.map(Json)
}

/// Makes and records a test delivery to webhook `id`.
pub(crate) async fn send_test(
    state: &ApiState,
    user: &CurrentUser,
    id: i64,
) -> Result<TestResult, ApiError> {
    let webhook = find_delivery_target(&state.pool, user.scope(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    // Held until the answer is recorded: a test may wait its whole timeout.
    let _slot = state.quotas.begin(
        Work::Test,
        user.0.id,
        state.config.max_concurrent_tests_per_user,
    )?;
    let event_id = Uuid::now_v7();
    let delivery_id = Uuid::now_v7();
    let envelope = serde_json::json!({
        "id": event_id,
        "event": TEST_EVENT,
        "timestamp": Utc::now().timestamp(),
        "data": {"message": "Test delivery from webhookd", "webhook_id": id},
    })
    .to_string()
    .into();
    let default_timeout = state.config.default_timeout;
    let (payload, outcome): (Arc<str>, _) =
        match build_target(id, &webhook, default_timeout, &state.keys) {
            Ok(target) => match state.deliverer.render_body(&target, &envelope) {
                Ok(body) => {
                    let outcome = state
                        .deliverer
                        .attempt(&target, delivery_id, TEST_EVENT, 1, None, &body)
                        .await;
                    (body, outcome)
                }
                Err(too_large) => (envelope.clone(), AttemptOutcome::refused(too_large)),
            },
            // Validated when saved, so only a row edited by hand lands here.
            Err(problem) => (envelope.clone(), not_sent(problem)),
        };
    let is_success = outcome.verdict == Verdict::Success;
    let response_time_ms = u64::try_from(outcome.elapsed.as_millis()).unwrap_or(u64::MAX);
    record_test_delivery(
        &state.pool,
        &TestDeliveryRecord {
            event_id,
            delivery_id,
            webhook_id: id,
            user_id: webhook.user_id,
            event: TEST_EVENT.to_owned(),
            envelope,
            payload,
            status_code: outcome.status_code.map(i32::from),
            response_time_ms: i32::try_from(response_time_ms).unwrap_or(i32::MAX),
            is_success,
            response: outcome.response.clone(),
            error_message: outcome.error.clone(),
        },
    )
    .await?;
    tracing::info!(
        webhook_id = id,
        %delivery_id,
        status = outcome.status_code,
        is_success,
        "test delivery sent"
    );
    Ok(TestResult {
        status_code: outcome.status_code,
        response_time_ms,
        is_success,
        response: outcome.response,
        error_message: outcome.error,
        delivery_id,
    })
}

/// The delivery target of a webhook row, as the dispatcher builds it for
/// real deliveries.
fn build_target(
    id: i64,
    w: &DeliveryTarget,
    default_timeout: Duration,
    keys: &SecretKeys,
) -> Result<Target, String> {
    // The webhook's own auth: a test shows what real deliveries will get.
    let auth = w.auth.as_ref().map(|a| StoredAuth::new(a.0.clone()));
    let row = TargetRow {
        webhook_id: id,
        url: &w.url,
        secret: &w.secret,
        previous_secret: w.previous_secret.as_deref(),
        headers: &w.headers.0,
        template: w.template.as_deref(),
        timeout_ms: w.timeout_ms,
        auth: auth.as_ref(),
    };
    Target::from_row(row, default_timeout, keys)
}

fn not_sent(problem: String) -> AttemptOutcome {
    AttemptOutcome::without_response(problem, Duration::ZERO)
}
