//! `/webhook/`: the webhooks the user may see, with each one's latest
//! delivery and success rate. Admins see everyone's and can pick one user.

use std::collections::HashMap;

use axum::extract::{Query, State};
use maud::{html, Markup};
use serde::Deserialize;

use super::breaker;
use super::error::UiError;
use super::i18n::Tr;
use super::layout::{
    active_badge, delivery_badge, name_text, owner_label, page, percent, time_el, url_text, Notice,
};
use super::paths::{details_path, LIST_PATH};
use super::session::Session;
use super::state::UiState;
use webhookd_store::users::{list_users, UserSummary};
use webhookd_store::webhook_overview::{list_webhook_overviews, SUCCESS_RATE_DAYS};
use webhookd_store::webhooks::{list_webhooks, Scope};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    user_id: Option<String>,
}

/// The scope a page shows: an admin may narrow it to one user with
/// `?user_id=`; anyone else always sees their own (the parameter is ignored).
pub(crate) fn chosen_scope(session: &Session, user_id: Option<&str>) -> (Scope, Option<i64>) {
    let chosen = user_id.and_then(|id| id.trim().parse::<i64>().ok());
    match (session.scope(), chosen) {
        (Scope::All, Some(owner)) => (Scope::User(owner), Some(owner)),
        (scope, _) => (scope, None),
    }
}

pub(crate) async fn show_list(
    State(state): State<UiState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Markup, UiError> {
    let tr = &session.tr;
    let (scope, chosen) = chosen_scope(&session, query.user_id.as_deref());
    let webhooks = list_webhooks(&state.pool, scope).await?;
    let overviews = list_webhook_overviews(&state.pool, scope).await?;
    let users = if session.user.is_admin {
        list_users(&state.pool).await?
    } else {
        Vec::new()
    };
    let notice = session.notice();
    let owners: HashMap<i64, &str> = users.iter().map(|u| (u.id, u.name.as_str())).collect();
    let content = html! {
        div class="page-head" {
            h1 { (tr.t("list-title")) }
            a class="button primary" href="/webhook/new" { (tr.t("list-new")) }
        }
        (Notice::render(tr, notice))
        @if session.user.is_admin {
            (user_filter(tr, LIST_PATH, &users, chosen, &[]))
        }
        @if webhooks.is_empty() {
            p { (tr.t("list-empty")) " " a href="/webhook/new" { (tr.t("list-create-first")) } }
        } @else {
            div class="table-wrap" tabindex="0" role="region" aria-labelledby="webhooks-caption" {
                table class="responsive" {
                    caption id="webhooks-caption" {
                        (tr.t_with("list-caption", &[("days", SUCCESS_RATE_DAYS.into())]))
                    }
                    thead { tr {
                        th scope="col" { (tr.t("list-col-name")) }
                        @if session.user.is_admin { th scope="col" { (tr.t("list-col-owner")) } }
                        th scope="col" { (tr.t("list-col-url")) }
                        th scope="col" { (tr.t("list-col-events")) }
                        th scope="col" { (tr.t("list-col-state")) }
                        th scope="col" { (tr.t("list-col-last")) }
                        th scope="col" { (tr.t("list-col-rate")) }
                    } }
                    tbody {
                        @for webhook in &webhooks {
                            @let overview = overviews.get(&webhook.id);
                            tr {
                                td data-label=(tr.t("list-col-name")) class="name" {
                                    a href=(details_path(webhook.id)) { (name_text(&webhook.name)) }
                                }
                                @if session.user.is_admin {
                                    td data-label=(tr.t("list-col-owner")) {
                                        (owner_label(tr, owners.get(&webhook.user_id).copied(), webhook.user_id))
                                    }
                                }
                                td data-label=(tr.t("list-col-url")) class="url" { (url_text(&webhook.url)) }
                                td data-label=(tr.t("list-col-events")) {
                                    @for (i, event) in webhook.events.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        code { (event) }
                                    }
                                }
                                td data-label=(tr.t("list-col-state")) {
                                    (active_badge(tr, webhook.is_active)) " " (breaker::badge(tr, &webhook.breaker))
                                }
                                td data-label=(tr.t("list-col-last")) {
                                    @match overview.and_then(|o| o.last_status.as_deref().map(|s| (o, s))) {
                                        Some((o, status)) => {
                                            (delivery_badge(tr, status))
                                            @if let Some(code) = o.last_status_code { " HTTP " (code) }
                                            @if let Some(at) = o.last_delivery_at { br; small { (time_el(tr, at)) } }
                                        },
                                        None => span class="muted" { (tr.t("list-none-yet")) },
                                    }
                                }
                                td data-label=(tr.t("list-col-rate")) {
                                    (percent(tr, overview.and_then(|o| o.success_rate())))
                                    @if let Some(o) = overview {
                                        @if o.attempts > 0 {
                                            " " small class="muted" {
                                                (tr.t_with("list-rate-of", &[("count", o.attempts.into())]))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&tr.t("list-title"), &session, content))
}

/// The admins' "whose webhooks" picker, a GET form keeping `keep` pairs.
pub(crate) fn user_filter(
    tr: &Tr,
    action: &str,
    users: &[UserSummary],
    chosen: Option<i64>,
    keep: &[(&str, &str)],
) -> Markup {
    html! {
        form method="get" action=(action) class="inline-filter" {
            @for (name, value) in keep {
                input type="hidden" name=(name) value=(value);
            }
            label for="user_id" { (tr.t("list-col-owner")) }
            select id="user_id" name="user_id" {
                option value="" selected[chosen.is_none()] { (tr.t("list-all-users")) }
                @for user in users {
                    option value=(user.id) selected[chosen == Some(user.id)] {
                        (owner_label(tr, Some(&user.name), user.id))
                    }
                }
            }
            button type="submit" { (tr.t("list-show")) }
        }
    }
}
