//! A webhook's circuit breaker as the API shows it (read-only: only the
//! daemon moves it; docs/ARCHITECTURE.md, "Circuit breaker").

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use webhookd_store::breakers::Breaker;

/// The webhook's circuit breaker: while `open`, its pending deliveries are
/// parked and one probe at a time (`half_open`) tests the receiver.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct BreakerView {
    /// `closed`, `open` or `half_open` (a probe is being attempted).
    #[schema(example = "closed")]
    pub(crate) state: &'static str,
    /// Consecutive failed attempts.
    pub(crate) failures: i32,
    /// When it opened; null while closed.
    pub(crate) opened_at: Option<DateTime<Utc>>,
    /// When the next probe may go; null while closed.
    pub(crate) next_probe_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
impl BreakerView {
    /// A closed breaker that never failed, for views built by hand.
    pub(crate) fn closed() -> Self {
        BreakerView {
            state: "closed",
            failures: 0,
            opened_at: None,
            next_probe_at: None,
        }
    }
}

impl From<Breaker> for BreakerView {
    fn from(b: Breaker) -> Self {
        BreakerView {
            state: b.state(),
            failures: b.failures,
            opened_at: b.opened_at,
            next_probe_at: b.next_probe_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_describes_the_breaker_of_a_webhook() {
        let doc = crate::api::openapi::document(crate::api::routes::routes());
        let json = serde_json::to_value(&doc).expect("serialises");
        let schemas = &json["components"]["schemas"];
        let breaker = &schemas["BreakerView"]["properties"];
        for field in ["state", "failures", "opened_at", "next_probe_at"] {
            assert!(
                breaker.get(field).is_some(),
                "BreakerView.{field}: {breaker}"
            );
        }
        assert_eq!(
            schemas["WebhookView"]["properties"]["breaker"]["$ref"],
            "#/components/schemas/BreakerView"
        );
    }

    #[test]
    fn a_row_reads_as_its_state() {
        let now = Utc::now();
        let open = Breaker {
            failures: 10,
            opened_at: Some(now),
            next_probe_at: Some(now),
            probing: false,
        };
        assert_eq!(BreakerView::from(open.clone()).state, "open");
        let probing = Breaker {
            probing: true,
            ..open
        };
        assert_eq!(BreakerView::from(probing).state, "half_open");
        assert_eq!(BreakerView::closed().state, "closed");
    }
}
