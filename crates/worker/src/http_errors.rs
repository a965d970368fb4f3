//! What a failed HTTP exchange is called in `webhook_logs.error`: one line
//! with the useful cause, and never a URL's path or query (they can carry a
//! token). Shared by attempts (`deliver`) and token requests (`oauth2`).

use std::error::Error as _;
use std::time::Duration;

pub(crate) fn describe_error(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("timed out after {} ms", timeout.as_millis());
    }
    if e.is_connect() {
        return format!("connection failed: {}", chain(e));
    }
    if let Some(kind) = io_error_kind(e) {
        use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
        if matches!(
            kind,
            ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
        ) {
            return format!("connection reset by the receiver: {}", chain(e));
        }
    }
    format!("request failed: {}", chain(e))
}

/// The kind of the I/O error under a reqwest error, if one caused it.
fn io_error_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// The error and its causes in one line: reqwest's own message alone hides
/// the useful part ("connection refused", "refused target ...").
pub(crate) fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    // reqwest puts the full URL in its messages; it can carry a token in its query.
    match e.url() {
        Some(url) => text.replace(url.as_str(), &redact(url)),
        None => text,
    }
}

fn redact(url: &reqwest::Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}
