//! The signature verification examples (examples/verify/) as real receivers:
//! each one gets a real delivery from the daemon and accepts it, then gets
//! requests with a tampered body, a wrong key and a stale timestamp straight
//! from the test and refuses them, beside a correctly signed one it accepts.
//! A missing toolchain fails the test, naming the script that installs it.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use uuid::Uuid;
use webhookd_e2e::process::{free_port, workspace_root};
use webhookd_e2e::{eventually, TestApp};
use webhookd_producer::EventMessage;
use webhookd_signing::{generate_secret, Signer, DEFAULT_TOLERANCE_SECS};

const WAIT: Duration = Duration::from_secs(30);
const ENSURE: &str = "scripts/ensure-verify-tools.sh";

#[derive(Clone, Copy, Debug)]
enum Language {
    Php,
    Python,
    Node,
    Go,
}

impl Language {
    fn dir(self) -> PathBuf {
        let name = match self {
            Language::Php => "php",
            Language::Python => "python",
            Language::Node => "node",
            Language::Go => "go",
        };
        workspace_root().join("examples/verify").join(name)
    }
}

/// A directory of one test's own under the system's temporary directory,
/// removed when dropped (also when the test fails on the way).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("webhookd-verify-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One example receiver running as a child process on 127.0.0.1:`port`,
/// writing its JSON lines to a file of its own; killed when dropped
/// (`kill_on_drop`).
struct Example {
    language: Language,
    // Declared before `scratch`: the process stops before its files go.
    _child: Child,
    port: u16,
    scratch: Scratch,
}

/// The program that runs `language`'s example, after checking its toolchain
/// is installed (the Go example is compiled into `scratch` first).
async fn command_for(language: Language, scratch: &Path, port: u16) -> Command {
    let dir = language.dir();
    let missing = |what: &str| -> ! {
        panic!("{what} is missing for the {language:?} example: run {ENSURE}")
    };
    let mut command = match language {
        Language::Php => {
            if !runs("php", &["--version"]).await {
                missing("php (php-cli)");
            }
            let mut command = Command::new("php");
            command.args(["-S", &format!("127.0.0.1:{port}"), "receiver.php"]);
            command
        }
        Language::Python => {
            let python = verify_python();
            if !runs(
                &python.to_string_lossy(),
                &["-c", "import standardwebhooks"],
            )
            .await
            {
                missing(&format!("{} with standardwebhooks", python.display()));
            }
            let mut command = Command::new(python);
            command.arg("receiver.py");
            command
        }
        Language::Node => {
            if !dir.join("node_modules/standardwebhooks").is_dir()
                || !runs("node", &["--version"]).await
            {
                missing("node or examples/verify/node/node_modules (npm ci)");
            }
            let mut command = Command::new("node");
            command.arg("receiver.js");
            command
        }
        Language::Go => {
            if !runs("go", &["version"]).await {
                missing("go (golang-go)");
            }
            let binary = scratch.join("receiver");
            let built = Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(".")
                .current_dir(&dir)
                .output()
                .await
                .unwrap();
            assert!(
                built.status.success(),
                "go build of examples/verify/go: {}",
                String::from_utf8_lossy(&built.stderr)
            );
            Command::new(binary)
        }
    };
    command.current_dir(dir);
    command
}

/// Whether `program ARGS` runs and exits 0.
async fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|status| status.success())
}

/// The venv's python that `scripts/ensure-verify-tools.sh` prints.
fn verify_python() -> PathBuf {
    if let Some(python) = std::env::var_os("WEBHOOKD_VERIFY_PYTHON") {
        return python.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    cache.join("webhookd/verify-venv/bin/python")
}

impl Example {
    async fn start(language: Language, secret: &str, port: u16) -> Example {
        let scratch = Scratch::new();
        let output = File::create(scratch.0.join("output.log")).unwrap();
        let child = command_for(language, &scratch.0, port)
            .await
            .env("WEBHOOK_SECRET", secret)
            .env("PORT", port.to_string())
            .env("RECEIVED_LOG", scratch.0.join("received.jsonl"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting the {language:?} example: {e}; run {ENSURE}"));
        let example = Example {
            language,
            _child: child,
            port,
            scratch,
        };
        eventually(WAIT, "the example receiver to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(drop)
        })
        .await;
        example
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The JSON lines the example wrote, one per request it judged.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(self.scratch.0.join("received.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{:?} example wrote {line:?}: {e}", self.language))
            })
            .collect()
    }

    /// The line written for the request with `webhook_id`, once there is one.
    async fn line_for(&self, webhook_id: &str) -> Value {
        eventually(WAIT, "the example's line for the request", || async {
            self.received()
                .into_iter()
                .find(|line| line["webhook_id"] == webhook_id)
        })
        .await
    }

    /// What the process printed (the PHP server's request log, tracebacks).
    fn output(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("output.log")).unwrap_or_default()
    }
}

/// Sends `body` to the example as webhookd would, with both signature schemes
/// computed by `signer` for `signed_body` at `timestamp`; the status.
async fn send(
    example: &Example,
    signer: &Signer,
    webhook_id: &str,
    timestamp: i64,
    signed_body: &[u8],
    body: &[u8],
) -> StatusCode {
    let timestamp_text = timestamp.to_string();
    reqwest::Client::new()
        .post(example.url())
        .header("Content-Type", "application/json")
        .header("X-Webhook-Signature", signer.sign_seed(signed_body))
        .header("X-Webhook-Id", webhook_id)
        .header("X-Webhook-Timestamp", &timestamp_text)
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", &timestamp_text)
        .header(
            "webhook-signature",
            signer.sign_standard(webhook_id, timestamp, signed_body),
        )
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

/// A real delivery is accepted (and recorded as a success by the daemon);
/// forged and stale requests are refused, a well-signed fresh one accepted.
async fn accepts_deliveries_and_refuses_forgeries(language: Language) {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let port = free_port();
    // No secret given: the daemon generates a `whsec_` one, shown once.
    let created = app
        .create_webhook(
            &token,
            json!({"name": "hook", "url": format!("http://127.0.0.1:{port}/"),
                   "events": ["task.created"]}),
        )
        .await;
    let webhook = created["id"].as_i64().unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "a generated secret: {secret}");
    let example = Example::start(language, &secret, port).await;

    // A real event, through RabbitMQ and the daemon.
    let message = EventMessage::new(
        "task.created",
        json!({"task_id": 7, "title": "Call back", "status": "pending", "priority": "high"}),
        chrono::Utc::now().timestamp(),
    )
    .unwrap();
    app.publisher.publish(&message).await.unwrap();
    let event_id = message.id.to_string();
    let accepted = eventually(WAIT, "the example to accept the delivery", || async {
        example
            .received()
            .into_iter()
            .find(|line| line["event_id"] == event_id.as_str())
    })
    .await;
    assert_eq!(
        accepted["valid"],
        true,
        "{language:?} example on the real delivery: {accepted}\n{}",
        example.output()
    );
    assert_eq!(app.wait_for_settled(webhook, WAIT).await, "succeeded");
    let (status, logs) = app
        .api(
            &token,
            reqwest::Method::GET,
            &format!("/api/v1/webhooks/{webhook}/logs"),
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{logs}");
    let attempts = logs["items"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "one attempt, accepted at once: {logs}");
    assert_eq!(attempts[0]["is_success"], true, "{logs}");
    assert_eq!(attempts[0]["status_code"], 204, "{logs}");
    // The example saw the delivery id the daemon recorded, as webhook-id.
    assert_eq!(accepted["webhook_id"], attempts[0]["delivery_id"], "{logs}");

    // Requests straight from the test, signed as the daemon signs.
    let signer = Signer::new(&secret);
    let now = chrono::Utc::now().timestamp();
    let body = serde_json::to_vec(&json!({
        "id": Uuid::new_v4(), "event": "task.created", "timestamp": now,
        "data": {"task_id": 8, "title": "Pay", "status": "pending", "priority": "low"}
    }))
    .unwrap();
    let forged = String::from_utf8(body.clone())
        .unwrap()
        .replace("\"Pay\"", "\"Pay twice\"")
        .into_bytes();
    assert_ne!(forged, body);
    let other_key = Signer::new(&generate_secret());
    let stale = now - DEFAULT_TOLERANCE_SECS - 60;
    let cases: [(&str, &Signer, i64, &[u8], StatusCode); 4] = [
        ("fresh", &signer, now, &body, StatusCode::NO_CONTENT),
        (
            "tampered-body",
            &signer,
            now,
            &forged,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong-key",
            &other_key,
            now,
            &body,
            StatusCode::UNAUTHORIZED,
        ),
        ("stale", &signer, stale, &body, StatusCode::UNAUTHORIZED),
    ];
    for (case, signer, timestamp, sent, expected) in cases {
        let webhook_id = format!("msg_{case}_{}", Uuid::new_v4().simple());
        let status = send(&example, signer, &webhook_id, timestamp, &body, sent).await;
        assert_eq!(
            status,
            expected,
            "{language:?} example, {case} request\n{}",
            example.output()
        );
        let line = example.line_for(&webhook_id).await;
        assert_eq!(
            line["valid"],
            expected == StatusCode::NO_CONTENT,
            "{language:?} example's line for the {case} request: {line}"
        );
    }

    drop(example);
    app.stop().await;
}

#[tokio::test]
async fn the_php_example_accepts_deliveries_and_refuses_forged_or_stale_requests() {
    accepts_deliveries_and_refuses_forgeries(Language::Php).await;
}

#[tokio::test]
async fn the_python_example_accepts_deliveries_and_refuses_forged_or_stale_requests() {
    accepts_deliveries_and_refuses_forgeries(Language::Python).await;
}

#[tokio::test]
async fn the_node_example_accepts_deliveries_and_refuses_forged_or_stale_requests() {
    accepts_deliveries_and_refuses_forgeries(Language::Node).await;
}

#[tokio::test]
async fn the_go_example_accepts_deliveries_and_refuses_forged_or_stale_requests() {
    accepts_deliveries_and_refuses_forgeries(Language::Go).await;
}
