use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use webhookd_signing::{
    generate_secret, seed_signature, standard_signature, verify_seed, verify_standard, Signer,
    VerifyError, DEFAULT_TOLERANCE_SECS, SEED_SIGNATURE_HEADER, STANDARD_ID_HEADER,
    STANDARD_SIGNATURE_HEADER, STANDARD_TIMESTAMP_HEADER,
};

const SEED_SECRET: &str = "your-secret-key";
const SEED_BODY: &str = r#"{"event":"task.created","timestamp":1708435200,"data":{"task_id":123,"title":"Новая задача"}}"#;

// Computed independently of this crate, two ways that agree:
//   python3 -c "import hmac,hashlib;print(hmac.new(b'your-secret-key', '<SEED_BODY>'.encode(), hashlib.sha256).hexdigest())"
//   printf '%s' '<SEED_BODY>' | openssl dgst -sha256 -hmac 'your-secret-key'
const SEED_EXPECTED: &str =
    "sha256=d122987dc4fb9c97d5eadfa7844315a646f7ce117b49a6e417e81af0c48ce4f8";

// Published example from the Standard Webhooks spec, re-checked with python3's hmac
// module and with `openssl dgst -sha256 -mac HMAC -macopt hexkey:<decoded key> -binary | base64`.
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TIMESTAMP: i64 = 1_614_265_330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

const TOLERANCE: i64 = DEFAULT_TOLERANCE_SECS;

fn verify_spec_example(signature_header: &str, now: i64) -> Result<(), VerifyError> {
    verify_standard(
        SPEC_SECRET,
        SPEC_MSG_ID,
        &SPEC_TIMESTAMP.to_string(),
        SPEC_BODY,
        signature_header,
        now,
        TOLERANCE,
    )
}

// --- signing vectors ---

#[test]
fn the_seed_signature_matches_php_hash_hmac_for_a_cyrillic_payload() {
    assert_eq!(
        seed_signature(SEED_SECRET, SEED_BODY.as_bytes()),
        SEED_EXPECTED
    );
}

#[test]
fn the_seed_key_is_the_whole_whsec_string_not_its_decoded_bytes() {
    // Computed with python3 hmac.new(b'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', <SEED_BODY>, sha256)
    // and `openssl dgst -sha256 -hmac 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'`.
    assert_eq!(
        seed_signature(SPEC_SECRET, SEED_BODY.as_bytes()),
        "sha256=6e2085072cfc04c980fa8882209bbf3914305b74a48b9d6f96cdc80c93c26d40"
    );
}

#[test]
fn the_standard_signature_matches_the_spec_example() {
    assert_eq!(
        standard_signature(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
        SPEC_EXPECTED
    );
}

#[test]
fn a_secret_without_whsec_prefix_is_used_as_raw_bytes_for_standard_signatures() {
    // python3: base64.b64encode(hmac.new(b'your-secret-key',
    //     b'msg_1.1708435200.' + <SEED_BODY utf-8>, hashlib.sha256).digest()); openssl agrees.
    assert_eq!(
        standard_signature(SEED_SECRET, "msg_1", 1_708_435_200, SEED_BODY.as_bytes()),
        "v1,DwkwgG4lVzNQgTK8m9MpoWmwJkMU/MSYKyjPHwMfS1w="
    );
}

#[test]
fn a_whsec_secret_that_is_not_base64_falls_back_to_raw_bytes() {
    // Treating an undecodable secret as raw bytes (prefix included) keeps user-chosen
    // secrets usable; check against an independent HMAC keyed with the full string.
    use hmac::{Hmac, Mac};
    let secret = "whsec_not*base64";
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(b"m.1.x");
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    assert_eq!(standard_signature(secret, "m", 1, b"x"), expected);
    assert_eq!(
        verify_standard(secret, "m", "1", b"x", &expected, 1, TOLERANCE),
        Ok(())
    );
}

#[test]
fn a_reused_signer_gives_the_same_signatures_as_the_free_functions() {
    let signer = Signer::new(SPEC_SECRET);
    for _ in 0..3 {
        assert_eq!(
            signer.sign_seed(SEED_BODY.as_bytes()),
            seed_signature(SPEC_SECRET, SEED_BODY.as_bytes())
        );
        assert_eq!(
            signer.sign_standard(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_EXPECTED
        );
    }
    // Cloning shares the prepared key state, so the clone signs identically.
    assert_eq!(
        signer
            .clone()
            .sign_standard(SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
        SPEC_EXPECTED
    );
}

#[test]
fn an_empty_body_is_signed_like_php_does() {
    // python3 -c "import hmac,hashlib;print(hmac.new(b'your-secret-key', b'', hashlib.sha256).hexdigest())"
    assert_eq!(
        seed_signature(SEED_SECRET, b""),
        "sha256=c1d60e31caad267038b872bbaeb492b3bd531b3beef5928d8d8791298b48b0c4"
    );
}

// --- seed verification ---

#[test]
fn a_valid_seed_signature_verifies() {
    assert_eq!(
        verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), SEED_EXPECTED),
        Ok(())
    );
}

#[test]
fn surrounding_whitespace_in_the_seed_header_is_tolerated() {
    let padded = format!("  {SEED_EXPECTED}\t");
    assert_eq!(
        verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), &padded),
        Ok(())
    );
}

#[test]
fn a_tampered_body_fails_verification() {
    let tampered = SEED_BODY.replace("123", "124");
    assert_eq!(
        verify_seed(SEED_SECRET, tampered.as_bytes(), SEED_EXPECTED),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_wrong_secret_fails_seed_verification() {
    assert_eq!(
        verify_seed("another-secret", SEED_BODY.as_bytes(), SEED_EXPECTED),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn an_empty_seed_header_is_reported_as_missing() {
    assert_eq!(
        verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), ""),
        Err(VerifyError::MissingSignature)
    );
    assert_eq!(
        verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), "   "),
        Err(VerifyError::MissingSignature)
    );
}

#[test]
fn a_seed_header_without_the_sha256_prefix_is_malformed() {
    let bare_hex = SEED_EXPECTED.trim_start_matches("sha256=");
    assert!(matches!(
        verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), bare_hex),
        Err(VerifyError::MalformedSignature(_))
    ));
    let other_algo = format!("sha1={bare_hex}");
    assert!(matches!(
        verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), &other_algo),
        Err(VerifyError::MalformedSignature(_))
    ));
}

#[test]
fn a_seed_header_with_non_hex_digits_is_malformed() {
    let mut corrupted = SEED_EXPECTED.to_owned();
    corrupted.replace_range(10..11, "g");
    assert!(matches!(
        verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), &corrupted),
        Err(VerifyError::MalformedSignature(_))
    ));
}

#[test]
fn a_seed_header_of_the_wrong_length_is_malformed() {
    let truncated = &SEED_EXPECTED[..SEED_EXPECTED.len() - 2];
    let extended = format!("{SEED_EXPECTED}00");
    for header in [truncated, extended.as_str(), "sha256="] {
        assert!(
            matches!(
                verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), header),
                Err(VerifyError::MalformedSignature(_))
            ),
            "{header:?} should be malformed"
        );
    }
}

#[test]
fn an_uppercase_hex_seed_signature_still_verifies() {
    // Some receivers' HTTP stacks or hand-written senders upper-case hex; the digest is the same.
    let upper = format!(
        "sha256={}",
        SEED_EXPECTED
            .trim_start_matches("sha256=")
            .to_ascii_uppercase()
    );
    assert_eq!(
        verify_seed(SEED_SECRET, SEED_BODY.as_bytes(), &upper),
        Ok(())
    );
}

// --- Standard Webhooks verification ---

#[test]
fn a_valid_standard_signature_verifies() {
    assert_eq!(verify_spec_example(SPEC_EXPECTED, SPEC_TIMESTAMP), Ok(()));
}

#[test]
fn a_tampered_body_fails_standard_verification() {
    assert_eq!(
        verify_standard(
            SPEC_SECRET,
            SPEC_MSG_ID,
            "1614265330",
            br#"{"test": 2432232315}"#,
            SPEC_EXPECTED,
            SPEC_TIMESTAMP,
            TOLERANCE
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_wrong_secret_fails_standard_verification() {
    assert_eq!(
        verify_standard(
            &generate_secret(),
            SPEC_MSG_ID,
            "1614265330",
            SPEC_BODY,
            SPEC_EXPECTED,
            SPEC_TIMESTAMP,
            TOLERANCE
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_wrong_message_id_fails_standard_verification() {
    // The id is covered so a captured signature cannot be replayed under another id.
    assert_eq!(
        verify_standard(
            SPEC_SECRET,
            "msg_someone_else",
            "1614265330",
            SPEC_BODY,
            SPEC_EXPECTED,
            SPEC_TIMESTAMP,
            TOLERANCE
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_shifted_timestamp_fails_standard_verification_even_within_tolerance() {
    assert_eq!(
        verify_standard(
            SPEC_SECRET,
            SPEC_MSG_ID,
            "1614265331",
            SPEC_BODY,
            SPEC_EXPECTED,
            SPEC_TIMESTAMP,
            TOLERANCE
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn an_empty_message_id_is_reported_as_missing() {
    assert_eq!(
        verify_standard(
            SPEC_SECRET,
            "",
            "1614265330",
            SPEC_BODY,
            SPEC_EXPECTED,
            SPEC_TIMESTAMP,
            TOLERANCE
        ),
        Err(VerifyError::MissingMessageId)
    );
}

#[test]
fn timestamps_at_the_edge_of_the_tolerance_are_accepted() {
    assert_eq!(
        verify_spec_example(SPEC_EXPECTED, SPEC_TIMESTAMP + TOLERANCE),
        Ok(())
    );
    assert_eq!(
        verify_spec_example(SPEC_EXPECTED, SPEC_TIMESTAMP - TOLERANCE),
        Ok(())
    );
}

#[test]
fn an_expired_timestamp_is_rejected_as_a_possible_replay() {
    let now = SPEC_TIMESTAMP + TOLERANCE + 1;
    assert_eq!(
        verify_spec_example(SPEC_EXPECTED, now),
        Err(VerifyError::TimestampOutOfTolerance {
            timestamp: SPEC_TIMESTAMP,
            now,
            tolerance_secs: TOLERANCE
        })
    );
}

#[test]
fn a_future_timestamp_is_rejected() {
    let now = SPEC_TIMESTAMP - TOLERANCE - 1;
    assert!(matches!(
        verify_spec_example(SPEC_EXPECTED, now),
        Err(VerifyError::TimestampOutOfTolerance { .. })
    ));
}

#[test]
fn extreme_timestamps_do_not_overflow_the_tolerance_check() {
    assert!(matches!(
        verify_standard(
            SPEC_SECRET,
            SPEC_MSG_ID,
            &i64::MIN.to_string(),
            SPEC_BODY,
            SPEC_EXPECTED,
            i64::MAX,
            TOLERANCE
        ),
        Err(VerifyError::TimestampOutOfTolerance { .. })
    ));
}

#[test]
fn a_malformed_timestamp_is_rejected() {
    for timestamp in [
        "abc",
        "1614265330.5",
        "1614265330s",
        "2021-02-25T15:02:10Z",
        "99999999999999999999",
    ] {
        assert_eq!(
            verify_standard(
                SPEC_SECRET,
                SPEC_MSG_ID,
                timestamp,
                SPEC_BODY,
                SPEC_EXPECTED,
                SPEC_TIMESTAMP,
                TOLERANCE
            ),
            Err(VerifyError::MalformedTimestamp),
            "{timestamp:?}"
        );
    }
}

#[test]
fn an_empty_timestamp_is_reported_as_missing() {
    assert_eq!(
        verify_standard(
            SPEC_SECRET,
            SPEC_MSG_ID,
            "",
            SPEC_BODY,
            SPEC_EXPECTED,
            SPEC_TIMESTAMP,
            TOLERANCE
        ),
        Err(VerifyError::MissingTimestamp)
    );
}

#[test]
fn a_rotation_header_passes_when_only_the_second_signature_is_valid() {
    let old_secret_signature =
        standard_signature(&generate_secret(), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY);
    let header = format!("{old_secret_signature} {SPEC_EXPECTED}");
    assert_eq!(verify_spec_example(&header, SPEC_TIMESTAMP), Ok(()));
}

#[test]
fn a_rotation_header_fails_when_no_signature_is_valid() {
    let header = format!(
        "{} {}",
        standard_signature(&generate_secret(), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY),
        standard_signature(&generate_secret(), SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)
    );
    assert_eq!(
        verify_spec_example(&header, SPEC_TIMESTAMP),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn signatures_of_other_versions_are_ignored() {
    // A v1a (asymmetric) entry uses a different key and scheme; it must neither
    // satisfy nor break v1 verification.
    let v1a = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
    assert_eq!(
        verify_spec_example(&format!("{v1a} {SPEC_EXPECTED}"), SPEC_TIMESTAMP),
        Ok(())
    );
    assert_eq!(
        verify_spec_example(v1a, SPEC_TIMESTAMP),
        Err(VerifyError::UnsupportedSignatureVersion)
    );
    // Same digest under an unknown version label is not accepted as v1.
    let relabelled = SPEC_EXPECTED.replacen("v1,", "v2,", 1);
    assert_eq!(
        verify_spec_example(&relabelled, SPEC_TIMESTAMP),
        Err(VerifyError::UnsupportedSignatureVersion)
    );
}

#[test]
fn a_malformed_entry_does_not_hide_a_valid_one() {
    let header = format!("garbage v1,!!!! {SPEC_EXPECTED}");
    assert_eq!(verify_spec_example(&header, SPEC_TIMESTAMP), Ok(()));
}

#[test]
fn an_empty_standard_signature_header_is_reported_as_missing() {
    assert_eq!(
        verify_spec_example("", SPEC_TIMESTAMP),
        Err(VerifyError::MissingSignature)
    );
    assert_eq!(
        verify_spec_example("  ", SPEC_TIMESTAMP),
        Err(VerifyError::MissingSignature)
    );
}

#[test]
fn standard_signature_entries_with_bad_base64_or_shape_are_malformed() {
    let digest = SPEC_EXPECTED.trim_start_matches("v1,");
    let not_base64 = format!("v1,{}", digest.replace('+', "*"));
    let unpadded = format!("v1,{}", digest.trim_end_matches('='));
    let too_short = format!("v1,{}", BASE64.encode([0u8; 31]));
    let too_long = format!("v1,{}", BASE64.encode([0u8; 33]));
    let headers = [
        digest.to_owned(),
        not_base64,
        unpadded,
        too_short,
        too_long,
        "v1,".to_owned(),
        "v1".to_owned(),
    ];
    for header in &headers {
        assert!(
            matches!(
                verify_spec_example(header, SPEC_TIMESTAMP),
                Err(VerifyError::MalformedSignature(_))
            ),
            "{header:?} should be malformed"
        );
    }
}

#[test]
fn a_signer_verifies_what_it_signs() {
    let signer = Signer::new(&generate_secret());
    let body = SEED_BODY.as_bytes();
    assert_eq!(signer.verify_seed(body, &signer.sign_seed(body)), Ok(()));
    let signature = signer.sign_standard("msg_abc", 1_708_435_200, body);
    assert_eq!(
        signer.verify_standard(
            "msg_abc",
            "1708435200",
            body,
            &signature,
            1_708_435_200,
            TOLERANCE
        ),
        Ok(())
    );
}

// --- secrets, errors and Debug ---

#[test]
fn generated_secrets_are_whsec_prefixed_base64_of_32_bytes() {
    let secret = generate_secret();
    let encoded = secret
        .strip_prefix("whsec_")
        .expect("generated secret has the whsec_ prefix");
    let key = BASE64
        .decode(encoded)
        .expect("generated secret is standard padded base64");
    assert_eq!(key.len(), 32);
}

#[test]
fn two_generated_secrets_differ() {
    assert_ne!(generate_secret(), generate_secret());
}

#[test]
fn a_generated_secret_keys_standard_signatures_with_its_decoded_bytes() {
    // Cross-check the key derivation against an independent HMAC over the decoded key.
    use hmac::{Hmac, Mac};
    let secret = generate_secret();
    let key = BASE64
        .decode(&secret["whsec_".len()..])
        .expect("generated secret decodes");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(b"msg_x.42.body");
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    assert_eq!(standard_signature(&secret, "msg_x", 42, b"body"), expected);
}

#[test]
fn debug_output_of_a_signer_hides_the_key() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let signer = Signer::new(secret);
    assert_eq!(format!("{signer:?}"), "Signer { .. }");
    // Pretty-printing goes through the same impl, so it must not leak either.
    assert_eq!(format!("{signer:#?}"), "Signer { .. }");
}

#[test]
fn error_messages_never_contain_the_secret() {
    let secret = "super-secret-value-123";
    let errors = [
        verify_seed(secret, b"body", ""),
        verify_seed(secret, b"body", "nope"),
        verify_seed(secret, b"body", &seed_signature("other", b"body")),
        verify_standard(secret, "m", "x", b"body", "v1,abc", 0, TOLERANCE),
        verify_standard(secret, "m", "0", b"body", "v1,abc", 0, TOLERANCE),
        verify_standard(secret, "m", "0", b"body", SPEC_EXPECTED, 0, TOLERANCE),
        verify_standard(secret, "m", "0", b"body", SPEC_EXPECTED, 10_000, TOLERANCE),
    ];
    for result in errors {
        let error = result.expect_err("every case is invalid");
        let message = error.to_string();
        assert!(!message.is_empty());
        assert!(!message.contains(secret), "{message}");
        assert!(!format!("{error:?}").contains(secret));
    }
}

#[test]
fn signer_is_clone_send_and_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<Signer>();
    assert_traits::<VerifyError>();
}

#[test]
fn header_names_match_the_contract() {
    assert_eq!(SEED_SIGNATURE_HEADER, "X-Webhook-Signature");
    assert_eq!(STANDARD_ID_HEADER, "webhook-id");
    assert_eq!(STANDARD_TIMESTAMP_HEADER, "webhook-timestamp");
    assert_eq!(STANDARD_SIGNATURE_HEADER, "webhook-signature");
}
