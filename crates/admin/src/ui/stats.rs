//! `/webhook/stats`: attempts per hour by outcome, and success rate and
//! p50/p95 response times per webhook and per event, over 24 hours or 7
//! days: the numbers of `GET /api/v1/stats`, from the same storage query.

use axum::extract::{Query, State};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::{bar_list, hourly_chart, BarRow};
use super::error::UiError;
use super::layout::{millis, page, percent};
use super::list::{chosen_scope, user_filter};
use super::session::Session;
use super::state::UiState;
use webhookd_store::stats::{load_stats, Summary};
use webhookd_store::users::list_users;

pub(crate) const STATS_PATH: &str = "/webhook/stats";

/// The periods offered: query value, length in hours, words.
const PERIODS: &[(&str, u32, &str)] =
    &[("24h", 24, "Last 24 hours"), ("7d", 7 * 24, "Last 7 days")];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatsQuery {
    period: Option<String>,
    user_id: Option<String>,
}

pub(crate) async fn show_stats(
    State(state): State<UiState>,
    session: Session,
    Query(query): Query<StatsQuery>,
) -> Result<Markup, UiError> {
    let (period, hours, period_name) = PERIODS
        .iter()
        .copied()
        .find(|(name, _, _)| Some(*name) == query.period.as_deref())
        .unwrap_or(PERIODS[0]);
    let (scope, chosen) = chosen_scope(&session, query.user_id.as_deref());
    let stats = load_stats(&state.pool, scope, hours, Utc::now()).await?;
    let users = if session.user.is_admin {
        list_users(&state.pool).await?
    } else {
        Vec::new()
    };
    let owner_query = chosen
        .map(|id| format!("&user_id={id}"))
        .unwrap_or_default();
    let webhook_rows: Vec<(String, &Summary)> = stats
        .webhooks
        .iter()
        .map(|w| (w.name.clone(), &w.summary))
        .collect();
    let event_rows: Vec<(String, &Summary)> = stats
        .events
        .iter()
        .map(|e| (e.event.clone(), &e.summary))
        .collect();
    let content = html! {
        h1 { "Statistics" }
        nav class="tabs" aria-label="Period" {
            @for (name, _, words) in PERIODS {
                a href={ (STATS_PATH) "?period=" (name) (owner_query) }
                    aria-current=[(*name == period).then_some("page")] { (words) }
            }
        }
        @if session.user.is_admin {
            (user_filter(STATS_PATH, &users, chosen, &[("period", period)]))
        }
        p class="muted" { (period_name) ", every attempt of "
            @if chosen.is_some() || !session.user.is_admin { "these" } @else { "all" } " webhooks." }
        (totals(&stats.total))
        section aria-labelledby="hourly-title" {
            h2 id="hourly-title" { "Attempts per hour" }
            (hourly_chart("hourly", &stats.hourly))
        }
        (breakdown("webhooks", "By webhook", "Webhook", &webhook_rows))
        (breakdown("events", "By event", "Event", &event_rows))
    };
    Ok(page("Statistics", &session, content))
}

fn totals(total: &Summary) -> Markup {
    html! {
        ul class="cards" aria-label="Totals" {
            li { span class="card-label" { "Attempts" } span class="card-value" { (total.attempts) } }
            li { span class="card-label" { "Success rate" } span class="card-value" { (percent(total.success_rate())) } }
            li { span class="card-label" { "p50 response" } span class="card-value" { (millis(total.p50_ms)) } }
            li { span class="card-label" { "p95 response" } span class="card-value" { (millis(total.p95_ms)) } }
        }
    }
}

/// Success-rate bars, p50/p95 bars and the exact numbers in a table.
fn breakdown(id: &str, title: &str, what: &str, rows: &[(String, &Summary)]) -> Markup {
    let slowest = rows
        .iter()
        .filter_map(|(_, s)| s.p95_ms.or(s.p50_ms))
        .fold(0.0_f64, f64::max);
    let rate_rows: Vec<BarRow> = rows
        .iter()
        .map(|(label, s)| BarRow {
            label: label.clone(),
            bars: vec![(
                s.success_rate().unwrap_or(0.0),
                "bar-ok",
                format!("{} of {}", percent(s.success_rate()), s.attempts),
            )],
        })
        .collect();
    let latency_rows: Vec<BarRow> = rows
        .iter()
        .map(|(label, s)| BarRow {
            label: label.clone(),
            bars: vec![
                (
                    fraction(s.p50_ms, slowest),
                    "bar-p50",
                    format!("p50 {}", millis(s.p50_ms)),
                ),
                (
                    fraction(s.p95_ms, slowest),
                    "bar-p95",
                    format!("p95 {}", millis(s.p95_ms)),
                ),
            ],
        })
        .collect();
    html! {
        section aria-labelledby={ (id) "-title" } {
            h2 id={ (id) "-title" } { (title) }
            @if rows.is_empty() {
                p class="muted" { "No attempts in this period." }
            } @else {
                div class="chart-pair" {
                    figure class="chart" {
                        figcaption { "Success rate" }
                        (bar_list(&format!("Success rate {}", title.to_lowercase()), &rate_rows))
                    }
                    figure class="chart" {
                        figcaption { "Response time (p50 and p95)" }
                        (bar_list(&format!("Response time {}", title.to_lowercase()), &latency_rows))
                    }
                }
                div class="table-wrap" tabindex="0" role="region" aria-label={ (title) " in numbers" } {
                    table class="responsive numbers" {
                        thead { tr {
                            th scope="col" { (what) }
                            th scope="col" { "Attempts" }
                            th scope="col" { "Failed" }
                            th scope="col" { "Success rate" }
                            th scope="col" { "p50" }
                            th scope="col" { "p95" }
                        } }
                        tbody {
                            @for (label, s) in rows {
                                tr {
                                    th scope="row" data-label=(what) { (label) }
                                    td data-label="Attempts" { (s.attempts) }
                                    td data-label="Failed" { (s.failures) }
                                    td data-label="Success rate" { (percent(s.success_rate())) }
                                    td data-label="p50" { (millis(s.p50_ms)) }
                                    td data-label="p95" { (millis(s.p95_ms)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn fraction(value: Option<f64>, max: f64) -> f64 {
    match value {
        Some(v) if max > 0.0 => v / max,
        _ => 0.0,
    }
}
