//! Consumer shards: with `broker.consumers = N` a worker runs N broker
//! consumers, each on a thread of its own with a single-threaded
//! runtime, its own broker connection, its own two database connections and
//! its own HTTP connection pool.
//!
//! Why: an event's path (broker message, subscriber read, first attempt,
//! batch write, ack) hops between a handful of tasks. On the shared
//! multi-threaded runtime every hop that found a second task runnable woke
//! the other runtime thread, which mostly found nothing to do and slept
//! again: at 200 events/s that was a third of webhookd's thread wake-ups and
//! about a sixth of its CPU (docs/PERFORMANCE.md). On a shard the whole path
//! runs on one thread, the I/O of its sockets included; the broker spreads
//! messages over the consumers, so under load every core still works.
//!
//! What stays shared: the dispatcher's limits and held deliveries, the
//! recorder, the scheduler and the API, which keep running on the main
//! runtime. Attempts started on a shard (and their records' forwarding) run
//! on it until they end, so a shard's runtime is kept alive after its
//! consumer stops until the worker's shutdown has drained them.

use std::panic::AssertUnwindSafe;

use secrecy::SecretString;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::background::panic_message;
use crate::consume::EventConsumer;
use crate::deliver::Deliverer;

/// Database connections a shard holds: the consumer's and its batch
/// writer's.
const SHARD_CONNECTIONS: u32 = 2;
/// How long a starting shard waits for its connections before consuming.
const CONNECT_AHEAD_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The running consumer shards of one worker.
pub struct ConsumerShards {
    stopped: Vec<(oneshot::Receiver<()>, oneshot::Receiver<String>)>,
    release: CancellationToken,
}

/// What each shard is built from.
pub struct ShardPlan {
    pub count: usize,
    /// The worker's consumer: each shard's is made from it
    /// ([`EventConsumer::for_shard`]), with a share of its prefetch, so
    /// memory and the messages a worker holds unacked do not grow with the
    /// consumer count.
    pub consumer: EventConsumer,
    pub database_url: SecretString,
    pub deliverer: Deliverer,
}

impl ConsumerShards {
    /// Starts `plan.count` consumers, each consuming until `cancel`.
    pub fn start(plan: ShardPlan, cancel: &CancellationToken) -> std::io::Result<Self> {
        let release = CancellationToken::new();
        let mut stopped = Vec::with_capacity(plan.count);
        for index in 0..plan.count {
            let (done, wait) = oneshot::channel();
            let (panicked, report) = oneshot::channel();
            let shard = Shard {
                consumer: plan.consumer.with_own_health(),
                shards: plan.count,
                index,
                database_url: plan.database_url.clone(),
                deliverer: plan.deliverer.clone(),
                cancel: cancel.clone(),
                release: release.clone(),
                done,
            };
            // Not joined: a thread ends on its own once released.
            std::thread::Builder::new()
                .name(format!("webhookd-consumer-{index}"))
                .spawn(move || report_panic(panicked, || shard.run()))?;
            stopped.push((wait, report));
        }
        Ok(ConsumerShards { stopped, release })
    }

    /// A future per consumer, resolved once it has stopped: its batches
    /// written and acked, nothing more taken from the broker. If its thread
    /// panicked instead, the future panics with the same message, so the
    /// task watching it reports why.
    pub fn stopped(&mut self) -> Vec<impl std::future::Future<Output = ()> + Send + 'static> {
        std::mem::take(&mut self.stopped)
            .into_iter()
            .map(|(wait, report)| watch(wait, report))
            .collect()
    }

    /// Ends the shards' runtimes: once the attempts they started have been
    /// drained (what still runs then is dropped, and its lease hands the
    /// delivery to another worker).
    pub fn release(&self) {
        self.release.cancel();
    }
}

/// Runs a shard's thread body; a panic's message is sent on `panicked`.
fn report_panic(panicked: oneshot::Sender<String>, body: impl FnOnce()) {
    if let Err(payload) = std::panic::catch_unwind(AssertUnwindSafe(body)) {
        let _ = panicked.send(panic_message(&*payload).to_owned());
    }
}

/// Resolves when the shard says it stopped; raises its panic again if it
/// ended in one (`resume_unwind`: no second report from the panic hook).
async fn watch(stopped: oneshot::Receiver<()>, panicked: oneshot::Receiver<String>) {
    if stopped.await.is_ok() {
        return;
    }
    if let Ok(message) = panicked.await {
        std::panic::resume_unwind(Box::new(message));
    }
}

/// Opens the shard's connections before its first message and prepares the
/// fan-out statements on them (they wait idle in its pool for the consumer
/// and its batch writer), so the first events after a start do not each
/// wait for a handshake and a parse: measured, the first event took 9–10 ms
/// without this, 4.5–5.3 ms with it, against 1–2 ms later on.
async fn connect_ahead(pool: &sqlx::PgPool, shard: usize) {
    let open = async {
        let mut opened = Vec::new();
        for _ in 0..SHARD_CONNECTIONS {
            let mut conn = pool.acquire().await?;
            webhookd_store::fanout::prepare_statements(&mut conn).await?;
            opened.push(conn);
        }
        Ok::<_, webhookd_store::StorageError>(opened)
    };
    // Bounded: a database that is down must not hold the consumer back
    // from the broker (and `/readyz` from telling which one is down).
    match tokio::time::timeout(CONNECT_AHEAD_LIMIT, open).await {
        Ok(Ok(_opened)) => {}
        // Nothing lost: the consumer's own statements connect and retry.
        Ok(Err(e)) => {
            warn!(error = %e, shard, "opening a consumer's database connections ahead of use failed");
        }
        Err(_) => {
            warn!(
                shard,
                "opening a consumer's database connections ahead of use timed out"
            );
        }
    }
}

struct Shard {
    consumer: EventConsumer,
    shards: usize,
    index: usize,
    database_url: SecretString,
    deliverer: Deliverer,
    cancel: CancellationToken,
    release: CancellationToken,
    done: oneshot::Sender<()>,
}

impl Shard {
    fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                error!(error = %e, shard = self.index, "starting a consumer's runtime failed; it does not consume");
                return;
            }
        };
        runtime.block_on(self.consume());
    }

    async fn consume(self) {
        let Shard {
            consumer,
            shards,
            index,
            database_url,
            deliverer,
            cancel,
            release,
            done,
        } = self;
        // Created on this runtime, so their sockets' readiness wakes this
        // thread and not the main runtime's.
        let name = format!("webhookd-consumer-{index}");
        let pool = match webhookd_store::connect_lazy_as(&database_url, SHARD_CONNECTIONS, &name) {
            Ok(pool) => pool,
            Err(e) => {
                error!(error = %e, shard = index, "a consumer's database settings were refused; it does not consume");
                return;
            }
        };
        // Before consuming, never beside it: holding one connection while
        // waiting for the other, it would starve the consumer and its writer
        // of the pool's two (a 5 s stall, measured, with a backlog queued).
        connect_ahead(&pool, index).await;
        let deliverer = deliverer.with_own_client().unwrap_or_else(|e| {
            warn!(error = %e, shard = index, "a consumer's own HTTP client could not be built; it shares the main one");
            deliverer
        });
        let consumer = consumer.for_shard(shards, pool.clone(), deliverer);
        consumer.run(cancel).await;
        let _ = done.send(());
        release.cancelled().await;
        pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::{report_panic, watch};
    use crate::background::Background;

    /// A shard thread's body run as `run` runs it, watched as the worker
    /// watches it; what the watcher reports.
    async fn watched(body: impl FnOnce(oneshot::Sender<()>) + Send + 'static) -> Option<String> {
        let (done, stopped) = oneshot::channel();
        let (panicked, report) = oneshot::channel();
        let thread = std::thread::spawn(move || report_panic(panicked, move || body(done)));
        let mut background = Background::default();
        background.spawn("consumer", watch(stopped, report));
        let ended = background.ended().await;
        thread.join().unwrap();
        assert_eq!(ended.task, "consumer");
        ended.how.strip_prefix("it panicked: ").map(str::to_owned)
    }

    #[tokio::test]
    async fn a_shard_that_panics_is_reported_with_its_message() {
        let message = watched(|_done| {
            let shard = 2;
            panic!("shard {shard}: no runtime");
        })
        .await;
        assert_eq!(message.as_deref(), Some("shard 2: no runtime"));
    }

    #[tokio::test]
    async fn a_shard_that_stops_or_returns_is_not_reported_as_a_panic() {
        assert_eq!(watched(|done| done.send(()).unwrap()).await, None);
        assert_eq!(watched(drop).await, None);
    }
}
