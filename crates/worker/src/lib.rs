//! webhookd's delivery pipeline. An event flows through these modules in
//! order, each handing its output to the next:
//!
//! 1. `consume`: takes CRM events from the broker, dead-letters bad messages.
//! 2. `fanout`: finds each event's subscribed webhooks, one delivery each.
//! 3. `window`: the in-flight window, the one cap on deliveries a worker holds.
//! 4. `dispatch`: per-webhook admission and request concurrency.
//! 5. `deliver`: one signed HTTP attempt.
//! 6. `record`: the one writer of outcomes to Postgres: later attempts and
//!    hand-backs from its queue, and each consumed batch with its first
//!    attempts for `commit`, which then acks the batch's messages through
//!    `ack`, the one place that acks.
//! 7. `schedule`: claims due retries and hands them to the window again.
//!
//! A batching webhook's deliveries leave at step 2 for `batch`, which
//! collects them into batches: each batch is one delivery, claimed at
//! step 7 and attempted like any other. A FIFO webhook's deliveries leave
//! at step 2 too, written queued, and `fifo` lets them go one at a time,
//! each claimed at step 7 once the one before it has ended.
//!
//! Beside them: `broker` (connection and health), `shards` (consumers on
//! threads of their own), `target_policy` (SSRF guard), `rate_limit` (send
//! slots of rate-limited webhooks, shared by every replica), `retention`,
//! `sampler`, `metrics`, `background` (task supervision) and `outbox` (the
//! relay that publishes operational events back to the broker, step 1).
//! `deliver` authenticates to receivers through `receiver_auth` (SPEC §14):
//! `oauth2` tokens, and `tls_clients` (the HTTP clients, one per client
//! certificate).

mod ack;
pub mod background;
pub mod batch;
pub mod broker;
mod commit;
pub mod consume;
pub mod deliver;
pub mod dispatch;
pub mod fanout;
pub mod fifo;
mod header_log;
mod http_errors;
pub mod metrics;
mod oauth2;
pub mod outbox;
pub(crate) mod probes;
pub(crate) mod rate_limit;
pub(crate) mod receiver_auth;
pub mod record;
pub mod retention;
pub(crate) mod routing;
pub mod sampler;
pub mod schedule;
pub mod shards;
pub mod stats_rollup;
pub(crate) mod target_cache;
pub mod target_policy;
pub mod tls_clients;
pub mod window;
