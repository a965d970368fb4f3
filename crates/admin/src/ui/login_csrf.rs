//! The sign-in form's CSRF token, bound to the server. The form has no
//! session yet, so the token travels as a double submit (a cookie and a
//! hidden field that must match), and it must also be one this server
//! issued: `base64url(nonce ‖ issued_at) . base64url(HMAC-SHA256(key, …))`.
//! A bare double submit accepts any value an attacker manages to plant in
//! both places (a cookie set from a sibling subdomain or over plain HTTP);
//! a signed one cannot be made up, and expires after an hour.
//!
//! The key is `http.login_csrf_key` (SHA-256 of it), or random per process
//! when empty: then a form shown by one API replica is refused by another,
//! so replicas behind one address share a configured key.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// As long as someone may take to paste their token.
pub(crate) const LOGIN_TOKEN_LIFETIME_SECS: u64 = 60 * 60;
/// Clocks of replicas sharing a key may disagree this much.
const CLOCK_SKEW_SECS: u64 = 60;
const NONCE_BYTES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub(crate) struct LoginCsrf {
    key: [u8; 32],
}

impl LoginCsrf {
    /// Keyed by `configured` (any length), or by 32 random bytes when empty.
    pub(crate) fn new(configured: &str) -> Self {
        let key = if configured.is_empty() {
            let mut key = [0u8; 32];
            rand::rng().fill_bytes(&mut key);
            key
        } else {
            Sha256::digest(configured.as_bytes()).into()
        };
        LoginCsrf { key }
    }

    fn mac(&self, payload: &[u8]) -> Option<HmacSha256> {
        let mut mac = HmacSha256::new_from_slice(&self.key).ok()?;
        mac.update(payload);
        Some(mac)
    }

    pub(crate) fn issue(&self) -> String {
        self.issue_at(unix_now())
    }

    fn issue_at(&self, now: u64) -> String {
        let mut payload = [0u8; NONCE_BYTES + 8];
        rand::rng().fill_bytes(&mut payload[..NONCE_BYTES]);
        payload[NONCE_BYTES..].copy_from_slice(&now.to_be_bytes());
        // HMAC takes keys of any length: `mac` cannot fail here.
        let tag = self
            .mac(&payload)
            .map(|mac| mac.finalize().into_bytes().to_vec())
            .unwrap_or_default();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Whether this server issued `token` within the last hour.
    pub(crate) fn verify(&self, token: &str) -> bool {
        self.verify_at(token, unix_now())
    }

    fn verify_at(&self, token: &str, now: u64) -> bool {
        let Some((payload, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(payload), Ok(tag)) = (URL_SAFE_NO_PAD.decode(payload), URL_SAFE_NO_PAD.decode(tag))
        else {
            return false;
        };
        let Some(issued) = payload
            .get(NONCE_BYTES..)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
            .map(u64::from_be_bytes)
        else {
            return false;
        };
        // `verify_slice` compares in constant time.
        let genuine = self
            .mac(&payload)
            .is_some_and(|mac| mac.verify_slice(&tag).is_ok());
        genuine
            && issued <= now + CLOCK_SKEW_SECS
            && now.saturating_sub(issued) <= LOGIN_TOKEN_LIFETIME_SECS
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_only_with_the_key_that_issued_it_and_only_for_an_hour() {
        let server = LoginCsrf::new("");
        let token = server.issue_at(1_000_000);
        assert!(server.verify_at(&token, 1_000_000));
        assert!(server.verify_at(&token, 1_000_000 + LOGIN_TOKEN_LIFETIME_SECS));
        assert!(!server.verify_at(&token, 1_000_001 + LOGIN_TOKEN_LIFETIME_SECS));
        assert!(
            !LoginCsrf::new("").verify_at(&token, 1_000_000),
            "another process"
        );
        let shared = LoginCsrf::new("replicas share this");
        assert!(LoginCsrf::new("replicas share this").verify_at(&shared.issue_at(5), 5));
    }

    #[test]
    fn made_up_or_altered_tokens_are_refused() {
        let server = LoginCsrf::new("");
        let token = server.issue_at(1_000);
        let (payload, tag) = token.split_once('.').unwrap_or_default();
        let mut other = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
        other[0] ^= 1;
        let altered = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&other));
        for bad in [
            "",
            ".",
            "abc",
            "a.b",
            altered.as_str(),
            &format!("{payload}."),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.AAAA",
        ] {
            assert!(!server.verify_at(bad, 1_000), "{bad:?}");
        }
    }
}
