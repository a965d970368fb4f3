//! The backlog of unfinished deliveries, as the worker's sampler reads it.

use sqlx::PgPool;

/// How many deliveries are pending or queued (a FIFO webhook's, waiting for
/// their turn), and the age in seconds of the oldest that is not parked
/// behind an open circuit breaker (`None` when there is none). Cheap while the backlog is: only those rows are read, through the
/// partial indexes `deliveries_due`, `deliveries_parked` (an open circuit
/// breaker's) and `deliveries_queued` (one each: a single condition would
/// match no index's predicate).
pub async fn sample_backlog(pool: &PgPool) -> Result<(i64, Option<f64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT sum(n)::int8, EXTRACT(EPOCH FROM now() - min(oldest))::float8
         FROM (SELECT count(*) AS n, min(created_at) AS oldest
               FROM deliveries WHERE status = 'pending' AND NOT parked
               UNION ALL
               -- Counted, but not the oldest: parked deliveries wait for
               -- their receiver by design (`WebhookdBreakerOpen` covers
               -- them), not for a scheduler that fails to claim them.
               SELECT count(*), NULL FROM deliveries
               WHERE status = 'pending' AND parked
               UNION ALL
               SELECT count(*), min(created_at) FROM deliveries WHERE status = 'queued') s",
    )
    .fetch_one(pool)
    .await
}
