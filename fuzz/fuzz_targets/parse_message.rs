//! Broker message parsing (`ParsedMessage::parse`): any bytes give either a
//! message or a typed rejection, never a panic, and an accepted message
//! renders an envelope that is valid JSON carrying the publisher's `data`
//! byte for byte.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use webhookd_events::{derive_event_id, find_event, render_envelope, ParsedMessage};

/// Below libFuzzer's default input length of 4096, so the limit is exercised too.
const LIMIT: usize = 3 * 1024;

const REASONS: &[&str] = &[
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "unknown_event",
];

fuzz_target!(|body: &[u8]| {
    let message = match ParsedMessage::parse(body, LIMIT) {
        Ok(message) => message,
        Err(problem) => {
            assert!(REASONS.contains(&problem.reason()), "{problem:?}");
            // The reason goes into logs and an AMQP header: it stays bounded
            // whatever the publisher sent.
            assert!(problem.to_string().len() < 512, "{problem}");
            return;
        }
    };
    assert!(body.len() <= LIMIT);
    assert!(find_event(message.event.name).is_some());
    assert!(message.data.get().starts_with('{'));

    let id = derive_event_id(message.id, None, body);
    assert_eq!(id, derive_event_id(message.id, None, body), "deterministic");
    if let Some(given) = message.id {
        assert_eq!(id, given);
    }
    let envelope = render_envelope(
        &id,
        message.event.name,
        message.timestamp.unwrap_or(0),
        message.data,
    );
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_str(&envelope).expect("the envelope is a JSON object");
    assert_eq!(fields.len(), 4, "{envelope}");
    assert_eq!(
        fields["data"].get(),
        message.data.get(),
        "data kept byte for byte"
    );
    assert_eq!(fields["id"].get(), format!("\"{id}\""));
    // Templates are rendered from the envelope parsed as a value: an accepted
    // message must parse that way too, or its template would render blank.
    serde_json::from_str::<serde_json::Value>(&envelope)
        .expect("an accepted message's envelope parses as a JSON value");
});
