//! The scheduler's part in the circuit breakers (docs/ARCHITECTURE.md,
//! "Circuit breaker"): claiming the probes of open breakers whose cooldown
//! is over, and parking what it claimed for a breaker that opened after the
//! row was written.

use sqlx::PgPool;
use tracing::warn;
use webhookd_events::delivery::{ClaimedDelivery, Lease};
use webhookd_store::probes::{claim_probes, park_deliveries};

use crate::metrics::breaker_events::BreakerMoved;
use crate::metrics::events::{StorageFailed, Then};
use crate::metrics::Metrics;

/// Claims up to `room` probes, one per open breaker whose time has come;
/// none on a database error (the next pass tries again).
pub(crate) async fn claim_due_probes(
    pool: &PgPool,
    room: i64,
    lease: Lease,
    metrics: &Metrics,
) -> Vec<ClaimedDelivery> {
    match claim_probes(pool, room, lease).await {
        Ok(probes) => {
            for probe in &probes {
                BreakerMoved {
                    webhook_id: probe.webhook_id,
                    to: "half_open",
                }
                .emit(metrics);
            }
            probes
        }
        Err(error) => {
            StorageFailed {
                operation: "claim_probes",
                error: &error,
                then: Then::ClaimLater,
            }
            .emit(metrics);
            Vec::new()
        }
    }
}

/// Parks the claimed deliveries of open breakers that are not their probe
/// (written unparked just before the breaker opened), and returns the rest
/// to attempt.
pub(crate) async fn park_behind_open_breakers(
    pool: &PgPool,
    rows: Vec<ClaimedDelivery>,
) -> Vec<ClaimedDelivery> {
    let (parked, rows): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|row| row.breaker_open && !row.probe);
    if !parked.is_empty() {
        let ids: Vec<_> = parked.iter().map(|row| row.delivery_id).collect();
        // Left as claimed on failure: the lease makes them due again.
        if let Err(e) = park_deliveries(pool, &ids).await {
            warn!(error = %e, "parking deliveries behind an open circuit breaker failed");
        }
    }
    rows
}
