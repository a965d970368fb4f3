//! A webhook's secrets as stored (SPEC §15): its signing secrets and the
//! secret fields of its `auth`, each sealed with [`SecretKeys`] under
//! associated data naming the webhook and the field, so a value copied to
//! another row or field does not open.
//!
//! `secret` and `previous_secret` share one context: a rotation moves the
//! current secret to `previous_secret` in SQL, without opening it.

use crate::receiver_auth::SECRET_FIELDS;
use crate::secret_box::{SecretBoxError, SecretKeys};
use crate::StoredAuth;

fn context(webhook_id: i64, field: &str) -> Vec<u8> {
    format!("webhookd:webhook:{webhook_id}:{field}").into_bytes()
}

const SIGNING: &str = "signing";

/// A signing secret (`secret` or `previous_secret`) as it is to be stored.
pub fn seal_signing(
    keys: &SecretKeys,
    webhook_id: i64,
    plain: &str,
) -> Result<String, SecretBoxError> {
    keys.seal(plain, &context(webhook_id, SIGNING))
}

/// A stored signing secret in clear.
pub fn open_signing(
    keys: &SecretKeys,
    webhook_id: i64,
    stored: &str,
) -> Result<String, SecretBoxError> {
    keys.open(stored, &context(webhook_id, SIGNING))
}

/// `auth` with each secret field it holds sealed (fields it leaves out,
/// kept from the stored value by an update, are sealed already).
pub fn seal_auth(
    keys: &SecretKeys,
    webhook_id: i64,
    auth: &StoredAuth,
) -> Result<StoredAuth, SecretBoxError> {
    map_secret_fields(auth, |field, value| {
        keys.seal(value, &context(webhook_id, &auth_field(field)))
    })
}

/// `auth` with each secret field in clear.
pub fn open_auth(
    keys: &SecretKeys,
    webhook_id: i64,
    auth: &StoredAuth,
) -> Result<StoredAuth, SecretBoxError> {
    map_secret_fields(auth, |field, value| {
        keys.open(value, &context(webhook_id, &auth_field(field)))
    })
}

/// A stored signing secret sealed under the sealing key; `None` when it is
/// already (what `webhookd secrets reencrypt` skips).
pub fn reseal_signing(
    keys: &SecretKeys,
    webhook_id: i64,
    stored: &str,
) -> Result<Option<String>, SecretBoxError> {
    if keys.is_current(stored) {
        return Ok(None);
    }
    let plain = open_signing(keys, webhook_id, stored)?;
    seal_signing(keys, webhook_id, &plain).map(Some)
}

/// A stored `auth` with every secret field sealed under the sealing key,
/// and how many fields that changed (0: nothing to write).
pub fn reseal_auth(
    keys: &SecretKeys,
    webhook_id: i64,
    stored: &StoredAuth,
) -> Result<(StoredAuth, usize), SecretBoxError> {
    let mut changed = 0;
    let resealed = map_secret_fields(stored, |field, value| {
        if keys.is_current(value) {
            return Ok(value.to_owned());
        }
        changed += 1;
        let context = context(webhook_id, &auth_field(field));
        keys.seal(&keys.open(value, &context)?, &context)
    })?;
    Ok((resealed, changed))
}

/// The stored secret fields of `auth` (for the key ids in use).
pub fn auth_secret_values(auth: &StoredAuth) -> impl Iterator<Item = &str> {
    SECRET_FIELDS
        .iter()
        .filter_map(|field| auth.as_json().get(field)?.as_str())
}

fn auth_field(field: &str) -> String {
    format!("auth.{field}")
}

fn map_secret_fields(
    auth: &StoredAuth,
    mut map: impl FnMut(&str, &str) -> Result<String, SecretBoxError>,
) -> Result<StoredAuth, SecretBoxError> {
    let mut value = auth.as_json().clone();
    if let Some(object) = value.as_object_mut() {
        for field in SECRET_FIELDS {
            if let Some(serde_json::Value::String(text)) = object.get_mut(field) {
                *text = map(field, text)?;
            }
        }
    }
    Ok(StoredAuth::new(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> SecretKeys {
        SecretKeys::parse(["k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]).expect("keys")
    }

    #[test]
    fn every_secret_field_of_auth_is_sealed_and_the_public_ones_are_not() {
        let auth = StoredAuth::new(json!({"type": "oauth2", "token_url": "https://a.example/t",
            "client_id": "cid", "client_secret": "s3cret", "scope": "hooks"}));
        let sealed = seal_auth(&keys(), 7, &auth).expect("sealed");
        let text = sealed.as_json().to_string();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("\"client_id\":\"cid\""), "{text}");
        assert_eq!(
            sealed.as_json()["client_secret"].as_str().map(|s| &s[..10]),
            Some("enc:v1:k1:")
        );
        assert_eq!(open_auth(&keys(), 7, &sealed), Ok(auth));
    }

    #[test]
    fn a_secret_moved_to_another_webhook_or_field_does_not_open() {
        let keys = keys();
        let sealed = seal_signing(&keys, 1, "whsec_x").expect("sealed");
        assert_eq!(open_signing(&keys, 1, &sealed).as_deref(), Ok("whsec_x"));
        assert!(open_signing(&keys, 2, &sealed).is_err());
        let moved = StoredAuth::new(json!({"type": "bearer", "token": sealed}));
        assert!(open_auth(&keys, 1, &moved).is_err());
    }

    #[test]
    fn resealing_counts_only_values_not_under_the_sealing_key() {
        let keys = keys();
        let auth = StoredAuth::new(json!({"type": "basic", "username": "u", "password": "pw"}));
        let (sealed, changed) = reseal_auth(&keys, 3, &auth).expect("resealed");
        assert_eq!(changed, 1);
        assert_eq!(reseal_auth(&keys, 3, &sealed).expect("again").1, 0);
        assert_eq!(auth_secret_values(&sealed).count(), 1);
        assert!(reseal_signing(&keys, 3, "plain").expect("sealed").is_some());
        let current = seal_signing(&keys, 3, "plain").expect("sealed");
        assert_eq!(reseal_signing(&keys, 3, &current), Ok(None));
    }
}
