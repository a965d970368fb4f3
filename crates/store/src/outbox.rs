//! The outbox of operational events (migration 0011): rows written by
//! triggers in the statements that record a failed delivery or switch a
//! webhook off, taken here by the relay, which publishes them and deletes
//! them once the broker has confirmed them.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::StorageError;

/// One operational event waiting to be published.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// The event id it is published with, so a repeated publish is one event.
    pub id: Uuid,
    pub event: String,
    pub user_id: i64,
    /// The event's `data` as JSON text.
    pub data: String,
    /// Unix seconds when the failure was recorded.
    pub timestamp: i64,
}

/// Rows taken for publishing, locked until [`Taken::delete_published`]
/// commits or the value is dropped (which hands them back untouched).
pub struct Taken {
    tx: Transaction<'static, Postgres>,
    pub rows: Vec<OutboxRow>,
}

/// Takes up to `limit` of the oldest rows that no other relay holds
/// (`SKIP LOCKED`, so replicas share the outbox without waiting for each
/// other).
pub async fn take(pool: &PgPool, limit: i64) -> Result<Taken, StorageError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query_as::<_, OutboxRow>(
        "SELECT id, event, user_id, data::text AS data,
                extract(epoch FROM created_at)::int8 AS timestamp
         FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    Ok(Taken { tx, rows })
}

impl Taken {
    /// Deletes the rows taken: call it once the broker confirmed them all.
    pub async fn delete_published(mut self) -> Result<(), StorageError> {
        let ids: Vec<Uuid> = self.rows.iter().map(|r| r.id).collect();
        sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// Rows waiting to be published, for the backlog gauge.
pub async fn backlog(pool: &PgPool) -> Result<i64, StorageError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await?)
}
