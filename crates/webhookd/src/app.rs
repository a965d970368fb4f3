//! Wiring: `App::build` binds the HTTP listener and prepares every part;
//! `run_until_stopped` runs them until the cancellation token fires, then
//! shuts down within the grace period, in order: stop consuming and claiming,
//! let attempts in flight finish, give the unfinished ones back to other
//! workers, write the last records, close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use webhookd_admin::api::{self, ApiState, Ingest, Quotas};
use webhookd_admin::graphql::{self, GraphqlMetrics, GraphqlState};
use webhookd_admin::http::{catch_panics, metrics_router, ops_router, OpsState};
use webhookd_admin::serve::serve;
use webhookd_events::delivery::Lease;
use webhookd_store::handback::release_deliveries;
use webhookd_store::{self as storage};
use webhookd_worker::background::{Background, TaskEnded};
use webhookd_worker::batch::Batcher;
use webhookd_worker::broker::{connect_any, BrokerHealth};
use webhookd_worker::consume::{ConsumerSettings, EventConsumer};
use webhookd_worker::deliver::Deliverer;
use webhookd_worker::dispatch::{Dispatcher, Limits};
use webhookd_worker::fanout::{Fanout, FanoutSettings};
use webhookd_worker::fifo::Sequencer;
use webhookd_worker::metrics::Metrics;
use webhookd_worker::outbox::OutboxRelay;
use webhookd_worker::record::{spawn_writer, Recorder};
use webhookd_worker::retention::{prepare_partitions, run_retention};
use webhookd_worker::sampler::Sampler;
use webhookd_worker::schedule::Scheduler;
use webhookd_worker::shards::{ConsumerShards, ShardPlan};
use webhookd_worker::stats_rollup::run_stats_rollup;
use webhookd_worker::window::{renew_leases, Held, Window};

use crate::settings::Settings;

/// Time kept at the end of the grace period to give unfinished deliveries
/// back and write the last records: a quarter of the period, at most this.
const WRITE_BACK_MAX: Duration = Duration::from_secs(2);
/// Closing the database pool politely, at most; exiting closes it anyway.
const POOL_CLOSE_LIMIT: Duration = Duration::from_millis(500);
/// `session_pool`'s size when it is a pool of its own: the scheduler's
/// `LISTEN` connection and the retention job, with one to spare while a
/// broken listener is replaced.
const SESSION_CONNECTIONS: u32 = 3;

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
    #[error("delivery.extra_ca_file: {0}")]
    ExtraCa(#[from] webhookd_worker::tls_clients::ExtraCaError),
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    #[error(
        "creating the partitions of webhook_logs for today and the next \
         retention.partitions_ahead_days days: {0}"
    )]
    Partitions(sqlx::Error),
    #[error("starting a consumer thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    TaskEnded(#[from] TaskEnded),
    #[error("secrets.encryption_keys: {0}")]
    SecretKeys(#[from] webhookd_events::KeyListError),
    #[error(transparent)]
    StoredSecrets(#[from] crate::stored_secrets::MissingKey),
}

pub struct App {
    settings: Arc<Settings>,
    role: Role,
    listener: TcpListener,
    /// `http.metrics_listen`'s listener, when `/metrics` has its own.
    metrics_listener: Option<TcpListener>,
    pool: PgPool,
    /// Connections that need a real Postgres session (`LISTEN`, the
    /// retention job's advisory lock): `database.direct_url`'s own small
    /// pool when it is set, else `pool` itself.
    session_pool: PgPool,
    metrics: Metrics,
    /// Seal and open the webhooks' secrets at rest (SPEC §15).
    keys: webhookd_events::SecretKeys,
}

impl App {
    /// Binds first, so a test can ask for port 0 and read the real address.
    /// Refuses to build when a stored secret is sealed under a key the
    /// settings lack.
    pub async fn build(settings: Settings, role: Role) -> Result<Self, AppError> {
        let keys = settings.secrets.keys()?;
        let addr = settings.http.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|reason| AppError::Bind { addr, reason })?;
        let metrics_listener = match settings.http.metrics_listen().ok().flatten() {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|reason| AppError::Bind { addr, reason })?,
            ),
            None => None,
        };
        let pool =
            storage::connect_lazy(&settings.database.url, settings.database.max_connections)?;
        let session_pool = if settings.database.has_direct_url() {
            storage::connect_lazy_as(
                settings.database.direct_url(),
                SESSION_CONNECTIONS,
                "webhookd-session",
            )?
        } else {
            pool.clone()
        };
        crate::stored_secrets::check_stored_secrets(&pool, &keys).await?;
        Ok(App {
            settings: Arc::new(settings),
            role,
            listener,
            metrics_listener,
            pool,
            session_pool,
            metrics: Metrics::new()?,
            keys,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Where `/metrics` is served when `http.metrics_listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref()?.local_addr().ok()
    }

    pub async fn run_until_stopped(mut self, cancel: CancellationToken) -> Result<(), AppError> {
        let s = self.settings.clone();
        let broker = BrokerHealth::default();
        let mut background = Background::default();
        let worker = if self.role.works() {
            // Before anything is consumed: attempts need today's partition.
            prepare_partitions(&self.pool, &s.retention)
                .await
                .map_err(AppError::Partitions)?;
            Some(self.start_worker(&broker, &cancel, &mut background)?)
        } else {
            background.spawn(
                "broker watch",
                watch_broker(s.broker.urls(), broker.clone(), cancel.clone()),
            );
            None
        };

        let admin_metrics = GraphqlMetrics::new()?;
        let ops = OpsState {
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            admin_metrics: admin_metrics.clone(),
            broker: Some(broker),
        };
        let metrics_server = self.metrics_listener.take().map(|listener| {
            let router = metrics_router(ops.clone()).layer(axum::middleware::from_fn(catch_panics));
            tokio::spawn(serve(
                listener,
                router,
                s.http.server_limits(),
                cancel.clone(),
            ))
        });
        let mut router = ops_router(ops, metrics_server.is_some());
        let mut ingest = None;
        if self.role.serves_api() {
            let api_state = ApiState {
                pool: self.pool.clone(),
                config: s.api_config(),
                // Its own client: test deliveries never wait for a worker's slots.
                deliverer: Deliverer::with_tls(
                    s.delivery.allow_private_targets,
                    s.delivery.max_response_bytes,
                    s.delivery.delivery_tls()?,
                )?
                .with_max_rendered_body_bytes(s.limits.max_rendered_body_bytes)
                .with_allowed_ports(s.api_config().allowed_ports),
                keys: self.keys.clone(),
                quotas: Quotas::new(&admin_metrics)?,
                // Connects to the broker on the first posted event.
                ingest: Ingest::new(s.ingest_config(), &admin_metrics)?,
            };
            ingest = Some(api_state.ingest.clone());
            // Subscriptions end on `cancel`: their sockets get a close frame.
            let graphql_state = GraphqlState::new(
                api_state.clone(),
                s.graphql_config(),
                s.event_source(),
                admin_metrics,
                cancel.clone(),
            );
            let live_attempts = graphql_state.attempts();
            // The web UI shares the API's state: same pool, settings, test client.
            router = router
                .merge(api::router(api_state.clone()))
                .merge(graphql::router(graphql_state))
                .merge(webhookd_admin::ui::router(
                    api_state,
                    live_attempts,
                    s.http.login_csrf_key.expose_secret(),
                ));
        }
        let router = router.layer(axum::middleware::from_fn(catch_panics));
        let addr = self.local_addr();
        info!(?addr, role = ?self.role, "webhookd running");
        let mut server = tokio::spawn(serve(
            self.listener,
            router,
            s.http.server_limits(),
            cancel.clone(),
        ));
        // Until told to stop, or until the server or a background task
        // fails on its own.
        let mut task_ended = None;
        let server_ended = tokio::select! {
            biased;
            () = cancel.cancelled() => None,
            ended = &mut server => Some(ended),
            ended = background.ended() => {
                // After a stop request tasks end as told: no failure.
                if !cancel.is_cancelled() {
                    error!(error = %ended, "shutting down: a background task stopped on its own");
                    task_ended = Some(ended);
                }
                None
            }
        };
        cancel.cancel();

        // The grace period bounds the whole shutdown.
        let grace = Duration::from_millis(s.shutdown.grace_period_ms);
        let deadline = Instant::now() + grace;
        info!(grace_ms = s.shutdown.grace_period_ms, "shutting down");
        // Stop taking work: the consumer and the scheduler end on `cancel`
        // (unacked messages go back to the queue).
        if timeout_at(deadline, background.drain()).await.is_err() {
            warn!("background tasks did not stop within the grace period");
        }
        background.abort_all();
        if let Some(worker) = worker {
            worker.finish(&self.pool, grace, deadline).await;
        }
        let server_ended = match server_ended {
            Some(ended) => ended,
            None => timeout_at(deadline, &mut server).await.unwrap_or_else(|_| {
                server.abort();
                Ok(Ok(()))
            }),
        };
        if let Some(metrics_server) = metrics_server {
            let _ = timeout_at(deadline, metrics_server).await;
        }
        if let Some(ingest) = ingest {
            let _ = timeout_at(deadline, ingest.close()).await;
        }
        let _ = tokio::time::timeout(POOL_CLOSE_LIMIT, async {
            tokio::join!(self.pool.close(), self.session_pool.close())
        })
        .await;
        info!("webhookd stopped");
        if let Some(ended) = task_ended {
            return Err(ended.into());
        }
        match server_ended {
            Ok(served) => served.map_err(AppError::Serve),
            // Aborted at the deadline: requests still open are cut off.
            Err(_) => Ok(()),
        }
    }

    /// Starts the delivery side, the pipeline's stages from the last to the
    /// first (each is handed the next): recorder, dispatcher, in-flight
    /// window, fan-out, and in `background` the consumer, the scheduler, the
    /// batcher, the outbox relay and the retention job.
    fn start_worker(
        &self,
        broker: &BrokerHealth,
        cancel: &CancellationToken,
        background: &mut Background,
    ) -> Result<Worker, AppError> {
        let s = &self.settings;
        let wake = Arc::new(Notify::new());
        let collect_wake = Arc::new(Notify::new());
        let queue_wake = Arc::new(Notify::new());
        let abandon = CancellationToken::new();
        let recorder = Recorder::new(
            self.pool.clone(),
            self.metrics.clone(),
            wake.clone(),
            s.delivery.disable_after_failing(),
        )
        .waking_sequencer(queue_wake.clone())
        .with_breaker(s.delivery.breaker());
        let held = Arc::new(Held::new(s.delivery.max_in_flight));
        let stop_writer = CancellationToken::new();
        let (records, writer_done) =
            spawn_writer(held.clone(), recorder, stop_writer.clone(), abandon.clone());
        let deliverer = Deliverer::with_tls(
            s.delivery.allow_private_targets,
            s.delivery.max_response_bytes,
            s.delivery.delivery_tls()?,
        )?
        .with_max_rendered_body_bytes(s.limits.max_rendered_body_bytes)
        .with_allowed_ports(s.api_config().allowed_ports);
        let dispatcher = Dispatcher::new(
            s.retry_policy(),
            Duration::from_millis(s.delivery.timeout_ms),
            Limits {
                max_in_flight: s.delivery.max_in_flight,
                concurrency: s.delivery.concurrency,
                per_endpoint: s.delivery.per_endpoint_concurrency,
                per_endpoint_queue: s.delivery.per_endpoint_queue,
            },
            self.metrics.clone(),
            records,
            self.pool.clone(),
            self.keys.clone(),
        );
        let window = Window::new(dispatcher.clone(), held.clone(), deliverer.clone());
        let lease = Lease {
            default_timeout_ms: i64::try_from(s.delivery.timeout_ms).unwrap_or(i64::MAX),
            margin_ms: i64::try_from(s.scheduler.lease_margin_ms).unwrap_or(i64::MAX),
        };
        let fanout = Fanout::new(
            window.clone(),
            self.pool.clone(),
            self.metrics.clone(),
            FanoutSettings {
                lease,
                first_attempt_window: s.delivery.first_attempt_window(),
                disable_after: s.delivery.disable_after_failing(),
                retry_wake: wake.clone(),
                prefetch: s.broker.prefetch,
                collect_wake: collect_wake.clone(),
                queue_wake: queue_wake.clone(),
                breaker: s.delivery.breaker(),
            },
        );
        let topology = s.broker.topology();
        let relay = OutboxRelay {
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            broker_urls: s.broker.urls(),
            topology: topology.clone(),
        };
        let consumer = EventConsumer::new(
            ConsumerSettings {
                urls: s.broker.urls(),
                topology,
                prefetch: s.broker.prefetch,
                max_message_bytes: s.broker.max_message_bytes,
            },
            fanout,
            self.metrics.clone(),
            broker.clone(),
        );
        let batcher = Batcher {
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            wake: collect_wake,
            due_wake: wake.clone(),
            queue_wake: queue_wake.clone(),
        };
        let sequencer = Sequencer {
            pool: self.pool.clone(),
            metrics: self.metrics.clone(),
            wake: queue_wake,
            due_wake: wake.clone(),
        };
        let scheduler = Scheduler {
            pool: self.pool.clone(),
            listen_pool: self.session_pool.clone(),
            window,
            metrics: self.metrics.clone(),
            lease,
            batch_size: s.scheduler.batch_size,
            poll_interval: Duration::from_millis(s.scheduler.poll_interval_ms),
            wake,
        };
        // Renewed until the worker has let go of everything, shutdown included.
        let stop_renewing = CancellationToken::new();
        let renewing = tokio::spawn(renew_leases(
            held.clone(),
            self.pool.clone(),
            lease,
            self.metrics.clone(),
            stop_renewing.clone(),
        ));
        let shards = match s.broker.consumers {
            0 => {
                background.spawn("consumer", consumer.run(cancel.clone()));
                None
            }
            count => {
                let mut shards = ConsumerShards::start(
                    ShardPlan {
                        count,
                        consumer,
                        database_url: s.database.url.clone(),
                        deliverer,
                    },
                    cancel,
                )
                .map_err(AppError::Thread)?;
                for stopped in shards.stopped() {
                    background.spawn("consumer", stopped);
                }
                Some(shards)
            }
        };
        background.spawn("scheduler", scheduler.run(cancel.clone()));
        background.spawn("batcher", batcher.run(cancel.clone()));
        background.spawn("outbox relay", relay.run(cancel.clone()));
        background.spawn("sequencer", sequencer.run(cancel.clone()));
        background.spawn(
            "retention",
            run_retention(
                self.session_pool.clone(),
                s.retention.clone(),
                self.metrics.clone(),
                cancel.clone(),
            ),
        );
        background.spawn(
            "statistics rollup",
            run_stats_rollup(self.pool.clone(), self.metrics.clone(), cancel.clone()),
        );
        background.spawn(
            "sampler",
            Sampler {
                pool: self.pool.clone(),
                broker_urls: s.broker.urls(),
                queue: s.broker.queue.clone(),
                metrics: self.metrics.clone(),
            }
            .run(cancel.clone()),
        );
        Ok(Worker {
            shards,
            dispatcher,
            held,
            stop_writer,
            writer_done,
            abandon,
            stop_renewing,
            renewing,
        })
    }
}

/// What shutdown needs of the delivery side once nothing new is dispatched.
struct Worker {
    shards: Option<ConsumerShards>,
    dispatcher: Dispatcher,
    held: Arc<Held>,
    stop_writer: CancellationToken,
    writer_done: JoinHandle<()>,
    abandon: CancellationToken,
    stop_renewing: CancellationToken,
    renewing: JoinHandle<()>,
}

impl Worker {
    /// Lets attempts in flight finish until shortly before `deadline`, writes
    /// the records of those that finished, then gives every delivery still
    /// held back to the other workers (due at once, no attempt counted).
    /// Whatever cannot be written by `deadline` (the database is away) is
    /// retried when its lease runs out.
    async fn finish(mut self, pool: &PgPool, grace: Duration, deadline: Instant) {
        let write_back = (grace / 4).min(WRITE_BACK_MAX);
        let attempts_end = deadline.checked_sub(write_back).unwrap_or(deadline);
        let unfinished = self
            .dispatcher
            .drain(attempts_end.saturating_duration_since(Instant::now()))
            .await;
        drop(self.dispatcher);
        if let Some(shards) = &self.shards {
            shards.release();
        }
        // Records of finished attempts are written; those of attempts still
        // running are refused from now on. Half the time left is kept for
        // the release, so a slow write cannot starve it.
        self.stop_writer.cancel();
        let writing_end = attempts_end + write_back / 2;
        let written = timeout_at(writing_end, &mut self.writer_done).await.is_ok();
        if !written {
            self.abandon.cancel();
            self.writer_done.abort();
            warn!("grace period over before every record was written; those deliveries are retried when their leases run out");
        }
        self.stop_renewing.cancel();
        let _ = timeout_at(deadline, &mut self.renewing).await;
        self.renewing.abort();
        let held = self.held.take_all();
        match timeout_at(deadline, release_deliveries(pool, &held)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(released)) => info!(
                released,
                unfinished, "unfinished deliveries given back to the other workers"
            ),
            Ok(Err(e)) => warn!(
                error = %e,
                deliveries = held.len(),
                "giving back unfinished deliveries failed; they are retried when their leases run out"
            ),
            Err(_) => warn!(
                deliveries = held.len(),
                "grace period over before unfinished deliveries were given back; they are retried when their leases run out"
            ),
        }
        self.abandon.cancel();
    }
}

/// For roles without a consumer: keeps a broker connection open so `/readyz`
/// can tell whether the broker is reachable.
async fn watch_broker(
    urls: Vec<secrecy::SecretString>,
    health: BrokerHealth,
    cancel: CancellationToken,
) {
    while !cancel.is_cancelled() {
        match connect_any(&urls, 0, "webhookd-api").await {
            Ok((conn, _node)) => {
                health.watch(&conn);
                while conn.status().connected() {
                    tokio::select! {
                        () = cancel.cancelled() => {
                            let _ = conn.close(200, "webhookd stopping".into()).await;
                            return;
                        }
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
                health.lost();
            }
            Err(_) => health.lost(),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
