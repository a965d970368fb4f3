//! `Mutation`: the JSON API's writes, through the same functions, so the
//! same rules, field errors and ownership apply.

use async_graphql::{Context, Object, Result, ID};
use chrono::{DateTime, Utc};

use super::caller::current_user;
use super::error::Gql;
use super::query::webhook_id;
use super::state::GraphqlState;
use super::types::{
    CreateWebhookInput, ReplayEventsResult, RetryDeliveriesResult, TestDeliveryResult,
    UpdateWebhookInput, Webhook, WebhookWithSecretObject,
};
use crate::api::deliveries::{self, RetryRequest};
use crate::api::replay::{self, ReplayRequest};
use crate::api::secrets::{self, RotateSecret};
use crate::api::{test_delivery, webhooks};

fn state<'a>(ctx: &Context<'a>) -> Result<&'a GraphqlState> {
    ctx.data::<GraphqlState>()
}

pub(crate) struct Mutation;

#[Object]
impl Mutation {
    /// Creates a webhook; the answer is the only time its secret is shown
    /// (with `rotateSecret`'s).
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookInput,
    ) -> Result<WebhookWithSecretObject> {
        let user = current_user(ctx)?;
        webhooks::create(&state(ctx)?.api, user, input.into())
            .await
            .gql()
            .map(WebhookWithSecretObject::from)
    }

    /// Changes the given fields of a webhook.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookInput,
    ) -> Result<Webhook> {
        let user = current_user(ctx)?;
        let id = webhook_id(&id)?;
        webhooks::update(&state(ctx)?.api, user, id, input.into())
            .await
            .gql()
            .map(Webhook::from)
    }

    /// Deletes a webhook with its deliveries and logs; true when done.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let user = current_user(ctx)?;
        let id = webhook_id(&id)?;
        webhooks::delete(&state(ctx)?.api, user, id).await.gql()?;
        Ok(true)
    }

    /// Switches a webhook on or off (and clears `disabledReason`).
    async fn toggle_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Webhook> {
        let user = current_user(ctx)?;
        let id = webhook_id(&id)?;
        webhooks::toggle(&state(ctx)?.api, user, id)
            .await
            .gql()
            .map(Webhook::from)
    }

    /// Sends a `webhook.test` delivery now and answers what the receiver did.
    async fn test_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<TestDeliveryResult> {
        let user = current_user(ctx)?;
        let id = webhook_id(&id)?;
        test_delivery::send_test(&state(ctx)?.api, user, id)
            .await
            .gql()
            .map(TestDeliveryResult::from)
    }

    /// Makes deliveries pending and due now: one by `deliveryId`, every
    /// failed one with `allFailed: true`, or those that failed between
    /// `failedSince` (inclusive) and `failedUntil` (at most 10,000 per call;
    /// `more` says to call again).
    async fn retry_deliveries(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        delivery_id: Option<String>,
        all_failed: Option<bool>,
        failed_since: Option<DateTime<Utc>>,
        failed_until: Option<DateTime<Utc>>,
    ) -> Result<RetryDeliveriesResult> {
        let user = current_user(ctx)?;
        let id = super::query::webhook_id(&webhook_id)?;
        let request = RetryRequest {
            delivery_id,
            all_failed,
            failed_since,
            failed_until,
        };
        deliveries::retry(&state(ctx)?.api, user, id, request)
            .await
            .gql()
            .map(RetryDeliveriesResult::from)
    }

    /// A new secret (given, or generated); the old one stays valid for
    /// `gracePeriodSecs` (0 to 604800, default 86400).
    async fn rotate_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
        secret: Option<String>,
        grace_period_secs: Option<i64>,
    ) -> Result<WebhookWithSecretObject> {
        let user = current_user(ctx)?;
        let id = webhook_id(&id)?;
        let body = RotateSecret {
            secret,
            grace_period_secs,
        };
        secrets::rotate(&state(ctx)?.api, user, id, body)
            .await
            .gql()
            .map(WebhookWithSecretObject::from)
    }

    /// Sends the webhook the stored events of `[since, until)` it would have
    /// matched and has no delivery of yet, oldest first, at most 10,000 per
    /// call (`nextSince` continues).
    async fn replay_events(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<ReplayEventsResult> {
        let user = current_user(ctx)?;
        let id = super::query::webhook_id(&webhook_id)?;
        replay::replay(
            &state(ctx)?.api,
            user,
            id,
            ReplayRequest {
                since: Some(since),
                until,
            },
        )
        .await
        .gql()
        .map(ReplayEventsResult::from)
    }
}
