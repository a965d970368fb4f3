//! The daemon's long-running tasks: the consumers, the scheduler, the
//! retention job, the sampler, the broker watch.
//!
//! Each runs until shutdown; none returns on its own, and a panic ends only
//! its own task (or its consumer thread). So a task that ends early is a bug
//! that would leave the process half-working: still answering `/readyz`,
//! still holding its share of nothing. [`Background::ended`] reports it, and
//! the daemon shuts down and exits with an error naming the task, so its
//! supervisor restarts it.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinError, JoinSet};

/// A background task ended before shutdown.
#[derive(Debug, thiserror::Error)]
#[error("{task} stopped on its own ({how})")]
pub struct TaskEnded {
    pub(crate) task: &'static str,
    pub(crate) how: String,
}

#[derive(Default)]
pub struct Background {
    tasks: JoinSet<&'static str>,
    names: HashMap<Id, &'static str>,
}

impl Background {
    /// Runs `task` under `name`, the name reported if it ends early.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(async move {
            task.await;
            name
        });
        self.names.insert(handle.id(), name);
    }

    /// Resolves when a task ends; pending as long as every task runs (and
    /// forever when there is none).
    pub async fn ended(&mut self) -> TaskEnded {
        match self.tasks.join_next_with_id().await {
            Some(Ok((id, task))) => {
                self.names.remove(&id);
                TaskEnded {
                    task,
                    how: "it returned".to_owned(),
                }
            }
            Some(Err(e)) => TaskEnded {
                task: self.names.remove(&e.id()).unwrap_or("a background task"),
                how: describe(e),
            },
            None => std::future::pending().await,
        }
    }

    /// Waits for every task to end (they end on the shutdown signal).
    pub async fn drain(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }

    pub fn abort_all(&mut self) {
        self.tasks.abort_all();
    }
}

fn describe(e: JoinError) -> String {
    if e.is_cancelled() {
        return "it was cancelled".to_owned();
    }
    match e.try_into_panic() {
        Ok(payload) => format!("it panicked: {}", panic_message(&*payload)),
        Err(e) => e.to_string(),
    }
}

/// The message a panic was raised with.
pub fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use tokio_util::sync::CancellationToken;

    use super::Background;

    #[tokio::test]
    async fn nothing_is_reported_while_every_task_runs() {
        let mut background = Background::default();
        assert!(background.ended().now_or_never().is_none(), "no task");
        let stop = CancellationToken::new();
        let waiting = stop.clone();
        background.spawn("scheduler", async move { waiting.cancelled().await });
        tokio::task::yield_now().await;
        assert!(background.ended().now_or_never().is_none());
        stop.cancel();
        background.drain().await;
    }

    #[tokio::test]
    async fn a_task_that_returns_is_reported_by_name() {
        let mut background = Background::default();
        let stop = CancellationToken::new();
        let waiting = stop.clone();
        background.spawn("scheduler", async move { waiting.cancelled().await });
        background.spawn("retention", async {});
        let ended = background.ended().await;
        assert_eq!(ended.task, "retention");
        assert_eq!(
            ended.to_string(),
            "retention stopped on its own (it returned)"
        );
        stop.cancel();
        background.drain().await;
    }

    #[tokio::test]
    async fn a_task_that_panics_is_reported_by_name_with_its_message() {
        let mut background = Background::default();
        background.spawn("consumer", async {
            let shard = 3;
            panic!("shard {shard} lost its runtime");
        });
        let ended = background.ended().await;
        assert_eq!(ended.task, "consumer");
        assert_eq!(ended.how, "it panicked: shard 3 lost its runtime");
        background.spawn("sampler", async { panic!("static message") });
        assert_eq!(background.ended().await.how, "it panicked: static message");
    }
}
