//! The backlog of unfinished deliveries, as the worker's sampler reads it.

use sqlx::PgPool;

/// How many deliveries are pending or queued (a FIFO webhook's, waiting for
/// their turn), and the age in seconds of the oldest (`None` when there is
/// none). Cheap while the backlog is: only those rows are read, through the
/// partial indexes `deliveries_due` and `deliveries_queued` (one each: a
/// single `IN` would match neither index's predicate).
pub async fn sample_backlog(pool: &PgPool) -> Result<(i64, Option<f64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT sum(n)::int8, EXTRACT(EPOCH FROM now() - min(oldest))::float8
         FROM (SELECT count(*) AS n, min(created_at) AS oldest
               FROM deliveries WHERE status = 'pending'
               UNION ALL
               SELECT count(*), min(created_at) FROM deliveries WHERE status = 'queued') s",
    )
    .fetch_one(pool)
    .await
}
