//! `crm-events listen` as a developer runs it: the built binary subscribes
//! to a real daemon and forwards each live event to a real receiver on
//! 127.0.0.1, shaped and signed as a worker delivers it, printing a line per
//! event; it reconnects when the daemon restarts and exits on a bad token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use webhookd_e2e::process::{crm_events_binary, free_port, sample, webhookd_command, Deployment};
use webhookd_e2e::{eventually, Received, Receiver, TestApp};
use webhookd_events::render_envelope;
use webhookd_producer::EventMessage;
use webhookd_signing::{verify_seed, verify_standard, DEFAULT_TOLERANCE_SECS};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);
const OPEN_EVENTS: &str = "webhookd_graphql_subscriptions{kind=\"events\"}";

/// A running `crm-events listen`, its output collected line by line.
struct Listen {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Listen {
    fn start(api: &str, token: &str, forward_to: &str, extra: &[&str]) -> Listen {
        let mut command = Command::new(crm_events_binary());
        command
            .args(["listen", "--api", api, "--token", token, "--forward-to"])
            .arg(forward_to)
            .args(extra)
            .env_remove("WEBHOOKD_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().expect("starting crm-events listen");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Listen {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }

    /// The first stdout line containing `needle`, waiting for it.
    async fn stdout_line(&self, needle: &str) -> String {
        let what = format!("a line with {needle:?} from listen");
        eventually(WAIT, &what, || async {
            let lines = self.stdout.lock().unwrap();
            lines.iter().find(|l| l.contains(needle)).cloned()
        })
        .await
    }

    /// Waits until stderr has `count` lines containing `needle`.
    async fn stderr_lines(&self, needle: &str, count: usize) {
        let what = format!("{count} stderr line(s) with {needle:?} from listen");
        eventually(WAIT, &what, || async {
            let lines = self.stderr.lock().unwrap();
            (lines.iter().filter(|l| l.contains(needle)).count() >= count).then_some(())
        })
        .await;
    }

    /// The lines printed for forwarded events.
    fn event_lines(&self) -> Vec<String> {
        let lines = self.stdout.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.contains(" -> "))
            .cloned()
            .collect()
    }

    async fn secret(&self) -> String {
        let ready = self.stdout_line("Ready!").await;
        ready
            .rsplit(' ')
            .next()
            .expect("the secret ends the line")
            .to_owned()
    }

    async fn exit(&mut self) -> ExitStatus {
        tokio::time::timeout(WAIT, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("listen did not exit:\n{}", self.output()))
            .unwrap()
    }

    /// Ctrl-C, as a developer ends it.
    async fn interrupt(&mut self) -> ExitStatus {
        let pid = self.child.id().expect("listen is running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        self.exit().await
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

fn collect(pipe: impl AsyncRead + Unpin + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(pipe).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

fn event(name: &str, data: serde_json::Value) -> EventMessage {
    EventMessage::new(name, data, chrono::Utc::now().timestamp()).unwrap()
}

/// The body a worker sends for `message`: the publisher's data bytes.
fn envelope(message: &EventMessage) -> String {
    let data = serde_json::value::to_raw_value(&message.data).unwrap();
    render_envelope(&message.id, &message.event, message.timestamp, &data)
}

/// Both signatures of `received` check out with `secret`.
fn assert_signed(received: &Received, secret: &str) {
    verify_seed(
        secret,
        &received.body,
        received.header("x-webhook-signature"),
    )
    .expect("the seed-style signature verifies");
    verify_standard(
        secret,
        received.header("webhook-id"),
        received.header("webhook-timestamp"),
        &received.body,
        received.header("webhook-signature"),
        chrono::Utc::now().timestamp(),
        DEFAULT_TOLERANCE_SECS,
    )
    .expect("the Standard Webhooks signature verifies");
}

async fn wait_for_subscriptions<F, Fut>(metrics: F, open: f64)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    eventually(WAIT, "listen's subscription to be open", || async {
        (sample(&metrics().await, OPEN_EVENTS) == Some(open)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn events_are_forwarded_as_signed_envelopes_with_a_line_each_and_the_filter_honoured() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Dev", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    let listen = Listen::start(
        &app.url(""),
        &token,
        &receiver.url(),
        &[
            "--events",
            "task.*",
            "--events",
            "client.created",
            "--secret",
            SECRET,
        ],
    );
    assert_eq!(listen.secret().await, SECRET);
    wait_for_subscriptions(|| app.metrics_text(), 1.0).await;

    // Keys out of alphabetical order and non-ASCII text: the body keeps them.
    let created = event(
        "task.created",
        json!({"title": "Звонок", "task_id": 7, "a": [1.5, null]}),
    );
    let skipped = event("deal.won", json!({"deal_id": 1}));
    let client = event("client.created", json!({"client_id": 3}));
    for message in [&created, &skipped, &client] {
        app.publisher.publish(message).await.unwrap();
    }
    let received = receiver.wait_for(2, WAIT).await;

    assert_eq!(received.len(), 2, "deal.won is not forwarded");
    for (got, sent) in received.iter().zip([&created, &client]) {
        assert_eq!(std::str::from_utf8(&got.body).unwrap(), envelope(sent));
        assert!(got.seed_signature_valid && got.standard_signature_valid);
        assert_signed(got, SECRET);
        assert_eq!(got.header("x-webhook-event"), sent.event);
        assert_eq!(got.header("x-webhook-attempt"), "1");
        assert_eq!(got.header("x-webhook-id"), got.header("webhook-id"));
        assert_eq!(
            got.header("x-webhook-timestamp"),
            got.header("webhook-timestamp")
        );
        assert_eq!(got.header("content-type"), "application/json");
        assert!(got.header("user-agent").starts_with("webhookd/"));
    }
    assert_ne!(
        received[0].header("x-webhook-id"),
        received[1].header("x-webhook-id"),
        "each forward is its own delivery"
    );

    listen.stdout_line(&client.id.to_string()).await;
    let lines = listen.event_lines();
    assert_eq!(lines.len(), 2, "one line per forwarded event:\n{lines:?}");
    for (line, sent) in lines.iter().zip([&created, &client]) {
        assert!(line.contains(&sent.event), "{line}");
        assert!(line.contains(&sent.id.to_string()), "{line}");
        assert!(line.contains("-> 200"), "{line}");
        assert!(line.ends_with(" ms)"), "latency: {line}");
    }
    let mut listen = listen;
    let status = listen.interrupt().await;
    assert!(
        status.success(),
        "Ctrl-C ends cleanly: {status}\n{}",
        listen.output()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_generated_secret_is_printed_and_a_failing_receiver_shows_its_status() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Dev", None, true).await;
    // It checks signatures against another secret; this test checks them
    // against the printed one.
    let receiver = Receiver::start("unused").await;
    receiver.always(500);
    let listen = Listen::start(&app.url("/"), &token, &receiver.url(), &[]);
    let secret = listen.secret().await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_ne!(secret, SECRET);
    wait_for_subscriptions(|| app.metrics_text(), 1.0).await;

    let message = event("deal.won", json!({"deal_id": 9}));
    app.publisher.publish(&message).await.unwrap();
    let received = receiver.wait_for(1, WAIT).await;
    assert_signed(&received[0], &secret);
    assert_eq!(
        std::str::from_utf8(&received[0].body).unwrap(),
        envelope(&message)
    );
    let line = listen.stdout_line(&message.id.to_string()).await;
    assert!(
        line.contains("deal.won") && line.contains("-> 500"),
        "{line}"
    );

    // Nothing listening: the line says why instead of a status.
    let closed = webhookd_e2e::receiver::closed_port_url().await;
    let refused = Listen::start(&app.url(""), &token, &closed, &[]);
    wait_for_subscriptions(|| app.metrics_text(), 2.0).await;
    let message = event("deal.won", json!({"deal_id": 10}));
    app.publisher.publish(&message).await.unwrap();
    let line = refused.stdout_line(&message.id.to_string()).await;
    assert!(line.contains("-> error: "), "{line}");
    refused.stop().await;
    listen.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_bad_token_exits_non_zero_saying_so() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start(SECRET).await;
    let mut listen = Listen::start(&app.url(""), "whk_not_a_token", &receiver.url(), &[]);
    let status = listen.exit().await;
    assert!(!status.success(), "{status}:\n{}", listen.output());
    assert_eq!(status.code(), Some(1), "{}", listen.output());
    listen.stderr_lines("refused the token", 1).await;
    assert_eq!(receiver.count(), 0);
    app.stop().await;
}

#[tokio::test]
async fn bad_arguments_exit_2_before_connecting() {
    // Nothing listens there: a connection attempt would hang or retry.
    let api = format!("http://127.0.0.1:{}", free_port());
    let mut listen = Listen::start(
        &api,
        "whk_x",
        "http://127.0.0.1:1/",
        &["--events", "task.creatd"],
    );
    let status = listen.exit().await;
    assert_eq!(status.code(), Some(2), "{}", listen.output());
    listen.stderr_lines("--events \"task.creatd\"", 1).await;

    let missing = std::env::temp_dir().join("webhookd-no-such-ca.pem");
    let mut listen = Listen::start(
        &api.replace("http://", "https://"),
        "whk_x",
        "http://127.0.0.1:1/",
        &["--ca-file", missing.to_str().unwrap()],
    );
    let status = listen.exit().await;
    assert_eq!(status.code(), Some(2), "{}", listen.output());
    listen.stderr_lines("--ca-file", 1).await;
    assert!(listen.output().contains("webhookd-no-such-ca.pem"));
}

/// `webhookd run` on `addr`, as a child process killed when dropped.
async fn start_daemon(deployment: &Deployment, addr: SocketAddr) -> Child {
    let mut command = webhookd_command(&["run"], &deployment.env(&[]));
    command
        .env("WEBHOOKD__HTTP__LISTEN", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = command.spawn().expect("starting webhookd");
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(60), "webhookd to be ready", || async {
        let response = http
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    child
}

async fn daemon_metrics(addr: SocketAddr) -> String {
    match reqwest::get(format!("http://{addr}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[tokio::test]
async fn listen_reconnects_when_the_daemon_restarts_and_forwards_later_events() {
    let deployment = Deployment::new().await;
    let (_, token) = webhookd_store::users::create_user(&deployment.db.pool, "Dev", None, false)
        .await
        .unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let mut daemon = start_daemon(&deployment, addr).await;
    let receiver = Receiver::start(SECRET).await;
    let api = format!("http://{addr}");
    let listen = Listen::start(&api, &token, &receiver.url(), &["--secret", SECRET]);
    wait_for_subscriptions(|| daemon_metrics(addr), 1.0).await;
    let before = event("task.created", json!({"task_id": 1}));
    deployment.publisher.publish(&before).await.unwrap();
    receiver.wait_for(1, WAIT).await;

    // kill -9: the socket just drops; listen says so and keeps trying.
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    listen.stderr_lines("reconnecting", 1).await;
    let restarted = start_daemon(&deployment, addr).await;
    listen.stderr_lines("Reconnected", 1).await;
    wait_for_subscriptions(|| daemon_metrics(addr), 1.0).await;

    let after = event("task.created", json!({"task_id": 2}));
    deployment.publisher.publish(&after).await.unwrap();
    let received = receiver.wait_for(2, WAIT).await;
    assert_eq!(
        std::str::from_utf8(&received[1].body).unwrap(),
        envelope(&after)
    );
    assert_signed(&received[1], SECRET);
    listen.stdout_line(&after.id.to_string()).await;
    assert_eq!(listen.event_lines().len(), 2, "{}", listen.output());
    listen.stop().await;
    drop(restarted);
    deployment.cleanup().await;
}

/// A TLS front for the daemon on 127.0.0.1, as a reverse proxy terminating
/// HTTPS in front of it would be, with a certificate for 127.0.0.1 signed
/// by a certificate authority of its own (not one the built-in roots hold).
struct TlsFront {
    port: u16,
    ca_pem: String,
}

impl TlsFront {
    async fn start(daemon: SocketAddr) -> TlsFront {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "webhookd listen test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that does not trust the certificate ends
                    // the handshake: nothing to proxy.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(daemon).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        TlsFront {
            port,
            ca_pem: ca.pem(),
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

#[tokio::test]
async fn over_https_the_daemon_is_trusted_through_ca_file_and_refused_without_it() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Dev", None, false).await;
    let front = TlsFront::start(app.addr).await;
    let ca_file = std::env::temp_dir().join(format!("listen-ca-{}.pem", front.port));
    std::fs::write(&ca_file, &front.ca_pem).unwrap();
    let receiver = Receiver::start(SECRET).await;

    // Its CA unknown: listen stops at once saying what to do, instead of
    // reconnecting for ever.
    let mut untrusted = Listen::start(&front.url(), &token, &receiver.url(), &[]);
    let status = untrusted.exit().await;
    assert_eq!(status.code(), Some(1), "{}", untrusted.output());
    untrusted.stderr_lines("--ca-file", 1).await;
    assert!(
        untrusted.output().contains("certificate"),
        "{}",
        untrusted.output()
    );

    let ca = ca_file.to_str().unwrap();
    let listen = Listen::start(
        &front.url(),
        &token,
        &receiver.url(),
        &["--secret", SECRET, "--ca-file", ca],
    );
    wait_for_subscriptions(|| app.metrics_text(), 1.0).await;
    listen.stderr_lines("Connected to wss://127.0.0.1", 1).await;
    let message = event("task.created", json!({"task_id": 11, "title": "По TLS"}));
    app.publisher.publish(&message).await.unwrap();
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        std::str::from_utf8(&received[0].body).unwrap(),
        envelope(&message)
    );
    assert_signed(&received[0], SECRET);
    let line = listen.stdout_line(&message.id.to_string()).await;
    assert!(line.contains("-> 200"), "{line}");
    listen.stop().await;
    std::fs::remove_file(&ca_file).unwrap();
    app.stop().await;
}
