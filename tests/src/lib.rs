//! Test harness for webhookd's end-to-end tests: the real daemon, real
//! Postgres and RabbitMQ, real HTTP receivers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod api;
pub mod app;
pub mod broker;
pub mod browser;
pub mod db;
pub mod graphql;
pub mod poll;
pub mod process;
pub mod receiver;
pub mod ui_session;

pub use app::{Subscribed, TestApp};
pub use poll::eventually;
pub use receiver::{Received, Receiver};
