//! `limits.max_webhooks_per_user` (SPEC §15), applied by every way of
//! creating a webhook: the API, GraphQL and the web UI.

use webhookd_store::webhooks::{create_webhook_within, Created, NewWebhook, Webhook};

use super::error::ApiError;
use super::quotas::{Quota, QuotaRefused};
use super::state::ApiState;

/// Creates `new` unless its owner already has `limits.max_webhooks_per_user`
/// webhooks (409 naming the limit); checked and inserted under a lock on the
/// owner's row, so concurrent creates cannot both pass at the limit.
pub(crate) async fn create_within_quota(
    state: &ApiState,
    new: &NewWebhook,
) -> Result<Webhook, ApiError> {
    let limit = state.config.max_webhooks_per_user;
    match create_webhook_within(&state.pool, new, limit, &state.keys).await? {
        Created::Webhook(created) => Ok(*created),
        Created::NoOwner => Err(ApiError::invalid(
            "user_id",
            format!("no user with id {}", new.user_id),
        )),
        Created::AtLimit => {
            QuotaRefused {
                quota: Quota::Webhooks,
                user_id: new.user_id,
                limit: usize::try_from(limit).unwrap_or(usize::MAX),
            }
            .emit(&state.quotas);
            Err(ApiError::Conflict(format!(
            "this user already has {limit} webhooks, the most limits.max_webhooks_per_user allows; delete one first"
        )))
        }
    }
}
