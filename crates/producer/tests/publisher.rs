//! The publisher against a real RabbitMQ.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use lapin::options::{BasicAckOptions, BasicRejectOptions};
use serde_json::json;
use uuid::Uuid;
use webhookd_events::ParsedMessage;
use webhookd_producer::{declare, DealWon, Event, EventMessage, PublishError, Publisher, Topology};

use common::{broker_url, message_id, TestBroker};

fn deal_won(deal_id: i64) -> EventMessage {
    Event::deal_won(DealWon {
        deal_id,
        name: format!("Сделка #{deal_id}"),
        amount: 100000.0,
        client: "ООО Ромашка".into(),
        won_at: chrono::Utc::now(),
    })
}

#[tokio::test]
async fn a_published_event_is_in_the_queue_with_its_routing_key_id_and_persistence() {
    let broker = TestBroker::new().await;
    let publisher = broker.publisher().await;
    let event = deal_won(456).with_user_id(7);

    publisher.publish(&event).await.unwrap();

    let got = broker.get().await.expect("the event is queued");
    let delivery = &got.delivery;
    assert_eq!(delivery.routing_key.as_str(), "deal.won");
    assert_eq!(delivery.exchange.as_str(), broker.topology.exchange);
    assert_eq!(*delivery.properties.delivery_mode(), Some(2));
    assert_eq!(
        delivery
            .properties
            .content_type()
            .as_ref()
            .map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(message_id(delivery), Some(event.id));
    let parsed = ParsedMessage::parse(&delivery.data, 1 << 20).unwrap();
    assert_eq!(parsed.id, Some(event.id));
    assert_eq!(parsed.event.name, "deal.won");
    assert_eq!(parsed.user_id, Some(7));
    assert_eq!(parsed.timestamp, Some(event.timestamp));
    let data: serde_json::Value = serde_json::from_str(parsed.data.get()).unwrap();
    assert_eq!(data["amount"], json!(100000));
    assert_eq!(got.message_count, 0, "exactly one message");
    publisher.close().await;
}

#[tokio::test]
async fn declaring_the_topology_twice_is_harmless() {
    let broker = TestBroker::new().await;
    broker.declare().await;
    declare(&broker.channel, &broker.topology)
        .await
        .expect("a second declaration with the same arguments succeeds");
    // A publisher declares it a third time on connect.
    let publisher = broker.publisher().await;
    publisher.publish(&deal_won(1)).await.unwrap();
    assert_eq!(broker.message_count().await, 1);
    publisher.close().await;
}

#[tokio::test]
async fn a_message_rejected_by_the_daemon_lands_in_the_dead_letter_queue() {
    let broker = TestBroker::new().await;
    let publisher = broker.publisher().await;
    let event = deal_won(2);
    publisher.publish(&event).await.unwrap();

    let got = broker.get().await.expect("queued");
    got.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();

    let dlq = broker.topology.dead_letter_queue();
    let dead = common::eventually("the message is dead-lettered", || broker.get_from(&dlq)).await;
    assert_eq!(message_id(&dead.delivery), Some(event.id));
    dead.delivery.ack(BasicAckOptions::default()).await.unwrap();
    publisher.close().await;
}

#[tokio::test]
async fn an_event_no_queue_takes_is_an_unroutable_error_not_a_silent_drop() {
    let broker = TestBroker::new().await;
    let publisher = broker.publisher().await;
    broker.delete_queue().await;
    let event = deal_won(3);

    let error = publisher.publish(&event).await.unwrap_err();

    match error {
        PublishError::Unroutable {
            id, event: name, ..
        } => {
            assert_eq!(id, event.id);
            assert_eq!(name, "deal.won");
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    publisher.close().await;
}

#[tokio::test]
async fn an_unroutable_event_in_a_batch_is_reported_by_its_id() {
    let broker = TestBroker::new().await;
    let publisher = broker.publisher().await;
    broker.delete_queue().await;
    let events: Vec<EventMessage> = (0..50).map(deal_won).collect();

    let error = publisher.publish_many(&events, |_| {}).await.unwrap_err();

    match error {
        PublishError::Unroutable { id, .. } => {
            assert!(events.iter().any(|e| e.id == id), "{id} is one of ours")
        }
        other => panic!("expected Unroutable, got {other:?}"),
    }
    publisher.close().await;
}

#[tokio::test]
async fn an_unknown_event_is_refused_before_anything_is_sent() {
    let broker = TestBroker::new().await;
    let publisher = broker.publisher().await;
    let mut bogus = deal_won(4);
    bogus.event = "deal.exploded".into();

    let error = publisher
        .publish_many(&[deal_won(5), bogus], |_| {})
        .await
        .unwrap_err();

    assert!(matches!(error, PublishError::UnknownEvent(ref e) if e == "deal.exploded"));
    assert_eq!(broker.message_count().await, 0);
    publisher.close().await;
}

#[tokio::test]
async fn five_thousand_events_published_in_bulk_all_arrive() {
    let broker = TestBroker::new().await;
    let publisher = broker.publisher().await;
    let events: Vec<EventMessage> = (0..5000).map(deal_won).collect();
    let mut progress = Vec::new();

    publisher
        .publish_many(&events, |confirmed| progress.push(confirmed))
        .await
        .unwrap();

    assert_eq!(progress.last(), Some(&5000));
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress only grows"
    );
    let ids: HashSet<Uuid> = events.iter().map(|e| e.id).collect();
    let deliveries = broker.consume_until(&ids).await;
    assert_eq!(deliveries.len(), 5000, "no duplicates without a failure");
    publisher.close().await;
}

#[tokio::test]
async fn several_tasks_can_share_one_publisher() {
    let broker = TestBroker::new().await;
    let publisher = Arc::new(broker.publisher().await);
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let publisher = Arc::clone(&publisher);
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..50 {
                    let event = deal_won(task * 1000 + n);
                    publisher.publish(&event).await.unwrap();
                    ids.push(event.id);
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }

    assert_eq!(ids.len(), 400);
    broker.consume_until(&ids).await;
    publisher.close().await;
}

#[tokio::test]
async fn custom_events_in_the_catalogue_can_be_published() {
    let broker = TestBroker::new().await;
    let publisher = broker.publisher().await;
    let event = Event::custom("comment.added", json!({"comment_id": 1, "text": "hi"})).unwrap();

    publisher.publish(&event).await.unwrap();

    let got = broker.get().await.expect("queued");
    assert_eq!(got.delivery.routing_key.as_str(), "comment.added");
    publisher.close().await;
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast_without_showing_the_password() {
    let error = Publisher::connect("amqp://guest:s3cret@127.0.0.1:1/%2f", Topology::default())
        .await
        .unwrap_err();
    assert!(matches!(error, PublishError::Connect { .. }), "{error:?}");
    assert!(
        error.to_string().contains("guest:***@127.0.0.1:1"),
        "{error}"
    );
    assert!(!format!("{error:?}").contains("s3cret"));
    // The default URL is a valid one.
    assert!(webhookd_producer::BrokerUrl::parse(&broker_url()).is_ok());
}
