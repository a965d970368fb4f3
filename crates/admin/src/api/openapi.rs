//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! annotations and the API's route table, served unauthenticated
//! at `GET /api/v1/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::state::ApiState;

/// Where the API is served.
pub(crate) const PREFIX: &str = "/api/v1";
/// The name of the bearer-token security scheme in the document (spelled
/// out again in `security(...)` below, which takes only a literal).
pub(crate) const BEARER: &str = "bearer";
const SELF_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "webhookd admin API",
        description = "Manage webhooks, test them, read their delivery logs, retry deliveries, \
                       rotate secrets and read statistics. Every route except this document \
                       needs `Authorization: Bearer <token>` (`webhookd users create` prints one). \
                       A user sees only their own webhooks (another user's id answers 404); \
                       admins see all. Invalid input answers 422 with `field` naming the culprit."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "me", description = "Who the token belongs to, and what can be subscribed to"),
        (name = "events", description = "Publishing events over HTTP (admins and publishers)"),
        (name = "webhooks", description = "Webhook configuration"),
        (name = "deliveries", description = "Test deliveries, delivery state and manual retries"),
        (name = "logs", description = "Every delivery attempt"),
        (name = "stats", description = "Delivery statistics"),
        (name = "templates", description = "Body template presets"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("whk_<43 characters>")
                    .description(Some("An API token from `webhookd users create`"))
                    .build(),
            ),
        );
    }
}

/// Builds the document: the API's routes, nested under [`PREFIX`] exactly as
/// [`super::router`] serves them.
/// The document of `routes` (the API's route table).
pub(crate) fn document(routes: OpenApiRouter<ApiState>) -> Document {
    let mut doc = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest(PREFIX, routes)
        .into_openapi();
    // `security(())` in an annotation means "optional"; this document needs
    // no token at all, which OpenAPI spells as an empty list.
    if let Some(get) = doc
        .paths
        .paths
        .get_mut(SELF_PATH)
        .and_then(|item| item.get.as_mut())
    {
        get.security = Some(Vec::new());
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_but_the_document_itself_needs_the_bearer_token() {
        let doc = document(crate::api::routes::routes());
        assert!(doc
            .components
            .as_ref()
            .is_some_and(|c| c.security_schemes.contains_key(BEARER)));
        let global = serde_json::to_value(&doc.security).expect("serialises");
        assert_eq!(global, serde_json::json!([{ BEARER: [] }]));
        for (path, item) in &doc.paths.paths {
            let value = serde_json::to_value(item).expect("serialises");
            for (method, operation) in value.as_object().into_iter().flatten() {
                let security = operation.get("security");
                if path == SELF_PATH {
                    assert_eq!(security, Some(&serde_json::json!([])), "{method} {path}");
                } else {
                    assert_eq!(security, None, "{method} {path} inherits the bearer scheme");
                }
            }
        }
    }

    #[test]
    fn auth_is_described_by_type_without_secrets_in_what_reads_show() {
        let doc = document(crate::api::routes::routes());
        let schemas = serde_json::to_value(&doc.components).expect("serialises")["schemas"].clone();
        let shown = schemas["ReceiverAuthShown"].to_string();
        let input = schemas["ReceiverAuthInput"].to_string();
        for kind in ["basic", "bearer", "oauth2", "mtls"] {
            assert!(shown.contains(kind) && input.contains(kind), "{kind}");
        }
        for secret in ["password", "token", "client_secret", "client_key_pem"] {
            let property = format!("\"{secret}\":");
            assert!(input.contains(&property), "{secret} is written");
            assert!(!shown.contains(&property), "{secret} is never read");
        }
    }
}
