//! webhookd's admin HTTP side: the JSON API (`api`), the web UI (`ui`) and
//! the operational endpoints every role serves (`http`: `/metrics`,
//! `/healthz`, `/readyz`). It reads and writes through `webhookd-store` and
//! makes test deliveries with the worker's `deliver`.

pub mod api;
mod connections;
pub mod graphql;
pub mod http;
mod request_timeout;
pub mod serve;
pub mod ui;
