//! An attempt's request and response headers as `webhook_logs` keeps them:
//! a JSON array of `[name, value]` pairs (order and repeats kept), bounded
//! so a receiver answering with thousands of headers cannot grow the log,
//! and with credentials masked: the log is shown to everyone who may see the
//! webhook, and a logged token would outlive its rotation.

use reqwest::header::HeaderMap;

/// Headers kept per attempt and side; the rest are counted in one pair.
const MAX_HEADERS: usize = 50;
/// Characters kept of a name and of a value.
const MAX_NAME_CHARS: usize = 100;
const MAX_VALUE_CHARS: usize = 500;
/// What a masked value shows instead.
pub(crate) const MASKED: &str = "(hidden)";

/// The headers as logged (see the module's comment).
pub(crate) fn header_log(headers: &HeaderMap) -> String {
    let mut pairs: Vec<[String; 2]> = Vec::with_capacity(headers.len().min(MAX_HEADERS + 1));
    for (name, value) in headers.iter().take(MAX_HEADERS) {
        let name = name.as_str();
        let shown = if is_credential(name) {
            MASKED.to_owned()
        } else {
            cut(&String::from_utf8_lossy(value.as_bytes()), MAX_VALUE_CHARS)
        };
        pairs.push([cut(name, MAX_NAME_CHARS), shown]);
    }
    if headers.len() > MAX_HEADERS {
        pairs.push([
            "…".to_owned(),
            format!("{} more not kept", headers.len() - MAX_HEADERS),
        ]);
    }
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".to_owned())
}

/// Names that carry credentials, by convention or by their words (a custom
/// `X-Api-Key` is as secret as `Authorization`).
fn is_credential(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(
        name.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || ["token", "secret", "password", "key", "auth", "session"]
        .iter()
        .any(|word| name.contains(word))
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    #[test]
    fn credentials_are_masked_and_the_list_is_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        headers.insert("x-api-key", HeaderValue::from_static("k"));
        headers.insert("x-webhook-event", HeaderValue::from_static("task.created"));
        let logged = header_log(&headers);
        assert!(
            !logged.contains("abc") && !logged.contains("\"k\""),
            "{logged}"
        );
        assert!(
            logged.contains(r#"["x-webhook-event","task.created"]"#),
            "{logged}"
        );
        for i in 0..80 {
            let name = HeaderName::try_from(format!("x-many-{i}"));
            let Ok(name) = name else {
                panic!("a valid name");
            };
            headers.insert(name, HeaderValue::from_static("v"));
        }
        let logged: Vec<[String; 2]> =
            serde_json::from_str(&header_log(&headers)).unwrap_or_default();
        assert_eq!(logged.len(), MAX_HEADERS + 1);
        assert_eq!(logged[MAX_HEADERS][1], "33 more not kept");
    }
}
