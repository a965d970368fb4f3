//! `GET /templates`: body template presets for Slack, Telegram, Discord,
//! Microsoft Teams, and the raw envelope for Zapier/Make, with their
//! message texts in English or (`?lang=ru`) Russian.

use axum::extract::Query;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use webhookd_events::{PresetLanguage, PRESETS};

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

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TemplatesQuery {
    lang: Option<String>,
}

/// The presets, each one a template that passes validation as it is,
/// except Telegram's until its `<chat_id>` is filled in.
#[utoipa::path(
    get,
    path = "/templates",
    tag = "templates",
    params(
        ("lang" = Option<String>, Query, description = "`ru` for the Russian message texts; English otherwise"),
    ),
    responses(
        (status = 200, body = [TemplateView]),
        (status = 401, body = ErrorBody),
    )
)]
pub(crate) async fn list_templates(
    _user: CurrentUser,
    Query(query): Query<TemplatesQuery>,
) -> Json<Vec<TemplateView>> {
    let lang = query
        .lang
        .as_deref()
        .map(PresetLanguage::from_code)
        .unwrap_or_default();
    Json(
        PRESETS
            .iter()
            .map(|p| {
                let text = p.text(lang);
                TemplateView {
                    id: p.id,
                    name: text.name,
                    description: text.description,
                    template: text.template,
                }
            })
            .collect(),
    )
}
