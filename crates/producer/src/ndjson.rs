//! Events from newline-delimited JSON, one broker message per line:
//! `{"event": ..., "data": {...}, "user_id"?: n, "id"?: uuid, "timestamp"?: n}`.
//!
//! Lines are validated by the daemon's own parser ([`ParsedMessage::parse`]), so
//! a file accepted here is never dead-lettered by the workers.

use std::fmt;

use webhookd_events::{EventMessage, MessageError, ParsedMessage};

/// A line that is not a valid event. Lines count from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub(crate) line: usize,
    pub(crate) error: MessageError,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.error {
            // Each line is parsed on its own: "line 1" in serde's message is
            // misleading, the column is what helps.
            MessageError::NotJson(reason) => {
                write!(f, "invalid JSON: {}", strip_line_number(reason))
            }
            MessageError::NotObject => f.write_str("not a JSON object"),
            other => write!(f, "{other}"),
        }
    }
}

impl std::error::Error for LineError {}

/// Parses every line; blank lines are skipped. Either all events, or every
/// invalid line, so a file is published entirely or not at all. Messages
/// without `id` get a new one, without `timestamp` get `now`.
#[cfg(test)]
fn parse_ndjson(text: &str, now: i64) -> Result<Vec<EventMessage>, Vec<LineError>> {
    let mut messages = Vec::new();
    let mut errors = Vec::new();
    for parsed in ndjson_events(text, now) {
        match parsed {
            Ok(message) => messages.push(message),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(messages)
    } else {
        Err(errors)
    }
}

/// Like `parse_ndjson` (tests only) without keeping the events: their number, or every
/// invalid line. A large file is checked whole, then published in chunks
/// parsed again from [`ndjson_events`], so memory does not grow with it.
///
/// Only the daemon's parser runs here: it already rejects whatever building
/// the event would (an unknown event, `data` that is not an object or that a
/// strict JSON parser would refuse), at a fraction of the cost.
pub fn check_ndjson(text: &str) -> Result<usize, Vec<LineError>> {
    let mut count = 0;
    let mut errors = Vec::new();
    for (line, text) in event_lines(text) {
        match ParsedMessage::parse(text.as_bytes(), usize::MAX) {
            Ok(_) => count += 1,
            Err(error) => errors.push(LineError { line, error }),
        }
    }
    if errors.is_empty() {
        Ok(count)
    } else {
        Err(errors)
    }
}

/// Each non-blank line's event, parsed as it is reached.
pub fn ndjson_events(
    text: &str,
    now: i64,
) -> impl Iterator<Item = Result<EventMessage, LineError>> + '_ {
    event_lines(text)
        .map(move |(line, text)| parse_line(text, now).map_err(|error| LineError { line, error }))
}

/// The non-blank lines with their numbers (from 1): checking and parsing
/// must agree on both.
fn event_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, line))
}

fn parse_line(line: &str, now: i64) -> Result<EventMessage, MessageError> {
    let parsed = ParsedMessage::parse(line.as_bytes(), usize::MAX)?;
    let data = serde_json::from_str(parsed.data.get())
        .map_err(|e| MessageError::NotJson(e.to_string()))?;
    let mut message = EventMessage::new(parsed.event.name, data, parsed.timestamp.unwrap_or(now))?;
    if let Some(id) = parsed.id {
        message = message.with_id(id);
    }
    if let Some(user_id) = parsed.user_id {
        message = message.with_user_id(user_id);
    }
    Ok(message)
}

/// `expected value at line 1 column 5` -> `expected value at column 5`.
fn strip_line_number(reason: &str) -> String {
    match reason.rsplit_once(" at line ") {
        Some((head, position)) => match position.split_once(" column ") {
            Some((_, column)) => format!("{head} at column {column}"),
            None => reason.to_owned(),
        },
        None => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_708_435_200;

    #[test]
    fn valid_lines_become_messages_with_their_optional_fields() {
        let text = concat!(
            r#"{"event":"task.created","data":{"task_id":1}}"#,
            "\n\n   \n",
            r#"{"event":"deal.won","data":{},"user_id":7,"id":"0192f1d2-0000-7000-8000-000000000001","timestamp":17}"#,
            "\n"
        );
        let messages = parse_ndjson(text, NOW).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].event, "task.created");
        assert_eq!(messages[0].data, json!({"task_id": 1}));
        assert_eq!(messages[0].timestamp, NOW);
        assert_eq!(messages[0].user_id, None);
        assert_eq!(messages[1].user_id, Some(7));
        assert_eq!(
            messages[1].id.to_string(),
            "0192f1d2-0000-7000-8000-000000000001"
        );
        assert_eq!(messages[1].timestamp, 17);
        assert_ne!(messages[0].id, messages[1].id);
    }

    #[test]
    fn every_invalid_line_is_reported_with_its_number() {
        let text = [
            r#"{"event":"task.created","data":{}}"#,
            r#"{"event":"task.exploded","data":{}}"#,
            "",
            r#"{"event":"task.created","data":[1]}"#,
            r#"{"event":"task.created","data":{},"user_id":"7"}"#,
            r#"{"event":"task.created","#,
            "[1]",
            r#"{"data":{}}"#,
            r#"{"event":"task.created","data":{},"id":"nope"}"#,
        ]
        .join("\n");
        assert_eq!(
            check_ndjson(&text),
            Err(parse_ndjson(&text, NOW).unwrap_err()),
            "checking alone rejects the same lines"
        );
        let errors: Vec<String> = parse_ndjson(&text, NOW)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "line 2: unknown event `task.exploded`",
                "line 4: field `data` must be an object",
                "line 5: field `user_id` must be an integer",
                "line 6: invalid JSON: EOF while parsing an object at column 24",
                "line 7: not a JSON object",
                "line 8: missing required field `event`",
                "line 9: field `id` must be a UUID string",
            ]
        );
    }

    #[test]
    fn checking_counts_what_parsing_returns_and_reports_the_same_errors() {
        let good =
            "{\"event\":\"task.created\",\"data\":{}}\n\n{\"event\":\"deal.won\",\"data\":{}}\n";
        assert_eq!(check_ndjson(good), Ok(2));
        let lazily: Vec<String> = ndjson_events(good, NOW).map(|m| m.unwrap().event).collect();
        assert_eq!(lazily, ["task.created", "deal.won"]);
        let bad = "{\"event\":\"task.created\",\"data\":{}}\n{\"event\":\"nope\",\"data\":{}}";
        assert_eq!(check_ndjson(bad), Err(parse_ndjson(bad, NOW).unwrap_err()));
        assert_eq!(check_ndjson(""), Ok(0));
    }

    #[test]
    fn an_empty_file_has_no_events() {
        assert_eq!(parse_ndjson("", NOW).unwrap(), vec![]);
        assert_eq!(parse_ndjson("\n \n", NOW).unwrap(), vec![]);
    }

    #[test]
    fn windows_line_endings_are_accepted() {
        let text =
            "{\"event\":\"task.created\",\"data\":{}}\r\n{\"event\":\"deal.won\",\"data\":{}}\r\n";
        assert_eq!(parse_ndjson(text, NOW).unwrap().len(), 2);
    }
}
