//! webhookd: consumes CRM events from RabbitMQ, fans each out to the webhooks
//! subscribed to it, signs and delivers them, retries failures durably, and
//! records every attempt in Postgres. Serves the admin API and metrics.
//!
//! Where things are: `consume` (broker → fan-out → ack), `storage::deliveries`
//! (fan-out rows, claims, attempt records), `deliver` (one signed HTTP
//! attempt), `dispatch` (concurrency limits, retry decisions), `record`
//! (batched attempt writes), `schedule` (durable retries), `target_policy`
//! (SSRF guard), `api` (JSON API), `http` (metrics and health), `app` (wiring
//! and shutdown).

pub mod api;
pub mod app;
pub mod consume;
pub mod deliver;
pub mod dispatch;
pub mod fanout;
pub mod http;
pub mod metrics;
pub mod record;
pub mod retention;
pub mod sampler;
pub mod schedule;
pub mod settings;
pub mod shards;
pub mod storage;
pub mod target_cache;
pub mod target_policy;
pub mod telemetry;
pub mod ui;

pub use app::{App, Role};
pub use settings::Settings;
