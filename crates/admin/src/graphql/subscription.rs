//! `Subscription`: live events and live delivery attempts, over the
//! WebSocket (`ws.rs`). Each stream holds a [`Slot`] under its user's cap
//! for as long as it runs.

use async_graphql::{Context, Json, Result, SimpleObject, Subscription as SubscriptionObject, ID};
use chrono::{DateTime, Utc};
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhookd_events::EventPattern;

use super::caller::{current_user, Connection};
use super::error::{coded, Gql, UNAVAILABLE};
use super::live_events::EventFilter;
use super::metrics::Kind;
use super::query::webhook_id;
use super::slots::Slot;
use super::state::GraphqlState;
use crate::api::error::ApiError;
use crate::api::webhooks;

/// An event as published to the broker.
#[derive(SimpleObject)]
pub(crate) struct Event {
    pub(crate) id: Uuid,
    /// The event's name, e.g. `task.created`.
    pub(crate) event: String,
    /// Unix seconds.
    pub(crate) timestamp: i64,
    /// The CRM user the event is private to; null for everyone's.
    pub(crate) user_id: Option<i64>,
    pub(crate) data: Json<serde_json::Value>,
}

/// One attempt of a delivery, as recorded in the webhook's logs.
#[derive(SimpleObject)]
pub(crate) struct DeliveryAttempt {
    /// The log entry's id.
    pub(crate) id: ID,
    pub(crate) webhook_id: ID,
    pub(crate) delivery_id: Uuid,
    pub(crate) event: String,
    pub(crate) attempt: i32,
    /// Null when no response came.
    pub(crate) status_code: Option<i32>,
    pub(crate) is_success: bool,
    pub(crate) response_time_ms: i32,
    pub(crate) error_message: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
}

/// The connection's cut-off switch; a fresh one where there is no
/// connection (nothing then to cut off).
fn cut_off(ctx: &Context<'_>) -> CancellationToken {
    ctx.data_opt::<Connection>()
        .map(|c| c.cut_off.clone())
        .unwrap_or_default()
}

/// Keeps `slot` for as long as `stream` is consumed.
fn holding<S: Stream + Send>(stream: S, slot: Slot) -> impl Stream<Item = S::Item> + Send {
    stream.map(move |item| {
        let _held = &slot;
        item
    })
}

pub(crate) struct Subscription;

#[SubscriptionObject]
impl Subscription {
    /// Every event published from now on whose name matches `types` (names
    /// or wildcards such as `task.*`; every event when omitted) and that the
    /// caller may see: an event with a `userId` only its user and admins.
    async fn events(
        &self,
        ctx: &Context<'_>,
        types: Option<Vec<String>>,
    ) -> Result<impl Stream<Item = Event>> {
        let user = &current_user(ctx)?.0;
        let state = ctx.data::<GraphqlState>()?;
        let patterns = types
            .map(|types| {
                types
                    .iter()
                    .map(|t| {
                        EventPattern::parse(t)
                            .map_err(|e| ApiError::invalid("types", format!("`types`: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .gql()?;
        let mut slot = state.slots.take(Kind::Events, user.id)?;
        let filter = EventFilter {
            viewer_id: user.id,
            viewer_is_admin: user.is_admin,
            patterns,
        };
        let feed = state
            .events
            .subscribe(filter, cut_off(ctx))
            .await
            .map_err(|e| coded(UNAVAILABLE, e.to_string()))?;
        slot.open();
        let events = feed.map(|event| Event {
            id: event.id,
            event: event.event.to_owned(),
            timestamp: event.timestamp,
            user_id: event.user_id,
            data: Json(event.data.clone()),
        });
        Ok(holding(events, slot))
    }

    /// The webhook's attempts as they are recorded, from now on (its owner
    /// and admins; for others it is NOT_FOUND like a missing webhook).
    async fn delivery_attempts(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
    ) -> Result<impl Stream<Item = DeliveryAttempt>> {
        let user = current_user(ctx)?;
        let state = ctx.data::<GraphqlState>()?;
        let id = self::webhook_id(&webhook_id)?;
        webhooks::show(&state.api, user, id).await.gql()?;
        let mut slot = state.slots.take(Kind::DeliveryAttempts, user.0.id)?;
        let feed = state
            .attempts
            .watch(id, user.0.id, cut_off(ctx))
            .await
            .map_err(ApiError::from)
            .gql()?;
        slot.open();
        let attempts = feed.map(|a| DeliveryAttempt {
            id: ID::from(a.id),
            webhook_id: ID::from(a.webhook_id),
            delivery_id: a.delivery_id,
            event: a.event.clone(),
            attempt: a.attempt,
            status_code: a.status_code,
            is_success: a.is_success,
            response_time_ms: a.response_time_ms,
            error_message: a.error_message.clone(),
            created_at: a.created_at,
        });
        Ok(holding(attempts, slot))
    }
}
