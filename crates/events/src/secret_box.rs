//! Secrets at rest (SPEC §15): AES-256-GCM under the keys of
//! `secrets.encryption_keys`. The first key seals, any listed key opens.
//!
//! A sealed value is a self-describing string, `enc:v1:<key id>:<base64 of
//! nonce ‖ ciphertext ‖ tag>`, so it fits the text columns and JSON fields
//! that held the clear value, and says which key opens it. Every value gets
//! a random 96-bit nonce. The caller's associated data binds a value to where
//! it is stored: moved elsewhere, it no longer opens. A value without the
//! prefix is a clear one (written before keys were configured) and reads as
//! it is, which is how an existing database keeps working until
//! `webhookd secrets reencrypt` seals it.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// What starts every sealed value.
pub const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;
const MAX_KEY_ID_LEN: usize = 32;

/// The configured keys, the sealing one first. Its `Debug` shows the key
/// ids only.
#[derive(Clone, Default)]
pub struct SecretKeys {
    keys: Vec<SecretKey>,
}

#[derive(Clone)]
struct SecretKey {
    id: String,
    cipher: Aes256Gcm,
}

/// A `secrets.encryption_keys` entry that is not `<key id>:<base64 of 32
/// bytes>`. Names the entry by its position or key id, never by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyListError {
    #[error("entry {position} is not `<key id>:<base64 of 32 bytes>`")]
    Format { position: usize },
    #[error("entry {position}: a key id is 1 to 32 letters, digits, `_`, `-` or `.`")]
    KeyId { position: usize },
    #[error("key `{id}` is not valid base64")]
    Base64 { id: String },
    #[error("key `{id}` is {len} bytes long, AES-256 needs exactly 32")]
    Length { id: String, len: usize },
    #[error("key id `{id}` is listed twice")]
    Duplicate { id: String },
}

/// A stored secret that cannot be opened. Names the key id, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretBoxError {
    #[error("a secret is encrypted under key id `{key_id}`, which secrets.encryption_keys does not list")]
    UnknownKey { key_id: String },
    #[error("a stored encrypted secret is malformed")]
    Malformed,
    #[error("a secret does not decrypt with key `{key_id}`: altered, or moved from another webhook or field")]
    Undecryptable { key_id: String },
    #[error("a decrypted secret is not UTF-8")]
    NotText,
    #[error("encrypting a secret failed")]
    Seal,
    /// Stored in clear it would read as encrypted (and name a key).
    #[error("a secret must not start with `enc:v1:`, the prefix of encrypted values")]
    Ambiguous,
}

impl SecretKeys {
    /// No keys: values are written in clear.
    pub fn none() -> SecretKeys {
        SecretKeys::default()
    }

    /// Parses `<key id>:<base64 of 32 bytes>` entries, the sealing key
    /// first. Blank entries are skipped (a trailing comma in the
    /// environment).
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<SecretKeys, KeyListError> {
        let mut keys: Vec<SecretKey> = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let position = index + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            let (id, material) = entry
                .split_once(':')
                .ok_or(KeyListError::Format { position })?;
            if !is_key_id(id) {
                return Err(KeyListError::KeyId { position });
            }
            let bytes = STANDARD
                .decode(material.trim())
                .map_err(|_| KeyListError::Base64 { id: id.to_owned() })?;
            if bytes.len() != KEY_LEN {
                return Err(KeyListError::Length {
                    id: id.to_owned(),
                    len: bytes.len(),
                });
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyListError::Duplicate { id: id.to_owned() });
            }
            keys.push(SecretKey {
                id: id.to_owned(),
                cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            });
        }
        Ok(SecretKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The id of the key that seals, if any.
    pub fn sealing_id(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// `plain` sealed under the first key with `context` as associated data;
    /// without keys, `plain` as it is.
    pub fn seal(&self, plain: &str, context: &[u8]) -> Result<String, SecretBoxError> {
        let Some(key) = self.keys.first() else {
            if plain.starts_with(SEALED_PREFIX) {
                return Err(SecretBoxError::Ambiguous);
            }
            return Ok(plain.to_owned());
        };
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: context,
                },
            )
            .map_err(|_| SecretBoxError::Seal)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(format!(
            "{SEALED_PREFIX}{}:{}",
            key.id,
            STANDARD.encode(bytes)
        ))
    }

    /// The clear value of `stored`: a sealed value opened with its key and
    /// `context`, a clear one as it is.
    pub fn open(&self, stored: &str, context: &[u8]) -> Result<String, SecretBoxError> {
        let Some((key_id, body)) = split_sealed(stored)? else {
            return Ok(stored.to_owned());
        };
        let key = self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| {
            SecretBoxError::UnknownKey {
                key_id: key_id.to_owned(),
            }
        })?;
        let bytes = STANDARD
            .decode(body)
            .map_err(|_| SecretBoxError::Malformed)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretBoxError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context,
                },
            )
            .map_err(|_| SecretBoxError::Undecryptable {
                key_id: key_id.to_owned(),
            })?;
        String::from_utf8(plain).map_err(|_| SecretBoxError::NotText)
    }

    /// Whether `stored` is already sealed under the sealing key (nothing for
    /// `reencrypt` to do). Without keys, whether it is clear.
    pub fn is_current(&self, stored: &str) -> bool {
        match self.sealing_id() {
            Some(id) => key_id_of(stored) == Some(id),
            None => !stored.starts_with(SEALED_PREFIX),
        }
    }
}

/// The key id a stored value is sealed under; `None` for a clear value.
pub fn key_id_of(stored: &str) -> Option<&str> {
    split_sealed(stored).ok().flatten().map(|(id, _)| id)
}

fn split_sealed(stored: &str) -> Result<Option<(&str, &str)>, SecretBoxError> {
    let Some(rest) = stored.strip_prefix(SEALED_PREFIX) else {
        return Ok(None);
    };
    rest.split_once(':')
        .map(Some)
        .ok_or(SecretBoxError::Malformed)
}

fn is_key_id(id: &str) -> bool {
    (1..=MAX_KEY_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKeys")
            .field("ids", &self.ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:HxwdHhobGBkWFxQVEhMQEQ4PDA0KCwgJBgcEBQIDAAE=";
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn keys(entries: &[&str]) -> SecretKeys {
        SecretKeys::parse(entries.iter().copied()).expect("valid keys")
    }

    #[test]
    fn a_sealed_secret_opens_to_the_same_text_and_shows_none_of_it() {
        let keys = keys(&[K1]);
        let sealed = keys.seal(SECRET, b"webhook 1 signing").expect("sealed");
        assert!(sealed.starts_with("enc:v1:k1:"), "{sealed}");
        assert!(!sealed.contains(SECRET));
        assert_eq!(
            keys.open(&sealed, b"webhook 1 signing"),
            Ok(SECRET.to_owned())
        );
        // A fresh nonce per value: sealing twice gives two values.
        assert_ne!(
            sealed,
            keys.seal(SECRET, b"webhook 1 signing").expect("sealed")
        );
        assert_eq!(key_id_of(&sealed), Some("k1"));
        assert!(keys.is_current(&sealed));
    }

    #[test]
    fn the_first_key_seals_and_every_listed_key_opens() {
        let old = keys(&[K1]).seal(SECRET, b"c").expect("sealed");
        let both = keys(&[K2, K1]);
        assert_eq!(both.open(&old, b"c"), Ok(SECRET.to_owned()));
        assert!(!both.is_current(&old));
        let new = both.seal(SECRET, b"c").expect("sealed");
        assert_eq!(key_id_of(&new), Some("k2"));
    }

    #[test]
    fn a_value_under_an_unlisted_key_names_that_key() {
        let sealed = keys(&[K1]).seal(SECRET, b"c").expect("sealed");
        let error = keys(&[K2]).open(&sealed, b"c").expect_err("unknown key");
        assert_eq!(
            error,
            SecretBoxError::UnknownKey {
                key_id: "k1".into()
            }
        );
        assert!(error.to_string().contains("`k1`"));
        assert!(SecretKeys::none().open(&sealed, b"c").is_err());
    }

    #[test]
    fn the_wrong_key_under_a_listed_id_a_tampered_value_or_another_context_never_open() {
        let sealed = keys(&[K1]).seal(SECRET, b"webhook 1").expect("sealed");
        let impostor = keys(&["k1:HxwdHhobGBkWFxQVEhMQEQ4PDA0KCwgJBgcEBQIDAAE="]);
        let undecryptable = Err(SecretBoxError::Undecryptable {
            key_id: "k1".into(),
        });
        assert_eq!(impostor.open(&sealed, b"webhook 1"), undecryptable);
        let keys = keys(&[K1]);
        assert_eq!(keys.open(&sealed, b"webhook 2"), undecryptable);
        let mut bytes = STANDARD
            .decode(sealed.trim_start_matches("enc:v1:k1:"))
            .expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("enc:v1:k1:{}", STANDARD.encode(&bytes));
        assert_eq!(keys.open(&tampered, b"webhook 1"), undecryptable);
        for malformed in ["enc:v1:k1", "enc:v1:k1:!!!", "enc:v1:k1:AAAA"] {
            assert_eq!(keys.open(malformed, b"c"), Err(SecretBoxError::Malformed));
        }
    }

    #[test]
    fn a_clear_value_reads_as_it_is_and_without_keys_sealing_keeps_it_clear() {
        assert_eq!(keys(&[K1]).open(SECRET, b"c"), Ok(SECRET.to_owned()));
        let none = SecretKeys::none();
        assert_eq!(none.seal(SECRET, b"c"), Ok(SECRET.to_owned()));
        assert!(none.is_current(SECRET));
        assert!(!keys(&[K1]).is_current(SECRET));
        assert_eq!(key_id_of(SECRET), None);
        // In clear it would read as sealed under key `x`: refused. Sealed,
        // it is an ordinary value.
        let lookalike = "enc:v1:x:AAAA";
        assert_eq!(none.seal(lookalike, b"c"), Err(SecretBoxError::Ambiguous));
        let sealed = keys(&[K1]).seal(lookalike, b"c").expect("sealed");
        assert_eq!(keys(&[K1]).open(&sealed, b"c").as_deref(), Ok(lookalike));
    }

    #[test]
    fn a_bad_key_list_is_refused_with_an_error_that_shows_no_key() {
        let cases = [
            (vec!["k1"], KeyListError::Format { position: 1 }),
            (vec![K1, ":AAAA"], KeyListError::KeyId { position: 2 }),
            (vec!["k 1:AAAA"], KeyListError::KeyId { position: 1 }),
            (
                vec!["k1:not base64!"],
                KeyListError::Base64 { id: "k1".into() },
            ),
            (
                vec!["k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxw="],
                KeyListError::Length {
                    id: "k1".into(),
                    len: 29,
                },
            ),
            (
                vec![K1, "k1:HxwdHhobGBkWFxQVEhMQEQ4PDA0KCwgJBgcEBQIDAAE="],
                KeyListError::Duplicate { id: "k1".into() },
            ),
        ];
        for (entries, expected) in cases {
            let error = SecretKeys::parse(entries.iter().copied()).expect_err("refused");
            assert_eq!(error, expected);
            assert!(!error.to_string().contains("AAEC"), "{error}");
        }
        assert!(keys(&[" ", K1, ""]).contains("k1"));
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let shown = format!("{:?}", keys(&[K1, K2]));
        assert!(shown.contains("k1") && shown.contains("k2"), "{shown}");
        assert!(
            !shown.contains("AAEC") && !shown.contains("HxwdHh"),
            "{shown}"
        );
        assert!(!shown.contains("cipher"), "{shown}");
    }
}
