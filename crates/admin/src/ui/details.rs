//! `/webhook/{id}`: one webhook, its recent deliveries, and its buttons
//! (edit, toggle, test, retry failed, rotate secret, logs, delete).

use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;

use super::auth_fields;
use super::breaker;
use super::error::UiError;
use super::form::csrf_input;
use super::i18n::Tr;
use super::layout::{active_badge, delivery_badge, page, time_el, Notice};
use super::paths::{details_path, logs_path};
use super::replay;
use super::session::Session;
use super::state::{UiState, WebhookPath};
use crate::api::secrets::DEFAULT_GRACE_SECS;
use webhookd_events::DeliveryOrder;
use webhookd_store::delivery_admin::{list_deliveries, DeliveryFilter};
use webhookd_store::webhooks::{find_webhook, Webhook};

/// How many deliveries the details page lists (the logs page has them all).
const RECENT_DELIVERIES: usize = 10;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DetailsQuery {
    notice: Option<String>,
    count: Option<String>,
}

pub(crate) async fn show_details(
    State(state): State<UiState>,
    session: Session,
    WebhookPath(id): WebhookPath,
    Query(query): Query<DetailsQuery>,
) -> Result<Markup, UiError> {
    let tr = &session.tr;
    let webhook = find_webhook(&state.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    let recent = list_deliveries(
        &state.pool,
        id,
        &DeliveryFilter::default(),
        None,
        RECENT_DELIVERIES,
    )
    .await?;
    let notice = Notice::from_query(query.notice.as_deref(), query.count.as_deref());
    let content = html! {
        div class="page-head" {
            h1 { (webhook.name) " " (active_badge(tr, webhook.is_active)) }
            a class="button" href={ "/webhook/" (id) "/edit" } { "Edit" }
        }
        (Notice::render(tr, notice))
        @if let Some(reason) = &webhook.disabled_reason {
            div class="notice warn" role="status" { "Switched off by webhookd: " (reason) }
        }
        (summary(tr, &webhook))
        (buttons(&session, &webhook))
        (replay::forms(&session, &webhook))
        section aria-labelledby="recent-title" {
            div class="section-head" {
                h2 id="recent-title" { "Recent deliveries" }
                a href=(logs_path(id)) { "All attempts (logs)" }
            }
            @if recent.items.is_empty() {
                p class="muted" { "No deliveries yet. Use " strong { "Send test" } " to try the receiver." }
            } @else {
                div class="table-wrap" tabindex="0" role="region" aria-labelledby="recent-title" {
                    table class="responsive" {
                        thead { tr {
                            th scope="col" { "Created" }
                            th scope="col" { "Event" }
                            th scope="col" { "Status" }
                            th scope="col" { "Attempts" }
                            th scope="col" { "Last answer" }
                            th scope="col" { span class="visually-hidden" { "Actions" } }
                        } }
                        tbody {
                            @for delivery in &recent.items {
                                tr {
                                    td data-label="Created" { (time_el(tr, delivery.created_at)) }
                                    td data-label="Event" { code { (delivery.event) } }
                                    td data-label="Status" { (delivery_badge(tr, &delivery.status)) }
                                    td data-label="Attempts" { (delivery.attempts) }
                                    td data-label="Last answer" {
                                        @if let Some(code) = delivery.last_status_code { "HTTP " (code) " " }
                                        @if let Some(error) = &delivery.last_error { span class="muted" { (error) } }
                                    }
                                    td data-label="Actions" { div class="row-actions" {
                                        a href={ (logs_path(id)) "?delivery_id=" (delivery.id) } { "Attempts" }
                                        @if delivery.status == "failed" {
                                            form method="post" action={ "/webhook/" (id) "/retry" } {
                                                (csrf_input(&session))
                                                input type="hidden" name="delivery_id" value=(delivery.id);
                                                button type="submit" class="small" { "Retry" }
                                            }
                                        }
                                    } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&webhook.name, &session, content))
}

fn summary(tr: &Tr, webhook: &Webhook) -> Markup {
    html! {
        dl class="summary" {
            dt { "URL" } dd class="url" { (webhook.url) }
            dt { "Events" } dd { @for event in &webhook.events { code { (event) } " " } }
            dt { "Owner" } dd { "user " (webhook.user_id) }
            dt { "Timeout" } dd {
                @match webhook.timeout_ms { Some(ms) => { (ms) " ms" }, None => "the daemon's default" }
            }
            dt { "Custom headers" } dd {
                @if webhook.headers.0.is_empty() { "none" }
                @else {
                    // Values often hold credentials: names only here.
                    @for name in webhook.headers.0.keys() { code { (name) } " " }
                    span class="muted" { "(values hidden; see Edit)" }
                }
            }
            dt { "Authentication" } dd id="auth-shown" {
                (auth_fields::summary(tr, webhook.auth_view().as_ref()))
            }
            dt { "Body" } dd {
                @match &webhook.template {
                    Some(template) => pre class="body" tabindex="0" { code { (template) } },
                    None => "the raw envelope (no template)",
                }
            }
            dt { "Filter" } dd id="filter-shown" {
                @match &webhook.filter {
                    Some(filter) => pre class="body" tabindex="0" {
                        code { (serde_json::to_string_pretty(&filter.0).unwrap_or_default()) }
                    },
                    None => "none: every subscribed event",
                }
            }
            dt { "Retries" } dd id="retry-schedule-shown" {
                @match &webhook.retry_schedule {
                    Some(delays) => {
                        "after " (delays.iter().map(|d| format!("{d} s")).collect::<Vec<_>>().join(", "))
                        " (" (delays.len() + 1) " attempts in all)"
                    },
                    None => "the daemon's policy (exponential backoff)",
                }
            }
            dt { "Order" } dd {
                @match webhook.ordering {
                    DeliveryOrder::Fifo => "FIFO: one delivery at a time, in the order the events came",
                    DeliveryOrder::None => "none (deliveries may overlap)",
                }
            }
            dt { "Rate limit" } dd id="rate-limit-shown" {
                @match webhook.rate_limit_per_s {
                    Some(limit) => { (limit) " requests per second at most, across every worker" },
                    None => "none",
                }
            }
            @if let Some(until) = webhook.previous_secret_expires_at {
                dt { "Previous secret" } dd { "still accepted until " (time_el(tr, until)) }
            }
            dt { "Created" } dd { (time_el(tr, webhook.created_at)) }
            dt { "Updated" } dd { (time_el(tr, webhook.updated_at)) }
            (breaker::summary_line(tr, &webhook.breaker))
        }
    }
}

fn buttons(session: &Session, webhook: &Webhook) -> Markup {
    let id = webhook.id;
    html! {
        section class="button-row" aria-label="Actions" {
            form method="post" action={ "/webhook/" (id) "/toggle" } {
                (csrf_input(session))
                button type="submit" {
                    @if webhook.is_active { "Switch off" } @else { "Switch on" }
                }
            }
            form method="post" action={ "/webhook/" (id) "/test" } {
                (csrf_input(session))
                button type="submit" { "Send test" }
            }
            form method="post" action={ "/webhook/" (id) "/retry" } {
                (csrf_input(session))
                input type="hidden" name="all_failed" value="true";
                button type="submit" { "Retry failed" }
            }
            a class="button" href=(logs_path(id)) { "Logs" }
            form method="post" action={ "/webhook/" (id) "/delete" }
                data-confirm={ "Delete the webhook “" (webhook.name) "” with its deliveries and logs?" } {
                (csrf_input(session))
                button type="submit" class="danger" { "Delete" }
            }
        }
        details class="rotate" {
            summary { "Rotate the signing secret" }
            form method="post" action={ "/webhook/" (id) "/rotate-secret" } class="stack" {
                (csrf_input(session))
                p { "A new secret is generated and shown once. During the grace period "
                    "deliveries are signed with both, so receivers can switch without failures." }
                div class="field inline" {
                    label for="grace_period_secs" { "Keep the old secret valid for" }
                    select id="grace_period_secs" name="grace_period_secs" {
                        @for (secs, label) in GRACE_CHOICES {
                            option value=(secs) selected[*secs == DEFAULT_GRACE_SECS] { (label) }
                        }
                    }
                }
                button type="submit" { "Rotate secret" }
            }
        }
    }
}

/// The grace periods offered (the API accepts any 0 to 7 days).
pub(crate) const GRACE_CHOICES: &[(i64, &str)] = &[
    (0, "no time: revoke it now (leaked)"),
    (60 * 60, "1 hour"),
    (DEFAULT_GRACE_SECS, "24 hours"),
    (7 * 24 * 60 * 60, "7 days"),
];

/// The one page that shows a secret: after creation or rotation.
pub(crate) fn secret_page(
    session: &Session,
    webhook: &Webhook,
    secret: &str,
    title: &str,
    explanation: Markup,
) -> Markup {
    let tr = &session.tr;
    let content = html! {
        h1 { (title) }
        (explanation)
        div class="secret-box" {
            label for="new-secret" { "Signing secret of “" (webhook.name) "”" }
            input id="new-secret" type="text" readonly value=(secret) spellcheck="false"
                autocomplete="off" data-select-on-focus;
        }
        @if let Some(until) = webhook.previous_secret_expires_at {
            p { "The previous secret stays valid until " (time_el(tr, until)) "." }
        }
        p { a class="button primary" href=(details_path(webhook.id)) { "Go to the webhook" } }
    };
    page(title, session, content)
}
