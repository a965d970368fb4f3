//! The schema: `Query`, `Mutation` and `Subscription` with the limits every
//! request is checked against before it runs. Its SDL is kept in
//! `docs/schema.graphql`; a test fails when the two drift apart.

use async_graphql::{Schema, SchemaBuilder};

use super::mutation::Mutation;
use super::query::Query;
use super::state::GraphqlState;
use super::subscription::Subscription;

pub(crate) type AppSchema = Schema<Query, Mutation, Subscription>;

/// Recursion allowed while parsing (nested lists, objects and selections),
/// so a hostile document cannot exhaust the stack before the depth check.
const MAX_RECURSIVE_DEPTH: usize = 64;
/// Directives on one field.
const MAX_DIRECTIVES: usize = 8;

fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(Query, Mutation, Subscription)
        .limit_recursive_depth(MAX_RECURSIVE_DEPTH)
        .limit_directives(MAX_DIRECTIVES)
}

pub(crate) fn build(state: GraphqlState) -> AppSchema {
    builder()
        .limit_depth(state.config.max_depth)
        .limit_complexity(state.config.max_complexity)
        .data(state)
        .finish()
}

/// The schema in SDL, as exported to `docs/schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::sdl;
    use crate::api::webhooks::WebhookView;

    fn schema_file() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.graphql")
    }

    #[test]
    fn the_schema_file_matches_the_schema() {
        let path = schema_file();
        let current = sdl();
        if std::env::var_os("UPDATE_SCHEMA").is_some() {
            std::fs::write(&path, &current).expect("writing docs/schema.graphql");
            return;
        }
        let saved = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            saved == current,
            "docs/schema.graphql is out of date with the GraphQL schema; \
             regenerate it with `UPDATE_SCHEMA=1 cargo test -p webhookd-admin schema`, \
             review the diff and commit it"
        );
    }

    #[test]
    fn the_webhook_type_has_every_field_of_the_json_webhook() {
        let now = chrono::Utc::now();
        let view = WebhookView {
            id: 1,
            user_id: 1,
            name: String::new(),
            url: String::new(),
            events: Vec::new(),
            is_active: true,
            timeout_ms: None,
            headers: Default::default(),
            template: None,
            batch_max_events: None,
            batch_max_wait_ms: 1000,
            disabled_reason: None,
            previous_secret_expires_at: None,
            created_at: now,
            updated_at: now,
            filter: None,
            retry_schedule: None,
            ordering: "none".to_owned(),
            auth: None,
            rate_limit_per_s: None,
            breaker: crate::api::breaker::BreakerView::closed(),
        };
        let json = serde_json::to_value(&view).unwrap();
        let sdl = sdl();
        let start = sdl.find("type Webhook {").expect("a Webhook type");
        let end = start + sdl[start..].find('}').expect("its end");
        let block = &sdl[start..end];
        for key in json.as_object().unwrap().keys() {
            let field = super::super::error::graphql_name(key);
            assert!(
                block.contains(&format!("\t{field}:")),
                "Webhook lacks `{field}` (JSON `{key}`)"
            );
        }
    }
}
