//! `POST /api/v1/events`: publish an event over HTTP, for services that
//! cannot speak AMQP. The body is the broker message itself, checked by the
//! consumer's own parser ([`ParsedMessage::parse`]), so what is accepted
//! here is exactly what a worker accepts and a refusal gives the reason a
//! worker would dead-letter it with. An accepted event is published to the
//! exchange and confirmed by the broker before the 202.
//!
//! The event id is the message's `id`, else a UUIDv5 of the body (the
//! consumer's own derivation, [`derive_event_id`]): posting the same bytes
//! again names the same event, and the workers make one delivery per event
//! and webhook, so a client that got no answer can simply post again.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use webhookd_events::{derive_event_id, EventMessage, MessageError, ParsedMessage};

use super::auth::CurrentUser;
use super::error::{ApiError, ErrorBody};
use super::ingest_broker::Unavailable;
use super::ingest_metrics::{EventAccepted, EventInvalid, IngestUnavailable, PublishForbidden};
use super::state::ApiState;

/// `Retry-After` of a 503: about when the broker is tried again.
const RETRY_AFTER_SECS: u64 = 2;

/// The broker message, as published to the exchange (documentation only:
/// the body is parsed by the consumer's parser, which keeps `data` as sent).
// Never built: it only shapes the document.
#[allow(dead_code)]
#[derive(Serialize, ToSchema)]
pub(crate) struct EventInput {
    /// The event id; when absent, a UUIDv5 of the body, returned in the answer.
    id: Option<Uuid>,
    /// A catalogue event (`GET /api/v1/events`).
    #[schema(example = "task.created")]
    event: String,
    /// Unix seconds; when absent, the time it is published.
    timestamp: Option<i64>,
    /// When set, only this user's webhooks (and admins') receive the event.
    user_id: Option<i64>,
    /// The event's data, delivered as sent.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

/// An accepted event.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Accepted {
    /// The event id: the one sent, or the one derived from the body. Posting
    /// the same message again is safe: it is delivered once.
    pub(crate) id: Uuid,
}

/// Publish an event, as if sent to the broker. Allowed to admins and to
/// publishers (`webhookd users create --publisher`). The message is checked
/// exactly as the workers check broker messages, published with a confirm,
/// then answered 202. Idempotent by `id`.
#[utoipa::path(
    post,
    path = "/events",
    tag = "events",
    request_body(content = EventInput, content_type = "application/json"),
    responses(
        (status = 202, description = "Published and confirmed by the broker", body = Accepted),
        (status = 401, description = "No token, or an invalid or revoked one", body = ErrorBody),
        (status = 403, description = "The user may not publish (neither admin nor publisher)", body = ErrorBody),
        (status = 413, description = "Over `broker.max_message_bytes`", body = ErrorBody),
        (status = 422, description = "Not a valid message: `error` is the reason a worker would \
                                      dead-letter it with, `field` the field at fault", body = ErrorBody),
        (status = 503, description = "The broker is unreachable or did not confirm in time: \
                                      nothing was accepted; retry after `Retry-After` seconds \
                                      with the same body", body = ErrorBody,
         headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    )
)]
pub(crate) async fn publish_event(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let ingest = &state.ingest;
    if !user.may_publish() {
        PublishForbidden { user_id: user.id }.emit(&ingest.metrics);
        return Err(ApiError::Forbidden(
            "only admins and publishers may publish events: \
             `webhookd users grant-publisher --id <id>`",
        ));
    }
    let limit = ingest.broker.config().max_message_bytes;
    let bytes = match read_body(&headers, body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge(error)) => {
            EventInvalid {
                error: &error,
                publisher: user.id,
            }
            .emit(&ingest.metrics);
            return Err(too_large(&error));
        }
        Err(BodyError::Unreadable(message)) => {
            return Err(ApiError::BadBody {
                status: StatusCode::BAD_REQUEST,
                message,
            })
        }
    };
    let parsed = match ParsedMessage::parse(&bytes, limit) {
        Ok(parsed) => parsed,
        Err(error) => {
            EventInvalid {
                error: &error,
                publisher: user.id,
            }
            .emit(&ingest.metrics);
            return Err(invalid(&error));
        }
    };
    // No AMQP `message_id` here: the id is the message's, else the body's hash.
    let id = derive_event_id(parsed.id, None, &bytes);
    let data = serde_json::from_str(parsed.data.get()).map_err(|e| {
        // The parser has already read `data` as strictly as this.
        invalid(&MessageError::NotJson(format!("in `data`: {e}")))
    })?;
    let message = EventMessage {
        id,
        event: parsed.event.name.to_owned(),
        // The consumer stamps a message without one when it reads it; here
        // it is stamped now, so every worker sees the same time.
        timestamp: parsed
            .timestamp
            .unwrap_or_else(|| chrono::Utc::now().timestamp()),
        user_id: parsed.user_id,
        data,
    };
    // `data` goes out as the client wrote it, like a broker message's.
    let body = message.to_bytes_with_data(parsed.data);
    if let Err(error) = ingest.broker.publish(&message, body).await {
        IngestUnavailable { id, error: &error }.emit(&ingest.metrics);
        return Err(unavailable(&error));
    }
    EventAccepted {
        id,
        event: parsed.event.name,
        publisher: user.id,
    }
    .emit(&ingest.metrics);
    Ok((StatusCode::ACCEPTED, Json(Accepted { id })))
}

enum BodyError {
    TooLarge(MessageError),
    Unreadable(String),
}

/// The request body, at most `limit` bytes (the API's general body limit
/// does not apply: this one is the consumer's).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if let Some(size) = declared.filter(|size| *size > limit) {
        return Err(BodyError::TooLarge(MessageError::TooLarge { size, limit }));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            // A body without a length: its size is known only to be over.
            Err(BodyError::TooLarge(MessageError::TooLarge {
                size: limit.saturating_add(1),
                limit,
            }))
        }
        Err(error) => Err(BodyError::Unreadable(format!(
            "could not read the request body: {error}"
        ))),
    }
}

fn too_large(error: &MessageError) -> ApiError {
    ApiError::BadBody {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: error.to_string(),
    }
}

/// 422 with the consumer's reason text and the field at fault; a body that
/// is not a JSON object at all names no field.
fn invalid(error: &MessageError) -> ApiError {
    let field = match error {
        MessageError::MissingField(field) | MessageError::WrongType { field, .. } => Some(*field),
        MessageError::UnknownEvent(_) => Some("event"),
        // The strict check of `data` says so at the start of its reason.
        MessageError::NotJson(reason) if reason.starts_with("in `data`") => Some("data"),
        MessageError::NotJson(_)
        | MessageError::NotUtf8
        | MessageError::NotObject
        | MessageError::TooLarge { .. } => None,
    };
    ApiError::Invalid {
        field: field.map(str::to_owned),
        message: error.to_string(),
    }
}

fn unavailable(error: &Unavailable) -> ApiError {
    ApiError::Unavailable {
        message: format!("the event was not accepted, retry later: {error}"),
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(body: &str) -> (Option<String>, String) {
        let error = ParsedMessage::parse(body.as_bytes(), 1024).unwrap_err();
        match invalid(&error) {
            ApiError::Invalid { field, message } => (field, message),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_refusal_names_the_field_with_the_consumers_reason() {
        let cases = [
            (
                r#"{"data":{}}"#,
                Some("event"),
                "missing required field `event`",
            ),
            (
                r#"{"event":"task.created"}"#,
                Some("data"),
                "missing required field `data`",
            ),
            (
                r#"{"event":"nope","data":{}}"#,
                Some("event"),
                "unknown event `nope`",
            ),
            (
                r#"{"event":"task.created","data":[1]}"#,
                Some("data"),
                "field `data` must be an object",
            ),
            (
                r#"{"event":"task.created","data":{},"id":"x"}"#,
                Some("id"),
                "field `id` must be a UUID string",
            ),
            (
                r#"{"event":"task.created","data":{},"user_id":"7"}"#,
                Some("user_id"),
                "field `user_id` must be an integer",
            ),
            (
                r#"{"event":"task.created","data":{"n":1e400}}"#,
                Some("data"),
                "message body is not valid JSON: in `data`",
            ),
            ("[1]", None, "message body is JSON but not an object"),
            ("nope", None, "message body is not valid JSON"),
        ];
        for (body, field, reason) in cases {
            let (got_field, message) = field_of(body);
            assert_eq!(got_field.as_deref(), field, "{body}");
            assert!(message.starts_with(reason), "{body}: {message}");
        }
    }
}
