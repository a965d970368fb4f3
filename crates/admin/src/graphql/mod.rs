//! The GraphQL API (`/graphql`, SPEC §12): queries and mutations over the
//! JSON API's own functions (`crate::api`), so rules, field errors and
//! ownership are the same; GraphiQL for browsers; and subscriptions over
//! WebSocket fed by two live feeds.
//!
//! Where things are: [`routes`] (the endpoint), [`schema`] (limits, SDL),
//! [`query`], [`mutation`], [`subscription`] (resolvers), [`types`]
//! (objects and inputs), [`caller`] (who is asking), [`error`] (codes),
//! [`ws`] (the WebSocket), [`graphiql`] (the page and its vendored assets),
//! [`live_events`] (the broker tap), [`live_attempts`] (the `webhook_logs`
//! poller), [`feed`] (a subscriber's buffer), [`slots`] (the per-user cap),
//! [`metrics`] and [`state`].
//!
//! Layers, each importing only from those before it (`modcheck` checks):
//! leaves `metrics`, `error`, `feed`, `types`; then `caller`, `slots`,
//! `live_events`, `live_attempts`; `state`; the resolvers `query`,
//! `mutation`, `subscription`; `schema`; `ws`, `graphiql`; `routes` on top.

mod breaker;
mod caller;
mod error;
mod feed;
mod graphiql;
mod live_attempts;
mod live_events;
pub mod metrics;
mod mutation;
mod query;
mod routes;
mod schema;
mod slots;
mod state;
mod subscription;
mod types;
mod ws;

pub use live_attempts::LiveAttempts;
pub use live_events::EventSource;
pub use metrics::GraphqlMetrics;
pub use routes::router;
pub use schema::sdl;
pub use state::{GraphqlConfig, GraphqlState};
