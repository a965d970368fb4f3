//! The publisher survives the broker dropping its connection.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::process::Command;
use tokio::task::JoinHandle;
use uuid::Uuid;
use webhookd_producer::{DealWon, Event, EventMessage, PublishError, Publisher, PublisherOptions};

use common::proxy::Proxy;
use common::{eventually, TestBroker};

fn options(connection_name: &str, reconnect_timeout: Duration) -> PublisherOptions {
    PublisherOptions {
        connection_name: connection_name.to_owned(),
        reconnect_timeout,
        max_in_flight: 100,
    }
}

fn deal_won(deal_id: i64) -> EventMessage {
    Event::deal_won(DealWon {
        deal_id,
        name: format!("deal {deal_id}"),
        amount: 1.0,
        client: "c".into(),
        won_at: chrono::Utc::now(),
    })
}

/// Publishes batches of 50 until stopped, recording every confirmed id.
struct Traffic {
    confirmed: Arc<Mutex<Vec<Uuid>>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Traffic {
    fn start(publisher: Arc<Publisher>) -> Traffic {
        let confirmed: Arc<Mutex<Vec<Uuid>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (confirmed, stop) = (confirmed.clone(), stop.clone());
            async move {
                let mut deal_id = 0;
                while !stop.load(Ordering::Relaxed) {
                    let batch: Vec<_> = (deal_id..deal_id + 50).map(deal_won).collect();
                    deal_id += 50;
                    publisher
                        .publish_many(&batch, |_| {})
                        .await
                        .expect("publishing rides through the outage");
                    let mut confirmed = confirmed.lock().expect("lock");
                    confirmed.extend(batch.iter().map(|e| e.id));
                }
            }
        });
        Traffic {
            confirmed,
            stop,
            task,
        }
    }

    fn count(&self) -> usize {
        self.confirmed.lock().expect("lock").len()
    }

    async fn wait_for(&self, what: &str, more_than: usize) {
        eventually(what, || async { (self.count() > more_than).then_some(()) }).await;
    }

    /// Stops publishing; the ids of every confirmed event.
    async fn stop(self) -> HashSet<Uuid> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the publishing task succeeds");
        let confirmed = self.confirmed.lock().expect("lock");
        confirmed.iter().copied().collect()
    }
}

/// The broker-side pid of the connection named `name`, once it is listed.
async fn connection_pid(name: &str) -> Option<String> {
    let output = Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "--no-table-headers"])
        .args(["pid", "client_properties"])
        .output()
        .await
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|line| line.contains(name))
        .and_then(|line| line.split('\t').next())
        .map(str::to_owned)
}

async fn close_connection(pid: &str) {
    let output = Command::new("rabbitmqctl")
        .args(["close_connection", pid, "closed by the reconnect test"])
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(
        output.status.success(),
        "rabbitmqctl close_connection {pid}"
    );
}

#[tokio::test]
async fn publishing_continues_after_the_broker_closes_the_connection_and_no_event_is_lost() {
    let broker = TestBroker::new().await;
    let name = format!("reconnect-test-{}", Uuid::new_v4());
    let publisher = Arc::new(
        broker
            .publisher_with(options(&name, Duration::from_secs(10)))
            .await,
    );
    let traffic = Traffic::start(publisher.clone());
    traffic.wait_for("some events are confirmed", 200).await;
    let pid = eventually("the connection is listed", || connection_pid(&name)).await;

    close_connection(&pid).await;
    let at_close = traffic.count();
    eventually("the publisher reconnected", || async {
        (publisher.reconnect_count() >= 1).then_some(())
    })
    .await;
    traffic
        .wait_for("publishing continued", at_close + 500)
        .await;
    let confirmed = traffic.stop().await;

    let new_pid = connection_pid(&name).await.expect("a new connection");
    assert_ne!(new_pid, pid);
    let deliveries = broker.consume_until(&confirmed).await;
    assert!(deliveries.len() >= confirmed.len());
    publisher.close().await;
}

#[tokio::test]
async fn publishing_rides_through_a_broker_outage_with_refused_reconnects() {
    let broker = TestBroker::new().await;
    let proxy = Proxy::start().await;
    let publisher = Arc::new(
        broker
            .publisher_at(proxy.url(), options("outage-test", Duration::from_secs(10)))
            .await,
    );
    let traffic = Traffic::start(publisher.clone());
    traffic.wait_for("some events are confirmed", 200).await;

    proxy.cut();
    let at_cut = traffic.count();
    eventually("reconnects were refused twice", || async {
        (proxy.refused() >= 2).then_some(())
    })
    .await;
    proxy.restore();
    traffic.wait_for("publishing resumed", at_cut + 500).await;
    let confirmed = traffic.stop().await;

    assert!(publisher.reconnect_count() >= 1);
    broker.consume_until(&confirmed).await;
    publisher.close().await;
}

#[tokio::test]
async fn a_publish_fails_with_connection_lost_when_the_broker_stays_away_past_the_timeout() {
    let broker = TestBroker::new().await;
    let proxy = Proxy::start().await;
    let publisher = broker
        .publisher_at(proxy.url(), options("gone-test", Duration::from_secs(1)))
        .await;
    publisher.publish(&deal_won(1)).await.unwrap();

    proxy.cut();
    let error = publisher.publish(&deal_won(2)).await.unwrap_err();

    assert!(
        matches!(error, PublishError::ConnectionLost { .. }),
        "{error:?}"
    );
    assert!(proxy.refused() >= 1);
    // The broker is back: the next publish reconnects.
    proxy.restore();
    publisher.publish(&deal_won(3)).await.unwrap();
    assert_eq!(broker.message_count().await, 2);
    publisher.close().await;
}

#[tokio::test]
async fn a_publisher_given_several_nodes_fails_over_to_the_next_and_loses_nothing() {
    let broker = TestBroker::new().await;
    let (first, second) = (Proxy::start().await, Proxy::start().await);
    let publisher = Arc::new(
        Publisher::connect_cluster(
            &[first.url(), second.url()],
            broker.topology.clone(),
            options("failover-test", Duration::from_secs(10)),
        )
        .await
        .expect("the publisher connects to the first node"),
    );
    let traffic = Traffic::start(publisher.clone());
    traffic.wait_for("some events are confirmed", 200).await;

    // The first node stops for good: in-flight events are republished on
    // the second, the next node of the list, without trying the first again.
    first.cut();
    let at_cut = traffic.count();
    traffic
        .wait_for("publishing continued on the second node", at_cut + 500)
        .await;
    let confirmed = traffic.stop().await;

    assert_eq!(publisher.reconnect_count(), 1);
    assert_eq!(first.refused(), 0, "the lost node was not retried first");
    let deliveries = broker.consume_until(&confirmed).await;
    assert!(deliveries.len() >= confirmed.len());
    publisher.close().await;
}

#[tokio::test]
async fn a_publisher_starts_on_the_first_node_that_answers() {
    let broker = TestBroker::new().await;
    let (down, up) = (Proxy::start().await, Proxy::start().await);
    down.cut();
    let publisher = Publisher::connect_cluster(
        &[down.url(), up.url()],
        broker.topology.clone(),
        options("first-answering-test", Duration::from_secs(10)),
    )
    .await
    .expect("the second node answers");
    publisher.publish(&deal_won(1)).await.unwrap();

    assert_eq!(down.refused(), 1);
    assert_eq!(broker.message_count().await, 1);
    publisher.close().await;

    let error = Publisher::connect_cluster(
        &[down.url()],
        broker.topology.clone(),
        options("no-node-test", Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            PublishError::Connect { .. } | PublishError::ConnectTimedOut { .. }
        ),
        "{error:?}"
    );
}

/// A policy capping `queue` at one message, refusing (nacking) more.
async fn cap_at_one_message(policy: &str, queue: &str) {
    let output = Command::new("rabbitmqctl")
        .args(["set_policy", "--apply-to", "queues", policy])
        .arg(format!("^{}$", queue.replace('.', "\\.")))
        .arg(r#"{"max-length": 1, "overflow": "reject-publish"}"#)
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(output.status.success(), "rabbitmqctl set_policy {policy}");
}

async fn clear_policy(policy: &str) {
    let _ = Command::new("rabbitmqctl")
        .args(["clear_policy", policy])
        .output()
        .await;
}

#[tokio::test]
async fn a_refused_message_is_republished_until_the_broker_takes_it_or_the_timeout() {
    let broker = TestBroker::new().await;
    broker.declare().await;
    let policy = format!("test-cap-{}", Uuid::new_v4().simple());
    cap_at_one_message(&policy, &broker.topology.queue).await;
    let publisher = Arc::new(
        broker
            .publisher_with(options("nack-test", Duration::from_secs(10)))
            .await,
    );
    publisher.publish(&deal_won(1)).await.unwrap();

    // The queue is full: the second is refused, again and again, until the
    // first is taken off the queue (as a quorum queue refuses until it has
    // a leader again).
    let second = tokio::spawn({
        let publisher = publisher.clone();
        async move { publisher.publish(&deal_won(2)).await }
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!second.is_finished(), "refused messages are retried");
    assert!(broker.get().await.is_some(), "the first message");
    second
        .await
        .unwrap()
        .expect("republished once there was room");
    assert!(broker.get().await.is_some(), "the second message");

    // A refusal that lasts past the timeout is the error.
    let short = broker
        .publisher_with(options("nack-timeout-test", Duration::from_secs(1)))
        .await;
    short.publish(&deal_won(3)).await.unwrap();
    let error = short.publish(&deal_won(4)).await.unwrap_err();
    assert!(matches!(error, PublishError::Nacked { .. }), "{error:?}");
    clear_policy(&policy).await;
    short.close().await;
    publisher.close().await;
}
