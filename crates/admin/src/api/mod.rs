//! The JSON admin API under `/api/v1`: bearer-token auth ([`auth`]), one error
//! type ([`error`]), a JSON extractor that names bad fields ([`json`]), query
//! strings ([`query`]), the field rules ([`validate`]) and the resources
//! ([`me`], [`webhooks`], [`secrets`], [`test_delivery`], [`deliveries`],
//! [`logs`], [`stats`], [`templates`]), described by the OpenAPI document ([`openapi`]).
//! The route table is `routes.rs`; the state every handler gets, `state.rs`.
//!
//! Handlers stay thin: they parse and check input, call one or two storage
//! functions (`webhookd_store`), and shape the answer, so the web UI can call
//! the same storage functions.

pub mod auth;
pub mod deliveries;
pub mod error;
pub mod json;
pub mod logs;
pub mod me;
pub mod openapi;
pub mod query;
mod routes;
pub mod secrets;
pub mod state;
pub mod stats;
pub mod templates;
pub mod test_delivery;
pub mod validate;
pub mod webhooks;

pub use routes::{router, routes};
pub use state::{ApiConfig, ApiState};
