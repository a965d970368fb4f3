//! Signatures (`webhookd_signing`): verifying arbitrary headers against
//! arbitrary secrets and bodies never panics and never reports success for a
//! forged or tampered request; what is signed always verifies.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use webhookd_signing::{verify_seed, verify_standard, Signer, VerifyError, DEFAULT_TOLERANCE_SECS};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secret: &'a str,
    body: &'a [u8],
    seed_header: &'a str,
    msg_id: &'a str,
    timestamp_header: &'a str,
    signature_header: &'a str,
    now: i64,
    tolerance: i64,
    timestamp: i64,
}

fuzz_target!(|input: Input<'_>| {
    let seed = verify_seed(input.secret, input.body, input.seed_header);
    let standard = verify_standard(
        input.secret,
        input.msg_id,
        input.timestamp_header,
        input.body,
        input.signature_header,
        input.now,
        input.tolerance,
    );
    for error in [seed.err(), standard.err()].into_iter().flatten() {
        check_error_is_safe(&error, input.secret);
    }

    let signer = Signer::new(input.secret);
    let signed = signer.sign_seed(input.body);
    assert_eq!(verify_seed(input.secret, input.body, &signed), Ok(()));
    assert_eq!(signer.verify_seed(input.body, &signed), Ok(()));
    // Hex digits in either case; the body must match exactly.
    let upper = format!("sha256={}", signed["sha256=".len()..].to_ascii_uppercase());
    assert_eq!(signer.verify_seed(input.body, &upper), Ok(()));
    let mut tampered = input.body.to_vec();
    tampered.push(b' ');
    assert_eq!(
        signer.verify_seed(&tampered, &signed),
        Err(VerifyError::BadSignature)
    );

    if input.msg_id.is_empty() {
        return;
    }
    let ts = input.timestamp;
    let signature = signer.sign_standard(input.msg_id, ts, input.body);
    let verify = |body: &[u8], header: &str, now: i64| {
        verify_standard(
            input.secret,
            input.msg_id,
            &ts.to_string(),
            body,
            header,
            now,
            DEFAULT_TOLERANCE_SECS,
        )
    };
    assert_eq!(verify(input.body, &signature, ts), Ok(()));
    // During a key rotation several signatures are sent; any match passes.
    let rotated = format!("v1,{} v2,x {signature}", "A".repeat(43) + "=");
    assert_eq!(verify(input.body, &rotated, ts), Ok(()));
    assert_eq!(
        verify(&tampered, &signature, ts),
        Err(VerifyError::BadSignature)
    );
    // Outside the tolerance it fails however good the signature.
    if let Some(late) = ts.checked_add(DEFAULT_TOLERANCE_SECS + 1) {
        assert!(matches!(
            verify(input.body, &signature, late),
            Err(VerifyError::TimestampOutOfTolerance { .. })
        ));
    }
});

/// Errors are logged and returned to clients: they never carry the secret.
/// (Only checked for a secret with a character no error message uses, so
/// that a secret spelling part of a message is not taken for a leak.)
fn check_error_is_safe(error: &VerifyError, secret: &str) {
    let text = error.to_string();
    assert!(text.len() < 256, "{text}");
    let in_messages = |c: char| c.is_ascii_alphanumeric() || " ,.:;()`=_-<>+".contains(c);
    if secret.len() >= 8 && secret.chars().any(|c| !in_messages(c)) {
        assert!(!text.contains(secret), "{text}");
    }
}
