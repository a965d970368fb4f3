//! A JSON body extractor whose rejections speak the API's error shape and name
//! the offending field, where axum's `Json` answers plain text.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::error::ApiError;

/// A request body parsed as `T`.
///
/// `T` should be a flat struct with `#[serde(deny_unknown_fields)]` whose
/// fields are all optional (`Option` or [`Nullable`]): then every problem can
/// be pinned on one field, and required fields are checked by validation,
/// which names them too.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        check_content_type(req.headers())?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::BadBody {
                status: r.status(),
                message: r.body_text(),
            })?;
        parse_body(&bytes).map(ApiJson)
    }
}

/// Like [`ApiJson`], for routes whose every field has a default: an empty
/// body (`curl -X POST` with no `-d`) means `T::default()`.
#[derive(Debug)]
pub(crate) struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // An empty body has no type to check; a non-empty one must be JSON.
        let content_type = check_content_type(req.headers());
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::BadBody {
                status: r.status(),
                message: r.body_text(),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        content_type?;
        parse_body(&bytes).map(OptionalJson)
    }
}

/// A missing Content-Type is tolerated (curl users forget it); a different
/// one is refused so form posts are not misread.
fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::BadBody {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "expected `Content-Type: application/json`".to_owned(),
        })
    }
}

/// Parses a body: 400 when it is not JSON, 422 naming the field when it is
/// JSON of the wrong shape.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| ApiError::BadBody {
        status: StatusCode::BAD_REQUEST,
        message: if bytes.iter().all(u8::is_ascii_whitespace) {
            "the request body is empty; expected a JSON object".to_owned()
        } else {
            format!("the request body is not valid JSON: {e}")
        },
    })?;
    let Value::Object(fields) = &value else {
        return Err(ApiError::Invalid {
            field: None,
            message: "the request body must be a JSON object".to_owned(),
        });
    };
    T::deserialize(&value).map_err(|whole| blame_field::<T>(fields, &whole))
}

/// Finds the first field (in document order) that fails on its own, by
/// deserialising each one alone: with every field optional, only an unknown
/// name or a wrong type fails.
fn blame_field<T: DeserializeOwned>(
    fields: &Map<String, Value>,
    whole: &serde_json::Error,
) -> ApiError {
    for (name, value) in fields {
        let single = Value::Object(Map::from_iter([(name.clone(), value.clone())]));
        if let Err(e) = serde_json::from_value::<T>(single) {
            // Clients do not speak Rust: "expected i64" means a whole number.
            let message = e
                .to_string()
                .replace("expected i64", "expected an integer")
                .replace("expected i32", "expected an integer");
            let message = if message.starts_with("unknown field") {
                message
            } else {
                format!("`{name}`: {message}")
            };
            return ApiError::invalid(name, message);
        }
    }
    let message = whole.to_string();
    // "missing field `x`" from a struct with a required field.
    let field = message
        .split('`')
        .nth(1)
        .filter(|_| message.starts_with("missing field"))
        .map(str::to_owned);
    ApiError::Invalid { field, message }
}

/// A PATCH field: absent (leave as is), `null`, or a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Nullable<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nullable<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only called when the field is present; absence is `Default`.
        Ok(match Option::<T>::deserialize(deserializer)? {
            None => Nullable::Null,
            Some(value) => Nullable::Value(value),
        })
    }
}

/// Only for the OpenAPI schema's defaults: an absent field shows as null.
impl<T: Serialize> Serialize for Nullable<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Nullable::Absent | Nullable::Null => serializer.serialize_none(),
            Nullable::Value(v) => serializer.serialize_some(v),
        }
    }
}

impl<T> Nullable<T> {
    /// For fields that may be cleared: `None` = untouched, `Some(None)` = clear.
    pub(crate) fn into_change(self) -> Option<Option<T>> {
        match self {
            Nullable::Absent => None,
            Nullable::Null => Some(None),
            Nullable::Value(v) => Some(Some(v)),
        }
    }

    /// For fields that may not be null: `Err` names the field.
    pub(crate) fn into_required_change(self, field: &str) -> Result<Option<T>, ApiError> {
        match self {
            Nullable::Absent => Ok(None),
            Nullable::Null => Err(ApiError::invalid(
                field,
                format!("`{field}` cannot be null"),
            )),
            Nullable::Value(v) => Ok(Some(v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        name: Option<String>,
        count: Option<i64>,
        #[serde(default)]
        note: Nullable<String>,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse_body::<Probe>(body.as_bytes()) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn the_first_wrongly_typed_or_unknown_field_is_named() {
        assert_eq!(field_of(r#"{"name": 5}"#).as_deref(), Some("name"));
        assert_eq!(
            field_of(r#"{"name": "a", "count": "7"}"#).as_deref(),
            Some("count")
        );
        assert_eq!(
            field_of(r#"{"nmae": "a", "count": "x"}"#).as_deref(),
            Some("nmae")
        );
        assert_eq!(field_of("[1]"), None);
    }

    #[test]
    fn text_that_is_not_json_is_a_bad_request() {
        for body in ["", "  ", "{", "name=x", "{\"name\": }"] {
            match parse_body::<Probe>(body.as_bytes()) {
                Err(ApiError::BadBody { status, .. }) => {
                    assert_eq!(status, StatusCode::BAD_REQUEST)
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn nullable_fields_tell_absent_from_null() {
        let absent: Probe = parse_body(b"{}").expect("parses");
        assert_eq!(absent.note, Nullable::Absent);
        let null: Probe = parse_body(br#"{"note": null}"#).expect("parses");
        assert_eq!(null.note, Nullable::Null);
        let set: Probe = parse_body(br#"{"note": "x"}"#).expect("parses");
        assert_eq!(set.note, Nullable::Value("x".to_owned()));
    }
}
