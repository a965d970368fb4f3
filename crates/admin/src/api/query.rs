//! Query strings: parsed by hand rather than with `Query<T>`, so that a bad
//! value answers 422 naming its parameter (like a bad body field), an unknown
//! or repeated parameter is refused instead of silently ignored, and the
//! pagination cursor stays opaque.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use webhookd_events::find_event;

use super::error::ApiError;
use webhookd_store::page::After;

pub(crate) const DEFAULT_LIMIT: usize = 50;
pub(crate) const MAX_LIMIT: usize = 200;

/// The query string's parameters, each given at most once.
#[derive(Debug, Default)]
pub(crate) struct QueryParams(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Query(pairs) =
            Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(|e| {
                ApiError::BadBody {
                    status: StatusCode::BAD_REQUEST,
                    message: e.body_text(),
                }
            })?;
        let mut params = BTreeMap::new();
        for (key, value) in pairs {
            if params.contains_key(&key) {
                return Err(ApiError::invalid(&key, format!("`{key}` is given twice")));
            }
            params.insert(key, value);
        }
        Ok(QueryParams(params))
    }
}

impl QueryParams {
    /// Refuses any parameter not in `known`, naming it.
    pub(crate) fn allow_only(&self, known: &[&str]) -> Result<(), ApiError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            None => Ok(()),
            Some(key) => Err(ApiError::invalid(
                key,
                format!(
                    "unknown query parameter `{key}`, expected one of: {}",
                    known.join(", ")
                ),
            )),
        }
    }

    /// The trimmed value of `name`; `None` when absent or empty.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A value parsed with `FromStr`; `what` says what was expected.
    pub(crate) fn parsed<T: FromStr>(&self, name: &str, what: &str) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::invalid(name, format!("`{name}` must be {what}")))
            })
            .transpose()
    }

    pub(crate) fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.parsed(name, "`true` or `false`")
    }

    /// An RFC 3339 instant (`2026-02-20T12:00:00Z`). Note that `+` must be
    /// sent as `%2B` in a query string.
    pub(crate) fn instant(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.text(name)
            .map(|v| {
                DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        ApiError::invalid(
                            name,
                            format!(
                                "`{name}` must be an RFC 3339 time like 2026-02-20T12:00:00Z \
                                 (send `+` as %2B)"
                            ),
                        )
                    })
            })
            .transpose()
    }

    /// An event name from the catalogue.
    pub(crate) fn event(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.text(name).map(|v| check_event(name, v)).transpose()
    }

    /// `limit`: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        match self.text("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| limit_error())
                .and_then(check_limit),
        }
    }

    /// `cursor`: a value of `next_cursor` from an earlier page.
    pub(crate) fn cursor<K: FromStr>(&self) -> Result<Option<After<K>>, ApiError> {
        self.text("cursor").map(parse_cursor).transpose()
    }
}

/// `value` of parameter `field` as an event name from the catalogue.
pub(crate) fn check_event(field: &str, value: &str) -> Result<String, ApiError> {
    find_event(value)
        .map(|spec| spec.name.to_owned())
        .ok_or_else(|| ApiError::invalid(field, format!("`{field}`: unknown event")))
}

/// A page size: 1 to [`MAX_LIMIT`].
pub(crate) fn check_limit(limit: i64) -> Result<usize, ApiError> {
    usize::try_from(limit)
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(limit_error)
}

fn limit_error() -> ApiError {
    ApiError::invalid(
        "limit",
        format!("`limit` must be between 1 and {MAX_LIMIT}"),
    )
}

/// A `cursor`: a value of `next_cursor` from an earlier page.
pub(crate) fn parse_cursor<K: FromStr>(text: &str) -> Result<After<K>, ApiError> {
    decode_cursor(text).ok_or_else(|| {
        ApiError::invalid(
            "cursor",
            "`cursor` is not one this API issued; pass `next_cursor` unchanged",
        )
    })
}

/// `next_cursor`: the last row's sort key, opaque to clients (its form may
/// change; clients only pass it back).
pub(crate) fn encode_cursor<K: ToString>(after: &After<K>) -> String {
    let text = format!(
        "{}:{}",
        after.created_at.timestamp_micros(),
        after.id.to_string()
    );
    URL_SAFE_NO_PAD.encode(text)
}

fn decode_cursor<K: FromStr>(text: &str) -> Option<After<K>> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (micros, id) = text.split_once(':')?;
    Some(After {
        created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
        id: id.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn cursors_round_trip_to_the_microsecond_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_771_588_800_123_456).expect("a time");
        let logs = After {
            created_at: at,
            id: 42_i64,
        };
        assert_eq!(decode_cursor::<i64>(&encode_cursor(&logs)), Some(logs));
        let id = Uuid::new_v4();
        let deliveries = After { created_at: at, id };
        assert_eq!(
            decode_cursor::<Uuid>(&encode_cursor(&deliveries)),
            Some(deliveries)
        );
        for junk in ["", "abc", "!!!", &URL_SAFE_NO_PAD.encode("12:x")] {
            assert_eq!(decode_cursor::<i64>(junk), None, "{junk}");
        }
    }
}
