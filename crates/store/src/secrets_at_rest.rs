//! The stored secrets as a whole (SPEC §15): which keys they are sealed
//! under, checked at start-up, and `webhookd secrets reencrypt`, which seals
//! them all under the first key. Writes seal in `webhooks.rs`; deliveries
//! open where their target is built (the worker's `deliver.rs`).
//!
//! An expired previous secret is left out of both: every reader ignores it,
//! so a retired key it may still be under is never needed.

use sqlx::PgPool;
use webhookd_events::receiver_auth::SECRET_FIELDS;
use webhookd_events::webhook_secrets::{reseal_auth, reseal_signing};
use webhookd_events::{SecretKeys, StoredAuth};

use crate::StorageError;

/// How many stored secrets are sealed under one key; `key_id` `None`
/// counts the clear ones.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyUse {
    pub key_id: Option<String>,
    pub value_count: i64,
}

/// The keys the stored secrets are sealed under, and the clear ones, in one
/// scan of `webhooks` (a few rows per user).
pub async fn key_use(pool: &PgPool) -> Result<Vec<KeyUse>, StorageError> {
    let rows = sqlx::query_as::<_, KeyUse>(
        "SELECT CASE WHEN v LIKE 'enc:v1:%' THEN split_part(v, ':', 3) END AS key_id,
                count(*) AS value_count
         FROM (SELECT secret AS v FROM webhooks
               UNION ALL
               SELECT previous_secret FROM webhooks
               WHERE previous_secret IS NOT NULL AND previous_secret_expires_at > now()
               UNION ALL
               SELECT w.auth->>f FROM webhooks w CROSS JOIN unnest($1::text[]) AS f
               WHERE jsonb_typeof(w.auth->f) = 'string') s
         GROUP BY 1
         ORDER BY 1 NULLS FIRST",
    )
    .bind(&SECRET_FIELDS[..])
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// What one pass of [`reseal_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// The last webhook id looked at; `None`: no webhook past `after`.
    pub last_id: Option<i64>,
    /// Secret values rewritten under the sealing key.
    pub values: usize,
}

#[derive(sqlx::FromRow)]
struct SecretRow {
    id: i64,
    secret: String,
    previous_secret: Option<String>,
    auth: Option<sqlx::types::Json<serde_json::Value>>,
}

/// Seals every secret of the next `limit` webhooks after id `after` under
/// the sealing key, in one transaction (the rows are locked meanwhile, so a
/// concurrent edit is not lost). Values already under it are left as they
/// are, so running it again rewrites nothing. The `updated_at` stays: the
/// webhook's settings did not change.
pub async fn reseal_batch(
    pool: &PgPool,
    keys: &SecretKeys,
    after: i64,
    limit: i64,
) -> Result<Resealed, StorageError> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query_as::<_, SecretRow>(
        "SELECT id, secret,
                CASE WHEN previous_secret_expires_at > now() THEN previous_secret END
                    AS previous_secret,
                auth
         FROM webhooks WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let last_id = rows.last().map(|r| r.id);
    let mut values = 0;
    let (mut ids, mut secrets, mut previous, mut auths) = (vec![], vec![], vec![], vec![]);
    for row in rows {
        let secret = reseal_signing(keys, row.id, &row.secret)?;
        let previous_secret = match &row.previous_secret {
            Some(stored) => reseal_signing(keys, row.id, stored)?,
            None => None,
        };
        let auth = match row.auth {
            Some(auth) => {
                let (resealed, changed) = reseal_auth(keys, row.id, &StoredAuth::new(auth.0))?;
                values += changed;
                (changed > 0).then(|| resealed.as_json().to_string())
            }
            None => None,
        };
        values += usize::from(secret.is_some()) + usize::from(previous_secret.is_some());
        if secret.is_some() || previous_secret.is_some() || auth.is_some() {
            ids.push(row.id);
            secrets.push(secret);
            previous.push(previous_secret);
            auths.push(auth);
        }
    }
    if !ids.is_empty() {
        sqlx::query(
            "UPDATE webhooks w
             SET secret = COALESCE(u.secret, w.secret),
                 previous_secret = COALESCE(u.previous_secret, w.previous_secret),
                 auth = COALESCE(u.auth::jsonb, w.auth)
             FROM UNNEST($1::int8[], $2::text[], $3::text[], $4::text[])
                 AS u(id, secret, previous_secret, auth)
             WHERE w.id = u.id",
        )
        .bind(&ids)
        .bind(&secrets)
        .bind(&previous)
        .bind(&auths)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Resealed { last_id, values })
}
