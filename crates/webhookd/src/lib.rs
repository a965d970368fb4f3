//! The webhookd daemon: settings, the wiring of the delivery pipeline
//! (`webhookd-worker`) and the admin HTTP side (`webhookd-admin`), and their
//! shutdown. The layers below it: `webhookd-store` (Postgres) and
//! `webhookd-events` (the domain, no I/O).

pub mod app;
pub mod settings;
pub mod stored_secrets;
pub mod telemetry;

pub use app::{App, Role};
pub use settings::Settings;
