//! A webhook's target, built once and reused while its row is unchanged.
//! Parsing the URL and the headers and keying two HMACs cost more than
//! signing a body, and every delivery of a webhook would repeat them. Each
//! claimed row carries its webhook's current settings, so a cached target
//! serves only while they are unchanged: an edit or a secret rotation applies
//! from the next attempt on. The dispatcher keeps one per webhook in its
//! per-webhook state (`dispatch.rs`), which also bounds how many are kept.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use webhookd_events::{SecretKeys, StoredAuth};

use crate::deliver::{Target, TargetRow};

/// A built target and the row fields it was built from. No `Debug`: it holds
/// secrets.
pub(crate) struct CachedTarget {
    url: String,
    secret: SecretString,
    previous_secret: Option<SecretString>,
    headers: serde_json::Value,
    template: Option<String>,
    timeout_ms: Option<i32>,
    auth: Option<StoredAuth>,
    target: Arc<Target>,
}

impl CachedTarget {
    /// Builds the target of `row`; fails as [`Target::from_row`] does.
    pub(crate) fn build(
        row: TargetRow<'_>,
        default_timeout: Duration,
        keys: &SecretKeys,
    ) -> Result<Self, String> {
        let target = Arc::new(Target::from_row(row, default_timeout, keys)?);
        Ok(CachedTarget {
            url: row.url.to_owned(),
            secret: SecretString::from(row.secret),
            previous_secret: row.previous_secret.map(SecretString::from),
            headers: row.headers.clone(),
            template: row.template.map(str::to_owned),
            timeout_ms: row.timeout_ms,
            auth: row.auth.cloned(),
            target,
        })
    }

    /// Whether `row` holds exactly the settings this target was built from.
    pub(crate) fn built_from(&self, row: &TargetRow<'_>) -> bool {
        self.url == row.url
            && self.secret.expose_secret() == row.secret
            && self
                .previous_secret
                .as_ref()
                .map(ExposeSecret::expose_secret)
                == row.previous_secret
            && self.template.as_deref() == row.template
            && self.timeout_ms == row.timeout_ms
            && &self.headers == row.headers
            && self.auth.as_ref() == row.auth
    }

    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn row<'a>(secret: &'a str, headers: &'a serde_json::Value) -> TargetRow<'a> {
        TargetRow {
            webhook_id: 1,
            url: "http://127.0.0.1:9/hook",
            secret,
            previous_secret: None,
            headers,
            template: None,
            timeout_ms: Some(1000),
            auth: None,
        }
    }

    #[test]
    fn a_target_matches_the_row_it_was_built_from() {
        let headers = json!({"X-Team": "crm"});
        let cached =
            CachedTarget::build(row("s1", &headers), TIMEOUT, &SecretKeys::none()).expect("target");
        assert!(cached.built_from(&row("s1", &headers)));
        assert_eq!(
            cached.target().headers,
            vec![("X-Team".to_owned(), "crm".to_owned())]
        );
    }

    #[test]
    fn any_changed_field_is_a_different_row() {
        let headers = json!({});
        let other_headers = json!({"X-A": "b"});
        let auth = StoredAuth::new(json!({"type": "bearer", "token": "t"}));
        let cached =
            CachedTarget::build(row("s1", &headers), TIMEOUT, &SecretKeys::none()).expect("target");
        let changed = [
            TargetRow {
                auth: Some(&auth),
                ..row("s1", &headers)
            },
            row("s2", &headers),
            TargetRow {
                previous_secret: Some("s0"),
                ..row("s1", &headers)
            },
            row("s1", &other_headers),
            TargetRow {
                url: "http://127.0.0.1:10/other",
                ..row("s1", &headers)
            },
            TargetRow {
                timeout_ms: Some(250),
                ..row("s1", &headers)
            },
            TargetRow {
                timeout_ms: None,
                ..row("s1", &headers)
            },
            TargetRow {
                template: Some(r#"{"t": "{{event}}"}"#),
                ..row("s1", &headers)
            },
        ];
        for row in changed {
            assert!(!cached.built_from(&row), "{:?}", row.url);
        }

        let rotated = CachedTarget::build(
            TargetRow {
                previous_secret: Some("s1"),
                ..row("s2", &headers)
            },
            TIMEOUT,
            &SecretKeys::none(),
        )
        .expect("target");
        assert_ne!(
            cached.target().signer.sign_seed(b"{}"),
            rotated.target().signer.sign_seed(b"{}"),
            "the new secret signs"
        );
        assert!(rotated.target().previous_signer.is_some());
    }

    #[test]
    fn a_sealed_secret_opens_and_one_no_key_opens_fails_to_build() {
        let keys =
            SecretKeys::parse(["k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]).expect("keys");
        let sealed =
            webhookd_events::webhook_secrets::seal_signing(&keys, 1, "s1").expect("sealed");
        let headers = json!({});
        let clear =
            CachedTarget::build(row("s1", &headers), TIMEOUT, &SecretKeys::none()).expect("target");
        let opened = CachedTarget::build(row(&sealed, &headers), TIMEOUT, &keys).expect("target");
        assert_eq!(
            clear.target().signer.sign_seed(b"{}"),
            opened.target().signer.sign_seed(b"{}"),
            "the sealed secret signs as the clear one"
        );
        let error = CachedTarget::build(row(&sealed, &headers), TIMEOUT, &SecretKeys::none())
            .err()
            .expect("no key");
        assert!(error.contains("`k1`"), "{error}");
    }

    #[test]
    fn a_broken_template_fails_to_build() {
        let headers = json!({});
        let broken = CachedTarget::build(
            TargetRow {
                template: Some("{{ unclosed"),
                ..row("s1", &headers)
            },
            TIMEOUT,
            &SecretKeys::none(),
        );
        assert!(broken.is_err_and(|e| e.starts_with("invalid template")));
    }
}
