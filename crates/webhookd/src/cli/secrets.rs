//! `webhookd secrets reencrypt`: seals every stored secret under the first
//! key of `secrets.encryption_keys` (SPEC §15), the step of a key rotation
//! after adding the new key first, and of encrypting a database written in
//! clear. Idempotent: values already under the first key are left alone.

use anyhow::{bail, Context};
use clap::Subcommand;
use sqlx::PgPool;
use webhookd_events::SecretKeys;
use webhookd_store::secrets_at_rest::reseal_batch;

#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// Rewrite every stored secret (clear, or under another listed key)
    /// under the first key, and print how many values were rewritten.
    Reencrypt {
        /// Webhooks per transaction (their rows are locked meanwhile).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        batch_size: i64,
    },
}

pub(crate) async fn run(
    cmd: SecretsCommand,
    pool: &PgPool,
    keys: &SecretKeys,
) -> anyhow::Result<()> {
    match cmd {
        SecretsCommand::Reencrypt { batch_size } => reencrypt(pool, keys, batch_size).await,
    }
}

async fn reencrypt(pool: &PgPool, keys: &SecretKeys, batch_size: i64) -> anyhow::Result<()> {
    let Some(sealing_id) = keys.sealing_id() else {
        bail!("secrets.encryption_keys is empty: configure a key to encrypt with (docs/SECURITY.md, \"Secrets at rest\")");
    };
    let mut after = 0;
    let mut rewritten = 0;
    loop {
        let batch = reseal_batch(pool, keys, after, batch_size)
            .await
            .with_context(|| format!("re-encrypting the secrets of webhooks after id {after}"))?;
        rewritten += batch.values;
        match batch.last_id {
            Some(last) => after = last,
            None => break,
        }
    }
    println!("rewrote {rewritten} secret values under key `{sealing_id}`");
    Ok(())
}
