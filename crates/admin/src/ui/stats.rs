//! `/webhook/stats`: attempts per hour by outcome, and success rate and
//! p50/p95 response times per webhook and per event, over 24 hours or 7
//! days: the numbers of `GET /api/v1/stats`, from the same storage query.

use axum::extract::{Query, State};
use chrono::Utc;
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::{bar_list, hourly_chart, BarRow};
use super::error::UiError;
use super::i18n::Tr;
use super::layout::{millis, page, percent, visible_controls};
use super::list::{chosen_scope, user_filter};
use super::paths::details_path;
use super::session::Session;
use super::state::UiState;
use webhookd_store::stats::{load_stats, Summary, PERIOD_HOURS};
use webhookd_store::users::list_users;

pub(crate) const STATS_PATH: &str = "/webhook/stats";

/// The periods offered: query value, length in hours, message id.
const PERIODS: &[(&str, u32, &str)] = &[
    ("24h", PERIOD_HOURS[0], "stats-period-24h"),
    ("7d", PERIOD_HOURS[1], "stats-period-7d"),
];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatsQuery {
    period: Option<String>,
    user_id: Option<String>,
}

/// One row of a breakdown: what it counts, where it links, its numbers.
struct Row<'a> {
    label: String,
    href: Option<String>,
    summary: &'a Summary,
}

pub(crate) async fn show_stats(
    State(state): State<UiState>,
    session: Session,
    Query(query): Query<StatsQuery>,
) -> Result<Markup, UiError> {
    let tr = &session.tr;
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
    let webhook_rows: Vec<Row> = stats
        .webhooks
        .iter()
        .map(|w| Row {
            label: visible_controls(&w.name).into_owned(),
            href: Some(details_path(w.webhook_id)),
            summary: &w.summary,
        })
        .collect();
    let event_rows: Vec<Row> = stats
        .events
        .iter()
        .map(|e| Row {
            label: e.event.clone(),
            href: None,
            summary: &e.summary,
        })
        .collect();
    let whose = if chosen.is_some() || !session.user.is_admin {
        "stats-scope-these"
    } else {
        "stats-scope-all"
    };
    let content = html! {
        h1 { (tr.t("stats-title")) }
        nav class="tabs" aria-label=(tr.t("stats-period")) {
            @for (name, _, words) in PERIODS {
                a href={ (STATS_PATH) "?period=" (name) (owner_query) }
                    aria-current=[(*name == period).then_some("page")] { (tr.t(words)) }
            }
        }
        @if session.user.is_admin {
            (user_filter(tr, STATS_PATH, &users, chosen, &[("period", period)]))
        }
        p class="muted" { (tr.t(period_name)) ", " (tr.t(whose)) }
        (totals(tr, &stats.total))
        section aria-labelledby="hourly-title" {
            h2 id="hourly-title" { (tr.t("stats-per-hour")) }
            (hourly_chart(tr, "hourly", &stats.hourly))
        }
        (breakdown(tr, "webhooks", &tr.t("stats-by-webhook"), &tr.t("stats-col-webhook"), &webhook_rows, false))
        (breakdown(tr, "events", &tr.t("stats-by-event"), &tr.t("stats-col-event"), &event_rows, true))
    };
    Ok(page(&tr.t("stats-title"), &session, content))
}

fn totals(tr: &Tr, total: &Summary) -> Markup {
    html! {
        ul class="cards" aria-label=(tr.t("stats-totals")) {
            li { span class="card-label" { (tr.t("stats-col-attempts")) } span class="card-value" { (total.attempts) } }
            li { span class="card-label" { (tr.t("stats-col-rate")) } span class="card-value" { (percent(tr, total.success_rate())) } }
            li { span class="card-label" { (tr.t("stats-p50-response")) } span class="card-value" { (millis(tr, total.p50_ms)) } }
            li { span class="card-label" { (tr.t("stats-p95-response")) } span class="card-value" { (millis(tr, total.p95_ms)) } }
        }
    }
}

/// Success-rate bars, p50/p95 bars and the exact numbers in a table;
/// `code` labels are technical names (events).
fn breakdown(tr: &Tr, id: &str, title: &str, what: &str, rows: &[Row], code: bool) -> Markup {
    let slowest = rows
        .iter()
        .filter_map(|r| r.summary.p95_ms.or(r.summary.p50_ms))
        .fold(0.0_f64, f64::max);
    let rate_rows: Vec<BarRow> = rows
        .iter()
        .map(|r| BarRow {
            label: r.label.clone(),
            code,
            bars: vec![(
                r.summary.success_rate().unwrap_or(0.0),
                "bar-ok",
                tr.t_with(
                    "stats-rate-of",
                    &[
                        ("rate", percent(tr, r.summary.success_rate()).into()),
                        ("count", r.summary.attempts.into()),
                    ],
                ),
            )],
        })
        .collect();
    let latency_rows: Vec<BarRow> = rows
        .iter()
        .map(|r| BarRow {
            label: r.label.clone(),
            code,
            bars: vec![
                (
                    fraction(r.summary.p50_ms, slowest),
                    "bar-p50",
                    format!("{} {}", tr.t("stats-p50"), millis(tr, r.summary.p50_ms)),
                ),
                (
                    fraction(r.summary.p95_ms, slowest),
                    "bar-p95",
                    format!("{} {}", tr.t("stats-p95"), millis(tr, r.summary.p95_ms)),
                ),
            ],
        })
        .collect();
    html! {
        section aria-labelledby={ (id) "-title" } {
            h2 id={ (id) "-title" } { (title) }
            @if rows.is_empty() {
                p class="muted" { (tr.t("stats-none")) }
            } @else {
                div class="chart-pair" {
                    figure class="chart" {
                        figcaption { (tr.t("stats-col-rate")) }
                        (bar_list(&tr.t_with("stats-rate-chart", &[("what", title.into())]), &rate_rows))
                    }
                    figure class="chart" {
                        figcaption { (tr.t("stats-latency")) }
                        (bar_list(&tr.t_with("stats-latency-chart", &[("what", title.into())]), &latency_rows))
                    }
                }
                div class="table-wrap" tabindex="0" role="region" aria-label=(tr.t_with("stats-in-numbers", &[("what", title.into())])) {
                    table class="responsive numbers" {
                        thead { tr {
                            th scope="col" { (what) }
                            th scope="col" { (tr.t("stats-col-attempts")) }
                            th scope="col" { (tr.t("stats-col-failed")) }
                            th scope="col" { (tr.t("stats-col-rate")) }
                            th scope="col" { (tr.t("stats-p50")) }
                            th scope="col" { (tr.t("stats-p95")) }
                        } }
                        tbody {
                            @for row in rows {
                                tr {
                                    th scope="row" data-label=(what) {
                                        @match (&row.href, code) {
                                            (Some(href), _) => a href=(href) { span class="clamp" title=(row.label) { (row.label) } },
                                            (None, true) => code { (row.label) },
                                            (None, false) => span class="clamp" title=(row.label) { (row.label) },
                                        }
                                    }
                                    td data-label=(tr.t("stats-col-attempts")) { (row.summary.attempts) }
                                    td data-label=(tr.t("stats-col-failed")) { (row.summary.failures) }
                                    td data-label=(tr.t("stats-col-rate")) { (percent(tr, row.summary.success_rate())) }
                                    td data-label=(tr.t("stats-p50")) { (millis(tr, row.summary.p50_ms)) }
                                    td data-label=(tr.t("stats-p95")) { (millis(tr, row.summary.p95_ms)) }
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
