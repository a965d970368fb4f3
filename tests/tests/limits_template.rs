//! SPEC §15: a template cannot amplify one event into an unbounded body. The
//! rendering stops at `limits.max_rendered_body_bytes`; the delivery fails
//! for good after one attempt and nothing else is held up.

#![allow(clippy::unwrap_used)]
use std::time::Duration;

use serde_json::json;
use webhookd_e2e::{Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn an_amplifying_template_fails_its_delivery_once_and_for_good_and_spares_the_others() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let amplified = Receiver::start(SECRET).await;
    let plain = Receiver::start(SECRET).await;
    // 500 copies of a 64 KiB `data` would be 32 MiB per attempt.
    let template = format!(r#"{{"text": "{}"}}"#, "{{data}}".repeat(500));
    let hostile = app
        .create_webhook(
            &token,
            json!({"name": "amplifier", "url": amplified.url(), "events": ["task.created"],
                   "secret": SECRET, "template": template}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let other = app
        .create_webhook_to(&token, &plain.url(), json!(["task.created"]), SECRET)
        .await;

    let event = EventMessage::new(
        "task.created",
        json!({"task_id": 1, "title": "x".repeat(64 * 1024)}),
        1708435200,
    )
    .unwrap();
    app.publisher.publish(&event).await.unwrap();

    plain.wait_for(1, WAIT).await;
    assert_eq!(app.wait_for_settled(other, WAIT).await, "succeeded");
    assert_eq!(app.wait_for_settled(hostile, WAIT).await, "failed");
    let logs: Vec<(i32, Option<String>, i64)> = sqlx::query_as(
        "SELECT attempt, error_message, length(payload)::bigint FROM webhook_logs WHERE webhook_id = $1",
    )
    .bind(hostile)
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(logs.len(), 1, "one attempt, never retried: {logs:?}");
    let (attempt, error, payload_len) = &logs[0];
    assert_eq!(*attempt, 1);
    assert_eq!(
        error.as_deref(),
        Some("rendered body exceeds limits.max_rendered_body_bytes (1048576 bytes)")
    );
    assert!(
        *payload_len < 128 * 1024,
        "the log keeps the envelope, not the rendered body: {payload_len} bytes"
    );
    assert_eq!(amplified.count(), 0, "nothing was sent to the receiver");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM deliveries WHERE webhook_id = $1")
        .bind(hostile)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(attempts, 1);
    app.stop().await;
}
