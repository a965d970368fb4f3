//! `secrets.*`: the keys that seal webhooks' secrets at rest (SPEC §15).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use webhookd_events::{KeyListError, SecretKeys};

#[derive(Debug, Clone, Deserialize)]
pub struct SecretsSettings {
    /// `<key id>:<base64 of 32 bytes>` entries, the sealing key first.
    pub(crate) encryption_keys: KeyList,
}

impl SecretsSettings {
    /// The parsed keys; empty when none are configured.
    pub fn keys(&self) -> Result<SecretKeys, KeyListError> {
        SecretKeys::parse(
            self.encryption_keys
                .0
                .iter()
                .map(ExposeSecret::expose_secret),
        )
    }
}

/// The entries as given: a list in a file, a comma-separated string in the
/// environment (`WEBHOOKD__SECRETS__ENCRYPTION_KEYS=k2:...,k1:...`). Each is
/// a secret, never printed.
#[derive(Clone, Default)]
pub(crate) struct KeyList(Vec<SecretString>);

impl fmt::Debug for KeyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyList({} keys, [redacted])", self.0.len())
    }
}

impl<'de> Deserialize<'de> for KeyList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = KeyList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of `<key id>:<base64 key>` or one comma-separated string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<KeyList, E> {
                Ok(KeyList(
                    text.split(',')
                        .filter(|entry| !entry.trim().is_empty())
                        .map(|entry| SecretString::from(entry.trim()))
                        .collect(),
                ))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyList, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<String>()? {
                    entries.push(SecretString::from(entry));
                }
                Ok(KeyList(entries))
            }

            fn visit_unit<E: de::Error>(self) -> Result<KeyList, E> {
                Ok(KeyList::default())
            }
        }
        deserializer.deserialize_any(Entries)
    }
}
