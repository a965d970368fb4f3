//! Wiring: `App::build` binds the HTTP listener and prepares every part;
//! `run_until_stopped` runs them until the cancellation token fires, then
//! shuts down in order: stop consuming and claiming, let attempts in flight
//! finish within the grace period, write their records, close.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use webhookd_producer::topology::Topology;

use crate::api::{self, ApiState};
use crate::consume::{connect, EventConsumer};
use crate::deliver::Deliverer;
use crate::dispatch::{Dispatcher, Limits};
use crate::http::{ops_router, OpsState};
use crate::metrics::Metrics;
use crate::record::spawn_recorder;
use crate::retention::run_retention;
use crate::schedule::Scheduler;
use crate::settings::Settings;
use crate::storage::{self, deliveries::Lease};

/// Which parts a process runs, so API and workers scale separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    All,
    Worker,
    Api,
}

impl Role {
    fn works(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
    fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("binding {addr}: {reason}")]
    Bind {
        addr: SocketAddr,
        reason: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
}

pub struct App {
    settings: Arc<Settings>,
    role: Role,
    listener: TcpListener,
    pool: PgPool,
    metrics: Metrics,
}

impl App {
    /// Binds first, so a test can ask for port 0 and read the real address.
    pub async fn build(settings: Settings, role: Role) -> Result<Self, AppError> {
        let addr = settings.http.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|reason| AppError::Bind { addr, reason })?;
        let pool =
            storage::connect_lazy(&settings.database.url, settings.database.max_connections)?;
        Ok(App {
            settings: Arc::new(settings),
            role,
            listener,
            pool,
            metrics: Metrics::new()?,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub async fn run_until_stopped(self, cancel: CancellationToken) -> Result<(), AppError> {
        let s = self.settings.clone();
        let broker_up = Arc::new(AtomicBool::new(false));
        let topology = Topology::new(s.broker.exchange.clone(), s.broker.queue.clone());
        let grace = Duration::from_millis(s.shutdown.grace_period_ms);
        // Fires when the grace period is over: whatever is unwritten then is
        // redone later from the leases.
        let abandon = CancellationToken::new();
        let mut background = tokio::task::JoinSet::new();
        let mut worker = None;

        if self.role.works() {
            let wake = Arc::new(Notify::new());
            let (recorder, recorder_done) = spawn_recorder(
                self.pool.clone(),
                self.metrics.clone(),
                wake.clone(),
                abandon.clone(),
            );
            let dispatcher = Dispatcher::new(
                Deliverer::new(
                    s.delivery.allow_private_targets,
                    s.delivery.max_response_bytes,
                )?,
                s.retry_policy(),
                Duration::from_millis(s.delivery.timeout_ms),
                Limits {
                    max_in_flight: s.delivery.max_in_flight,
                    concurrency: s.delivery.concurrency,
                    per_endpoint: s.delivery.per_endpoint_concurrency,
                },
                self.metrics.clone(),
                recorder,
            );
            let lease = Lease {
                default_timeout_ms: i64::try_from(s.delivery.timeout_ms).unwrap_or(i64::MAX),
                margin_ms: i64::try_from(s.scheduler.lease_margin_ms).unwrap_or(i64::MAX),
            };
            let consumer = EventConsumer {
                url: s.broker.url.clone(),
                topology: topology.clone(),
                prefetch: s.broker.prefetch,
                max_message_bytes: s.broker.max_message_bytes,
                pool: self.pool.clone(),
                dispatcher: dispatcher.clone(),
                metrics: self.metrics.clone(),
                lease,
                broker_up: broker_up.clone(),
            };
            let scheduler = Scheduler {
                pool: self.pool.clone(),
                dispatcher: dispatcher.clone(),
                metrics: self.metrics.clone(),
                lease,
                batch_size: s.scheduler.batch_size,
                poll_interval: Duration::from_millis(s.scheduler.poll_interval_ms),
                wake,
            };
            background.spawn(consumer.run(cancel.clone()));
            background.spawn(scheduler.run(cancel.clone()));
            background.spawn(run_retention(
                self.pool.clone(),
                s.retention.clone(),
                cancel.clone(),
            ));
            worker = Some((dispatcher, recorder_done));
        } else {
            background.spawn(watch_broker(
                s.broker.url.clone(),
                broker_up.clone(),
                cancel.clone(),
            ));
        }

        let mut router = ops_router(OpsState {
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            broker_up: Some(broker_up),
        });
        if self.role.serves_api() {
            router = router.merge(api::router(ApiState {
                pool: self.pool.clone(),
                settings: s.clone(),
            }));
        }
        let addr = self.local_addr();
        info!(?addr, role = ?self.role, "webhookd running");
        let server_cancel = cancel.clone();
        let server = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { server_cancel.cancelled().await });
        let served = server.await.map_err(AppError::Serve);

        // Shutdown: consumer and scheduler stop on `cancel`; wait for them so
        // no new work is dispatched, then drain the attempts in flight.
        while background.join_next().await.is_some() {}
        if let Some((dispatcher, recorder_done)) = worker {
            let left = dispatcher.drain(grace).await;
            if left > 0 {
                warn!(
                    left,
                    "grace period over; unfinished deliveries will be retried from their leases"
                );
            }
            drop(dispatcher);
            abandon_after(abandon.clone(), Duration::from_secs(5));
            let _ = recorder_done.await;
        }
        self.pool.close().await;
        info!("webhookd stopped");
        served
    }
}

fn abandon_after(token: CancellationToken, after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        token.cancel();
    });
}

/// For roles without a consumer: keeps a broker connection open so `/readyz`
/// can tell whether the broker is reachable.
async fn watch_broker(url: secrecy::SecretString, up: Arc<AtomicBool>, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let conn = connect(&url, "webhookd-api").await.ok();
        loop {
            let connected = conn.as_ref().is_some_and(|c| c.status().connected());
            up.store(connected, Ordering::Relaxed);
            if !connected {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
