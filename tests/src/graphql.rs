//! GraphQL requests to a test daemon's `/graphql`, and the reference
//! `graphql-ws` client (tests/graphql-ws/, on Node) for subscriptions.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use crate::process::workspace_root;

/// POSTs `query` with `variables` to `base` (`http://host:port`) with
/// `token` (if any) and returns the whole GraphQL response.
pub async fn graphql(
    http: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = http
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "POST /graphql: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `extensions.code` of the response's first error.
pub fn error_code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {response}"))
}

/// Asserts the response has no errors, and returns its `data`.
#[track_caller]
pub fn data(response: &Value) -> &Value {
    assert!(response.get("errors").is_none(), "errors: {response}");
    &response["data"]
}

fn client_dir() -> PathBuf {
    workspace_root().join("tests").join("graphql-ws")
}

/// Installs the client's locked dependencies once per test binary (`npm
/// ci`), unless scripts/test.sh already did.
fn install_client() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let dir = client_dir();
        if dir.join("node_modules").join("graphql-ws").is_dir() {
            return;
        }
        let status = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .status()
            .expect("running `npm ci` in tests/graphql-ws");
        assert!(status.success(), "`npm ci` in tests/graphql-ws failed");
    });
}

/// One `graphql-ws` client (`tests/graphql-ws/subscribe.mjs`) running one
/// subscription; it prints a JSON line per protocol happening.
pub struct WsClient {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl WsClient {
    /// Connects to `ws_url` with `token` in `connection_init` (`None`: no
    /// token) and subscribes to `query`.
    pub fn subscribe(ws_url: &str, token: Option<&str>, query: &str) -> WsClient {
        install_client();
        let mut command = Command::new("node");
        command
            .arg(client_dir().join("subscribe.mjs"))
            .env("GQL_URL", ws_url)
            .env("GQL_QUERY", query)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(token) = token {
            command.env("GQL_TOKEN", token);
        }
        let mut child = command.spawn().expect("starting node");
        let stdout = child.stdout.take().expect("a piped stdout");
        WsClient {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next line the client printed, at most `within` from now.
    pub async fn next_line(&mut self, within: Duration) -> Value {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .expect("the graphql-ws client printed nothing in time")
            .expect("reading the client's output")
            .expect("the graphql-ws client ended without a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Reads lines until one of `kind` (`next`, `error`, `complete`,
    /// `closed`, `connected`), at most `within` in all.
    pub async fn until(&mut self, kind: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = self.next_line(left).await;
            if line["kind"] == kind {
                return line;
            }
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}
