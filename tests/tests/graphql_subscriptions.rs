//! GraphQL subscriptions over WebSocket with the protocol's reference client
//! (`graphql-ws` on Node, tests/graphql-ws/), against the real daemon:
//! events under the privacy rule, on every API replica whichever worker
//! consumed them; attempts as workers record them; bad tokens; per-user
//! caps; a subscriber that stops reading cut off while others go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use webhookd_e2e::graphql::WsClient;
use webhookd_e2e::process::{sample, Daemon, Deployment};
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_producer::EventMessage;
use webhookd_store::webhooks::{create_webhook, NewWebhook};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(30);
const EVENTS: &str =
    "subscription { events(types: [\"task.*\"]) { id event timestamp userId data } }";
const ALL_EVENTS: &str = "subscription { events { id event userId data } }";

fn event(name: &str, n: i64, user: Option<i64>) -> EventMessage {
    let message = EventMessage::new(name, json!({"n": n}), chrono::Utc::now().timestamp()).unwrap();
    match user {
        Some(user) => message.with_user_id(user),
        None => message,
    }
}

fn ws_url(addr: std::net::SocketAddr) -> String {
    format!("ws://{addr}/graphql")
}

/// Waits until `metrics()` shows `open` subscriptions of `kind`.
async fn wait_for_open<F, Fut>(kind: &str, open: f64, metrics: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let name = format!("webhookd_graphql_subscriptions{{kind=\"{kind}\"}}");
    eventually(
        WAIT,
        &format!("{open} open {kind} subscriptions"),
        || async { (sample(&metrics().await, &name) == Some(open)).then_some(()) },
    )
    .await;
}

/// The errors a subscription fails with (as a `next` with `errors`, which
/// is how a resolver's error travels, or as an `error` message).
async fn failure(client: &mut WsClient) -> Value {
    loop {
        let line = client.next_line(WAIT).await;
        match line["kind"].as_str() {
            Some("next") => return line["payload"]["errors"].clone(),
            Some("error") => return line["errors"].clone(),
            Some("connected") => continue,
            _ => panic!("expected the subscription to fail: {line}"),
        }
    }
}

/// The `data` of the next `count` events a client receives.
async fn next_events(client: &mut WsClient, count: usize) -> Vec<Value> {
    let mut got = Vec::new();
    for _ in 0..count {
        let line = client.until("next", WAIT).await;
        assert!(line["payload"].get("errors").is_none(), "{line}");
        got.push(line["payload"]["data"]["events"].clone());
    }
    got
}

#[tokio::test]
async fn subscribers_get_the_events_they_match_and_may_see_and_no_others() {
    let app = TestApp::spawn().await;
    let (alice_id, alice) = app.create_user("Alice", Some(7), false).await;
    let (bob_id, bob) = app.create_user("Bob", Some(8), false).await;
    let (_, admin) = app.create_user("Root", None, true).await;
    let mut alices = WsClient::subscribe(&ws_url(app.addr), Some(&alice), EVENTS);
    let mut bobs = WsClient::subscribe(&ws_url(app.addr), Some(&bob), ALL_EVENTS);
    let mut admins = WsClient::subscribe(&ws_url(app.addr), Some(&admin), ALL_EVENTS);
    wait_for_open("events", 3.0, || app.metrics_text()).await;

    let published = [
        event("task.created", 1, Some(alice_id)),
        event("deal.won", 2, None),
        event("task.updated", 3, Some(bob_id)),
        event("task.completed", 4, None),
    ];
    for message in &published {
        app.publisher.publish(message).await.unwrap();
    }

    let first = alices.until("next", WAIT).await;
    let first = &first["payload"]["data"]["events"];
    assert_eq!(first["id"], published[0].id.to_string());
    assert_eq!(first["event"], "task.created");
    assert_eq!(first["userId"], alice_id);
    assert_eq!(first["timestamp"], published[0].timestamp);
    assert_eq!(first["data"], json!({"n": 1}), "data is JSON, not text");
    // Events arrive in publishing order, so what comes before the last
    // event everybody may see is all each subscriber got.
    let alice_rest = next_events(&mut alices, 1).await;
    assert_eq!(
        alice_rest[0]["data"],
        json!({"n": 4}),
        "not deal.won (a type not asked for) nor Bob's task.updated"
    );
    let bob_got: Vec<Value> = next_events(&mut bobs, 3)
        .await
        .iter()
        .map(|e| e["data"]["n"].clone())
        .collect();
    assert_eq!(
        bob_got,
        [json!(2), json!(3), json!(4)],
        "everything but Alice's event"
    );
    let admin_got: Vec<Value> = next_events(&mut admins, 4)
        .await
        .iter()
        .map(|e| e["data"]["n"].clone())
        .collect();
    assert_eq!(
        admin_got,
        [json!(1), json!(2), json!(3), json!(4)],
        "admins see every event"
    );

    for client in [alices, bobs, admins] {
        client.stop().await;
    }
    wait_for_open("events", 0.0, || app.metrics_text()).await;
    app.stop().await;
}

#[tokio::test]
async fn a_bad_or_missing_token_closes_the_socket_with_4403() {
    let app = TestApp::spawn().await;
    for token in [Some("whk_not_a_real_token"), None] {
        let mut client = WsClient::subscribe(&ws_url(app.addr), token, EVENTS);
        let closed = client.until("closed", WAIT).await;
        assert_eq!(closed["code"], 4403, "{token:?}: {closed}");
        client.stop().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn delivery_attempts_stream_as_recorded_to_the_owner_and_not_to_others() {
    let subscribed = TestApp::spawn_with_webhook(&[], json!(["task.*"]), SECRET).await;
    let app = &subscribed.app;
    let (_, bob) = app.create_user("Bob", None, false).await;
    let query = format!(
        "subscription {{ deliveryAttempts(webhookId: \"{}\") {{ deliveryId event attempt statusCode isSuccess responseTimeMs errorMessage createdAt }} }}",
        subscribed.webhook
    );
    let mut others = WsClient::subscribe(&ws_url(app.addr), Some(&bob), &query);
    let refused = failure(&mut others).await;
    assert_eq!(refused[0]["extensions"]["code"], "NOT_FOUND", "{refused}");
    assert_eq!(refused[0]["message"], "webhook not found");
    others.stop().await;

    let mut owner = WsClient::subscribe(&ws_url(app.addr), Some(&subscribed.token), &query);
    wait_for_open("delivery_attempts", 1.0, || app.metrics_text()).await;
    let published = event("task.created", 1, None);
    app.publisher.publish(&published).await.unwrap();
    subscribed.receiver.wait_for(1, WAIT).await;
    let line = owner.until("next", WAIT).await;
    let attempt = &line["payload"]["data"]["deliveryAttempts"];
    assert_eq!(attempt["event"], "task.created", "{line}");
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["statusCode"], 200);
    assert_eq!(attempt["isSuccess"], true);
    assert_eq!(attempt["errorMessage"], Value::Null);
    let delivery: String =
        sqlx::query_scalar("SELECT id::text FROM deliveries WHERE webhook_id = $1")
            .bind(subscribed.webhook)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(attempt["deliveryId"], delivery);
    owner.stop().await;
    subscribed.app.stop().await;
}

#[tokio::test]
async fn a_user_may_hold_only_so_many_subscriptions_at_once() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__GRAPHQL__MAX_SUBSCRIPTIONS_PER_USER", "1")]).await;
    let (_, alice) = app.create_user("Alice", None, false).await;
    let first = WsClient::subscribe(&ws_url(app.addr), Some(&alice), EVENTS);
    wait_for_open("events", 1.0, || app.metrics_text()).await;
    let mut second = WsClient::subscribe(&ws_url(app.addr), Some(&alice), EVENTS);
    let refused = failure(&mut second).await;
    assert_eq!(
        refused[0]["extensions"]["code"], "TOO_MANY_SUBSCRIPTIONS",
        "{refused}"
    );
    first.stop().await;
    second.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn every_api_replica_streams_every_event_whichever_worker_consumed_it() {
    let deployment = Deployment::new().await;
    let (user, token) =
        webhookd_store::users::create_user(&deployment.db.pool, "Alice", Some(70), false)
            .await
            .unwrap();
    let receiver = Receiver::start(SECRET).await;
    let webhook = create_webhook(
        &deployment.db.pool,
        &NewWebhook {
            user_id: user.id,
            name: "alice's".to_owned(),
            url: receiver.url(),
            events: vec!["*".to_owned()],
            secret: SECRET.to_owned(),
            is_active: true,
            timeout_ms: None,
            headers: Default::default(),
            template: None,
            batch_max_events: None,
            batch_max_wait_ms: 1000,
            filter: None,
            retry_schedule: None,
            ordering: Default::default(),
            auth: None,
            rate_limit_per_s: None,
        },
        &webhookd_events::SecretKeys::none(),
    )
    .await
    .unwrap()
    .unwrap();
    let _worker = deployment.worker(&[]).await;
    let env = deployment.env(&[]);
    let first = Daemon::start(&["run", "--role", "api"], &env).await;
    let second = Daemon::start(&["run", "--role", "api"], &env).await;

    let mut on_first = WsClient::subscribe(&ws_url(first.addr), Some(&token), ALL_EVENTS);
    let mut on_second = WsClient::subscribe(&ws_url(second.addr), Some(&token), ALL_EVENTS);
    let attempts = format!(
        "subscription {{ deliveryAttempts(webhookId: \"{}\") {{ event statusCode isSuccess }} }}",
        webhook.id
    );
    let mut attempts_on_second = WsClient::subscribe(&ws_url(second.addr), Some(&token), &attempts);
    wait_for_open("events", 1.0, || first.metrics()).await;
    wait_for_open("events", 1.0, || second.metrics()).await;
    wait_for_open("delivery_attempts", 1.0, || second.metrics()).await;

    let published = event("deal.won", 1, Some(user.id));
    deployment.publisher.publish(&published).await.unwrap();
    for client in [&mut on_first, &mut on_second] {
        let got = next_events(client, 1).await;
        assert_eq!(got[0]["id"], published.id.to_string());
        assert_eq!(got[0]["userId"], user.id);
    }
    receiver.wait_for(1, WAIT).await;
    let line = attempts_on_second.until("next", WAIT).await;
    assert_eq!(
        line["payload"]["data"]["deliveryAttempts"],
        json!({"event": "deal.won", "statusCode": 200, "isSuccess": true}),
        "the worker process's attempt reaches an API replica"
    );

    // SIGTERM: the subscriber is told with a close frame, the replica exits 0.
    first.terminate().await;
    let closed = on_first.until("closed", WAIT).await;
    assert_eq!(closed["code"], 1001, "{closed}");
    for client in [on_first, on_second, attempts_on_second] {
        client.stop().await;
    }
    deployment.cleanup().await;
}

/// A graphql-transport-ws client written by hand, which subscribes and then
/// never reads: what a stalled browser tab looks like to the server. The
/// reference client always reads, so it cannot play this part.
async fn stalled_subscriber(
    addr: std::net::SocketAddr,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let mut request = ws_url(addr).into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"token": token}});
    socket
        .send(Message::Text(init.to_string().into()))
        .await
        .unwrap();
    let ack = socket.next().await.unwrap().unwrap();
    assert!(ack.to_text().unwrap().contains("connection_ack"), "{ack:?}");
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": ALL_EVENTS}});
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    socket
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_cut_off_while_others_and_deliveries_go_on() {
    let subscribed = TestApp::spawn_with_webhook(
        &[("WEBHOOKD__GRAPHQL__SUBSCRIBER_BUFFER", "4")],
        json!(["*"]),
        SECRET,
    )
    .await;
    let app = &subscribed.app;
    let (_, reader_token) = app.create_user("Reader", None, false).await;
    let stalled = stalled_subscriber(app.addr, &subscribed.token).await;
    let mut reader = WsClient::subscribe(&ws_url(app.addr), Some(&reader_token), ALL_EVENTS);
    wait_for_open("events", 2.0, || app.metrics_text()).await;

    // Big events fill the socket buffers in between, then the stalled
    // subscriber's own buffer; bounded in count.
    let padding = "x".repeat(64 * 1024);
    let slow = "webhookd_graphql_disconnected_total{reason=\"slow\"}";
    let mut published = 0;
    while sample(&app.metrics_text().await, slow) != Some(1.0) {
        if published == 1000 {
            // On a loaded machine the stream may still be catching up with
            // what was published: the cut-off must come without more events.
            eventually(WAIT, "the stalled subscriber to be cut off", || async {
                (sample(&app.metrics_text().await, slow) == Some(1.0)).then_some(())
            })
            .await;
            break;
        }
        let message = EventMessage::new(
            "task.created",
            json!({"n": published, "padding": padding}),
            chrono::Utc::now().timestamp(),
        )
        .unwrap();
        app.publisher.publish(&message).await.unwrap();
        published += 1;
    }
    wait_for_open("events", 1.0, || app.metrics_text()).await;

    // The other subscriber and the webhook got everything, and go on.
    let marker = event("deal.won", -1, None);
    app.publisher.publish(&marker).await.unwrap();
    let mut seen = 0;
    loop {
        let got = next_events(&mut reader, 1).await;
        if got[0]["id"] == marker.id.to_string() {
            break;
        }
        assert_eq!(got[0]["data"]["n"], seen, "in order, none skipped");
        seen += 1;
    }
    assert_eq!(seen, published);
    subscribed
        .receiver
        .wait_for(published as usize + 1, WAIT)
        .await;

    // The stalled client, reading at last, finds its connection ended.
    let mut stalled = stalled;
    let ended = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = stalled.next().await {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await;
    // A client this far behind may never see the close frame (its socket
    // buffers are full and the server gives the frame a second); when it
    // does, the frame says why.
    let frame = ended.expect("the stalled connection was closed");
    if let Some(frame) = frame {
        assert_eq!(frame, (1013, "subscriber too slow".to_owned()));
    }
    reader.stop().await;
    subscribed.app.stop().await;
}

#[tokio::test]
async fn the_event_stream_taps_the_first_broker_node_that_answers() {
    // `broker.urls` starts with a node that does not answer: the stream,
    // like the workers, goes on to the next.
    let dead = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        webhookd_e2e::process::free_port()
    );
    let urls = format!("{dead},{}", webhookd_e2e::broker::AMQP_URL);
    let app = TestApp::spawn_with(&[("WEBHOOKD__BROKER__URLS", &urls)]).await;
    let (_, admin) = app.create_user("Root", None, true).await;
    let mut admins = WsClient::subscribe(&ws_url(app.addr), Some(&admin), ALL_EVENTS);
    wait_for_open("events", 1.0, || app.metrics_text()).await;
    let message = event("deal.won", 7, None);
    app.publisher.publish(&message).await.unwrap();
    let got = next_events(&mut admins, 1).await;
    assert_eq!(got[0]["id"], message.id.to_string());
    admins.stop().await;
    app.stop().await;
}
