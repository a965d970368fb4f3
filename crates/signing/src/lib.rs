//! HMAC-SHA256 webhook signatures, as sent by webhookd and checked by receivers.
//!
//! Every delivery carries two independent signatures over the raw request body:
//!
//! * **Seed-style** — `X-Webhook-Signature: sha256=<lowercase hex>`, the HMAC-SHA256
//!   of the body keyed with the *whole* secret string (including a `whsec_` prefix,
//!   if any). It is byte-for-byte what PHP's
//!   `'sha256=' . hash_hmac('sha256', $payload, $secret)` produces.
//! * **[Standard Webhooks](https://www.standardwebhooks.com/)** — `webhook-id`,
//!   `webhook-timestamp` and `webhook-signature: v1,<base64>` headers, where the
//!   signature is the HMAC-SHA256 of `"{webhook-id}.{webhook-timestamp}.{body}"`.
//!   The key is derived from the secret as described in [`Signer`].
//!
//! Senders build one [`Signer`] per webhook secret and reuse it; receivers call
//! [`verify_seed`] and/or [`verify_standard`], which compare in constant time.
//!
//! # Verifying a delivery (receiver side)
//!
//! ```
//! use std::time::{SystemTime, UNIX_EPOCH};
//! use webhookd_signing::{
//!     verify_seed, verify_standard, Signer, VerifyError, DEFAULT_TOLERANCE_SECS,
//!     SEED_SIGNATURE_HEADER, STANDARD_ID_HEADER, STANDARD_SIGNATURE_HEADER,
//!     STANDARD_TIMESTAMP_HEADER,
//! };
//!
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let now = SystemTime::now()
//!     .duration_since(UNIX_EPOCH)
//!     .expect("clock is after 1970")
//!     .as_secs() as i64;
//!
//! // What webhookd sends: the raw body plus these headers.
//! let body: &[u8] = br#"{"event":"task.created","data":{"task_id":123}}"#;
//! let signer = Signer::new(secret);
//! let headers = [
//!     (SEED_SIGNATURE_HEADER, signer.sign_seed(body)),
//!     (STANDARD_ID_HEADER, "msg_2b3c".to_owned()),
//!     (STANDARD_TIMESTAMP_HEADER, now.to_string()),
//!     (STANDARD_SIGNATURE_HEADER, signer.sign_standard("msg_2b3c", now, body)),
//! ];
//!
//! // Receiver: look headers up however your HTTP framework allows (names are
//! // case-insensitive); pass "" for an absent one to get a `Missing…` error.
//! // Verify the body bytes exactly as received, before any JSON parsing.
//! let header = |name: &str| -> &str {
//!     headers
//!         .iter()
//!         .find(|(n, _)| n.eq_ignore_ascii_case(name))
//!         .map_or("", |(_, v)| v.as_str())
//! };
//!
//! // Seed-style header: only the body is covered.
//! verify_seed(secret, body, header(SEED_SIGNATURE_HEADER))?;
//!
//! // Standard Webhooks headers: id and timestamp are covered too, and the
//! // timestamp must be within the tolerance of `now` (replay protection).
//! verify_standard(
//!     secret,
//!     header(STANDARD_ID_HEADER),
//!     header(STANDARD_TIMESTAMP_HEADER),
//!     body,
//!     header(STANDARD_SIGNATURE_HEADER),
//!     now,
//!     DEFAULT_TOLERANCE_SECS,
//! )?;
//!
//! // Any change to the body is detected.
//! assert_eq!(
//!     verify_seed(secret, b"{}", header(SEED_SIGNATURE_HEADER)),
//!     Err(VerifyError::BadSignature)
//! );
//! # Ok::<(), VerifyError>(())
//! ```

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

type HmacSha256 = Hmac<Sha256>;

/// Header carrying the seed-style `sha256=<hex>` signature.
pub const SEED_SIGNATURE_HEADER: &str = "X-Webhook-Signature";
/// Standard Webhooks header carrying the unique message id.
pub const STANDARD_ID_HEADER: &str = "webhook-id";
/// Standard Webhooks header carrying the send time in Unix seconds.
pub const STANDARD_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Standard Webhooks header carrying one or more space-separated `v1,<base64>` signatures.
pub const STANDARD_SIGNATURE_HEADER: &str = "webhook-signature";

/// Replay window recommended by the Standard Webhooks spec: five minutes either way.
pub const DEFAULT_TOLERANCE_SECS: i64 = 5 * 60;

/// Prefix of generated secrets and of secrets whose Standard Webhooks key is base64-encoded.
pub(crate) const SECRET_PREFIX: &str = "whsec_";

const SEED_PREFIX: &str = "sha256=";
const STANDARD_VERSION: &str = "v1";
const DIGEST_LEN: usize = 32;
/// Length of a padded standard base64 encoding of a 32-byte digest.
const DIGEST_BASE64_LEN: usize = 44;
const SECRET_KEY_LEN: usize = 32;

/// Why a signature did not verify.
///
/// Messages describe the problem only; they never include the secret, the key or the
/// expected signature, so they are safe to log or return to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature header is absent or empty.
    #[error("signature header is missing or empty")]
    MissingSignature,
    /// The signature header does not have the expected shape.
    #[error("signature header is malformed: {0}")]
    MalformedSignature(&'static str),
    /// The Standard Webhooks signature header only holds versions other than `v1`.
    #[error("signature header holds no v1 signature")]
    UnsupportedSignatureVersion,
    /// The signature is well-formed but does not match the payload and secret.
    #[error("signature does not match the payload")]
    BadSignature,
    /// The `webhook-id` header is absent or empty.
    #[error("message id header is missing or empty")]
    MissingMessageId,
    /// The `webhook-timestamp` header is absent or empty.
    #[error("timestamp header is missing or empty")]
    MissingTimestamp,
    /// The `webhook-timestamp` header is not an integer number of Unix seconds.
    #[error("timestamp header is not an integer number of unix seconds")]
    MalformedTimestamp,
    /// The timestamp is further than the tolerance from the receiver's clock.
    #[error("timestamp {timestamp} is more than {tolerance_secs}s away from now ({now})")]
    TimestampOutOfTolerance {
        /// Timestamp from the header.
        timestamp: i64,
        /// Receiver's current time.
        now: i64,
        /// Allowed distance in seconds.
        tolerance_secs: i64,
    },
}

/// Signs (and verifies) payloads for one webhook secret.
///
/// Construction keys two HMAC-SHA256 states once; each signature then clones the
/// prepared state instead of re-hashing the key, so build a `Signer` per secret and
/// keep it for as long as the secret is in use. It is cheap to clone and can be shared
/// between threads.
///
/// # Keys
///
/// * The **seed-style** key is always the secret string's bytes, verbatim — a
///   `whsec_…` secret is used *with* its prefix, as PHP's `hash_hmac` would.
/// * The **Standard Webhooks** key is the standard-alphabet, padded base64 decoding
///   of the part after `whsec_`, when the secret starts with `whsec_` and that part
///   decodes to at least one byte. Any other secret (for example a user-supplied
///   `"your-secret-key"`) is used as raw bytes, so both sides only need to agree on
///   the secret string.
///
/// The [`Debug`] output never shows key material.
#[derive(Clone)]
pub struct Signer {
    seed: HmacSha256,
    standard: HmacSha256,
}

impl Signer {
    /// Prepares the keyed HMAC states for `secret`; see the type docs for how keys are derived.
    pub fn new(secret: &str) -> Self {
        let standard = match standard_key(secret) {
            Some(decoded) => keyed_hmac(&decoded),
            None => keyed_hmac(secret.as_bytes()),
        };
        Self {
            seed: keyed_hmac(secret.as_bytes()),
            standard,
        }
    }

    /// Returns the `X-Webhook-Signature` value: `sha256=<lowercase hex HMAC of body>`.
    pub fn sign_seed(&self, body: &[u8]) -> String {
        let digest = self.seed_digest(body);
        let mut out = String::with_capacity(SEED_PREFIX.len() + 2 * DIGEST_LEN);
        out.push_str(SEED_PREFIX);
        push_lower_hex(&mut out, &digest);
        out
    }

    /// Returns the `webhook-signature` value: `v1,<base64 HMAC of "{msg_id}.{timestamp}.{body}">`.
    ///
    /// `timestamp` is in Unix seconds and must be sent verbatim as `webhook-timestamp`.
    pub fn sign_standard(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let digest = self.standard_digest(msg_id, timestamp, body);
        let mut out = String::with_capacity(STANDARD_VERSION.len() + 1 + DIGEST_BASE64_LEN);
        out.push_str(STANDARD_VERSION);
        out.push(',');
        BASE64.encode_string(digest, &mut out);
        out
    }

    /// Checks an `X-Webhook-Signature` value against `body` in constant time.
    ///
    /// Same as [`verify_seed`], without re-keying.
    pub fn verify_seed(&self, body: &[u8], header_value: &str) -> Result<(), VerifyError> {
        let header_value = header_value.trim();
        if header_value.is_empty() {
            return Err(VerifyError::MissingSignature);
        }
        let hex = header_value
            .strip_prefix(SEED_PREFIX)
            .ok_or(VerifyError::MalformedSignature(
                "expected a `sha256=` prefix",
            ))?;
        let claimed = decode_hex_digest(hex)?;
        let expected = self.seed_digest(body);
        if bool::from(expected.ct_eq(&claimed)) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature)
        }
    }

    /// Checks Standard Webhooks headers against `body`, comparing in constant time.
    ///
    /// Same as [`verify_standard`], without re-keying.
    pub fn verify_standard(
        &self,
        msg_id: &str,
        timestamp_header: &str,
        body: &[u8],
        signature_header: &str,
        now_unix: i64,
        tolerance_secs: i64,
    ) -> Result<(), VerifyError> {
        if msg_id.is_empty() {
            return Err(VerifyError::MissingMessageId);
        }
        let timestamp = parse_timestamp(timestamp_header)?;
        // A negative tolerance would reject everything; treat it as "exact second only".
        let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
        if timestamp.abs_diff(now_unix) > tolerance {
            return Err(VerifyError::TimestampOutOfTolerance {
                timestamp,
                now: now_unix,
                tolerance_secs,
            });
        }

        let expected = self.standard_digest(msg_id, timestamp, body);
        let mut saw_v1 = false;
        let mut saw_other_version = false;
        let mut saw_malformed = false;
        for entry in signature_header.split_ascii_whitespace() {
            match entry.split_once(',') {
                Some((STANDARD_VERSION, encoded)) => match decode_base64_digest(encoded) {
                    Some(claimed) => {
                        saw_v1 = true;
                        if bool::from(expected.ct_eq(&claimed)) {
                            return Ok(());
                        }
                    }
                    None => saw_malformed = true,
                },
                // The spec lets senders add other schemes (e.g. `v1a` asymmetric
                // signatures) next to v1; a v1-only receiver must skip them.
                Some(_) => saw_other_version = true,
                None => saw_malformed = true,
            }
        }

        // Report the most useful reason: a real mismatch beats format problems.
        Err(if saw_v1 {
            VerifyError::BadSignature
        } else if saw_malformed {
            VerifyError::MalformedSignature("expected space-separated `v1,<base64 digest>` entries")
        } else if saw_other_version {
            VerifyError::UnsupportedSignatureVersion
        } else {
            VerifyError::MissingSignature
        })
    }

    fn seed_digest(&self, body: &[u8]) -> [u8; DIGEST_LEN] {
        let mut mac = self.seed.clone();
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    fn standard_digest(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; DIGEST_LEN] {
        let mut digits = [0u8; 20];
        let mut mac = self.standard.clone();
        // Feeding the parts separately avoids building "{id}.{ts}.{body}" in memory.
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(format_i64(timestamp, &mut digits));
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

/// Seed-style `sha256=<hex>` signature of `body`; see [`Signer::sign_seed`].
///
/// Re-keys on every call: prefer a long-lived [`Signer`] on hot paths.
pub fn seed_signature(secret: &str, body: &[u8]) -> String {
    Signer::new(secret).sign_seed(body)
}

/// Standard Webhooks `v1,<base64>` signature; see [`Signer::sign_standard`].
///
/// Re-keys on every call: prefer a long-lived [`Signer`] on hot paths.
pub fn standard_signature(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    Signer::new(secret).sign_standard(msg_id, timestamp, body)
}

/// Verifies an `X-Webhook-Signature: sha256=<hex>` value against the raw body.
///
/// The key is the whole `secret` string (see [`Signer`]). Hex digits may be in either
/// case; the comparison is constant-time.
pub fn verify_seed(secret: &str, body: &[u8], header_value: &str) -> Result<(), VerifyError> {
    Signer::new(secret).verify_seed(body, header_value)
}

/// Verifies Standard Webhooks headers (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`) against the raw body.
///
/// * `timestamp_header` must be an integer number of Unix seconds within
///   `tolerance_secs` of `now_unix` in either direction, which rejects replays of old
///   deliveries ([`DEFAULT_TOLERANCE_SECS`] is the spec's recommendation).
/// * `signature_header` may hold several space-separated entries
///   (`v1,abc v1,def`, as sent during secret rotation); verification passes if any
///   `v1` entry matches. Entries of other versions are ignored.
///
/// The key is derived from `secret` as described on [`Signer`]; comparisons are
/// constant-time.
pub fn verify_standard(
    secret: &str,
    msg_id: &str,
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    Signer::new(secret).verify_standard(
        msg_id,
        timestamp_header,
        body,
        signature_header,
        now_unix,
        tolerance_secs,
    )
}

/// Generates a new secret: `whsec_` followed by the padded standard base64 of 32
/// random bytes from a cryptographically secure generator.
pub fn generate_secret() -> String {
    let mut key = [0u8; SECRET_KEY_LEN];
    // ThreadRng is a CSPRNG seeded (and periodically reseeded) from the OS.
    rand::rng().fill_bytes(&mut key);
    let mut out = String::with_capacity(SECRET_PREFIX.len() + DIGEST_BASE64_LEN);
    out.push_str(SECRET_PREFIX);
    BASE64.encode_string(key, &mut out);
    out
}

fn keyed_hmac(key: &[u8]) -> HmacSha256 {
    // HMAC hashes over-long keys and pads short ones, so no length is rejected.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}

fn standard_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX)?;
    BASE64.decode(encoded).ok().filter(|key| !key.is_empty())
}

fn parse_timestamp(header: &str) -> Result<i64, VerifyError> {
    let header = header.trim();
    if header.is_empty() {
        return Err(VerifyError::MissingTimestamp);
    }
    // Plain digits only: `i64::from_str` would also take a leading `+`, which no
    // sender emits and which would let two header strings map to one signed value.
    let digits = header.strip_prefix('-').unwrap_or(header);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::MalformedTimestamp);
    }
    header.parse().map_err(|_| VerifyError::MalformedTimestamp)
}

fn decode_hex_digest(hex: &str) -> Result<[u8; DIGEST_LEN], VerifyError> {
    let hex = hex.as_bytes();
    if hex.len() != 2 * DIGEST_LEN {
        return Err(VerifyError::MalformedSignature(
            "expected 64 hex digits after `sha256=`",
        ));
    }
    let mut out = [0u8; DIGEST_LEN];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        match (hex_value(pair[0]), hex_value(pair[1])) {
            (Some(hi), Some(lo)) => *byte = (hi << 4) | lo,
            _ => {
                return Err(VerifyError::MalformedSignature(
                    "signature contains a non-hex character",
                ))
            }
        }
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn decode_base64_digest(encoded: &str) -> Option<[u8; DIGEST_LEN]> {
    // Checking the length first bounds the work done on hostile input.
    if encoded.len() != DIGEST_BASE64_LEN {
        return None;
    }
    // decode_slice wants room for its conservative length estimate, not just 32 bytes.
    let mut buf = [0u8; DIGEST_BASE64_LEN];
    let len = BASE64.decode_slice(encoded, &mut buf).ok()?;
    buf.get(..len)?.try_into().ok()
}

fn push_lower_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// Formats `n` in decimal without allocating; the longest value, `i64::MIN`, is 20 bytes.
fn format_i64(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut pos = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        pos -= 1;
        // `rest % 10` is below 10, so the cast cannot truncate.
        buf[pos] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        pos -= 1;
        buf[pos] = b'-';
    }
    &buf[pos..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_formatted_like_to_string_across_the_whole_range() {
        let mut buf = [0u8; 20];
        for n in [
            0,
            7,
            -7,
            10,
            1_614_265_330,
            -1_614_265_330,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(format_i64(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn hex_digests_decode_in_either_case() {
        let lower = "00ff10ab".repeat(8);
        let upper = lower.to_ascii_uppercase();
        assert_eq!(decode_hex_digest(&lower), decode_hex_digest(&upper));
        assert_eq!(decode_hex_digest(&lower).map(|d| d[1]), Ok(0xff));
    }

    #[test]
    fn a_plus_signed_timestamp_is_malformed() {
        assert_eq!(
            parse_timestamp("+1614265330"),
            Err(VerifyError::MalformedTimestamp)
        );
        assert_eq!(parse_timestamp("-"), Err(VerifyError::MalformedTimestamp));
        assert_eq!(parse_timestamp(" 1614265330 "), Ok(1_614_265_330));
    }

    #[test]
    fn an_empty_whsec_payload_falls_back_to_the_raw_secret() {
        assert_eq!(standard_key("whsec_"), None);
        assert_eq!(standard_key("whsec_not base64!"), None);
        assert_eq!(standard_key("whsec_AQID"), Some(vec![1, 2, 3]));
    }
}
