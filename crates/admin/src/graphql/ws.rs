//! GraphQL over WebSocket (`GET /graphql`, subprotocol
//! `graphql-transport-ws`): this module authenticates the connection and
//! owns the socket; async-graphql speaks the protocol.
//!
//! The token comes in `connection_init`'s payload (`{"token": "whk_..."}`)
//! or, failing that, in the upgrade request's `Authorization: Bearer`
//! header; a bad or missing one closes the socket with 4403. The socket is
//! written only between checks of two switches: shutdown (close 1001) and
//! the connection's cut-off, pulled when one of its subscribers is too slow
//! (close 1013, "subscriber too slow"); a client that stops reading cannot
//! hold a close back, as each send is bounded too.

use std::time::Duration;

use async_graphql::http::{WebSocket as Protocol, WebSocketProtocols as Protocols, WsMessage};
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{future, stream, SinkExt, StreamExt};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::caller::{Caller, Connection};
use super::schema::AppSchema;
use super::state::GraphqlState;

/// The one subprotocol served.
pub(crate) const SUBPROTOCOL: &str = "graphql-transport-ws";
/// How long a client has to send `connection_init` (the protocol's 4408).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a close frame may take to go out before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

const CLOSE_GOING_AWAY: u16 = 1001;
/// RFC 6455's "try again later": the protocol reserves 44xx codes for its own
/// meanings (4400 is a malformed message), and a reader that fell behind did
/// nothing malformed.
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;
const CLOSE_UNAUTHORIZED: u16 = 4401;
const CLOSE_FORBIDDEN: u16 = 4403;
const CLOSE_INIT_TIMEOUT: u16 = 4408;

type Sink = SplitSink<WebSocket, Message>;

/// Serves one connection until either side ends it.
pub(crate) async fn serve(
    socket: WebSocket,
    schema: AppSchema,
    state: GraphqlState,
    header_token: Option<String>,
) {
    let (mut sink, mut source) = socket.split();
    let shutdown = state.shutdown.clone();
    let first = tokio::select! {
        () = shutdown.cancelled() => {
            close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await;
            return;
        }
        first = tokio::time::timeout(INIT_TIMEOUT, next_text(&mut source)) => first,
    };
    let init = match first {
        Err(_) => {
            close(
                &mut sink,
                CLOSE_INIT_TIMEOUT,
                "Connection initialisation timeout",
            )
            .await;
            return;
        }
        Ok(None) => return,
        Ok(Some(text)) => text,
    };
    let Some(payload_token) = init_token(&init) else {
        close(&mut sink, CLOSE_UNAUTHORIZED, "Unauthorized").await;
        return;
    };
    let token = payload_token.or(header_token);
    let user = match Caller::authenticate(&state.api, token.as_deref()).await {
        Caller::User(user) => user,
        Caller::Refused(_) => {
            close(&mut sink, CLOSE_FORBIDDEN, "Forbidden").await;
            return;
        }
    };
    let cut_off = CancellationToken::new();
    let mut data = Data::default();
    data.insert(Caller::User(user));
    data.insert(Connection {
        cut_off: cut_off.clone(),
    });
    // The protocol sees `connection_init` again and acknowledges it.
    let messages = stream::once(future::ready(init)).chain(texts(source));
    let protocol = Protocol::new(schema, messages, Protocols::GraphQLWS)
        .connection_data(data)
        .on_connection_init(|_| async { Ok(Data::default()) });
    run(protocol, sink, &shutdown, &cut_off).await;
}

/// Pumps the protocol's answers into the socket.
async fn run(
    protocol: impl futures_util::Stream<Item = WsMessage> + Unpin,
    mut sink: Sink,
    shutdown: &CancellationToken,
    cut_off: &CancellationToken,
) {
    let mut protocol = protocol;
    loop {
        let next = tokio::select! {
            biased;
            () = shutdown.cancelled() => break close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await,
            () = cut_off.cancelled() => break close(&mut sink, CLOSE_TRY_AGAIN_LATER, "subscriber too slow").await,
            next = protocol.next() => next,
        };
        let message = match next {
            None => break close(&mut sink, 1000, "").await,
            Some(WsMessage::Close(code, reason)) => break close(&mut sink, code, &reason).await,
            Some(WsMessage::Text(text)) => Message::Text(text.into()),
        };
        let sent = tokio::select! {
            biased;
            () = shutdown.cancelled() => break close(&mut sink, CLOSE_GOING_AWAY, "server shutting down").await,
            () = cut_off.cancelled() => break close(&mut sink, CLOSE_TRY_AGAIN_LATER, "subscriber too slow").await,
            sent = sink.send(message) => sent,
        };
        if sent.is_err() {
            break;
        }
    }
}

/// The first text message, skipping pings and pongs; `None` when the client
/// goes away first.
async fn next_text(source: &mut SplitStream<WebSocket>) -> Option<String> {
    while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Text(text) => return Some(text.to_string()),
            Message::Binary(bytes) => return Some(String::from_utf8_lossy(&bytes).into_owned()),
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) => {}
        }
    }
    None
}

/// The client's protocol messages, until it closes.
fn texts(source: SplitStream<WebSocket>) -> impl futures_util::Stream<Item = String> {
    source
        .take_while(|m| future::ready(matches!(m, Ok(m) if !matches!(m, Message::Close(_)))))
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Text(text)) => Some(text.to_string()),
                Ok(Message::Binary(bytes)) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                _ => None,
            })
        })
}

/// The token in a `connection_init` message: `Some(None)` when it has none,
/// `None` when the message is not a `connection_init` at all.
fn init_token(text: &str) -> Option<Option<String>> {
    let message: Value = serde_json::from_str(text).ok()?;
    if message.get("type").and_then(Value::as_str) != Some("connection_init") {
        return None;
    }
    let token = message
        .get("payload")
        .and_then(|p| p.get("token"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Some(token)
}

/// Sends a close frame, bounded in time (the client may not be reading).
async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.to_owned().into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
}

#[cfg(test)]
mod tests {
    use super::init_token;

    #[test]
    fn the_token_is_read_from_connection_init_only() {
        assert_eq!(
            init_token(r#"{"type":"connection_init","payload":{"token":"whk_x"}}"#),
            Some(Some("whk_x".to_owned()))
        );
        assert_eq!(init_token(r#"{"type":"connection_init"}"#), Some(None));
        assert_eq!(init_token(r#"{"type":"subscribe","id":"1"}"#), None);
        assert_eq!(init_token("not json"), None);
    }
}
