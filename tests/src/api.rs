//! The JSON API alone (`api::router`) on a real port against a fresh
//! database: for API tests that need no broker.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use webhookd::settings::Settings;
use webhookd_admin::api::{self, ApiState};
use webhookd_store::users;
use webhookd_worker::deliver::Deliverer;

use crate::db::TestDb;

pub struct ApiServer {
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
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

impl ApiServer {
    pub async fn spawn_with(pairs: &[(&str, &str)]) -> ApiServer {
        let db = TestDb::create().await;
        let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let settings = Settings::load_from_pairs(None, pairs).expect("valid settings");
        let deliverer = Deliverer::new(
            settings.delivery.allow_private_targets,
            settings.delivery.max_response_bytes,
        )
        .unwrap();
        let state = ApiState {
            pool: db.pool.clone(),
            config: settings.api_config(),
            deliverer,
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
            server,
        }
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
