//! The rules for webhook fields. Each check returns the value to store or a
//! 422 naming its field, so the API and the web UI enforce the same rules.

use std::collections::{BTreeMap, HashSet};

use axum::http::{HeaderName, HeaderValue};
use reqwest::Url;
use webhookd_events::{DeliveryOrder, EventPattern, Template};

use super::error::ApiError;
use webhookd_worker::target_policy::{self, PortPolicy};

pub(crate) const MAX_NAME_CHARS: usize = 200;
pub(crate) const MAX_URL_LEN: usize = 2048;
pub(crate) const MAX_EVENTS: usize = 50;
pub(crate) const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<i64> = 100..=60_000;
pub(crate) const BATCH_MAX_EVENTS_RANGE: std::ops::RangeInclusive<i64> = 2..=1000;
pub(crate) const BATCH_MAX_WAIT_MS_RANGE: std::ops::RangeInclusive<i64> = 0..=60_000;
pub(crate) const DEFAULT_BATCH_MAX_WAIT_MS: i32 = 1000;
pub(crate) const MAX_HEADERS: usize = 20;
pub(crate) const MAX_HEADER_VALUE_LEN: usize = 4096;
pub(crate) const MAX_TEMPLATE_LEN: usize = 64 * 1024;
pub(crate) const SECRET_LEN_RANGE: std::ops::RangeInclusive<usize> = 16..=256;

/// Headers the daemon sets on every delivery, or that control the HTTP
/// exchange itself: a custom value would break signing or framing.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
];
const RESERVED_HEADER_PREFIXES: &[&str] = &["x-webhook-", "webhook-"];

/// Characters that reorder the text around them without showing: a name
/// with U+202E before `fdp.exe` shows it as `exe.pdf`.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// 1 to 200 characters after trimming, no control characters, no bidi
/// controls.
pub(crate) fn check_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(ApiError::invalid("name", "`name` must not be empty"));
    }
    if chars > MAX_NAME_CHARS {
        return Err(ApiError::invalid(
            "name",
            format!("`name` is too long ({chars} characters; at most {MAX_NAME_CHARS})"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            "name",
            "`name` must not contain control characters",
        ));
    }
    if let Some(c) = name.chars().find(|&c| is_bidi_control(c)) {
        return Err(ApiError::invalid(
            "name",
            format!(
                "`name` must not contain bidirectional control characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    Ok(name.to_owned())
}

/// An absolute http(s) URL with a host and no credentials, and unless
/// `allow_private` not a private IP literal (host names are checked when
/// delivering, on the address connected to). Stored as given (trimmed): what
/// the user typed is what they see again.
pub(crate) fn check_url(raw: &str, allow_private: bool) -> Result<String, ApiError> {
    let text = raw.trim();
    let invalid = |message: &str| ApiError::invalid("url", message);
    if text.is_empty() {
        return Err(invalid("`url` must not be empty"));
    }
    if text.len() > MAX_URL_LEN {
        return Err(invalid(&format!(
            "`url` is too long (at most {MAX_URL_LEN} bytes)"
        )));
    }
    // The URL parser silently drops tabs and newlines; refuse them instead
    // so the stored text is exactly what is requested.
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "`url` must not contain spaces or control characters",
        ));
    }
    let url = Url::parse(text).map_err(|e| invalid(&format!("`url` is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("`url` must start with http:// or https://"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("`url` must name a host"));
    }
    // Credentials in a URL end up in logs and the UI; use a header instead.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "`url` must not contain credentials; put them in a custom header",
        ));
    }
    target_policy::check_literal_host(&url, allow_private)
        .map_err(|e| invalid(&format!("`url`: {e}")))?;
    Ok(text.to_owned())
}

/// A checked URL's port against `delivery.allowed_ports`; 422 naming `url`.
pub(crate) fn check_url_port(url: &str, ports: PortPolicy) -> Result<(), ApiError> {
    let Ok(parsed) = Url::parse(url) else {
        return Ok(());
    };
    ports
        .check(&parsed)
        .map_err(|e| ApiError::invalid("url", format!("`url`: {e}")))
}

/// A non-empty list of at most 50 known event names or wildcards, with
/// duplicates dropped (first occurrence kept).
pub(crate) fn check_events(raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "events",
            "`events` must list at least one event (or `*` for all)",
        ));
    }
    if raw.len() > MAX_EVENTS {
        return Err(ApiError::invalid(
            "events",
            format!("`events` lists {} entries; at most {MAX_EVENTS}", raw.len()),
        ));
    }
    let mut seen = HashSet::new();
    let mut events = Vec::with_capacity(raw.len());
    for text in raw {
        let pattern = EventPattern::parse(text)
            .map_err(|e| ApiError::invalid("events", format!("`events`: {e}")))?;
        if seen.insert(pattern.as_str().to_owned()) {
            events.push(pattern.as_str().to_owned());
        }
    }
    Ok(events)
}

pub(crate) fn check_batch_max_events(raw: i64) -> Result<i32, ApiError> {
    in_range(
        raw,
        "batch_max_events",
        &BATCH_MAX_EVENTS_RANGE,
        " (or null for one request per event)",
    )
}

pub(crate) fn check_batch_max_wait_ms(raw: i64) -> Result<i32, ApiError> {
    in_range(raw, "batch_max_wait_ms", &BATCH_MAX_WAIT_MS_RANGE, "")
}

/// A payload filter (SPEC §13), checked with the parser the fan-out
/// compiles it with; kept as given. The message names the path and the
/// operator at fault.
pub(crate) fn check_filter(raw: serde_json::Value) -> Result<serde_json::Value, ApiError> {
    match webhookd_events::Filter::parse(&raw) {
        Ok(_) => Ok(raw),
        Err(e) => Err(ApiError::invalid("filter", format!("`filter`: {e}"))),
    }
}

/// A retry schedule (SPEC §13): 1 to 30 delays of 1 s to a week.
pub(crate) fn check_retry_schedule(raw: &[i64]) -> Result<Vec<i32>, ApiError> {
    let schedule = webhookd_events::RetrySchedule::new(raw)
        .map_err(|e| ApiError::invalid("retry_schedule", format!("`retry_schedule` {e}")))?;
    Ok(schedule
        .delays()
        .iter()
        .map(|&d| i32::try_from(d).unwrap_or(i32::MAX))
        .collect())
}

/// `none` or `fifo` (SPEC §13).
pub(crate) fn check_ordering(raw: &str) -> Result<DeliveryOrder, ApiError> {
    DeliveryOrder::parse(raw).map_err(|e| ApiError::invalid("ordering", e.to_string()))
}

/// A batch body is fixed (SPEC §11): a template could not shape it.
pub(crate) fn check_batch_without_template(
    batch_max_events: Option<i32>,
    template: Option<&str>,
) -> Result<(), ApiError> {
    match (batch_max_events, template) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "batch_max_events",
            "a webhook cannot have both a `template` and batching (`batch_max_events`): batches are sent as the standard batch body",
        )),
        _ => Ok(()),
    }
}

fn in_range(
    raw: i64,
    field: &str,
    range: &std::ops::RangeInclusive<i64>,
    or: &str,
) -> Result<i32, ApiError> {
    let out_of_range = || {
        ApiError::invalid(
            field,
            format!(
                "`{field}` must be between {} and {}{or}",
                range.start(),
                range.end()
            ),
        )
    };
    if !range.contains(&raw) {
        return Err(out_of_range());
    }
    i32::try_from(raw).map_err(|_| out_of_range())
}

pub(crate) fn check_timeout_ms(raw: i64) -> Result<i32, ApiError> {
    in_range(
        raw,
        "timeout_ms",
        &TIMEOUT_MS_RANGE,
        " (or null for the default)",
    )
}

/// A header the daemon sets itself (`lower`: the name in lower case).
pub(crate) fn is_reserved_header(lower: &str) -> bool {
    RESERVED_HEADERS.contains(&lower)
        || RESERVED_HEADER_PREFIXES
            .iter()
            .any(|p| lower.starts_with(p))
}

/// At most 20 valid, distinct (case-insensitively) headers, none of them one
/// the daemon sets itself.
pub(crate) fn check_headers(
    raw: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let invalid = |message: String| ApiError::invalid("headers", message);
    if raw.len() > MAX_HEADERS {
        return Err(invalid(format!(
            "`headers` has {} entries; at most {MAX_HEADERS}",
            raw.len()
        )));
    }
    let mut seen = HashSet::new();
    for (name, value) in &raw {
        let parsed = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("`headers`: `{name}` is not a valid header name")))?;
        let lower = parsed.as_str();
        if is_reserved_header(lower) {
            return Err(invalid(format!(
                "`headers`: `{name}` is set by webhookd and cannot be overridden"
            )));
        }
        if !seen.insert(lower.to_owned()) {
            return Err(invalid(format!("`headers`: `{name}` is given twice")));
        }
        if value.len() > MAX_HEADER_VALUE_LEN {
            return Err(invalid(format!(
                "`headers`: the value of `{name}` is too long (at most {MAX_HEADER_VALUE_LEN} bytes)"
            )));
        }
        // `HeaderValue` alone lets bytes 0x80-0xFF through: receivers would
        // get raw UTF-8, which HTTP leaves undefined.
        let printable = value.chars().all(|c| c == '\t' || (' '..='~').contains(&c));
        if !printable || HeaderValue::from_str(value).is_err() {
            return Err(invalid(format!(
                "`headers`: the value of `{name}` must be visible ASCII without control characters"
            )));
        }
    }
    Ok(raw)
}

/// A template the renderer accepts; the parser's message says what is wrong.
pub(crate) fn check_template(raw: String) -> Result<String, ApiError> {
    if raw.len() > MAX_TEMPLATE_LEN {
        return Err(ApiError::invalid(
            "template",
            format!("`template` is too long (at most {MAX_TEMPLATE_LEN} bytes)"),
        ));
    }
    Template::parse(&raw).map_err(|e| ApiError::invalid("template", e.to_string()))?;
    if let Some(placeholder) = webhookd_events::unfilled_placeholder(&raw) {
        return Err(ApiError::invalid(
            "template",
            format!("`template` still has the preset's `{placeholder}`: replace it with your chat's id (`chat_id`)"),
        ));
    }
    Ok(raw)
}

/// 16 to 256 printable ASCII characters, no spaces: it is typed into
/// receivers' configuration and must survive copy and paste.
pub(crate) fn check_secret(raw: String) -> Result<String, ApiError> {
    if raw.starts_with(webhookd_events::secret_box::SEALED_PREFIX) {
        return Err(sealed_lookalike("secret"));
    }
    let ok = SECRET_LEN_RANGE.contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(raw)
    } else {
        Err(ApiError::invalid(
            "secret",
            format!(
                "`secret` must be {} to {} printable ASCII characters without spaces",
                SECRET_LEN_RANGE.start(),
                SECRET_LEN_RANGE.end()
            ),
        ))
    }
}

/// A secret that looks encrypted: stored in clear (no keys configured) it
/// would read as encrypted under a key that does not exist (SPEC §15).
pub(crate) fn sealed_lookalike(field: &str) -> ApiError {
    ApiError::invalid(
        field,
        format!("`{field}` must not start with `enc:v1:`, the prefix of encrypted values"),
    )
}

/// Requests per second to one webhook across every replica (SPEC §14).
pub(crate) const RATE_LIMIT_PER_S_RANGE: std::ops::RangeInclusive<i64> = 1..=10_000;

pub(crate) fn check_rate_limit_per_s(raw: i64) -> Result<i32, ApiError> {
    in_range(
        raw,
        "rate_limit_per_s",
        &RATE_LIMIT_PER_S_RANGE,
        " (or null for no limit)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        match result {
            Err(ApiError::Invalid { field: Some(f), .. }) => f,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(check_name("  Slack  ").ok().as_deref(), Some("Slack"));
        assert!(check_name(&"я".repeat(200)).is_ok());
        assert_eq!(field(check_name(&"я".repeat(201))), "name");
        assert_eq!(field(check_name("   ")), "name");
        assert_eq!(field(check_name("a\nb")), "name");
        for bidi in [
            '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
        ] {
            assert_eq!(field(check_name(&format!("Deals{bidi}txt"))), "name");
        }
        assert!(check_name("Сделки → Slack").is_ok());
    }

    #[test]
    fn only_absolute_http_urls_with_a_host_and_no_credentials_pass() {
        for ok in [
            "https://hooks.slack.com/services/T/B/X",
            "http://93.184.215.14:9000/h?x=1",
        ] {
            assert_eq!(check_url(ok, false).ok().as_deref(), Some(ok));
        }
        assert_eq!(
            check_url(" https://example.com/x ", false).ok().as_deref(),
            Some("https://example.com/x")
        );
        for bad in [
            "",
            "/relative",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "http://exa mple.com/",
            "http://exa\tmple.com/",
            "mailto:x@example.com",
            "http://",
        ] {
            assert_eq!(field(check_url(bad, true)), "url", "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(field(check_url(&long, true)), "url");
    }

    #[test]
    fn private_ip_literals_are_refused_unless_private_targets_are_allowed() {
        for private in [
            "http://127.0.0.1:9000/",
            "http://[::1]/",
            "http://169.254.169.254/",
            "http://0x7f000001/",
        ] {
            assert_eq!(field(check_url(private, false)), "url", "{private}");
            assert!(check_url(private, true).is_ok(), "{private}");
        }
    }

    #[test]
    fn events_are_parsed_deduplicated_and_bounded() {
        let given = ["task.*", "*", "task.*", " deal.won "].map(String::from);
        assert_eq!(
            check_events(&given).ok(),
            Some(vec!["task.*".into(), "*".into(), "deal.won".into()])
        );
        assert_eq!(field(check_events(&[])), "events");
        assert_eq!(field(check_events(&["task.exploded".into()])), "events");
        assert_eq!(field(check_events(&vec!["*".to_owned(); 51])), "events");
    }

    #[test]
    fn timeouts_outside_100_to_60000_ms_are_refused() {
        assert_eq!(check_timeout_ms(100).ok(), Some(100));
        assert_eq!(check_timeout_ms(60_000).ok(), Some(60_000));
        for bad in [99, 60_001, -1, i64::MAX] {
            assert_eq!(field(check_timeout_ms(bad)), "timeout_ms");
        }
    }

    #[test]
    fn reserved_invalid_duplicate_and_too_many_headers_are_refused() {
        let one = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(check_headers(one("Authorization", "Bearer abc")).is_ok());
        for reserved in [
            "content-type",
            "Host",
            "X-Webhook-Signature",
            "webhook-id",
            "User-Agent",
        ] {
            assert_eq!(
                field(check_headers(one(reserved, "x"))),
                "headers",
                "{reserved}"
            );
        }
        assert_eq!(field(check_headers(one("bad name", "x"))), "headers");
        assert_eq!(field(check_headers(one("X-Ok", "line\nbreak"))), "headers");
        let twice = BTreeMap::from([("X-A".into(), "1".into()), ("x-a".into(), "2".into())]);
        assert_eq!(field(check_headers(twice)), "headers");
        let many = (0..21)
            .map(|i| (format!("X-H{i}"), "v".to_owned()))
            .collect();
        assert_eq!(field(check_headers(many)), "headers");
    }

    #[test]
    fn templates_must_parse_and_secrets_must_be_printable_and_sized() {
        assert!(check_template(r#"{"text": "{{data.title}}"}"#.into()).is_ok());
        assert_eq!(field(check_template("{".into())), "template");
        assert_eq!(
            field(check_template(r#"{"t": "{{nope}}"}"#.into())),
            "template"
        );
        assert!(check_secret("x".repeat(16)).is_ok());
        for bad in [
            "x".repeat(15),
            "x".repeat(257),
            format!("{} x", "y".repeat(20)),
            // Would read as encrypted when stored in clear (SPEC §15).
            "enc:v1:k1:AAAAAAAAAAAAAAAA".to_owned(),
        ] {
            assert_eq!(field(check_secret(bad)), "secret");
        }
    }
}
