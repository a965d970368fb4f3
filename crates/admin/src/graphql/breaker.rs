//! A webhook's circuit breaker in GraphQL, as in the JSON API
//! (`api/breaker.rs`).

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};

use crate::api::breaker::BreakerView;

/// The webhook's circuit breaker: while `open`, its pending deliveries are
/// parked and one probe at a time (`half_open`) tests the receiver.
#[derive(SimpleObject)]
pub(crate) struct Breaker {
    /// `closed`, `open` or `half_open` (a probe is being attempted).
    pub(crate) state: String,
    /// Consecutive failed attempts.
    pub(crate) failures: i32,
    /// When it opened; null while closed.
    pub(crate) opened_at: Option<DateTime<Utc>>,
    /// When the next probe may go; null while closed.
    pub(crate) next_probe_at: Option<DateTime<Utc>>,
}

impl From<BreakerView> for Breaker {
    fn from(b: BreakerView) -> Self {
        Breaker {
            state: b.state.to_owned(),
            failures: b.failures,
            opened_at: b.opened_at,
            next_probe_at: b.next_probe_at,
        }
    }
}
