//! Safety end to end [SPEC §9, issue #3 "Bad input"]: SSRF refusals at
//! creation and at delivery time, hostile broker messages, hostile API input,
//! and secrets kept out of logs, metrics and responses.
//!
//! Every connection these tests make or provoke stays on 127.0.0.0/8 or ::1;
//! the private, link-local and metadata ranges are only ever given to the
//! API's validation (which refuses them without connecting) and to the unit
//! tests of `target_policy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::filter::LevelFilter;
use uuid::Uuid;
use webhookd::{App, Role, Settings};
use webhookd_e2e::broker::AMQP_URL;
use webhookd_e2e::db::TestDb;
use webhookd_e2e::process::Deployment;
use webhookd_e2e::{eventually, Receiver, Subscribed, TestApp};
use webhookd_producer::{EventMessage, REJECT_REASON_HEADER};
use webhookd_store::users;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);
const NO_PRIVATE_TARGETS: (&str, &str) = ("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "false");
const ONE_ATTEMPT: (&str, &str) = ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "1");

/// A TCP listener on 127.0.0.1 that answers nothing and counts the
/// connections made to it: a refused target must not even be connected to.
struct Tripwire {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Tripwire {
    async fn start() -> Tripwire {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        Tripwire { addr, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A loopback port with nothing listening on it (bound, then released).
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

async fn post_webhook(app: &TestApp, token: &str, body: &Value) -> (StatusCode, Value) {
    let response = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn patch_webhook(app: &TestApp, token: &str, id: i64, body: &Value) -> (StatusCode, Value) {
    let response = app
        .http
        .patch(app.url(&format!("/api/v1/webhooks/{id}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[track_caller]
fn assert_refused(reply: &(StatusCode, Value), field: &str, context: &str) {
    assert_eq!(
        reply.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{context}: {}",
        reply.1
    );
    assert_eq!(reply.1["field"], field, "{context}: {}", reply.1);
    assert!(reply.1["error"].is_string(), "{context}: {}", reply.1);
}

/// Waits until `n` deliveries of the database behind `pool` are no longer pending.
async fn wait_until_settled(pool: &sqlx::PgPool, n: i64) {
    eventually(WAIT, "the deliveries to settle", || async {
        let settled: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE status <> 'pending'")
                .fetch_one(pool)
                .await
                .unwrap();
        (settled >= n).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// SSRF
// ---------------------------------------------------------------------------

#[tokio::test]
async fn private_ip_literal_targets_in_every_spelling_are_refused_on_create_and_update() {
    let app = TestApp::spawn_with(&[NO_PRIVATE_TARGETS]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    // Refused by validation: nothing ever connects to these addresses.
    for url in [
        "http://127.0.0.1/hook",
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0177.0.0.1/hook",
        "http://127.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::ffff:7f00:1]/hook",
        "http://0.0.0.0/hook",
        "http://0/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://10.0.0.1/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
    ] {
        let body = json!({"name": "h", "url": url, "events": ["*"]});
        assert_refused(&post_webhook(&app, &token, &body).await, "url", url);
    }

    // A public target is accepted, and cannot be moved onto a private one later.
    let created = app
        .create_webhook(
            &token,
            json!({"name": "h", "url": "https://hooks.example.com/x", "events": ["*"]}),
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    for url in ["http://127.0.0.1:9/hook", "http://[::ffff:a9fe:a9fe]/"] {
        let reply = patch_webhook(&app, &token, id, &json!({ "url": url })).await;
        assert_refused(&reply, "url", url);
    }
    let stored: String = sqlx::query_scalar("SELECT url FROM webhooks WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, "https://hooks.example.com/x");
    app.stop().await;
}

#[tokio::test]
async fn a_host_name_resolving_to_loopback_is_refused_at_delivery_and_never_contacted() {
    let app = TestApp::spawn_with(&[NO_PRIVATE_TARGETS, ONE_ATTEMPT]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let receiver = Receiver::start(SECRET).await;
    // A name is accepted at creation: what it resolves to can change, so it
    // is checked on the address actually connected to.
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    let hook = app
        .create_webhook_to(&token, &url, json!(["comment.added"]), SECRET)
        .await;

    let event = EventMessage::new("comment.added", json!({"text": "hi"}), 1).unwrap();
    app.publisher.publish(&event).await.unwrap();
    wait_until_settled(&app.db.pool, 1).await;

    let row = sqlx::query(
        "SELECT l.is_success, l.status_code, l.error_message, d.status, d.last_error
         FROM webhook_logs l JOIN deliveries d ON d.id = l.delivery_id
         WHERE l.webhook_id = $1",
    )
    .bind(hook)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(!row.get::<bool, _>("is_success"));
    assert_eq!(row.get::<Option<i32>, _>("status_code"), None);
    assert_eq!(row.get::<String, _>("status"), "failed");
    let error: String = row.get("error_message");
    assert!(error.contains("refused target localhost"), "{error}");
    // Neither the address nor its range: a refusal must not tell what an
    // internal name resolves to (SPEC §15).
    assert!(error.contains("resolves to a private address"), "{error}");
    for leak in ["127.0.0.1", "::1", "loopback"] {
        assert!(!error.contains(leak), "{error}");
    }
    assert!(error.contains("allow_private_targets"), "{error}");
    assert_eq!(row.get::<Option<String>, _>("last_error"), Some(error));
    assert_eq!(receiver.count(), 0, "the daemon never reached the receiver");

    // The control: the same URL does reach the receiver when not guarded.
    let direct = reqwest::Client::new().post(&url).body("{}").send().await;
    assert_eq!(direct.unwrap().status(), 200);
    assert_eq!(receiver.count(), 1);
    app.stop().await;
}

/// A worker whose environment names a proxy (HTTP_PROXY and the rest)
/// neither sends deliveries through it nor lets it resolve names around the
/// SSRF guard: the client is built with `no_proxy()`.
#[tokio::test]
async fn proxy_variables_in_the_environment_are_never_used_for_deliveries() {
    let proxy = Tripwire::start().await;
    let proxy_url = format!("http://{}", proxy.addr);
    let mut proxied: Vec<(&str, &str)> = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .into_iter()
    .map(|name| (name, proxy_url.as_str()))
    .collect();
    proxied.extend([("NO_PROXY", ""), ("no_proxy", ""), ONE_ATTEMPT]);
    let receiver = Receiver::start(SECRET).await;

    // Private targets allowed: the delivery goes straight to the receiver.
    let direct = Deployment::new().await;
    direct.subscribe(&receiver.url(), SECRET).await;
    let worker = direct.worker(&proxied).await;
    direct.publish(3).await;
    let got = receiver.wait_for(3, WAIT).await;
    assert!(got.iter().all(|r| r.seed_signature_valid));
    worker.terminate().await;
    direct.cleanup().await;

    // Guarded: a name resolving to loopback is refused, not handed to the
    // proxy to resolve.
    let guarded = Deployment::new().await;
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    guarded.subscribe(&url, SECRET).await;
    let mut env = proxied.clone();
    env.push(NO_PRIVATE_TARGETS);
    let worker = guarded.worker(&env).await;
    guarded.publish(1).await;
    wait_until_settled(&guarded.db.pool, 1).await;
    let error: String = sqlx::query_scalar("SELECT error_message FROM webhook_logs")
        .fetch_one(&guarded.db.pool)
        .await
        .unwrap();
    assert!(error.contains("refused target localhost"), "{error}");
    worker.terminate().await;
    guarded.cleanup().await;

    assert_eq!(proxy.hits(), 0, "nothing went through the proxy");
    assert_eq!(receiver.count(), 3, "only the allowed deliveries arrived");
    // The control: the tripwire does count a client that uses it as a proxy.
    let through_proxy = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(&proxy_url).unwrap())
        .build()
        .unwrap();
    assert!(through_proxy.post(receiver.url()).send().await.is_err());
    assert_eq!(proxy.hits(), 1);
}

#[tokio::test]
async fn loopback_literals_stored_behind_the_apis_back_are_refused_at_delivery() {
    let app = TestApp::spawn_with(&[NO_PRIVATE_TARGETS, ONE_ATTEMPT]).await;
    let (user, _) = app.create_user("Alice", None, false).await;
    let tripwire = Tripwire::start().await;
    let port = tripwire.addr.port();
    // Every spelling of 127.0.0.1 the URL parser normalises, plus ::1 (where
    // nothing listens: the message must still say "refused", not "connection
    // refused").
    let reaching_the_tripwire = [
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f000001:{port}/hook"),
        format!("http://0177.0.0.1:{port}/hook"),
        format!("http://127.1:{port}/hook"),
    ];
    let urls: Vec<String> = reaching_the_tripwire
        .iter()
        .cloned()
        .chain([format!("http://[::1]:{port}/hook")])
        .collect();
    for url in &urls {
        // As an operator's hand edit or an old row might: the API would refuse it.
        sqlx::query(
            "INSERT INTO webhooks (user_id, name, url, events, secret)
             VALUES ($1, 'raw', $2, ARRAY['comment.added'], $3)",
        )
        .bind(user)
        .bind(url)
        .bind(SECRET)
        .execute(&app.db.pool)
        .await
        .unwrap();
    }

    let event = EventMessage::new("comment.added", json!({"text": "hi"}), 1).unwrap();
    app.publisher.publish(&event).await.unwrap();
    wait_until_settled(&app.db.pool, urls.len() as i64).await;

    let rows: Vec<(String, bool, Option<String>)> = sqlx::query_as(
        "SELECT w.url, l.is_success, l.error_message
         FROM webhook_logs l JOIN webhooks w ON w.id = l.webhook_id ORDER BY w.id",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), urls.len(), "one attempt per webhook: {rows:?}");
    for (url, success, error) in &rows {
        let error = error.as_deref().unwrap_or_default();
        assert!(!success, "{url}");
        assert!(error.starts_with("refused target "), "{url}: {error}");
        assert!(error.contains("allow_private_targets"), "{url}: {error}");
    }
    let statuses: Vec<String> = sqlx::query_scalar("SELECT status FROM deliveries")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert!(statuses.iter().all(|s| s == "failed"), "{statuses:?}");
    assert_eq!(tripwire.hits(), 0, "no connection was made");

    // The control: each URL does lead to the tripwire when not guarded.
    let direct = reqwest::Client::new();
    for url in &reaching_the_tripwire {
        let before = tripwire.hits();
        let _ = direct.post(url).send().await;
        eventually(WAIT, "the tripwire to count", || async {
            (tripwire.hits() > before).then_some(())
        })
        .await;
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------
// Broker input
// ---------------------------------------------------------------------------

/// Messages ready in `queue` (unacked ones are not counted).
async fn ready_messages(channel: &lapin::Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default().passive(),
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}

#[tokio::test]
async fn a_10_mb_message_is_dead_lettered_once_as_too_large_and_never_requeued() {
    // The default limit, 1 MiB.
    let Subscribed { app, receiver, .. } =
        TestApp::spawn_with_webhook(&[], json!(["*"]), SECRET).await;

    // Well-formed in every way but its size.
    let huge = format!(
        r#"{{"event":"task.created","data":{{"blob":"{}"}}}}"#,
        "a".repeat(10 * 1024 * 1024)
    );
    app.publish_raw("task.created", huge.as_bytes()).await;
    // Grammatical JSON that strict parsers (and so templates) refuse.
    let lone_surrogate = br#"{"event":"task.created","data":{"title":"\ud800"}}"#;
    app.publish_raw("task.created", lone_surrogate).await;
    let good = EventMessage::new("task.created", json!({"task_id": 1}), 1).unwrap();
    app.publisher.publish(&good).await.unwrap();

    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["id"], good.id.to_string());
    let rejected = r#"webhookd_events_rejected_total{reason="too_large"}"#;
    assert_eq!(app.metric(rejected).await, 1.0);
    // Had it gone back to the queue, it would come round again and be counted again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.metric(rejected).await, 1.0, "rejected exactly once");
    assert_eq!(
        app.metric(r#"webhookd_events_rejected_total{reason="invalid_json"}"#)
            .await,
        1.0
    );
    assert_eq!(
        app.metric(r#"webhookd_events_consumed_total{event="task.created"}"#)
            .await,
        1.0
    );
    assert_eq!(receiver.count(), 1);

    let conn = lapin::Connection::connect(AMQP_URL, Default::default())
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    assert_eq!(ready_messages(&channel, &app.topology.queue).await, 0);
    let dlq = app.topology.dead_letter_queue();
    assert_eq!(ready_messages(&channel, &dlq).await, 2);
    // Consumers dead-letter in parallel: the two rejected messages may be in
    // either order.
    let mut rejected_messages = Vec::new();
    for _ in 0..2 {
        let message = channel
            .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("the rejected messages wait in the dead-letter queue");
        rejected_messages.push(message);
    }
    let message = rejected_messages
        .into_iter()
        .find(|m| m.delivery.data.len() == huge.len())
        .expect("the 10 MB message is in the dead-letter queue");
    assert!(
        message.delivery.data == huge.as_bytes(),
        "kept whole, for replay"
    );
    let headers = message
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let reason = match headers.inner().get(REJECT_REASON_HEADER) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("no reject reason header: {other:?}"),
    };
    assert_eq!(
        reason,
        format!(
            "message body is {} bytes, over the limit of 1048576 bytes",
            huge.len()
        )
    );
    let _ = conn.close(200, "done".into()).await;
    app.stop().await;
}

#[tokio::test]
async fn an_event_with_nul_characters_and_unusual_unicode_is_delivered_and_logged_byte_for_byte() {
    let Subscribed {
        app,
        receiver,
        webhook: hook,
        ..
    } = TestApp::spawn_with_webhook(&[], json!(["comment.added"]), SECRET).await;

    // `\u0000` (which Postgres jsonb refuses), escaped and literal astral
    // characters, ZWJ sequences, bidi overrides, combining marks, line and
    // paragraph separators, numbers no f64 holds, odd spacing and key order,
    // and nesting: all valid JSON, all forwarded exactly as published.
    let data = concat!(
        r#"{ "text" : "nul \u0000 inside, and \\u0000 as text","#,
        r#""escaped":"\ud83d\ude00 \u00e9\u2028\u2029\u0001\u001f","#,
        "\"literal\":\"🎉 👩‍👩‍👧‍👦 🏳️‍🌈 Новая задача «срочно» עברית \u{202e}txt 漢字かな Z̤͔ͧ̑̓ä͖̭̈̇\",\n",
        r#"  "numbers":[1e308,-0,0.1,12345678901234567890123,1E-7],"#,
        r#""z":{"b":1,"a":2},"deep":{"a":{"b":{"c":[[[[{"d":"ü\"}{{data.text}}"}]]]]}}},"#,
        r#""empty":{}, "nothing":null }"#,
    );
    let id = Uuid::new_v4();
    let message = format!(
        "{{ \"data\" : {data},\n \"event\":\"comment.added\", \"timestamp\": 1708435200, \"id\": \"{id}\" }}"
    );
    app.publish_raw("comment.added", message.as_bytes()).await;

    let expected =
        format!(r#"{{"id":"{id}","event":"comment.added","timestamp":1708435200,"data":{data}}}"#);
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        std::str::from_utf8(&got[0].body).unwrap(),
        expected,
        "delivered byte for byte"
    );
    assert!(got[0].seed_signature_valid && got[0].standard_signature_valid);
    let body = got[0].json();
    assert_eq!(
        body["data"]["text"],
        "nul \u{0} inside, and \\u0000 as text"
    );
    assert_eq!(body["data"]["escaped"], "😀 é\u{2028}\u{2029}\u{1}\u{1f}");

    let payload: String = eventually(WAIT, "the attempt to be logged", || async {
        sqlx::query_scalar("SELECT payload FROM webhook_logs WHERE webhook_id = $1")
            .bind(hook)
            .fetch_optional(&app.db.pool)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(payload, expected);
    let stored: String = sqlx::query_scalar("SELECT body FROM events WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(stored, expected);
    app.stop().await;
}

// ---------------------------------------------------------------------------
// API input (what tests/tests/api.rs does not already cover)
// ---------------------------------------------------------------------------

#[tokio::test]
async fn hostile_urls_events_headers_templates_and_secrets_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let base = json!({"name": "h", "url": "https://example.com/hook", "events": ["task.created"]});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let cases: Vec<(&str, Value)> = vec![
        ("url", json!("javascript:alert(1)")),
        ("url", json!("data:text/html,<script>alert(1)</script>")),
        ("url", json!("file:///etc/passwd")),
        ("url", json!("gopher://example.com/")),
        ("url", json!("ws://example.com/socket")),
        ("url", json!("//example.com/hook")),
        ("url", json!("https://")),
        ("url", json!("https://exa\u{0}mple.com/")),
        ("url", json!("https://example.com/\u{7}")),
        ("url", json!("https://exa mple.com/")),
        ("url", json!("https://[::1")),
        ("url", json!("")),
        ("url", json!(null)),
        ("url", json!(["https://example.com/"])),
        ("events", json!(["task.créé"])),
        ("events", json!(["задача.создана"])),
        ("events", json!([""])),
        ("events", json!(["task.created\u{0}"])),
        ("events", json!(["task.**"])),
        ("name", json!("nul \u{0} inside")),
        ("name", json!("🚀".repeat(201))),
        ("headers", json!({"Заголовок": "x"})),
        ("headers", json!({"X-Nul": "a\u{0}b"})),
        ("headers", json!({"X-Big": "v".repeat(4097)})),
        (
            "template",
            json!(format!(r#"{{"t": "{}"}}"#, "x".repeat(64 * 1024))),
        ),
        (
            "template",
            json!(format!("{}{}", "[".repeat(500), "]".repeat(500))),
        ),
        ("template", json!(r#"{"t": "{{data.title}"}"#)),
        ("template", json!(r#"{"t": "{{ data.🎉 }}"}"#)),
        ("secret", json!("секрет-секрет-секрет")),
        ("secret", json!("nul-\u{0}-in-a-long-secret")),
    ];
    for (field, value) in cases {
        let reply = post_webhook(&app, &token, &with(field, value.clone())).await;
        let shown: String = value.to_string().chars().take(80).collect();
        assert_refused(&reply, field, &format!("{field} = {shown}"));
    }

    // JSON with a lone surrogate cannot even be decoded: 400, not a crash.
    let response = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(r#"{"name": "\ud800", "url": "https://example.com/", "events": ["*"]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let listed: Value = app
        .http
        .get(app.url("/api/v1/webhooks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "nothing was created");
    app.stop().await;
}

#[tokio::test]
async fn a_header_value_that_is_not_ascii_is_refused_naming_headers() {
    // `HeaderValue::from_str` accepts bytes 0x80-0xFF (obs-text), so UTF-8
    // passes the check whose message promises "visible ASCII", and is sent
    // as raw bytes that many receivers reject.
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let body = json!({"name": "h", "url": "https://example.com/hook", "events": ["*"],
                      "headers": {"X-Emoji": "🎉"}});
    assert_refused(&post_webhook(&app, &token, &body).await, "headers", "emoji");
    app.stop().await;
}

#[tokio::test]
async fn unicode_in_names_urls_and_templates_is_accepted_and_round_tripped() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Алиса 🦊", None, false).await;
    let longest_url = format!("https://example.com/{}", "a".repeat(2048 - 20));
    assert_eq!(longest_url.len(), 2048);
    let bodies = [
        json!({
            "name": "Уведомления 🚀 — 漢字 עברית Z̤͔ͧ̑̓ä͖̭̈̇ 👩‍👩‍👧‍👦",
            "url": "https://пример.рф/хук?тема=задачи#якорь",
            "events": ["task.*"],
            "headers": {"X-Team": "sales"},
            "template": r#"{"текст": "Новая: {{data.title}} 🎉", "список": ["{{ event }}", "ü"]}"#,
        }),
        json!({"name": "🚀".repeat(200), "url": longest_url, "events": ["*"]}),
    ];
    for body in bodies {
        let created = app.create_webhook(&token, body.clone()).await;
        let id = created["id"].as_i64().unwrap();
        let shown: Value = app
            .http
            .get(app.url(&format!("/api/v1/webhooks/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for (field, value) in body.as_object().unwrap() {
            assert_eq!(&created[field], value, "created {field}");
            assert_eq!(&shown[field], value, "shown {field}");
        }
    }

    let id = app
        .create_webhook(
            &token,
            json!({"name": "plain", "url": "https://example.com/", "events": ["*"]}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let renamed = patch_webhook(&app, &token, id, &json!({"name": "  Сделки ✅  "})).await;
    assert_eq!(renamed.0, StatusCode::OK, "{}", renamed.1);
    assert_eq!(renamed.1["name"], "Сделки ✅");
    app.stop().await;
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

type LogBuffer = Arc<Mutex<Vec<u8>>>;

/// Everything any test of this binary logs from now on, at every level, in the
/// daemon's text format. One global subscriber per process: only one test
/// may depend on it.
fn capture_logs() -> LogBuffer {
    static BUFFER: OnceLock<LogBuffer> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let sink = buffer.clone();
            tracing_subscriber::fmt()
                .with_max_level(LevelFilter::TRACE)
                .with_ansi(false)
                .with_writer(move || LogWriter(sink.clone()))
                .try_init()
                .expect("no other global subscriber in this test binary");
            buffer
        })
        .clone()
}

struct LogWriter(LogBuffer);

impl Write for LogWriter {
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

fn logged(buffer: &LogBuffer) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

const DB_PASSWORD: &str = "hunter2-db-secret";
const AMQP_PASSWORD: &str = "hunter2-amqp-secret";

/// The test database's URL with a password in it; the server's trust
/// authentication ignores it.
fn with_password(url: &str, password: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    url.set_password(Some(password)).unwrap();
    url.to_string()
}

#[tokio::test]
async fn secrets_tokens_and_passwords_never_reach_logs_metrics_or_responses() {
    let logs = capture_logs();
    // The daemon runs on `db`, reached through a URL carrying a password.
    // (TestApp's own database stays empty.)
    let db = TestDb::create().await;
    let db_url = with_password(&db.url, DB_PASSWORD);
    let app = TestApp::spawn_with(&[
        ("WEBHOOKD__DATABASE__URL", &db_url),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2"),
    ])
    .await;
    let (user, token) = users::create_user(&db.pool, "Alice", None, false)
        .await
        .unwrap();
    let api = |path: &str| app.url(&format!("/api/v1{path}"));

    // 1. Create with a generated secret, then rotate it to one of our own.
    let receiver = Receiver::start("rotated-secret-0123456789abcdef").await;
    receiver.always(500);
    let created = app
        .create_webhook(
            &token,
            json!({"name": "h", "url": receiver.url(), "events": ["deal.won"],
                   "headers": {"Authorization": "Bearer header-secret-4f9a"}}),
        )
        .await;
    let generated = created["secret"].as_str().unwrap().to_owned();
    assert!(generated.starts_with("whsec_"));
    let id = created["id"].as_i64().unwrap();
    let rotated = "rotated-secret-0123456789abcdef";
    let patched = patch_webhook(&app, &token, id, &json!({ "secret": rotated })).await;
    assert_eq!(patched.0, StatusCode::OK);
    assert!(patched.1.get("secret").is_none(), "{}", patched.1);
    // A refused secret is not echoed back in the error either.
    let refused = "not a valid secret because of spaces";
    let reply = patch_webhook(&app, &token, id, &json!({ "secret": refused })).await;
    assert_refused(&reply, "secret", "spaces");
    assert!(!reply.1.to_string().contains(refused), "{}", reply.1);

    // 2. A second webhook whose URL carries a credential in its query, on a
    // port where nothing listens: its connection error must not repeat it.
    let query_secret = "query-secret-77c1";
    let second = app
        .create_webhook(
            &token,
            json!({"name": "q", "events": ["deal.won"],
                   "url": format!("http://127.0.0.1:{}/hook?api_key={query_secret}", closed_port().await)}),
        )
        .await;

    // 3. Failing deliveries: 500 from the receiver, connection refused.
    let event = EventMessage::new("deal.won", json!({"deal_id": 1}), 1).unwrap();
    app.publisher.publish(&event).await.unwrap();
    wait_until_settled(&db.pool, 2).await;
    let got = receiver.received();
    assert_eq!(got.len(), 2, "both attempts reached the receiver");
    assert!(got.iter().all(|r| r.seed_signature_valid));
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT error_message FROM webhook_logs WHERE webhook_id = $1")
            .bind(second["id"].as_i64().unwrap())
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(errors.len(), 2);
    assert!(
        errors.iter().all(|e| e.starts_with("connection failed")),
        "{errors:?}"
    );

    // 4. Reading webhooks back never shows a secret.
    let unknown_token = users::generate_token();
    let shown = app
        .http
        .get(api(&format!("/webhooks/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let listed = app
        .http
        .get(api("/webhooks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let denied = app
        .http
        .get(api("/me"))
        .bearer_auth(&unknown_token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let denied = denied.text().await.unwrap();
    for text in [&shown, &listed] {
        assert!(
            text.contains("header-secret-4f9a"),
            "headers are shown to their owner"
        );
        for secret in [generated.as_str(), rotated] {
            assert!(!text.contains(secret), "a secret in a response: {text}");
        }
    }
    assert!(!denied.contains(&unknown_token), "{denied}");

    // 5. API tokens are stored as their SHA-256, never as themselves.
    let hashes: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE user_id = $1")
            .bind(user.id)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(hashes.len(), 1);
    assert_eq!(hashes[0].len(), 32);
    assert_ne!(hashes[0], token.as_bytes());
    assert_eq!(hashes[0], users::hash_token(&token));
    assert!(!hashes[0].windows(4).any(|w| w == b"whk_"));

    // 6. A daemon whose broker password is wrong and whose database is
    // missing: the failures are logged, the passwords are not.
    let mut broken_db = reqwest::Url::parse(&db_url).unwrap();
    broken_db.set_path("webhookd_test_no_such_database");
    let broken_amqp = format!("amqp://guest:{AMQP_PASSWORD}@127.0.0.1:5672/%2f");
    let pairs = [
        ("WEBHOOKD__DATABASE__URL", broken_db.as_str()),
        ("WEBHOOKD__BROKER__URL", &broken_amqp),
        ("WEBHOOKD__BROKER__EXCHANGE", "test.unused.security"),
        ("WEBHOOKD__BROKER__QUEUE", "test.unused.security"),
        ("WEBHOOKD__HTTP__LISTEN", "127.0.0.1:0"),
        ("WEBHOOKD__SCHEDULER__POLL_INTERVAL_MS", "50"),
    ];
    let settings = Settings::load_from_pairs(
        None,
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .unwrap();
    let broken = App::build(settings, Role::All).await.unwrap();
    let broken_addr = broken.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let running = tokio::spawn(broken.run_until_stopped(cancel.clone()));
    eventually(WAIT, "both failures to be logged", || async {
        let text = logged(&logs);
        (text.contains("broker session ended; reconnecting")
            && text.contains("claiming due deliveries failed"))
        .then_some(())
    })
    .await;
    let broken_metrics = app
        .http
        .get(format!("http://{broken_addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    cancel.cancel();
    running.await.unwrap().unwrap();

    // 7. None of it in the logs or the metrics.
    let metrics = app.metrics_text().await;
    let text = logged(&logs);
    for expected in [
        "webhook created",
        "webhook updated",
        "attempt failed; retry scheduled",
        "delivery failed for good",
        "ACCESS_REFUSED",
        "webhookd_test_no_such_database",
    ] {
        assert!(text.contains(expected), "the capture works: {expected}");
    }
    let mut never = vec![
        generated.clone(),
        rotated.to_owned(),
        refused.to_owned(),
        token.clone(),
        unknown_token,
        DB_PASSWORD.to_owned(),
        AMQP_PASSWORD.to_owned(),
        "guest:guest@".to_owned(),
        query_secret.to_owned(),
        "header-secret-4f9a".to_owned(),
    ];
    for request in &got {
        never.push(request.header("x-webhook-signature").to_owned());
        never.push(request.header("webhook-signature").to_owned());
    }
    for secret in &never {
        assert!(!secret.is_empty());
        assert!(!text.contains(secret.as_str()), "`{secret}` was logged");
        for exposed in [&metrics, &broken_metrics] {
            assert!(!exposed.contains(secret.as_str()), "`{secret}` in metrics");
        }
    }
    // A receiver's host is a (capped) label; its URL, path and query never are.
    for exposed in [&metrics, &broken_metrics] {
        assert!(!exposed.contains("http://"), "no URL as a label");
        assert!(!exposed.contains("/hook"), "no URL path as a label");
    }
    app.stop().await;
    db.drop_database().await;
}
