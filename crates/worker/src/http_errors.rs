//! What a failed HTTP exchange is called in `webhook_logs.error`: one line
//! with the useful cause, and the URL's scheme, host, port and path (which
//! receiver failed), never its query or user info (they can carry a token).
//! Shared by attempts (`deliver`) and token requests (`oauth2`).

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
    // reqwest puts the full URL in its messages; it can carry a token in its
    // query or user info.
    match e.url() {
        Some(url) => text.replace(url.as_str(), &redact(url)),
        None => text,
    }
}

/// The URL without user info, query and fragment: a port or path tells
/// which of a host's receivers failed, and people need it to find the fault.
fn redact(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    // Only URLs that cannot have user info refuse these, and they have none.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_keeps_its_port_and_path_but_not_its_query_or_user_info() {
        let url = reqwest::Url::parse("https://bot:s3cret@hooks.example:8443/crm/in?token=abc#x");
        let Ok(url) = url else {
            panic!("a valid URL");
        };
        assert_eq!(redact(&url), "https://hooks.example:8443/crm/in");
    }
}
