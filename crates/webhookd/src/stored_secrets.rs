//! The start-up check of the secrets at rest (SPEC §15): every key the
//! stored secrets are sealed under must be configured, or deliveries of
//! those webhooks would fail one by one; refusing to start names the key at
//! once. One grouped scan of `webhooks` (a few rows per user).

use std::time::Duration;

use sqlx::PgPool;
use tracing::{info, warn};
use webhookd_events::SecretKeys;
use webhookd_store::secrets_at_rest::key_use;

/// How long start-up waits for the check; a database that does not answer
/// is no reason to refuse (the daemon waits for it as for any outage).
const CHECK_LIMIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
#[error(
    "the database holds {values} secret(s) encrypted under key id `{key_id}`, which \
     secrets.encryption_keys does not list: add that key to the list (after the first) \
     and run `webhookd secrets reencrypt` before removing it"
)]
pub struct MissingKey {
    pub key_id: String,
    pub values: i64,
}

/// Fails when a stored secret is sealed under a key `keys` lacks; warns
/// when secrets are stored in clear.
pub(crate) async fn check_stored_secrets(
    pool: &PgPool,
    keys: &SecretKeys,
) -> Result<(), MissingKey> {
    if keys.is_empty() {
        warn!("secrets.encryption_keys is empty: webhook signing secrets and receiver credentials are stored in clear in the database (docs/SECURITY.md, \"Secrets at rest\")");
    }
    let uses = match tokio::time::timeout(CHECK_LIMIT, key_use(pool)).await {
        Ok(Ok(uses)) => uses,
        Ok(Err(e)) => {
            warn!(error = %e, "could not check the stored secrets' keys at start; going on");
            return Ok(());
        }
        Err(_) => {
            warn!("the database did not answer the stored secrets' check at start; going on");
            return Ok(());
        }
    };
    for used in uses {
        match used.key_id {
            Some(key_id) if !keys.contains(&key_id) => {
                return Err(MissingKey {
                    key_id,
                    values: used.value_count,
                })
            }
            Some(key_id) if keys.sealing_id() != Some(key_id.as_str()) => info!(
                key_id,
                values = used.value_count,
                "secrets sealed under an older key: `webhookd secrets reencrypt` moves them to the first key"
            ),
            None if !keys.is_empty() => warn!(
                values = used.value_count,
                "secrets stored in clear: `webhookd secrets reencrypt` encrypts them"
            ),
            _ => {}
        }
    }
    Ok(())
}
