//! `Query`: the JSON API's reads, through the same functions.

use async_graphql::{Context, Object, Result, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use webhookd_events::CATALOGUE;
use webhookd_store::delivery_admin::DeliveryFilter;
use webhookd_store::logs::LogFilter;

use super::caller::current_user;
use super::error::Gql;
use super::state::GraphqlState;
use super::types::{CatalogueEvent, DeliveryConnection, LogConnection, Me, Stats, Webhook};
use crate::api::error::ApiError;
use crate::api::query::{check_event, check_limit, parse_cursor, DEFAULT_LIMIT};
use crate::api::{deliveries, logs, stats, webhooks};

/// A webhook's `ID` as the store's id. One that is not a number names no
/// webhook, so it is "not found" like any other unknown id.
pub(crate) fn webhook_id(id: &ID) -> Result<i64> {
    id.parse::<i64>()
        .map_err(|_| ApiError::NotFound("webhook"))
        .gql()
}

/// A page's complexity: its selection once per row it may return.
pub(crate) fn page_complexity(limit: Option<i32>, child: usize) -> usize {
    let rows = limit.map_or(DEFAULT_LIMIT, |l| usize::try_from(l).unwrap_or(0));
    rows.max(1).saturating_mul(child).saturating_add(1)
}

fn state<'a>(ctx: &Context<'a>) -> Result<&'a GraphqlState> {
    ctx.data::<GraphqlState>()
}

pub(crate) struct Query;

#[Object]
impl Query {
    /// The token's user.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let user = &current_user(ctx)?.0;
        Ok(Me {
            id: user.id,
            name: user.name.clone(),
            is_admin: user.is_admin,
            can_publish: user.may_publish(),
        })
    }

    /// The event catalogue: what webhooks and subscriptions can name.
    async fn events(&self, ctx: &Context<'_>) -> Result<Vec<CatalogueEvent>> {
        current_user(ctx)?;
        Ok(CATALOGUE
            .iter()
            .map(|spec| CatalogueEvent {
                name: spec.name,
                description: spec.description,
            })
            .collect())
    }

    /// The webhooks the caller may see, oldest first (admins: everyone's,
    /// or one user's with `userId`).
    async fn webhooks(&self, ctx: &Context<'_>, user_id: Option<i64>) -> Result<Vec<Webhook>> {
        let user = current_user(ctx)?;
        let list = webhooks::list(&state(ctx)?.api, user, user_id)
            .await
            .gql()?;
        Ok(list.into_iter().map(Webhook::from).collect())
    }

    /// One webhook; another user's answers NOT_FOUND like a missing one.
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> Result<Webhook> {
        let user = current_user(ctx)?;
        let id = webhook_id(&id)?;
        webhooks::show(&state(ctx)?.api, user, id)
            .await
            .gql()
            .map(Webhook::from)
    }

    /// A webhook's deliveries, newest first, `limit` (1 to 200, default 50)
    /// at a time.
    #[graphql(complexity = "page_complexity(limit, child_complexity)")]
    // One argument per filter of the JSON API's query string.
    #[allow(clippy::too_many_arguments)]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        #[graphql(desc = "`pending`, `succeeded` or `failed`")] status: Option<String>,
        #[graphql(desc = "Only this event (an exact catalogue name)")] event: Option<String>,
        #[graphql(desc = "Only the events sent in this batch")] batch_id: Option<Uuid>,
        limit: Option<i32>,
        #[graphql(desc = "`nextCursor` of the previous page")] cursor: Option<String>,
    ) -> Result<DeliveryConnection> {
        let user = current_user(ctx)?;
        let id = self::webhook_id(&webhook_id)?;
        let filter = DeliveryFilter {
            status: status
                .as_deref()
                .map(deliveries::parse_status)
                .transpose()
                .gql()?,
            event: event
                .as_deref()
                .map(|e| check_event("event", e))
                .transpose()
                .gql()?,
            batch_id,
        };
        let limit = check_limit(limit.map_or(DEFAULT_LIMIT as i64, i64::from)).gql()?;
        let after = cursor
            .as_deref()
            .map(parse_cursor::<Uuid>)
            .transpose()
            .gql()?;
        deliveries::list(&state(ctx)?.api, user, id, &filter, after.as_ref(), limit)
            .await
            .gql()
            .map(DeliveryConnection::from)
    }

    /// A webhook's attempts, newest first, `limit` (1 to 200, default 50) at
    /// a time. Filters combine with AND.
    #[graphql(complexity = "page_complexity(limit, child_complexity)")]
    #[allow(clippy::too_many_arguments)]
    async fn logs(
        &self,
        ctx: &Context<'_>,
        webhook_id: ID,
        #[graphql(desc = "Only this event (an exact catalogue name)")] event: Option<String>,
        #[graphql(desc = "Only successful (true) or failed (false) attempts")] success: Option<
            bool,
        >,
        #[graphql(desc = "Attempts at or after this time")] from: Option<DateTime<Utc>>,
        #[graphql(desc = "Attempts before this time")] to: Option<DateTime<Utc>>,
        #[graphql(desc = "Only the attempts of this delivery")] delivery_id: Option<Uuid>,
        limit: Option<i32>,
        #[graphql(desc = "`nextCursor` of the previous page")] cursor: Option<String>,
    ) -> Result<LogConnection> {
        let user = current_user(ctx)?;
        let id = self::webhook_id(&webhook_id)?;
        let query = logs::LogQuery {
            filter: LogFilter {
                event: event
                    .as_deref()
                    .map(|e| check_event("event", e))
                    .transpose()
                    .gql()?,
                success,
                from,
                to,
                delivery_id,
            },
            after: cursor
                .as_deref()
                .map(parse_cursor::<i64>)
                .transpose()
                .gql()?,
            limit: check_limit(limit.map_or(DEFAULT_LIMIT as i64, i64::from)).gql()?,
            with_bodies: false,
        };
        logs::list(&state(ctx)?.api, user, id, &query)
            .await
            .gql()
            .map(LogConnection::from)
    }

    /// Statistics of the caller's webhooks over `period` (`24h`, the
    /// default, or `7d`); admins: everyone's, or one user's with `userId`.
    async fn stats(
        &self,
        ctx: &Context<'_>,
        period: Option<String>,
        user_id: Option<i64>,
    ) -> Result<Stats> {
        let user = current_user(ctx)?;
        stats::load(&state(ctx)?.api, user, period.as_deref(), user_id)
            .await
            .gql()
            .map(Into::into)
    }
}
