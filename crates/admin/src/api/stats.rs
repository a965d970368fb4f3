//! `GET /stats`: attempts per hour by outcome, and success rate and response
//! time percentiles per webhook and per event, over the last 24 h or 7 days,
//! read from the hourly rollup and the hours not rolled up yet
//! (`webhookd_store::stats`).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::query::QueryParams;
use super::state::ApiState;
use webhookd_store::stats::{load_stats, Stats, Summary, PERIOD_HOURS};
use webhookd_store::webhooks::Scope;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct StatsView {
    /// `24h` or `7d`.
    #[schema(example = "24h")]
    pub(crate) period: &'static str,
    /// The start of the first hourly bucket.
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    /// Every hour of the period, oldest first (the last one is the current,
    /// partial hour), zeros included.
    pub(crate) hourly: Vec<HourView>,
    /// All attempts of the period.
    pub(crate) total: SummaryView,
    /// Per webhook with attempts in the period, by id.
    pub(crate) webhooks: Vec<WebhookStatsView>,
    /// Per event with attempts in the period, by name.
    pub(crate) events: Vec<EventStatsView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HourView {
    pub(crate) hour: DateTime<Utc>,
    /// Successful attempts.
    pub(crate) success: i64,
    /// Failed attempts.
    pub(crate) failure: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SummaryView {
    pub(crate) attempts: i64,
    pub(crate) successes: i64,
    pub(crate) failures: i64,
    /// Successes over attempts, 0 to 1; null without attempts.
    pub(crate) success_rate: Option<f64>,
    /// Median response time of the attempts that got a response (ms),
    /// interpolated from a response-time histogram: within 4 % of the exact
    /// value (exact below 25 ms); null when none did.
    pub(crate) p50_ms: Option<f64>,
    /// 95th percentile response time of the attempts that got a response
    /// (ms), interpolated from a response-time histogram: within 4 % of the
    /// exact value (exact below 25 ms); null when none did.
    pub(crate) p95_ms: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookStatsView {
    pub(crate) webhook_id: i64,
    pub(crate) name: String,
    #[serde(flatten)]
    pub(crate) stats: SummaryView,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventStatsView {
    pub(crate) event: String,
    #[serde(flatten)]
    pub(crate) stats: SummaryView,
}

impl From<Summary> for SummaryView {
    fn from(s: Summary) -> Self {
        SummaryView {
            success_rate: s.success_rate(),
            attempts: s.attempts,
            successes: s.successes,
            failures: s.failures,
            p50_ms: s.p50_ms,
            p95_ms: s.p95_ms,
        }
    }
}

/// The periods offered, and their length in hours (those the store
/// summarises ahead).
const PERIODS: &[(&str, u32)] = &[("24h", PERIOD_HOURS[0]), ("7d", PERIOD_HOURS[1])];

/// Statistics of the caller's webhooks (admins: everyone's, or one user's
/// with `user_id`).
#[utoipa::path(
    get,
    path = "/stats",
    tag = "stats",
    params(
        ("period" = Option<String>, Query, description = "`24h` (default) or `7d`"),
        ("user_id" = Option<i64>, Query, description = "Admins: only this user's webhooks"),
    ),
    responses(
        (status = 200, body = StatsView),
        (status = 400, description = "A malformed query string", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "A bad query parameter, named in `field`", body = ErrorBody),
    )
)]
pub(crate) async fn show_stats(
    State(state): State<ApiState>,
    user: CurrentUser,
    params: QueryParams,
) -> Result<Json<StatsView>, ApiError> {
    params.allow_only(&["period", "user_id"])?;
    let owner = params.parsed::<i64>("user_id", "an integer")?;
    load(&state, &user, params.text("period"), owner)
        .await
        .map(Json)
}

/// The statistics `user` may see over `period` (`24h` when absent), only
/// `owner`'s webhooks when given.
pub(crate) async fn load(
    state: &ApiState,
    user: &CurrentUser,
    period: Option<&str>,
    owner: Option<i64>,
) -> Result<StatsView, ApiError> {
    let (period, hours) = match period {
        None => PERIODS[0],
        Some(text) => PERIODS
            .iter()
            .copied()
            .find(|(name, _)| *name == text)
            .ok_or_else(|| ApiError::invalid("period", "`period` must be `24h` or `7d`"))?,
    };
    let scope = match (user.scope(), owner) {
        (scope, None) => scope,
        (Scope::All, Some(owner)) => Scope::User(owner),
        (Scope::User(own), Some(owner)) if owner == own => Scope::User(own),
        (Scope::User(_), Some(_)) => {
            return Err(ApiError::invalid(
                "user_id",
                "only admins can see another user's statistics",
            ))
        }
    };
    let stats = load_stats(&state.pool, scope, hours, Utc::now()).await?;
    Ok(view(period, stats))
}

fn view(period: &'static str, stats: Stats) -> StatsView {
    StatsView {
        period,
        from: stats.from,
        to: stats.to,
        hourly: stats
            .hourly
            .into_iter()
            .map(|h| HourView {
                hour: h.hour,
                success: h.successes,
                failure: h.failures,
            })
            .collect(),
        total: stats.total.into(),
        webhooks: stats
            .webhooks
            .into_iter()
            .map(|w| WebhookStatsView {
                webhook_id: w.webhook_id,
                name: w.name,
                stats: w.summary.into(),
            })
            .collect(),
        events: stats
            .events
            .into_iter()
            .map(|e| EventStatsView {
                event: e.event,
                stats: e.summary.into(),
            })
            .collect(),
    }
}
