//! One replica at a time: a transaction holding a transaction-scoped
//! advisory lock (released at commit or rollback, so it is safe behind a
//! transaction-mode pooler), for the periodic jobs every replica runs.

use sqlx::{PgPool, Postgres, Transaction};

/// A transaction holding advisory lock `key`, or `None` when another
/// session holds it (this pass is that replica's to do).
pub(crate) async fn begin_if_free(
    pool: &PgPool,
    key: i64,
) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        tx.rollback().await?;
        return Ok(None);
    }
    Ok(Some(tx))
}
