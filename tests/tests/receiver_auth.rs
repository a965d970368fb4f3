//! Authentication to receivers (SPEC §14 `auth`) against the real daemon:
//! basic and bearer headers beside a valid signature, an OAuth2 token
//! endpoint on 127.0.0.1 (one token for many deliveries, a refresh on 401,
//! its failures logged as the attempt's error), mTLS against a TLS receiver
//! that requires a client certificate from a CA the test generates (the
//! receiver trusted through `delivery.extra_ca_file`), and the API never
//! showing a secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use webhookd_e2e::app::webhook_body;
use webhookd_e2e::process::sample;
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);
/// base64 of `webhookd:client-s3cret`, the token endpoint's client.
const CLIENT_BASIC: &str = "Basic d2ViaG9va2Q6Y2xpZW50LXMzY3JldA==";

fn task_created(n: i64) -> EventMessage {
    EventMessage::new(
        "task.created",
        json!({"task_id": n, "title": format!("task {n}"), "status": "pending"}),
        1708435200,
    )
    .unwrap()
}

/// A daemon (with `overrides`) and Alice's token.
async fn spawn(overrides: &[(&str, &str)]) -> (TestApp, String) {
    let app = TestApp::spawn_with(overrides).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    (app, token)
}

/// Creates a `task.created` webhook to `url` with `auth`; its id.
async fn hook_with_auth(app: &TestApp, token: &str, url: &str, auth: Value) -> i64 {
    let mut body = webhook_body(url, json!(["task.created"]), SECRET);
    body["auth"] = auth;
    app.create_webhook(token, body).await["id"]
        .as_i64()
        .unwrap()
}

/// The attempts' `(is_success, error_message)` of a webhook, oldest first.
async fn attempts(app: &TestApp, hook: i64) -> Vec<(bool, String)> {
    sqlx::query_as::<_, (bool, Option<String>)>(
        "SELECT is_success, error_message FROM webhook_logs WHERE webhook_id = $1 ORDER BY id",
    )
    .bind(hook)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(ok, error)| (ok, error.unwrap_or_default()))
    .collect()
}

#[tokio::test]
async fn basic_and_bearer_auth_send_their_authorization_header_beside_a_valid_signature() {
    let (app, token) = spawn(&[]).await;
    let basic_receiver = Receiver::start(SECRET).await;
    let bearer_receiver = Receiver::start(SECRET).await;
    hook_with_auth(
        &app,
        &token,
        &basic_receiver.url(),
        json!({"type": "basic", "username": "alice", "password": "pa55word"}),
    )
    .await;
    let bearer_hook = hook_with_auth(
        &app,
        &token,
        &bearer_receiver.url(),
        json!({"type": "bearer", "token": "s3cr3t-t0ken"}),
    )
    .await;
    app.publisher.publish(&task_created(1)).await.unwrap();

    let basic = basic_receiver.wait_for(1, WAIT).await;
    assert_eq!(
        basic[0].header("authorization"),
        "Basic YWxpY2U6cGE1NXdvcmQ="
    );
    let bearer = bearer_receiver.wait_for(1, WAIT).await;
    assert_eq!(bearer[0].header("authorization"), "Bearer s3cr3t-t0ken");
    for request in [&basic[0], &bearer[0]] {
        assert!(request.seed_signature_valid && request.standard_signature_valid);
    }

    // A test delivery authenticates like the real ones.
    let (status, answer) = app
        .api(
            &token,
            Method::POST,
            &format!("/api/v1/webhooks/{bearer_hook}/test"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["is_success"], true, "{answer}");
    let tested = bearer_receiver.wait_for(2, WAIT).await;
    assert_eq!(tested[1].header("x-webhook-event"), "webhook.test");
    assert_eq!(tested[1].header("authorization"), "Bearer s3cr3t-t0ken");
    app.stop().await;
}

#[tokio::test]
async fn a_patch_changing_only_the_username_keeps_the_stored_password() {
    let (app, token) = spawn(&[]).await;
    let receiver = Receiver::start(SECRET).await;
    let hook = hook_with_auth(
        &app,
        &token,
        &receiver.url(),
        json!({"type": "basic", "username": "alice", "password": "pa55word"}),
    )
    .await;
    let (status, body) = app
        .api(
            &token,
            Method::PATCH,
            &format!("/api/v1/webhooks/{hook}"),
            json!({"auth": {"type": "basic", "username": "bob"}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"], json!({"type": "basic", "username": "bob"}));

    app.publisher.publish(&task_created(1)).await.unwrap();
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        received[0].header("authorization"),
        "Basic Ym9iOnBhNTV3b3Jk",
        "bob with alice's old password"
    );

    // Another type needs all its fields; null removes auth.
    let path = format!("/api/v1/webhooks/{hook}");
    let (status, body) = app
        .api(
            &token,
            Method::PATCH,
            &path,
            json!({"auth": {"type": "bearer"}}),
        )
        .await;
    assert_eq!(
        (status.as_u16(), &body["field"]),
        (422, &json!("auth.token"))
    );
    let (status, body) = app
        .api(&token, Method::PATCH, &path, json!({"auth": null}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"], Value::Null);
    app.stop().await;
}

/// An OAuth2 token endpoint: counts its requests, checks the client's
/// credentials (client_secret_basic) and the grant, issues `token-<n>`.
struct TokenEndpoint {
    addr: std::net::SocketAddr,
    state: Arc<TokenState>,
}

#[derive(Default)]
struct TokenState {
    hits: AtomicUsize,
    refused: AtomicUsize,
    broken: AtomicBool,
}

impl TokenEndpoint {
    async fn start() -> TokenEndpoint {
        let state = Arc::new(TokenState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new()
            .route("/oauth/token", post(issue_token))
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TokenEndpoint { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/oauth/token", self.addr)
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    fn auth(&self) -> Value {
        json!({"type": "oauth2", "token_url": self.url(), "client_id": "webhookd",
               "client_secret": "client-s3cret", "scope": "webhooks"})
    }
}

async fn issue_token(
    State(state): State<Arc<TokenState>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let n = state.hits.fetch_add(1, Ordering::SeqCst) + 1;
    if state.broken.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let client_ok = headers
        .get("authorization")
        .is_some_and(|v| v == CLIENT_BASIC);
    let grant_ok =
        body.contains("grant_type=client_credentials") && body.contains("scope=webhooks");
    if !(client_ok && grant_ok) {
        state.refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    axum::Json(
        json!({"access_token": format!("token-{n}"), "token_type": "Bearer",
                      "expires_in": 3600}),
    )
    .into_response()
}

/// The series of `webhookd_oauth2_token_requests_total` for `outcome`.
fn token_requests(outcome: &str) -> String {
    format!("webhookd_oauth2_token_requests_total{{outcome=\"{outcome}\"}}")
}

#[tokio::test]
async fn one_oauth2_token_serves_many_deliveries() {
    let (app, token) = spawn(&[]).await;
    let endpoint = TokenEndpoint::start().await;
    let receiver = Receiver::start(SECRET).await;
    hook_with_auth(&app, &token, &receiver.url(), endpoint.auth()).await;
    for n in 0..20 {
        app.publisher.publish(&task_created(n)).await.unwrap();
    }
    let received = receiver.wait_for(20, WAIT).await;
    for request in &received {
        assert_eq!(request.header("authorization"), "Bearer token-1");
        assert!(request.seed_signature_valid && request.standard_signature_valid);
    }
    assert_eq!(endpoint.hits(), 1, "one token request for 20 deliveries");
    assert_eq!(endpoint.state.refused.load(Ordering::SeqCst), 0);
    let metrics = app.metrics_text().await;
    assert_eq!(sample(&metrics, &token_requests("fetched")), Some(1.0));
    assert_eq!(sample(&metrics, &token_requests("failed")), Some(0.0));
    app.stop().await;
}

#[tokio::test]
async fn a_401_fetches_a_new_token_and_resends_within_the_same_attempt() {
    let (app, token) = spawn(&[]).await;
    let endpoint = TokenEndpoint::start().await;
    let receiver = Receiver::start(SECRET).await;
    let hook = hook_with_auth(&app, &token, &receiver.url(), endpoint.auth()).await;
    receiver.fail_next(1, 401);
    app.publisher.publish(&task_created(1)).await.unwrap();

    let received = receiver.wait_for(2, WAIT).await;
    assert_eq!(received[0].header("authorization"), "Bearer token-1");
    assert_eq!(received[1].header("authorization"), "Bearer token-2");
    assert_eq!(app.wait_for_settled(hook, WAIT).await, "succeeded");
    assert_eq!(endpoint.hits(), 2);
    assert_eq!(
        attempts(&app, hook).await,
        [(true, String::new())],
        "one attempt, successful"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_failing_token_endpoint_fails_the_attempt_with_its_own_error() {
    let (app, token) = spawn(&[]).await;
    let endpoint = TokenEndpoint::start().await;
    endpoint.state.broken.store(true, Ordering::SeqCst);
    let receiver = Receiver::start(SECRET).await;
    let hook = hook_with_auth(&app, &token, &receiver.url(), endpoint.auth()).await;
    app.publisher.publish(&task_created(1)).await.unwrap();

    let logged = eventually(WAIT, "a failed attempt", || async {
        attempts(&app, hook).await.into_iter().next()
    })
    .await;
    assert!(!logged.0);
    assert!(
        logged.1.starts_with("oauth2 token endpoint:") && logged.1.contains("500"),
        "{}",
        logged.1
    );
    assert!(!logged.1.contains("client-s3cret"));
    assert_eq!(receiver.count(), 0, "nothing sent without a token");
    let metrics = app.metrics_text().await;
    assert!(
        sample(&metrics, &token_requests("failed")).is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, &token_requests("fetched")), Some(0.0));
    app.stop().await;
}

#[tokio::test]
async fn reads_never_show_a_secret_and_bad_auth_is_refused_naming_the_field() {
    let (app, token) = spawn(&[]).await;
    let pki = Pki::generate();
    let receiver = Receiver::start(SECRET).await;
    let secrets = ["pa55word", "s3cr3t-t0ken", "client-s3cret", "PRIVATE KEY"];
    let auths = [
        json!({"type": "basic", "username": "alice", "password": secrets[0]}),
        json!({"type": "bearer", "token": secrets[1]}),
        json!({"type": "oauth2", "token_url": "https://auth.example.com/token",
               "client_id": "webhookd", "client_secret": secrets[2]}),
        json!({"type": "mtls", "client_cert_pem": pki.client_cert_pem,
               "client_key_pem": pki.client_key_pem}),
    ];
    let mut created = Vec::new();
    for auth in &auths {
        let mut body = webhook_body(&receiver.url(), json!(["task.created"]), SECRET);
        body["auth"] = auth.clone();
        let response = app
            .http
            .post(app.url("/api/v1/webhooks"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        created.push(response.text().await.unwrap());
    }
    let mut texts = created.clone();
    for path in [
        "/api/v1/webhooks".to_owned(),
        "/api/v1/webhooks/1".to_owned(),
    ] {
        let response = app
            .http
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        texts.push(response.text().await.unwrap());
    }
    for text in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    let listed: Value = serde_json::from_str(&texts[4]).unwrap();
    let shown: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|w| &w["auth"])
        .collect();
    assert_eq!(shown[0], &json!({"type": "basic", "username": "alice"}));
    assert_eq!(shown[1], &json!({"type": "bearer"}));
    assert_eq!(shown[2]["client_id"], "webhookd");
    assert_eq!(shown[3]["client_cert_pem"], pki.client_cert_pem.as_str());

    let refused = [
        (
            json!({"type": "mtls", "client_cert_pem": "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----",
                   "client_key_pem": pki.client_key_pem}),
            None,
            "auth.client_cert_pem",
        ),
        (
            json!({"type": "mtls", "client_cert_pem": pki.client_cert_pem,
                   "client_key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"}),
            None,
            "auth.client_key_pem",
        ),
        (
            json!({"type": "bearer", "token": "t"}),
            Some(json!({"Authorization": "Bearer other"})),
            "auth",
        ),
    ];
    for (auth, headers, field) in refused {
        let mut body = webhook_body(&receiver.url(), json!(["task.created"]), SECRET);
        body["auth"] = auth;
        if let Some(headers) = headers {
            body["headers"] = headers;
        }
        let (status, answer) = app
            .api(&token, Method::POST, "/api/v1/webhooks", body)
            .await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    // A custom Authorization header added later is refused too.
    let (status, answer) = app
        .api(
            &token,
            Method::PATCH,
            "/api/v1/webhooks/1",
            json!({"headers": {"Authorization": "Bearer other"}}),
        )
        .await;
    assert_eq!((status.as_u16(), &answer["field"]), (422, &json!("auth")));
    app.stop().await;

    // The token endpoint obeys the SSRF rules of webhook URLs (SPEC §9).
    let (app, token) = spawn(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "false")]).await;
    let mut body = webhook_body(
        "https://hooks.example.com/h",
        json!(["task.created"]),
        SECRET,
    );
    body["auth"] = json!({"type": "oauth2", "token_url": "http://169.254.169.254/token",
                          "client_id": "i", "client_secret": "s"});
    let (status, answer) = app
        .api(&token, Method::POST, "/api/v1/webhooks", body)
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["field"], "auth.token_url", "{answer}");
    app.stop().await;
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client
/// certificate, all generated here.
struct Pki {
    ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server_cert_der: rustls::pki_types::CertificateDer<'static>,
    server_key_der: Vec<u8>,
    client_cert_pem: String,
    client_key_pem: String,
}

impl Pki {
    fn generate() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "webhookd test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        client_params
            .distinguished_name
            .push(DnType::CommonName, "webhookd");
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

        Pki {
            ca_pem: ca.pem(),
            ca_der: ca.der().clone(),
            server_cert_der: server.der().clone(),
            server_key_der: server_key.serialize_der(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        }
    }
}

/// An HTTPS receiver on 127.0.0.1 that requires a client certificate
/// signed by the test CA; it records the request heads it answered.
struct TlsReceiver {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    refused_handshakes: Arc<AtomicUsize>,
}

impl TlsReceiver {
    async fn start(pki: &Pki) -> TlsReceiver {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server_key_der.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![pki.server_cert_der.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let refused_handshakes = Arc::new(AtomicUsize::new(0));
        let (seen, refused) = (heads.clone(), refused_handshakes.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen, refused) = (acceptor.clone(), seen.clone(), refused.clone());
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok(mut tls) => {
                            if let Some(head) = answer_one(&mut tls).await {
                                seen.lock().unwrap().push(head);
                            }
                        }
                        Err(_) => {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        TlsReceiver {
            port,
            heads,
            refused_handshakes,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/hook", self.port)
    }

    fn count(&self) -> usize {
        self.heads.lock().unwrap().len()
    }
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body) and answers
/// 200, closing the connection; the request head.
async fn answer_one<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
) -> Option<String> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .await
        .ok()?;
    let _ = stream.shutdown().await;
    Some(head)
}

#[tokio::test]
async fn mtls_delivers_only_with_the_client_certificate_to_a_receiver_trusted_through_the_extra_ca()
{
    let pki = Pki::generate();
    let dir = std::env::temp_dir().join(format!("webhookd-mtls-{}", uuid::Uuid::new_v4()));
    std::fs::write(&dir, &pki.ca_pem).unwrap();
    let ca_file = dir.to_string_lossy().to_string();
    let (app, token) = spawn(&[("WEBHOOKD__DELIVERY__EXTRA_CA_FILE", ca_file.as_str())]).await;
    let receiver = TlsReceiver::start(&pki).await;
    let with_cert = hook_with_auth(
        &app,
        &token,
        &receiver.url(),
        json!({"type": "mtls", "client_cert_pem": pki.client_cert_pem,
               "client_key_pem": pki.client_key_pem}),
    )
    .await;
    let without = hook_with_auth(&app, &token, &receiver.url(), Value::Null).await;
    app.publisher.publish(&task_created(1)).await.unwrap();

    let logged = eventually(WAIT, "both webhooks' first attempts", || async {
        let with = attempts(&app, with_cert).await.into_iter().next()?;
        let without = attempts(&app, without).await.into_iter().next()?;
        Some((with, without))
    })
    .await;
    assert_eq!(logged.0, (true, String::new()), "with the certificate");
    assert!(!logged.1 .0, "without a certificate: {}", logged.1 .1);
    assert_eq!(
        receiver.count(),
        1,
        "only the delivery with the certificate"
    );
    let head = receiver.heads.lock().unwrap()[0].to_lowercase();
    assert!(head.starts_with("post /hook") && head.contains("webhook-signature:"));
    assert!(receiver.refused_handshakes.load(Ordering::SeqCst) >= 1);
    app.stop().await;
    let _ = std::fs::remove_file(&dir);
}

#[tokio::test]
async fn an_unreadable_extra_ca_file_stops_the_daemon_at_start_naming_the_key() {
    let error = webhookd::Settings::load_from_pairs(
        None,
        vec![(
            "WEBHOOKD__DELIVERY__EXTRA_CA_FILE".to_owned(),
            "/nonexistent/ca.pem".to_owned(),
        )],
    )
    .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("delivery.extra_ca_file") && text.contains("/nonexistent/ca.pem"),
        "{text}"
    );
}

type LogBuffer = Arc<Mutex<Vec<u8>>>;

/// Every log line of this test binary's daemons, at TRACE.
fn capture_logs() -> LogBuffer {
    static BUFFER: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let sink = buffer.clone();
            tracing_subscriber::fmt()
                .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
                .with_ansi(false)
                .with_writer(move || LogWriter(sink.clone()))
                .try_init()
                .expect("no other global subscriber in this test binary");
            buffer
        })
        .clone()
}

struct LogWriter(LogBuffer);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn credentials_never_reach_the_logs_even_when_deliveries_and_token_requests_fail() {
    let logs = capture_logs();
    let (app, token) = spawn(&[("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2")]).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.always(401);
    let endpoint = TokenEndpoint::start().await;
    let pki = Pki::generate();
    let password = "log-pa55word-91";
    let bearer = "log-t0ken-91";
    let key_line = pki
        .client_key_pem
        .lines()
        .nth(1)
        .expect("a base64 line")
        .to_owned();
    let hooks = [
        json!({"type": "basic", "username": "alice", "password": password}),
        json!({"type": "bearer", "token": bearer}),
        endpoint.auth(),
        json!({"type": "mtls", "client_cert_pem": pki.client_cert_pem,
               "client_key_pem": pki.client_key_pem}),
    ];
    let mut ids = Vec::new();
    for auth in hooks {
        ids.push(hook_with_auth(&app, &token, &receiver.url(), auth).await);
    }
    // A change keeping the password, and a refused one.
    let path = format!("/api/v1/webhooks/{}", ids[0]);
    let (status, _) = app
        .api(
            &token,
            Method::PATCH,
            &path,
            json!({"auth": {"type": "basic", "username": "bob"}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = app
        .api(
            &token,
            Method::PATCH,
            &path,
            json!({"auth": {"type": "basic", "username": "a:b", "password": password}}),
        )
        .await;
    assert_eq!(status, 422);
    assert!(!answer.to_string().contains(password));

    app.publisher.publish(&task_created(1)).await.unwrap();
    for id in &ids {
        eventually(WAIT, "the webhook's attempts", || async {
            (attempts(&app, *id).await.len() >= 2).then_some(())
        })
        .await;
    }
    app.stop().await;

    let text =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(text.contains("webhook created"), "the logs were captured");
    let basic = "Ym9iOmxvZy1wYTU1d29yZC05MQ=="; // base64 of bob:log-pa55word-91
    for secret in [
        password,
        bearer,
        "client-s3cret",
        &key_line,
        basic,
        "token-1",
    ] {
        assert!(!text.contains(secret), "{secret} reached the logs");
    }
}

#[tokio::test]
async fn graphql_sets_auth_and_reads_it_back_without_the_secret() {
    let (app, token) = spawn(&[]).await;
    let receiver = Receiver::start(SECRET).await;
    let base = format!("http://{}", app.addr);
    let created = webhookd_e2e::graphql::graphql(
        &app.http,
        &base,
        Some(&token),
        "mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { id auth } }",
        json!({"input": {"name": "gql", "url": receiver.url(), "events": ["task.created"],
                         "secret": SECRET,
                         "auth": {"type": "bearer", "token": "gql-t0ken-55"}}}),
    )
    .await;
    let created = webhookd_e2e::graphql::data(&created)["createWebhook"].clone();
    assert_eq!(created["auth"], json!({"type": "bearer"}));
    assert!(!created.to_string().contains("gql-t0ken-55"));
    let refused = webhookd_e2e::graphql::graphql(
        &app.http,
        &base,
        Some(&token),
        "mutation($id: ID!) { updateWebhook(id: $id, input: {auth: {type: \"basic\"}}) { id } }",
        json!({"id": created["id"]}),
    )
    .await;
    assert!(
        refused.to_string().contains("auth.username"),
        "the field is named: {refused}"
    );

    app.publisher.publish(&task_created(1)).await.unwrap();
    let received = receiver.wait_for(1, WAIT).await;
    assert_eq!(received[0].header("authorization"), "Bearer gql-t0ken-55");
    app.stop().await;
}
