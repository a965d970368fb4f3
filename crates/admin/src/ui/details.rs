//! `/webhook/{id}`: one webhook, its recent deliveries, and its buttons
//! (edit, toggle, test, retry failed, rotate secret, logs, delete).

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};

use super::auth_fields;
use super::breaker;
use super::error::UiError;
use super::form::csrf_input;
use super::i18n::Tr;
use super::layout::{
    active_badge, delivery_badge, owner_label, page, time_el, url_text, visible_controls, Notice,
};
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

pub(crate) async fn show_details(
    State(state): State<UiState>,
    session: Session,
    WebhookPath(id): WebhookPath,
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
    let owner = if webhook.user_id == session.user.id {
        Some(session.user.name.clone())
    } else {
        webhookd_store::users::find_user(&state.pool, webhook.user_id)
            .await?
            .map(|user| user.name)
    };
    let owner = owner_label(tr, owner.as_deref(), webhook.user_id);
    let notice = session.notice();
    let content = html! {
        div class="page-head" {
            h1 { (visible_controls(&webhook.name)) " " (active_badge(tr, webhook.is_active)) }
            a class="button" href={ "/webhook/" (id) "/edit" } { (tr.t("details-edit")) }
        }
        (Notice::render(tr, notice))
        @if let Some(reason) = &webhook.disabled_reason {
            div class="notice warn" role="status" { (tr.t("details-disabled-by-daemon")) " " span lang="en" { (reason) } }
        }
        (summary(tr, &webhook, &owner))
        (buttons(&session, &webhook))
        (replay::forms(&session, &webhook))
        section aria-labelledby="recent-title" {
            div class="section-head" {
                h2 id="recent-title" { (tr.t("details-recent")) }
                a href=(logs_path(id)) { (tr.t("details-all-attempts")) }
            }
            @if recent.items.is_empty() {
                p class="muted" { (tr.t("details-no-deliveries")) }
            } @else {
                div class="table-wrap" tabindex="0" role="region" aria-labelledby="recent-title" {
                    table class="responsive" {
                        thead { tr {
                            th scope="col" { (tr.t("details-col-created")) }
                            th scope="col" { (tr.t("details-col-event")) }
                            th scope="col" { (tr.t("details-col-status")) }
                            th scope="col" { (tr.t("details-col-attempts")) }
                            th scope="col" { (tr.t("details-col-last-answer")) }
                            th scope="col" { span class="visually-hidden" { (tr.t("details-col-actions")) } }
                        } }
                        tbody {
                            @for delivery in &recent.items {
                                tr {
                                    td data-label=(tr.t("details-col-created")) { (time_el(tr, delivery.created_at)) }
                                    td data-label=(tr.t("details-col-event")) { code { (delivery.event) } }
                                    td data-label=(tr.t("details-col-status")) { (delivery_badge(tr, &delivery.status)) }
                                    td data-label=(tr.t("details-col-attempts")) { (delivery.attempts) }
                                    td data-label=(tr.t("details-col-last-answer")) {
                                        @if let Some(code) = delivery.last_status_code { code { "HTTP " (code) } " " }
                                        @if let Some(error) = &delivery.last_error { span class="muted" lang="en" { (error) } }
                                    }
                                    td data-label=(tr.t("details-col-actions")) { div class="row-actions" {
                                        a href={ (logs_path(id)) "?delivery_id=" (delivery.id) } { (tr.t("details-attempts-link")) }
                                        @if delivery.status == "failed" {
                                            form method="post" action={ "/webhook/" (id) "/retry" } {
                                                (csrf_input(&session))
                                                input type="hidden" name="delivery_id" value=(delivery.id);
                                                button type="submit" class="small" { (tr.t("details-retry-one")) }
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

fn summary(tr: &Tr, webhook: &Webhook, owner: &str) -> Markup {
    html! {
        dl class="summary" {
            dt { "URL" } dd class="url" { (url_text(&webhook.url)) }
            dt { (tr.t("details-events")) } dd { @for event in &webhook.events { code { (event) } " " } }
            dt { (tr.t("details-owner")) } dd { (owner) }
            dt { (tr.t("details-timeout")) } dd {
                @match webhook.timeout_ms {
                    Some(ms) => (tr.t_with("details-ms", &[("ms", ms.into())])),
                    None => (tr.t("details-timeout-default")),
                }
            }
            dt { (tr.t("details-headers")) } dd {
                @if webhook.headers.0.is_empty() { (tr.t("details-none")) }
                @else {
                    // Values often hold credentials: names only here.
                    @for name in webhook.headers.0.keys() { code { (name) } " " }
                    span class="muted" { (tr.t("details-headers-hidden")) }
                }
            }
            dt { (tr.t("details-auth")) } dd id="auth-shown" {
                (auth_fields::summary(tr, webhook.auth_view().as_ref()))
            }
            dt { (tr.t("details-body")) } dd {
                @match &webhook.template {
                    Some(template) => pre class="body" tabindex="0" { code { (template) } },
                    None => (tr.t("details-body-raw")),
                }
            }
            dt { (tr.t("details-filter")) } dd id="filter-shown" {
                @match &webhook.filter {
                    Some(filter) => pre class="body" tabindex="0" {
                        code { (serde_json::to_string_pretty(&filter.0).unwrap_or_default()) }
                    },
                    None => (tr.t("details-filter-none")),
                }
            }
            dt { (tr.t("details-retries")) } dd id="retry-schedule-shown" {
                @match &webhook.retry_schedule {
                    Some(delays) => {
                        (tr.t_with("details-retries-custom", &[
                            ("delays", delays.iter().map(|d| tr.t_with("details-seconds", &[("n", (*d).into())])).collect::<Vec<_>>().join(", ").into()),
                            ("count", (delays.len() + 1).into()),
                        ]))
                    },
                    None => (tr.t("details-retries-policy")),
                }
            }
            dt { (tr.t("details-order")) } dd {
                @match webhook.ordering {
                    DeliveryOrder::Fifo => (tr.t("details-order-fifo")),
                    DeliveryOrder::None => (tr.t("details-order-none")),
                }
            }
            dt { (tr.t("details-rate-limit")) } dd id="rate-limit-shown" {
                @match webhook.rate_limit_per_s {
                    Some(limit) => (tr.t_with("details-rate-limit-value", &[("limit", limit.into())])),
                    None => (tr.t("details-none")),
                }
            }
            @if let Some(until) = webhook.previous_secret_expires_at {
                dt { (tr.t("details-previous-secret")) } dd { (tr.t("details-previous-secret-until")) " " (time_el(tr, until)) }
            }
            dt { (tr.t("details-created")) } dd { (time_el(tr, webhook.created_at)) }
            dt { (tr.t("details-updated")) } dd { (time_el(tr, webhook.updated_at)) }
            (breaker::summary_line(tr, &webhook.breaker))
        }
    }
}

fn buttons(session: &Session, webhook: &Webhook) -> Markup {
    let tr = &session.tr;
    let id = webhook.id;
    html! {
        section class="button-row" aria-label=(tr.t("details-actions")) {
            form method="post" action={ "/webhook/" (id) "/toggle" } {
                (csrf_input(session))
                button type="submit" {
                    @if webhook.is_active { (tr.t("details-switch-off")) } @else { (tr.t("details-switch-on")) }
                }
            }
            form method="post" action={ "/webhook/" (id) "/test" } {
                (csrf_input(session))
                button type="submit" { (tr.t("details-send-test")) }
            }
            form method="post" action={ "/webhook/" (id) "/retry" } {
                (csrf_input(session))
                input type="hidden" name="all_failed" value="true";
                button type="submit" { (tr.t("details-retry-failed")) }
            }
            a class="button" href=(logs_path(id)) { (tr.t("details-logs")) }
            form method="post" action={ "/webhook/" (id) "/delete" }
                data-confirm=(tr.t_with("details-delete-confirm", &[("name", webhook.name.clone().into())])) {
                (csrf_input(session))
                button type="submit" class="danger" { (tr.t("details-delete")) }
            }
        }
        details class="rotate" {
            summary { (tr.t("details-rotate-summary")) }
            form method="post" action={ "/webhook/" (id) "/rotate-secret" } class="stack"
                data-confirm=(tr.t("details-rotate-confirm")) {
                (csrf_input(session))
                p { (tr.t("details-rotate-help")) }
                div class="field inline" {
                    label for="grace_period_secs" { (tr.t("details-rotate-grace")) }
                    select id="grace_period_secs" name="grace_period_secs" {
                        @for (secs, key) in GRACE_CHOICES {
                            option value=(secs) selected[*secs == DEFAULT_GRACE_SECS] { (tr.t(key)) }
                        }
                    }
                }
                button type="submit" { (tr.t("details-rotate-button")) }
            }
        }
    }
}

/// The grace periods offered (the API accepts any 0 to 7 days), with the
/// message naming each.
pub(crate) const GRACE_CHOICES: &[(i64, &str)] = &[
    (0, "details-grace-now"),
    (60 * 60, "details-grace-hour"),
    (DEFAULT_GRACE_SECS, "details-grace-day"),
    (7 * 24 * 60 * 60, "details-grace-week"),
];

/// Where a new secret is shown, once, after a creation or rotation.
pub(crate) fn secret_path(id: i64) -> String {
    format!("/webhook/{id}/secret")
}

/// `GET /webhook/{id}/secret`: the secret the flash carries, once; a
/// reload (the flash read) goes to the webhook, which never shows it.
pub(crate) async fn show_secret(
    State(state): State<UiState>,
    session: Session,
    WebhookPath(id): WebhookPath,
) -> Result<Response, UiError> {
    let shown = session
        .flash
        .as_ref()
        .and_then(|flash| flash.open_secret(&state.keys, id));
    let Some((secret, created)) = shown else {
        return Ok(Redirect::to(&details_path(id)).into_response());
    };
    let webhook = find_webhook(&state.pool, session.scope(), id)
        .await?
        .ok_or(UiError::NotFound("webhook"))?;
    let tr = &session.tr;
    let (title, explanation) = if created {
        (
            tr.t("details-secret-created-title"),
            html! { p { (tr.t("details-secret-created-help")) " " code { "X-Webhook-Signature" } } },
        )
    } else {
        (
            tr.t("details-secret-rotated-title"),
            html! {
                p { (tr.t("details-secret-rotated-help")) }
                @if webhook.previous_secret_expires_at.is_none() {
                    p { strong { (tr.t("details-secret-old-revoked")) } }
                }
            },
        )
    };
    Ok(secret_page(&session, &webhook, &secret, &title, explanation).into_response())
}

/// The one page that shows a secret: after creation or rotation.
fn secret_page(
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
            label for="new-secret" { (tr.t_with("details-secret-label", &[("name", webhook.name.clone().into())])) }
            input id="new-secret" type="text" readonly value=(secret) spellcheck="false"
                autocomplete="off" data-select-on-focus;
        }
        @if let Some(until) = webhook.previous_secret_expires_at {
            p { (tr.t("details-secret-previous-until")) " " (time_el(tr, until)) }
        }
        p { a class="button primary" href=(details_path(webhook.id)) { (tr.t("details-go-to-webhook")) } }
    };
    page(title, session, content)
}
