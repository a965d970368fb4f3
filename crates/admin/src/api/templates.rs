//! `GET /templates`: body template presets for Slack, Telegram, Discord,
//! Microsoft Teams, and the raw envelope for Zapier/Make.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use webhookd_events::PRESETS;

use super::auth::CurrentUser;
use super::error::ErrorBody;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TemplateView {
    #[schema(example = "telegram")]
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    /// The template's JSON text, to put in a webhook's `template`; null for
    /// the raw envelope (no template).
    pub(crate) template: Option<&'static str>,
}

/// The presets, each one a template that passes validation as it is
/// (Telegram's needs its `<chat_id>` filled in to be useful).
#[utoipa::path(
    get,
    path = "/templates",
    tag = "templates",
    responses(
        (status = 200, body = [TemplateView]),
        (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn list_templates(_user: CurrentUser) -> Json<Vec<TemplateView>> {
    Json(
        PRESETS
            .iter()
            .map(|p| TemplateView {
                id: p.id,
                name: p.name,
                description: p.description,
                template: p.template,
            })
            .collect(),
    )
}
