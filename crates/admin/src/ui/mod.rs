//! The web UI: server-rendered HTML on the seed's routes, usable without
//! JavaScript (a small script only adds the live template preview and
//! `confirm()` prompts).
//!
//! Sign-in is by API token ([`session`]: a server-side session in
//! `ui_sessions`, an HttpOnly SameSite=Lax cookie); every form carries the
//! session's CSRF token ([`form`]). Pages are `maud` templates, which escape
//! every interpolated value. Handlers validate with `api::validate` and read
//! and write through `webhookd_store`, exactly like the JSON API.
//!
//! Where things are: [`login`] (sign in/out), [`list`] (`/webhook/`),
//! [`edit`] + [`fields`] + [`webhook_form`] (create and edit forms, template
//! preview; `auth_fields`: the receiver authentication fields), [`details`] (one webhook and its buttons), [`actions`] (toggle,
//! test, rotate, retry, delete), [`replay`] (ranged retry and replay forms), [`logs`] (attempts), `live_logs` (their live feed), [`stats`] + [`charts`]
//! (dashboard), `settings` (time zone, language switch), `i18n` (the
//! Fluent messages of `locales/`, language and zone of a viewer),
//! [`layout`] (page shell), [`error`] (the error type), `error_page` (how an
//! error is shown), `paths` (page URLs).
//!
//! Layers, each importing only from those before it (`modcheck` checks):
//! leaves `i18n`, `paths`, `assets`, `error`, `charts`, `login_csrf` (the sign-in
//! form's signed token), `login_throttle` (failed sign-ins per client), `flash` (what an
//! action leaves for the next page); request plumbing `state`,
//! `session`, `form`, `submission` (one-time form keys), `auth_fields`, `fields`; the shell `layout`, then `error_page`; the
//! pages (`replay` before `details` and `actions`, `list`, `details`, `logs`, `login`, `webhook_form` then `edit`,
//! `actions`, `stats`, `settings`); `routes` on top.

pub(crate) mod actions;
mod assets;
mod auth_fields;
mod breaker;
pub(crate) mod charts;
pub(crate) mod details;
pub(crate) mod edit;
pub(crate) mod error;
mod error_page;
pub(crate) mod fields;
pub(crate) mod flash;
pub(crate) mod form;
mod i18n;
pub(crate) mod layout;
pub(crate) mod list;
mod live_logs;
pub(crate) mod login;
mod login_csrf;
mod login_throttle;
pub(crate) mod logs;
mod paths;
pub(crate) mod replay;
mod routes;
pub(crate) mod session;
mod settings;
pub(crate) mod state;
pub(crate) mod stats;
pub(crate) mod submission;
pub(crate) mod webhook_form;

pub use routes::router;
