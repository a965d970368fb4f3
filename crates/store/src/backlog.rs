//! The backlog of unfinished deliveries, as the worker's sampler reads it.

use sqlx::PgPool;

/// How many deliveries are pending, and the age in seconds of the oldest
/// (`None` when there is none). Cheap while the backlog is: only pending rows
/// are read, through the partial index `deliveries_due` (WHERE status =
/// 'pending').
pub async fn sample_backlog(pool: &PgPool) -> Result<(i64, Option<f64>), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at))::float8
         FROM deliveries WHERE status = 'pending'",
    )
    .fetch_one(pool)
    .await
}
