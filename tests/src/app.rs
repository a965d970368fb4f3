//! `TestApp`: the real daemon, in-process, on its own database and its own
//! uniquely named exchange and queues, with an HTTP port chosen by the OS.

use std::net::SocketAddr;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhookd::app::AppError;
use webhookd::{App, Role, Settings};
use webhookd_producer::{Publisher, Topology};

use crate::broker::AMQP_URL;
use crate::db::TestDb;
use crate::poll::eventually;
use crate::process::{delete_topology, sample};
use crate::receiver::Receiver;

pub struct TestApp {
    pub db: TestDb,
    pub addr: SocketAddr,
    pub topology: Topology,
    pub publisher: Publisher,
    pub http: reqwest::Client,
    cancel: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
}

/// Settings every test daemon gets: loopback receivers allowed, fast polling,
/// short backoffs. `overrides` are `WEBHOOKD__...` pairs layered on top.
fn test_settings(db: &TestDb, topology: &Topology, overrides: &[(&str, &str)]) -> Settings {
    let mut pairs: Vec<(String, String)> = vec![
        ("WEBHOOKD__DATABASE__URL".into(), db.url.clone()),
        (
            "WEBHOOKD__BROKER__EXCHANGE".into(),
            topology.exchange.clone(),
        ),
        ("WEBHOOKD__BROKER__QUEUE".into(), topology.queue.clone()),
        ("WEBHOOKD__HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        (
            "WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS".into(),
            "true".into(),
        ),
        (
            "WEBHOOKD__DELIVERY__INITIAL_BACKOFF_MS".into(),
            "100".into(),
        ),
        ("WEBHOOKD__DELIVERY__MAX_BACKOFF_MS".into(), "2000".into()),
        ("WEBHOOKD__DELIVERY__TIMEOUT_MS".into(), "5000".into()),
        ("WEBHOOKD__SCHEDULER__POLL_INTERVAL_MS".into(), "100".into()),
        ("WEBHOOKD__SHUTDOWN__GRACE_PERIOD_MS".into(), "5000".into()),
    ];
    pairs.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Settings::load_from_pairs(None, pairs).expect("test settings are valid")
}

/// The body of a webhook named "hook" delivering `events` to `url`, signed
/// with `secret`.
pub fn webhook_body(url: &str, events: Value, secret: &str) -> Value {
    json!({"name": "hook", "url": url, "events": events, "secret": secret})
}

/// What most delivery tests start from: a daemon, a user (Alice) with her
/// token, a receiver and one webhook of hers delivering to it.
pub struct Subscribed {
    pub app: TestApp,
    pub token: String,
    pub receiver: Receiver,
    pub webhook: i64,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(overrides: &[(&str, &str)]) -> TestApp {
        let db = TestDb::create().await;
        let suffix = Uuid::new_v4().simple().to_string();
        let topology = Topology::new(
            format!("test.events.{suffix}"),
            format!("test.webhookd.{suffix}"),
        );
        let settings = test_settings(&db, &topology, overrides);
        let app = App::build(settings, Role::All)
            .await
            .expect("the app builds");
        let addr = app.local_addr().expect("a bound address");
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(cancel.clone()));
        let publisher = Publisher::connect(AMQP_URL, topology.clone())
            .await
            .expect("the publisher connects");
        let test_app = TestApp {
            db,
            addr,
            topology,
            publisher,
            http: reqwest::Client::new(),
            cancel,
            handle,
        };
        test_app.wait_until_ready().await;
        test_app
    }

    /// [`TestApp::spawn_with`] `overrides`, then Alice, a receiver checking
    /// `secret` and a webhook of hers delivering `events` to it.
    pub async fn spawn_with_webhook(
        overrides: &[(&str, &str)],
        events: Value,
        secret: &str,
    ) -> Subscribed {
        let app = Self::spawn_with(overrides).await;
        let (_, token) = app.create_user("Alice", None, false).await;
        let receiver = Receiver::start(secret).await;
        let webhook = app
            .create_webhook_to(&token, &receiver.url(), events, secret)
            .await;
        Subscribed {
            app,
            token,
            receiver,
            webhook,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn wait_until_ready(&self) {
        eventually(
            Duration::from_secs(20),
            "the daemon to become ready",
            || async {
                self.http
                    .get(self.url("/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                    .then_some(())
            },
        )
        .await;
    }

    /// A user with an API token.
    pub async fn create_user(&self, name: &str, id: Option<i64>, admin: bool) -> (i64, String) {
        let (user, token) = webhookd_store::users::create_user(&self.db.pool, name, id, admin)
            .await
            .expect("user created");
        (user.id, token)
    }

    /// Calls the HTTP API as the holder of `token` (`path` from the root,
    /// e.g. `/api/v1/webhooks`) with `body` as JSON; the status and the JSON
    /// answer (null when there is none).
    pub async fn api(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> (reqwest::StatusCode, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a webhook through the API and returns its JSON.
    pub async fn create_webhook(&self, token: &str, body: Value) -> Value {
        let response = self
            .http
            .post(self.url("/api/v1/webhooks"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let json: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "creating a webhook: {json}");
        json
    }

    /// Creates a webhook named "hook" through the API, delivering `events`
    /// to `url` signed with `secret`; returns its id.
    pub async fn create_webhook_to(
        &self,
        token: &str,
        url: &str,
        events: Value,
        secret: &str,
    ) -> i64 {
        let created = self
            .create_webhook(token, webhook_body(url, events, secret))
            .await;
        created["id"].as_i64().expect("a numeric id")
    }

    /// Waits (at most `within`) until the webhook's only delivery has left
    /// `pending`, and returns its status.
    pub async fn wait_for_settled(&self, webhook: i64, within: Duration) -> String {
        eventually(within, "the delivery to settle", || async {
            let status: Option<String> =
                sqlx::query_scalar("SELECT status FROM deliveries WHERE webhook_id = $1")
                    .bind(webhook)
                    .fetch_optional(&self.db.pool)
                    .await
                    .unwrap();
            status.filter(|s| s != "pending")
        })
        .await
    }

    /// Publishes raw bytes straight to the exchange, as a careless third-party
    /// publisher might.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        channel
            .basic_publish(
                self.topology.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        let _ = conn.close(200, "done".into()).await;
    }

    pub async fn metrics_text(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample, e.g. `webhookd_events_rejected_total{reason="not_object"}`.
    pub async fn metric(&self, name: &str) -> f64 {
        sample(&self.metrics_text().await, name).unwrap_or(0.0)
    }

    /// Stops the daemon (as on SIGTERM) and removes everything the test made.
    pub async fn stop(self) {
        self.cancel.cancel();
        let stopped = tokio::time::timeout(Duration::from_secs(30), self.handle).await;
        assert!(
            matches!(stopped, Ok(Ok(Ok(())))),
            "the daemon stops cleanly: {stopped:?}"
        );
        self.publisher.close().await;
        delete_topology(&self.topology).await;
        self.db.drop_database().await;
    }
}
