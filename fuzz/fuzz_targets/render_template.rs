//! Templates (`Template::parse` then `render`): any template text either is
//! refused with a reason or renders, against any envelope, to valid JSON of
//! the template's own shape. Never a panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use webhookd_events::Template;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    template: &'a str,
    /// JSON for the envelope's `data` (or any text, used as a string).
    data: &'a str,
    event: &'a str,
    timestamp: i64,
}

fuzz_target!(|input: Input<'_>| {
    let Ok(template) = Template::parse(input.template) else {
        return;
    };
    let skeleton: Value = serde_json::from_str(input.template).expect("a parsed template is JSON");
    let data = serde_json::from_str::<Value>(input.data)
        .unwrap_or_else(|_| Value::String(input.data.to_owned()));
    let envelopes = [
        json!({
            "id": "0192f1d2-0000-7000-8000-000000000001",
            "event": input.event,
            "timestamp": input.timestamp,
            "data": data.clone(),
        }),
        // What the daemon renders against when an envelope does not parse.
        Value::Null,
        // Any JSON value at all as the envelope.
        data,
    ];
    for envelope in &envelopes {
        let out = template.render(envelope);
        assert_eq!(out, template.render(envelope), "deterministic");
        let rendered: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("rendered output is not JSON ({e}): {out}"));
        assert_same_shape(&skeleton, &rendered);
    }
});

/// The rendered document is the template with its placeholder strings
/// replaced: same keys in the same order, same arrays, same fixed values.
fn assert_same_shape(template: &Value, rendered: &Value) {
    match (template, rendered) {
        (Value::String(t), Value::String(r)) => {
            if !t.contains("{{") {
                assert_eq!(t, r);
            }
        }
        (Value::Array(t), Value::Array(r)) => {
            assert_eq!(t.len(), r.len());
            for (t, r) in t.iter().zip(r) {
                assert_same_shape(t, r);
            }
        }
        (Value::Object(t), Value::Object(r)) => {
            assert!(t.keys().eq(r.keys()), "{t:?} vs {r:?}");
            for (t, r) in t.values().zip(r.values()) {
                assert_same_shape(t, r);
            }
        }
        (t, r) => assert_eq!(t, r),
    }
}
