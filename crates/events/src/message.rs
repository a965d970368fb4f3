//! Broker messages in (strict parsing with a typed error per malformed case)
//! and the delivery envelope out.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::catalogue::{find_event, EventSpec};

/// Namespace for event ids derived from a message when the publisher gave none,
/// so a redelivered message maps to the same event (and the same deliveries).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b7e_53a4_4c0e_9d2f_8a61_b3e0_c7d5);

/// Longest unknown event name echoed back in an error: the name comes from an
/// untrusted publisher and ends up in logs and dead-letter headers.
const MAX_ECHOED_NAME: usize = 64;

/// Why a broker message was rejected. Each variant has a stable metric label
/// ([`MessageError::reason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message body is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("message body is not valid UTF-8")]
    NotUtf8,
    #[error("message body is not valid JSON: {0}")]
    NotJson(String),
    #[error("message body is JSON but not an object")]
    NotObject,
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
}

impl MessageError {
    /// Every value [`MessageError::reason`] can return.
    pub const REASONS: &'static [&'static str] = &[
        "too_large",
        "invalid_utf8",
        "invalid_json",
        "not_object",
        "missing_field",
        "wrong_type",
        "unknown_event",
    ];

    /// Low-cardinality label for `webhookd_events_rejected_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            MessageError::TooLarge { .. } => "too_large",
            MessageError::NotUtf8 => "invalid_utf8",
            MessageError::NotJson(_) => "invalid_json",
            MessageError::NotObject => "not_object",
            MessageError::MissingField(_) => "missing_field",
            MessageError::WrongType { .. } => "wrong_type",
            MessageError::UnknownEvent(_) => "unknown_event",
        }
    }
}

/// A valid broker message. `data` is kept as the publisher's raw JSON text so
/// it is forwarded byte for byte, never re-serialised.
#[derive(Debug)]
pub struct ParsedMessage<'a> {
    pub id: Option<Uuid>,
    pub event: &'static EventSpec,
    pub timestamp: Option<i64>,
    pub user_id: Option<i64>,
    pub data: &'a RawValue,
}

#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    user_id: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

impl<'a> ParsedMessage<'a> {
    /// Parses a message body as published to the `crm.events` exchange.
    pub fn parse(body: &'a [u8], max_bytes: usize) -> Result<Self, MessageError> {
        if body.len() > max_bytes {
            return Err(MessageError::TooLarge {
                size: body.len(),
                limit: max_bytes,
            });
        }
        let text = std::str::from_utf8(body).map_err(|_| MessageError::NotUtf8)?;
        // Validate the syntax first so "not JSON" and "JSON but not an object"
        // are told apart.
        let raw: &RawValue =
            serde_json::from_str(text).map_err(|e| MessageError::NotJson(e.to_string()))?;
        if !raw.get().starts_with('{') {
            return Err(MessageError::NotObject);
        }
        let wire: Wire<'a> =
            serde_json::from_str(text).map_err(|e| MessageError::NotJson(e.to_string()))?;

        let event_name: String =
            typed(wire.event, "event", "a string")?.ok_or(MessageError::MissingField("event"))?;
        let event = find_event(&event_name).ok_or_else(|| {
            MessageError::UnknownEvent(event_name.chars().take(MAX_ECHOED_NAME).collect())
        })?;
        let data = wire.data.ok_or(MessageError::MissingField("data"))?;
        if !data.get().starts_with('{') {
            return Err(MessageError::WrongType {
                field: "data",
                expected: "an object",
            });
        }
        check_data(data)?;
        let id = typed::<String>(wire.id, "id", "a UUID string")?
            .map(|s| Uuid::parse_str(&s))
            .transpose()
            .map_err(|_| MessageError::WrongType {
                field: "id",
                expected: "a UUID string",
            })?;
        let timestamp = typed(wire.timestamp, "timestamp", "an integer (unix seconds)")?;
        let user_id = typed(wire.user_id, "user_id", "an integer")?;
        Ok(ParsedMessage {
            id,
            event,
            timestamp,
            user_id,
            data,
        })
    }
}

/// Checks that `data` parses as a JSON value in full, as a template renderer
/// or a strict receiver (serde_json, PHP's `json_decode`) will parse it. The
/// grammar check done so far lets through strings with a lone UTF-16
/// surrogate escape (`"\ud800"`), numbers beyond the range of a double
/// (`1e400`) and nesting deeper than any parser's limit; forwarded, those
/// would reach receivers that cannot read them and render templates blank.
/// Walks the text without building anything (strings are borrowed unless
/// they hold escapes).
fn check_data(data: &RawValue) -> Result<(), MessageError> {
    serde_json::from_str::<Strict>(data.get())
        .map(|_| ())
        .map_err(|e| MessageError::NotJson(format!("in `data`: {e}")))
}

/// A JSON value checked as fully as `serde_json::Value` would be, then dropped.
struct Strict;

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Strict)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

/// Decodes an optional field; JSON `null` counts as absent.
fn typed<T: serde::de::DeserializeOwned>(
    raw: Option<&RawValue>,
    field: &'static str,
    expected: &'static str,
) -> Result<Option<T>, MessageError> {
    match raw {
        None => Ok(None),
        Some(raw) if raw.get() == "null" => Ok(None),
        Some(raw) => serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|_| MessageError::WrongType { field, expected }),
    }
}

/// The event id: the publisher's `id`, else the AMQP `message_id`, else a hash
/// of the body. Deterministic, so a redelivered message is the same event.
pub fn derive_event_id(id: Option<Uuid>, message_id: Option<&str>, body: &[u8]) -> Uuid {
    if let Some(id) = id {
        return id;
    }
    match message_id.filter(|m| !m.is_empty()) {
        Some(m) => {
            Uuid::parse_str(m).unwrap_or_else(|_| Uuid::new_v5(&EVENT_ID_NAMESPACE, m.as_bytes()))
        }
        None => Uuid::new_v5(&EVENT_ID_NAMESPACE, body),
    }
}

/// The body delivered to receivers: the seed's `{event, timestamp, data}` plus `id`.
pub fn render_envelope(id: &Uuid, event: &str, timestamp: i64, data: &RawValue) -> String {
    let event = serde_json::Value::String(event.to_owned());
    format!(
        r#"{{"id":"{id}","event":{event},"timestamp":{timestamp},"data":{}}}"#,
        data.get()
    )
}

/// A message as a publisher builds it (see the producer crate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    pub id: Uuid,
    pub event: String,
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    pub data: serde_json::Value,
}

impl EventMessage {
    /// A new message with a random id, stamped now by the caller's `timestamp`.
    /// Fails for an unknown event or `data` that is not an object.
    pub fn new(event: &str, data: serde_json::Value, timestamp: i64) -> Result<Self, MessageError> {
        if find_event(event).is_none() {
            return Err(MessageError::UnknownEvent(
                event.chars().take(MAX_ECHOED_NAME).collect(),
            ));
        }
        if !data.is_object() {
            return Err(MessageError::WrongType {
                field: "data",
                expected: "an object",
            });
        }
        Ok(EventMessage {
            id: Uuid::now_v7(),
            event: event.to_owned(),
            timestamp,
            user_id: None,
            data,
        })
    }

    pub fn with_user_id(mut self, user_id: i64) -> Self {
        self.user_id = Some(user_id);
        self
    }

    pub fn with_id(mut self, id: Uuid) -> Self {
        self.id = id;
        self
    }

    /// The message body as published.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising a struct of strings, integers and a `Value` cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The message body with `data` spelled exactly as `data` (the text a
    /// publisher sent) instead of `self.data` re-serialised: a `Value`
    /// keeps key order but not how numbers were written (`1e2`, `1.50`),
    /// and `data` is forwarded byte for byte.
    pub fn to_bytes_with_data(&self, data: &RawValue) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            id: &'a Uuid,
            event: &'a str,
            timestamp: i64,
            #[serde(skip_serializing_if = "Option::is_none")]
            user_id: Option<i64>,
            data: &'a RawValue,
        }
        // Strings, integers and already valid JSON: cannot fail.
        serde_json::to_vec(&Body {
            id: &self.id,
            event: &self.event,
            timestamp: self.timestamp,
            user_id: self.user_id,
            data,
        })
        .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1024 * 1024;

    fn parse(body: &str) -> Result<ParsedMessage<'_>, MessageError> {
        ParsedMessage::parse(body.as_bytes(), LIMIT)
    }

    #[test]
    fn a_full_message_parses_with_its_raw_data_kept() {
        let body = r#"{"id":"0192f1d2-0000-7000-8000-000000000001","event":"task.created","timestamp":1708435200,"user_id":7,"data":{"task_id":123,"title":"Новая задача","status":"pending"}}"#;
        let m = parse(body).unwrap();
        assert_eq!(
            m.id.unwrap().to_string(),
            "0192f1d2-0000-7000-8000-000000000001"
        );
        assert_eq!(m.event.name, "task.created");
        assert_eq!(m.timestamp, Some(1708435200));
        assert_eq!(m.user_id, Some(7));
        assert_eq!(
            m.data.get(),
            r#"{"task_id":123,"title":"Новая задача","status":"pending"}"#
        );
    }

    #[test]
    fn optional_fields_may_be_absent_or_null() {
        let m = parse(r#"{"event":"deal.won","data":{},"id":null,"user_id":null}"#).unwrap();
        assert!(m.id.is_none() && m.user_id.is_none() && m.timestamp.is_none());
        let extra = parse(r#"{"event":"deal.won","data":{},"source":"crm"}"#);
        assert!(
            extra.is_ok(),
            "unknown fields are ignored for forward compatibility"
        );
    }

    #[test]
    fn every_malformed_case_has_its_own_error_and_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"\xff\xfe{}", "invalid_utf8"),
            (b"", "invalid_json"),
            (b"{\"event\":", "invalid_json"),
            (b"not json", "invalid_json"),
            (b"[1,2]", "not_object"),
            (b"\"task.created\"", "not_object"),
            (b"42", "not_object"),
            (br#"{"data":{}}"#, "missing_field"),
            (br#"{"event":"task.created"}"#, "missing_field"),
            (br#"{"event":"task.created","data":null}"#, "missing_field"),
            (br#"{"event":42,"data":{}}"#, "wrong_type"),
            (br#"{"event":"task.created","data":[1]}"#, "wrong_type"),
            (br#"{"event":"task.created","data":"x"}"#, "wrong_type"),
            (
                br#"{"event":"task.created","data":{},"timestamp":"yesterday"}"#,
                "wrong_type",
            ),
            (
                br#"{"event":"task.created","data":{},"timestamp":1.5}"#,
                "wrong_type",
            ),
            (
                br#"{"event":"task.created","data":{},"user_id":"7"}"#,
                "wrong_type",
            ),
            (
                br#"{"event":"task.created","data":{},"id":"not-a-uuid"}"#,
                "wrong_type",
            ),
            (
                br#"{"event":"task.created","data":{},"id":5}"#,
                "wrong_type",
            ),
            (br#"{"event":"task.exploded","data":{}}"#, "unknown_event"),
            (br#"{"event":"task.*","data":{}}"#, "unknown_event"),
        ];
        for (body, reason) in cases {
            let err = ParsedMessage::parse(body, LIMIT).expect_err(&String::from_utf8_lossy(body));
            assert_eq!(
                err.reason(),
                *reason,
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_reasons_list_holds_every_reason_once() {
        let errors = [
            MessageError::TooLarge { size: 2, limit: 1 },
            MessageError::NotUtf8,
            MessageError::NotJson(String::new()),
            MessageError::NotObject,
            MessageError::MissingField("data"),
            MessageError::WrongType {
                field: "id",
                expected: "x",
            },
            MessageError::UnknownEvent(String::new()),
        ];
        let reasons: Vec<&str> = errors.iter().map(MessageError::reason).collect();
        assert_eq!(reasons, MessageError::REASONS);
    }

    #[test]
    fn errors_name_the_field_and_event() {
        let err = parse(r#"{"event":"task.created","data":{},"user_id":"7"}"#).unwrap_err();
        assert_eq!(err.to_string(), "field `user_id` must be an integer");
        let err = parse(r#"{"data":{}}"#).unwrap_err();
        assert_eq!(err.to_string(), "missing required field `event`");
        let err = parse(r#"{"event":"nope","data":{}}"#).unwrap_err();
        assert_eq!(err.to_string(), "unknown event `nope`");
    }

    #[test]
    fn an_oversized_body_is_refused_before_parsing() {
        let body = vec![b' '; 101];
        let err = ParsedMessage::parse(&body, 100).unwrap_err();
        assert_eq!(
            err,
            MessageError::TooLarge {
                size: 101,
                limit: 100
            }
        );
    }

    #[test]
    fn a_hostile_unknown_event_name_is_truncated_in_the_error() {
        let body = format!(r#"{{"event":"{}","data":{{}}}}"#, "x".repeat(10_000));
        match parse(&body).unwrap_err() {
            MessageError::UnknownEvent(name) => assert_eq!(name.len(), MAX_ECHOED_NAME),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_that_strict_parsers_refuse_is_invalid_json() {
        // Found by the `parse_message` fuzz target: the grammar check let these
        // through, and the envelope then failed to parse as a value, so
        // templates rendered blank.
        let found = r#"{"id":"0192f1d2-0000-7000-8000-000000000001","event":"task.created","|imestamp":1708435200,"user_id":7,"data":{"\udc00d":123,"ditle":"Новая заиача","status":"pending"}}"#;
        let err = parse(found).unwrap_err();
        assert_eq!(err.reason(), "invalid_json");
        assert!(
            err.to_string()
                .starts_with("message body is not valid JSON: in `data`: lone leading surrogate"),
            "{err}"
        );
        for data in [
            r#"{"t":"\ud800"}"#,
            r#"{"t":"\ud800x"}"#,
            r#"{"t":"\udbff\u0041"}"#,
            r#"{"t":"\ud800\ud800"}"#,
            r#"{"t":"\ude00\ud83d"}"#,
            r#"{"t":"ok \\ and \" then \uDFFF"}"#,
            r#"{"\uD800":1}"#,
            // Also found by the fuzzer: beyond the range of a double.
            r#"{"task__pd":231e308}"#,
            r#"{"n":-1e400}"#,
            r#"{"n":[1, 2, 1E+999]}"#,
        ] {
            let body = format!(r#"{{"event":"deal.won","data":{data}}}"#);
            assert_eq!(parse(&body).unwrap_err().reason(), "invalid_json", "{data}");
        }
        // Nesting beyond serde_json's limit of 128 (which the grammar check
        // alone does not enforce).
        let deep = format!(r#"{{"a":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        let body = format!(r#"{{"event":"deal.won","data":{deep}}}"#);
        let err = parse(&body).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        for data in [
            r#"{"t":"\ud83d\ude00 \uD83D\uDE00"}"#,
            r#"{"t":"\\ud800 is text, not an escape"}"#,
            r#"{"t":"\\\ud83d\ude00 \u0000 \uffff \ud7ff \ue000"}"#,
            r#"{"t":"\u00e9\"\\\/\b\f\n\r\t"}"#,
            r#"{"n":[1e308,-1e308,5e-324,1e-400,12345678901234567890123,-0]}"#,
            &format!(r#"{{"a":{}{}}}"#, "[".repeat(120), "]".repeat(120)),
        ] {
            let body = format!(r#"{{"event":"deal.won","data":{data}}}"#);
            let m = parse(&body).unwrap_or_else(|e| panic!("{data}: {e}"));
            assert_eq!(m.data.get(), data);
            let envelope = render_envelope(&Uuid::from_u128(1), "deal.won", 0, m.data);
            serde_json::from_str::<serde_json::Value>(&envelope).expect(data);
        }
    }

    #[test]
    fn event_ids_come_from_the_message_then_message_id_then_body() {
        let given = Uuid::now_v7();
        assert_eq!(derive_event_id(Some(given), Some("x"), b"{}"), given);
        let from_uuid_mid = derive_event_id(None, Some(&given.to_string()), b"{}");
        assert_eq!(from_uuid_mid, given);
        let a = derive_event_id(None, Some("msg-1"), b"{}");
        assert_eq!(a, derive_event_id(None, Some("msg-1"), b"{other}"));
        assert_ne!(a, derive_event_id(None, Some("msg-2"), b"{}"));
        let b = derive_event_id(None, None, b"{\"a\":1}");
        assert_eq!(b, derive_event_id(None, Some(""), b"{\"a\":1}"));
        assert_ne!(b, derive_event_id(None, None, b"{\"a\":2}"));
    }

    #[test]
    fn the_envelope_has_the_seed_shape_plus_id_and_keeps_data_bytes() {
        let id = Uuid::from_u128(1);
        let data: Box<RawValue> =
            serde_json::from_str(r##"{"title":"Сделка \"#456\"","nested":{"z":1,"a":[]}}"##)
                .unwrap();
        let body = render_envelope(&id, "deal.won", 1708435200, &data);
        assert_eq!(
            body,
            r##"{"id":"00000000-0000-0000-0000-000000000001","event":"deal.won","timestamp":1708435200,"data":{"title":"Сделка \"#456\"","nested":{"z":1,"a":[]}}}"##
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"]["title"], "Сделка \"#456\"");
    }

    #[test]
    fn a_built_message_round_trips_through_the_parser() {
        let msg = EventMessage::new("comment.added", serde_json::json!({"text": "hi\u{0}"}), 17)
            .unwrap()
            .with_user_id(9);
        let bytes = msg.to_bytes();
        let parsed = ParsedMessage::parse(&bytes, LIMIT).unwrap();
        assert_eq!(parsed.id, Some(msg.id));
        assert_eq!(parsed.user_id, Some(9));
        assert_eq!(parsed.timestamp, Some(17));
        assert_eq!(parsed.event.name, "comment.added");
        assert!(EventMessage::new("nope", serde_json::json!({}), 0).is_err());
        assert!(EventMessage::new("deal.won", serde_json::json!([1]), 0).is_err());
    }
}
