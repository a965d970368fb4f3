//! The client side of graphql-transport-ws, for one `events` subscription:
//! connect, `connection_init` with the token, `subscribe`, then the events
//! one by one until the connection ends.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::ClientConfig;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::listen_forward::LiveEvent;

const SUBPROTOCOL: &str = "graphql-transport-ws";
/// Bounds the handshake and the wait for `connection_ack`: a daemon that
/// accepts the connection and says nothing is treated as away.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The protocol's close codes for a missing and a refused token.
const CLOSE_UNAUTHORIZED: u16 = 4401;
const CLOSE_FORBIDDEN: u16 = 4403;
/// The code the daemon gives a subscription it cannot serve right now (its
/// broker is away): worth trying again, unlike a malformed request.
const UNAVAILABLE: &str = "UNAVAILABLE";
const QUERY: &str = "subscription Listen($types: [String!]) \
                     { events(types: $types) { id event timestamp data } }";

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionError {
    /// The token is missing, unknown or revoked: trying again cannot help.
    #[error("the daemon refused the token ({0}); check --token")]
    Refused(String),
    /// TLS with the daemon failed: its certificate is not trusted, or not
    /// for its name.
    #[error("TLS failed ({0}); if a private CA signed its certificate, give it with --ca-file")]
    Untrusted(String),
    /// The daemon will not serve this subscription as asked.
    #[error("the daemon rejected the subscription: {0}")]
    Rejected(String),
    /// The connection failed or went away (a daemon restart looks like this).
    #[error("{0}")]
    Lost(String),
}

impl SessionError {
    pub(crate) fn is_fatal(&self) -> bool {
        !matches!(self, SessionError::Lost(_))
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A subscribed connection.
pub(crate) struct Session {
    socket: Socket,
}

#[derive(Deserialize)]
struct ServerMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct NextPayload {
    #[serde(default)]
    data: Option<EventsData>,
    #[serde(default)]
    errors: Option<Vec<GraphqlError>>,
}

#[derive(Deserialize)]
struct EventsData {
    events: LiveEvent,
}

#[derive(Deserialize)]
struct GraphqlError {
    message: String,
    #[serde(default)]
    extensions: Option<Value>,
}

impl GraphqlError {
    fn code(&self) -> Option<&str> {
        self.extensions.as_ref()?.get("code")?.as_str()
    }
}

impl Session {
    /// Connects to `ws_url`, authenticates with `token` and subscribes to
    /// the events matching `types` (every event when empty).
    pub(crate) async fn open(
        ws_url: &str,
        token: &str,
        types: &[String],
        tls: &Arc<ClientConfig>,
    ) -> Result<Session, SessionError> {
        let socket = tokio::time::timeout(HANDSHAKE_TIMEOUT, connect(ws_url, tls))
            .await
            .map_err(|_| SessionError::Lost("the daemon did not answer in time".into()))??;
        let mut session = Session { socket };
        session
            .send(json!({"type": "connection_init", "payload": {"token": token}}))
            .await?;
        tokio::time::timeout(HANDSHAKE_TIMEOUT, session.acknowledged())
            .await
            .map_err(|_| {
                SessionError::Lost("the daemon did not acknowledge the connection".into())
            })??;
        let types = if types.is_empty() {
            Value::Null
        } else {
            json!(types)
        };
        session
            .send(json!({
                "id": "1",
                "type": "subscribe",
                "payload": {"query": QUERY, "variables": {"types": types}},
            }))
            .await?;
        Ok(session)
    }

    /// The next event; an error once the session is over.
    pub(crate) async fn next_event(&mut self) -> Result<LiveEvent, SessionError> {
        loop {
            let message = self.next_message().await?;
            match message.kind.as_str() {
                "next" => {
                    let payload: NextPayload = parse_payload(&message)?;
                    if let Some(errors) = payload.errors.filter(|e| !e.is_empty()) {
                        return Err(failure(&errors));
                    }
                    if let Some(data) = payload.data {
                        return Ok(data.events);
                    }
                }
                "error" => {
                    let errors: Vec<GraphqlError> = parse_payload(&message)?;
                    return Err(failure(&errors));
                }
                "complete" => {
                    return Err(SessionError::Lost(
                        "the daemon ended the subscription".into(),
                    ))
                }
                _ => {}
            }
        }
    }

    /// Ends the session politely (Ctrl-C).
    pub(crate) async fn close(mut self) {
        let _ = self.send(json!({"id": "1", "type": "complete"})).await;
        let _ = self.socket.close(None).await;
    }

    async fn acknowledged(&mut self) -> Result<(), SessionError> {
        loop {
            if self.next_message().await?.kind == "connection_ack" {
                return Ok(());
            }
        }
    }

    /// The next protocol message, answering pings on the way.
    async fn next_message(&mut self) -> Result<ServerMessage, SessionError> {
        loop {
            let message = match self.socket.next().await {
                None => return Err(SessionError::Lost("the connection closed".into())),
                Some(Err(e)) => return Err(SessionError::Lost(e.to_string())),
                Some(Ok(message)) => message,
            };
            let text = match message {
                Message::Text(text) => text,
                Message::Close(frame) => return Err(closed(frame)),
                // WebSocket pings are answered by tungstenite itself.
                _ => continue,
            };
            let message: ServerMessage = serde_json::from_str(text.as_str()).map_err(|e| {
                SessionError::Lost(format!("the daemon sent a malformed message: {e}"))
            })?;
            if message.kind == "ping" {
                self.send(json!({"type": "pong"})).await?;
                continue;
            }
            return Ok(message);
        }
    }

    async fn send(&mut self, message: Value) -> Result<(), SessionError> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .map_err(|e| SessionError::Lost(e.to_string()))
    }
}

/// `tls` serves a `wss://` URL.
async fn connect(ws_url: &str, tls: &Arc<ClientConfig>) -> Result<Socket, SessionError> {
    let mut request = ws_url
        .into_client_request()
        .map_err(|e| SessionError::Rejected(format!("invalid WebSocket URL {ws_url}: {e}")))?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let connector = Connector::Rustls(tls.clone());
    match tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
        .await
    {
        Ok((socket, _)) => Ok(socket),
        // A certificate not trusted (or for another name) stays so: trying
        // again cannot help. rustls's errors come wrapped in an I/O error.
        Err(WsError::Tls(e)) => Err(SessionError::Untrusted(format!("{ws_url}: {e}"))),
        Err(WsError::Io(e)) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            Err(SessionError::Untrusted(format!("{ws_url}: {e}")))
        }
        Err(WsError::Http(response)) => {
            let status = response.status();
            let text = format!("{ws_url} answered HTTP {status}");
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                Err(SessionError::Refused(text))
            } else {
                Err(SessionError::Lost(text))
            }
        }
        Err(e) => Err(SessionError::Lost(format!(
            "cannot connect to {ws_url}: {e}"
        ))),
    }
}

fn closed(frame: Option<CloseFrame>) -> SessionError {
    let Some(frame) = frame else {
        return SessionError::Lost("the daemon closed the connection".into());
    };
    let code = u16::from(frame.code);
    let text = format!("closed with {code} {}", frame.reason);
    if code == CLOSE_UNAUTHORIZED || code == CLOSE_FORBIDDEN {
        SessionError::Refused(text)
    } else {
        SessionError::Lost(format!("the daemon {text}"))
    }
}

fn parse_payload<T: serde::de::DeserializeOwned>(
    message: &ServerMessage,
) -> Result<T, SessionError> {
    let payload = message.payload.as_ref().map_or("null", |p| p.get());
    serde_json::from_str(payload).map_err(|e| {
        SessionError::Lost(format!(
            "the daemon sent an unexpected {} message: {e}",
            message.kind
        ))
    })
}

fn failure(errors: &[GraphqlError]) -> SessionError {
    let text = errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if errors.iter().all(|e| e.code() == Some(UNAVAILABLE)) {
        SessionError::Lost(text)
    } else {
        SessionError::Rejected(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(json: &str) -> Vec<GraphqlError> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn only_an_unavailable_stream_is_worth_retrying() {
        let away = errors(r#"[{"message":"broker away","extensions":{"code":"UNAVAILABLE"}}]"#);
        assert!(!failure(&away).is_fatal());
        let bad = errors(
            r#"[{"message":"`types`: unknown event","extensions":{"code":"BAD_USER_INPUT"}}]"#,
        );
        let bad = failure(&bad);
        assert!(bad.is_fatal());
        assert!(bad.to_string().contains("`types`: unknown event"), "{bad}");
    }

    #[test]
    fn a_4403_close_is_a_refused_token_and_other_closes_are_lost_connections() {
        use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
        let forbidden = closed(Some(CloseFrame {
            code: CloseCode::from(4403),
            reason: "Forbidden".into(),
        }));
        assert!(
            matches!(forbidden, SessionError::Refused(_)),
            "{forbidden:?}"
        );
        let away = closed(Some(CloseFrame {
            code: CloseCode::Away,
            reason: "server shutting down".into(),
        }));
        assert!(!away.is_fatal());
        assert!(!closed(None).is_fatal());
    }
}
