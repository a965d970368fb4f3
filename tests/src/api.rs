//! The JSON API alone (`api::router`) on a real port against a fresh
//! database: for API tests that need no broker. Besides the server: request
//! bodies, seeded rows and the assertions the `api_*` test files share.

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;
use webhookd::settings::Settings;
use webhookd_admin::api::{self, ApiState, Ingest, Quotas};
use webhookd_store::users;
use webhookd_worker::deliver::Deliverer;

use crate::db::TestDb;

pub struct ApiServer {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    /// The admin side's metrics this API counts in.
    pub metrics: webhookd_admin::graphql::GraphqlMetrics,
    server: JoinHandle<()>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

/// A user of the API: its id and token.
pub struct User {
    pub id: i64,
    pub token: String,
}

/// A log row to seed: its success follows from a 2xx `status_code`.
#[derive(Clone, Copy)]
pub struct Log<'a> {
    pub webhook_id: i64,
    pub delivery_id: Uuid,
    pub event: &'a str,
    pub status_code: Option<i32>,
    pub ms: i32,
    /// `created_at` is `base - age_secs`.
    pub base: DateTime<Utc>,
    pub age_secs: f64,
}

impl ApiServer {
    /// Default settings: private (loopback) targets are refused.
    pub async fn spawn() -> ApiServer {
        Self::spawn_with(&[]).await
    }

    /// Loopback receivers are allowed, as in every test that delivers.
    pub async fn spawn_with_private_targets() -> ApiServer {
        Self::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await
    }

    pub async fn spawn_with(pairs: &[(&str, &str)]) -> ApiServer {
        let db = TestDb::create().await;
        let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let settings = Settings::load_from_pairs(None, pairs).expect("valid settings");
        let deliverer = Deliverer::new(
            settings.delivery.allow_private_targets,
            settings.delivery.max_response_bytes,
        )
        .unwrap()
        .with_allowed_ports(settings.api_config().allowed_ports);
        let metrics = webhookd_admin::graphql::GraphqlMetrics::new().unwrap();
        let state = ApiState {
            pool: db.pool.clone(),
            config: settings.api_config(),
            deliverer,
            keys: settings.secrets.keys().expect("valid keys"),
            quotas: Quotas::new(&metrics).unwrap(),
            ingest: Ingest::new(settings.ingest_config(), &metrics).unwrap(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, api::router(state)).await.unwrap();
        });
        ApiServer {
            base: format!("http://{addr}/api/v1"),
            http: reqwest::Client::new(),
            db,
            metrics,
            server,
        }
    }

    /// One sample of the API's metrics, e.g.
    /// `webhookd_quota_refusals_total{quota="tests"}`; 0 when absent.
    pub fn metric(&self, name: &str) -> f64 {
        crate::process::sample(&self.metrics.render(), name).unwrap_or(0.0)
    }

    pub async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        self.db.drop_database().await;
    }

    pub async fn user(&self, name: &str, admin: bool) -> User {
        let (user, token) = users::create_user(&self.db.pool, name, None, admin)
            .await
            .unwrap();
        User { id: user.id, token }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, user: &User, path: &str) -> Reply {
        self.send(Method::GET, path, Some(&user.token), None).await
    }

    pub async fn post(&self, user: &User, path: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    pub async fn patch(&self, user: &User, path: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(&user.token), Some(body))
            .await
    }

    pub async fn delete(&self, user: &User, path: &str) -> Reply {
        self.send(Method::DELETE, path, Some(&user.token), None)
            .await
    }

    pub async fn toggle(&self, user: &User, id: i64) -> Reply {
        self.send(
            Method::POST,
            &format!("/webhooks/{id}/toggle"),
            Some(&user.token),
            None,
        )
        .await
    }

    /// Creates a webhook and returns its JSON, asserting 201.
    pub async fn create_webhook(&self, user: &User, body: Value) -> Value {
        let reply = self.post(user, "/webhooks", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.json);
        reply.json
    }

    /// A webhook of `user` to a URL nobody is called at (rows are seeded).
    pub async fn create_quiet_webhook(&self, user: &User, name: &str) -> i64 {
        id_of(
            &self
                .create_webhook(
                    user,
                    json!({"name": name, "url": "https://example.com/hook", "events": ["*"]}),
                )
                .await,
        )
    }

    /// An event and its delivery for `webhook_id`, in `status`.
    pub async fn seed_delivery(&self, webhook_id: i64, event: &str, status: &str) -> Uuid {
        let event_id = Uuid::new_v4();
        let delivery_id = Uuid::new_v4();
        sqlx::query("INSERT INTO events (id, event, body) VALUES ($1, $2, '{}')")
            .bind(event_id)
            .bind(event)
            .execute(&self.db.pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO deliveries (id, event_id, webhook_id, status, attempts, next_attempt_at,
                                     last_status_code, last_error)
             VALUES ($1, $2, $3, $4, 3, now() + interval '1 hour', 500, 'HTTP 500')",
        )
        .bind(delivery_id)
        .bind(event_id)
        .bind(webhook_id)
        .bind(status)
        .execute(&self.db.pool)
        .await
        .unwrap();
        delivery_id
    }

    /// A `webhook_logs` row made `age_secs` ago; returns its id and time.
    pub async fn seed_log(&self, log: Log<'_>) -> (i64, DateTime<Utc>) {
        sqlx::query_as(
            "INSERT INTO webhook_logs (webhook_id, delivery_id, event, attempt, status_code,
                 response_time_ms, is_success, payload, response, error_message, created_at)
             VALUES ($1, $2, $3, 1, $4, $5, $6, 'sent body', 'answer', NULL,
                     $7::timestamptz - make_interval(secs => $8))
             RETURNING id, created_at",
        )
        .bind(log.webhook_id)
        .bind(log.delivery_id)
        .bind(log.event)
        .bind(log.status_code)
        .bind(log.ms)
        .bind(log.status_code.is_some_and(|c| (200..300).contains(&c)))
        .bind(log.base)
        .bind(log.age_secs)
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    /// The database's clock.
    pub async fn now(&self) -> DateTime<Utc> {
        sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
    }

    /// Pages through `path` (which has a query string) with `limit`,
    /// returning every item id in order; asserts each page's size.
    pub async fn page_ids(&self, user: &User, path: &str, limit: usize) -> Vec<Value> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let url = match &cursor {
                None => format!("{path}&limit={limit}"),
                Some(c) => format!("{path}&limit={limit}&cursor={c}"),
            };
            let reply = self.get(user, &url).await;
            assert_status(&reply, StatusCode::OK, &url);
            let items = reply.json["items"].as_array().unwrap();
            assert!(items.len() <= limit);
            ids.extend(items.iter().map(|i| i["id"].clone()));
            match reply.json["next_cursor"].as_str() {
                Some(next) => {
                    assert_eq!(items.len(), limit, "only the last page is short");
                    cursor = Some(next.to_owned());
                }
                None => return ids,
            }
        }
        panic!("paging never ended");
    }
}

/// A minimal valid webhook body named `name`.
pub fn hook(name: &str) -> Value {
    json!({"name": name, "url": "https://example.com/hook", "events": ["task.created"]})
}

/// `body` with `field` set to `value`.
pub fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

pub fn id_of(webhook: &Value) -> i64 {
    webhook["id"].as_i64().expect("a numeric id")
}

#[track_caller]
pub fn assert_status(reply: &Reply, status: StatusCode, context: &str) {
    assert_eq!(reply.status, status, "{context}: {}", reply.json);
}

/// Asserts a 422 whose JSON names `field`.
#[track_caller]
pub fn assert_invalid(reply: &Reply, field: &str, context: &str) {
    assert_status(reply, StatusCode::UNPROCESSABLE_ENTITY, context);
    assert_eq!(reply.json["field"], field, "{context}: {}", reply.json);
    assert!(
        reply.json["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{context}"
    );
}

/// Asserts the 404 of a webhook that is missing or not the caller's.
#[track_caller]
pub fn assert_not_found(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.json);
    assert_eq!(reply.json, json!({"error": "webhook not found"}));
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {bytes:?}"))
    };
    Reply {
        status,
        headers,
        json,
    }
}
