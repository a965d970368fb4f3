//! The JSON admin API under `/api/v1`: bearer-token auth ([`auth`]), one error
//! type ([`error`]), a JSON extractor that names bad fields ([`json`]), query
//! strings ([`query`]), the field rules ([`validate`]) and the resources
//! ([`me`], [`webhooks`], [`secrets`], [`test_delivery`], [`deliveries`],
//! [`logs`], [`stats`], [`templates`], [`replay`], [`ingest`]), described by the OpenAPI document ([`openapi`]).
//! The route table is `routes.rs`; the state every handler gets, `state.rs`.
//!
//! Handlers stay thin: they parse and check input, call one or two storage
//! functions (`webhookd_store`), and shape the answer, so the web UI can call
//! the same storage functions.

pub(crate) mod auth;
pub(crate) mod auth_schema;
pub(crate) mod breaker;
pub(crate) mod deliveries;
pub(crate) mod error;
pub(crate) mod ingest;
mod ingest_broker;
mod ingest_metrics;
mod ingest_state;
pub(crate) mod json;
pub(crate) mod logs;
pub(crate) mod me;
mod no_store;
pub(crate) mod openapi;
pub(crate) mod query;
pub(crate) mod quotas;
pub(crate) mod replay;
pub(crate) mod routes;
pub(crate) mod secrets;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod templates;
pub(crate) mod test_delivery;
pub(crate) mod validate;
pub(crate) mod validate_auth;
pub(crate) mod webhook_quota;
pub(crate) mod webhooks;

pub use ingest_broker::IngestConfig;
pub use ingest_state::Ingest;
pub use quotas::Quotas;
pub use routes::router;
pub use state::{ApiConfig, ApiState, SecureCookies};
