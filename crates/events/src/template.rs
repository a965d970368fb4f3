//! Body templates: a JSON document whose string values may hold `{{data.title}}`
//! placeholders. A template is checked once when it is saved; rendering cannot
//! fail and always yields valid JSON, because substitution happens on a parsed
//! tree and the result is serialised, never spliced as text.

use serde_json::{Map, Value};

/// Top-level names a placeholder may start with: the envelope's fields.
const ROOTS: &[&str] = &["id", "event", "timestamp", "data"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is not valid JSON: {0}")]
    NotJson(String),
    #[error("unclosed placeholder: `{{{{` without `}}}}`")]
    Unclosed,
    #[error("empty placeholder `{{{{}}}}`")]
    EmptyPlaceholder,
    #[error("placeholder `{0}` must be a dotted path like `data.title`")]
    BadPath(String),
    #[error("placeholder `{0}` must start with one of id, event, timestamp, data")]
    UnknownRoot(String),
}

/// A rendering stopped because its output would have exceeded the cap
/// (`limits.max_rendered_body_bytes`): many placeholders each inserting a
/// large value would otherwise build gigabytes from one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rendered body exceeds limits.max_rendered_body_bytes ({limit} bytes)")]
pub struct RenderTooLarge {
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Path(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Fixed(Value),
    Text(Vec<Part>),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

/// A parsed, validated template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    root: Node,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| TemplateError::NotJson(e.to_string()))?;
        Ok(Template {
            root: compile(value)?,
        })
    }

    /// Renders against the envelope (`{"id","event","timestamp","data"}`).
    /// Missing values render as empty text; strings are inserted as they are;
    /// numbers, booleans, objects and arrays as their compact JSON text.
    /// Unbounded: for templates and envelopes of known, small size (presets,
    /// previews of a fixed sample).
    pub fn render(&self, envelope: &Value) -> String {
        self.render_capped(envelope, usize::MAX).unwrap_or_default()
    }

    /// Renders as [`Template::render`], giving up as soon as the output would
    /// exceed `limit` bytes: neither the tree of inserted text nor the
    /// serialised body ever grows past the cap.
    pub fn render_capped(&self, envelope: &Value, limit: usize) -> Result<String, RenderTooLarge> {
        let too_large = RenderTooLarge { limit };
        // Raw text counts before escaping, which only lengthens it, so this
        // budget stops the tree early; the capped writer bounds the rest.
        let mut budget = Budget { left: limit };
        let tree = render_node(&self.root, envelope, &mut budget).ok_or(too_large)?;
        let mut out = CappedWriter {
            buf: Vec::new(),
            limit,
        };
        serde_json::to_writer(&mut out, &tree).map_err(|_| too_large)?;
        // The serialiser writes only valid UTF-8.
        String::from_utf8(out.buf).map_err(|_| too_large)
    }
}

/// Bytes of inserted text a rendering may still add.
struct Budget {
    left: usize,
}

impl Budget {
    fn take(&mut self, bytes: usize) -> Option<()> {
        self.left = self.left.checked_sub(bytes)?;
        Some(())
    }
}

/// A byte buffer that refuses to grow past `limit`.
struct CappedWriter {
    buf: Vec<u8>,
    limit: usize,
}

impl std::io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.limit {
            return Err(std::io::Error::other("rendered body too large"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn compile(value: Value) -> Result<Node, TemplateError> {
    Ok(match value {
        Value::String(s) if s.contains("{{") => Node::Text(compile_text(&s)?),
        Value::Array(items) => {
            Node::Array(items.into_iter().map(compile).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => Node::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, compile(v)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => Node::Fixed(other),
    })
}

fn compile_text(mut rest: &str) -> Result<Vec<Part>, TemplateError> {
    let mut parts = Vec::new();
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(TemplateError::Unclosed)?;
        parts.push(Part::Path(compile_path(after[..end].trim())?));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.to_owned()));
    }
    Ok(parts)
}

fn compile_path(path: &str) -> Result<Vec<String>, TemplateError> {
    if path.is_empty() {
        return Err(TemplateError::EmptyPlaceholder);
    }
    let shown = || path.chars().take(64).collect::<String>();
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    let valid_segment = |s: &String| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    };
    if !segments.iter().all(valid_segment) {
        return Err(TemplateError::BadPath(shown()));
    }
    if !ROOTS.contains(&segments[0].as_str()) {
        return Err(TemplateError::UnknownRoot(shown()));
    }
    Ok(segments)
}

fn render_node(node: &Node, envelope: &Value, budget: &mut Budget) -> Option<Value> {
    Some(match node {
        Node::Fixed(v) => v.clone(),
        Node::Text(parts) => {
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Text(t) => {
                        budget.take(t.len())?;
                        out.push_str(t);
                    }
                    Part::Path(path) => push_value(&mut out, lookup(envelope, path), budget)?,
                }
            }
            Value::String(out)
        }
        Node::Array(items) => Value::Array(
            items
                .iter()
                .map(|n| render_node(n, envelope, budget))
                .collect::<Option<_>>()?,
        ),
        Node::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, n)| Some((k.clone(), render_node(n, envelope, budget)?)))
                .collect::<Option<Map<_, _>>>()?,
        ),
    })
}

fn lookup<'v>(root: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(root, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn push_value(out: &mut String, value: Option<&Value>, budget: &mut Budget) -> Option<()> {
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            budget.take(s.len())?;
            out.push_str(s);
        }
        Some(other) => {
            // The value's JSON text is written straight into `out`, through a
            // writer that stops at the budget, never built whole first.
            let mut capped = CappedWriter {
                buf: Vec::new(),
                limit: budget.left,
            };
            serde_json::to_writer(&mut capped, other).ok()?;
            budget.take(capped.buf.len())?;
            out.push_str(&String::from_utf8(capped.buf).ok()?);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope() -> Value {
        json!({
            "id": "0192f1d2-0000-7000-8000-000000000001",
            "event": "task.created",
            "timestamp": 1708435200,
            "data": {
                "task_id": 123,
                "title": "Quote \" brace } {{data.x}} newline\n tab\t \u{0} юникод 🎉",
                "tags": ["a", "b"],
                "done": false,
                "owner": {"name": "Ann"},
                "none": null
            }
        })
    }

    fn render(template: &str) -> Value {
        let out = Template::parse(template).unwrap().render(&envelope());
        serde_json::from_str(&out).expect("rendered template is valid JSON")
    }

    #[test]
    fn the_telegram_template_renders_the_title() {
        let v = render(r#"{"chat_id": "42", "text": "New: {{data.title}}"}"#);
        assert_eq!(v["chat_id"], "42");
        assert_eq!(
            v["text"],
            format!("New: {}", envelope()["data"]["title"].as_str().unwrap())
        );
    }

    #[test]
    fn hostile_data_still_yields_valid_json_and_is_not_re_expanded() {
        let v = render(r#"{"a": "{{data.title}}{{data.title}}", "b": ["{{ event }}", 1, null]}"#);
        assert!(v["a"].as_str().unwrap().contains("{{data.x}}"));
        assert_eq!(v["b"], json!(["task.created", 1, null]));
    }

    #[test]
    fn non_string_values_become_their_json_text_and_missing_ones_empty() {
        let v = render(
            r##"{"n": "#{{data.task_id}}", "b": "{{data.done}}", "o": "{{data.owner}}", "arr": "{{data.tags}}", "first": "{{data.tags.0}}", "missing": "[{{data.nope.deeper}}]", "null": "{{data.none}}", "ts": "{{timestamp}}"}"##,
        );
        assert_eq!(v["n"], "#123");
        assert_eq!(v["b"], "false");
        assert_eq!(v["o"], r#"{"name":"Ann"}"#);
        assert_eq!(v["arr"], r#"["a","b"]"#);
        assert_eq!(v["first"], "a");
        assert_eq!(v["missing"], "[]");
        assert_eq!(v["null"], "");
        assert_eq!(v["ts"], "1708435200");
    }

    #[test]
    fn templates_without_placeholders_and_non_object_documents_are_kept() {
        assert_eq!(
            render(r#"{"k": {"x": [true, 1.5]}}"#),
            json!({"k": {"x": [true, 1.5]}})
        );
        assert_eq!(render(r#""{{event}}""#), json!("task.created"));
        assert_eq!(render("[]"), json!([]));
        assert_eq!(
            render(r#"{"single": "{ not a placeholder }"}"#)["single"],
            "{ not a placeholder }"
        );
    }

    #[test]
    fn fixed_numbers_render_as_the_numbers_written() {
        // Found by the `render_template` fuzz target: without exact float
        // parsing, `5e31` came back as `4.999999999999999e31`.
        let out = Template::parse(r#"{"a": 50e30, "b": 5e31, "c": [0.1, 1.7976931348623157e308, 2.2250738585072014e-308]}"#)
            .unwrap()
            .render(&envelope());
        assert_eq!(
            out,
            r#"{"a":5e+31,"b":5e+31,"c":[0.1,1.7976931348623157e+308,2.2250738585072014e-308]}"#
        );
    }

    #[test]
    fn invalid_templates_are_refused_with_a_reason() {
        let cases = [
            ("{\"text\": ", "not valid JSON"),
            ("{{data.title}}", "not valid JSON"),
            (r#"{"t": "{{data.title"}"#, "unclosed"),
            (r#"{"t": "{{}}"}"#, "empty placeholder"),
            (r#"{"t": "{{  }}"}"#, "empty placeholder"),
            (r#"{"t": "{{data..x}}"}"#, "dotted path"),
            (r#"{"t": "{{data.a b}}"}"#, "dotted path"),
            (r#"{"t": "{{secret}}"}"#, "must start with"),
            (r#"{"t": "{{env.HOME}}"}"#, "must start with"),
            (r#"{"t": "{{user_id}}"}"#, "must start with"),
        ];
        for (template, expected) in cases {
            let err = Template::parse(template).expect_err(template).to_string();
            assert!(err.contains(expected), "{template}: {err}");
        }
    }

    fn amplifying(placeholders: usize) -> Template {
        let text = "{{data}}".repeat(placeholders);
        Template::parse(&format!(
            r#"{{"a": "{text}", "b": ["{{{{data.title}}}}"]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn a_rendering_past_the_cap_is_refused_naming_the_key_and_the_cap() {
        let template = amplifying(1000);
        // Each placeholder inserts the whole `data` object (~200 bytes).
        let err = template.render_capped(&envelope(), 64 * 1024).unwrap_err();
        assert_eq!(err, RenderTooLarge { limit: 65536 });
        assert_eq!(
            err.to_string(),
            "rendered body exceeds limits.max_rendered_body_bytes (65536 bytes)"
        );
    }

    #[test]
    fn a_rendering_within_the_cap_is_the_unbounded_one_and_the_cap_is_inclusive() {
        let template = amplifying(10);
        let full = template.render(&envelope());
        assert_eq!(
            template.render_capped(&envelope(), full.len()),
            Ok(full.clone())
        );
        assert!(template.render_capped(&envelope(), full.len() - 1).is_err());
    }

    #[test]
    fn escaping_counts_against_the_cap() {
        // Control characters serialise six bytes each (`\u0000`): the raw
        // text fits, the body does not.
        let envelope = json!({"data": {"x": "\u{0}".repeat(100)}});
        let template = Template::parse(r#"{"t": "{{data.x}}"}"#).unwrap();
        assert!(template.render_capped(&envelope, 200).is_err());
        assert!(template.render_capped(&envelope, 700).is_ok());
    }

    #[test]
    fn a_huge_amplification_stops_early_instead_of_building_gigabytes() {
        // 10,000 copies of a 1 MiB value would be 10 GiB; stopping at the cap
        // is what makes this test finish at all.
        let envelope = json!({"data": {"big": "x".repeat(1 << 20)}});
        let text = "{{data}}".repeat(10_000);
        let template = Template::parse(&format!(r#"{{"a": "{text}"}}"#)).unwrap();
        assert!(template.render_capped(&envelope, 1 << 20).is_err());
    }
}
