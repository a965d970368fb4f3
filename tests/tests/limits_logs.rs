//! SPEC §15: `GET /webhooks/{id}/logs?include=bodies` is bounded by bytes as
//! well as rows; the cursor leads on to every row, each seen once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use serde_json::Value;
use webhookd_e2e::api::ApiServer;

/// `MAX_LOGS_PAGE_BODY_BYTES` (docs/API.md), plus room for the JSON around.
const PAGE_BUDGET: usize = 4 << 20;
const ENVELOPE_ROOM: usize = 64 << 10;

#[tokio::test]
async fn a_page_of_logs_with_bodies_stays_under_its_byte_budget_and_the_cursor_gets_the_rest() {
    let api = ApiServer::spawn().await;
    let alice = api.user("alice", false).await;
    let id = api.create_quiet_webhook(&alice, "big").await;
    // Ten rows of 1.5 MiB (a page holds two of them) and, oldest, one of
    // 6 MiB, which alone exceeds the budget.
    let mut seeded = Vec::new();
    for (i, bytes) in std::iter::once(6 << 20)
        .chain(std::iter::repeat_n(1_500_000, 10))
        .enumerate()
    {
        let row: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_logs (webhook_id, delivery_id, event, attempt, response_time_ms,
                 is_success, payload, response, created_at)
             VALUES ($1, gen_random_uuid(), 'task.created', 1, 5, false, repeat('p', $2), 'answer',
                     now() - make_interval(secs => $3))
             RETURNING id",
        )
        .bind(id)
        .bind(bytes)
        .bind(100.0 - i as f64)
        .fetch_one(&api.db.pool)
        .await
        .unwrap();
        seeded.push(row);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("{}/webhooks/{id}/logs?include=bodies&limit=200", api.base);
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = api
            .http
            .get(&path)
            .bearer_auth(&alice.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let bytes = response.bytes().await.unwrap();
        assert!(
            bytes.len() < PAGE_BUDGET + ENVELOPE_ROOM,
            "page {pages} is {} bytes",
            bytes.len()
        );
        let page: Value = serde_json::from_slice(&bytes).unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty(), "every page holds at least one row");
        assert!(items.len() < 200);
        for item in items {
            let row = item["id"].as_i64().unwrap();
            let payload = item["payload"].as_str().unwrap();
            if row == seeded[0] {
                assert_eq!(item["bodies_truncated"], true, "the 6 MiB row is cut");
                assert!(payload.len() <= PAGE_BUDGET);
                assert_eq!(items.len(), 1, "a row over the budget comes alone");
            } else {
                assert_eq!(payload.len(), 1_500_000, "other rows are whole");
                assert!(item.get("bodies_truncated").is_none(), "{}", item["id"]);
            }
            seen.push(row);
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert!(
        pages >= 6,
        "two 1.5 MiB rows per page at most: {pages} pages"
    );
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no row twice: {seen:?}");
    assert_eq!(unique, seeded.iter().copied().collect(), "every row once");
}
