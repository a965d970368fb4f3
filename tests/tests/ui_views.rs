//! The web UI's lists, logs and statistics in Chromium, in English and
//! Russian: long names stay within the window, owners by name, bidi controls
//! and internationalised domains shown for what they are, connection errors
//! that say where, date filters in the language's format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use webhookd_e2e::browser::{Browser, WAIT};
use webhookd_e2e::{eventually, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "ui-views-secret-0123456789abcdef";

fn task(title: &str) -> EventMessage {
    EventMessage::new(
        "task.created",
        json!({"task_id": 1, "title": title}),
        chrono::Utc::now().timestamp(),
    )
    .unwrap()
}

/// Signs in with the token form, whatever the page's language.
async fn sign_in(browser: &Browser, app: &TestApp, token: &str) {
    browser.goto(&app.url("/webhook/")).await;
    browser.fill("#token", token).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    eventually(WAIT, "the list after signing in", || async {
        (browser.path().await == "/webhook/").then_some(())
    })
    .await;
}

/// How far the page and the widest table reach past the window, in pixels
/// (0 when everything fits).
async fn overflow(browser: &Browser) -> u64 {
    browser
        .js_number(
            "var w = document.documentElement.clientWidth;
             var over = Math.max(0, document.documentElement.scrollWidth - w);
             document.querySelectorAll('.table-wrap').forEach(function (t) {
               over = Math.max(over, t.scrollWidth - t.clientWidth);
             });
             document.querySelectorAll('td, th').forEach(function (c) {
               over = Math.max(over, Math.ceil(c.getBoundingClientRect().right) - w);
             });
             return over;",
        )
        .await
}

async fn set_url(app: &TestApp, id: i64, url: &str) {
    sqlx::query("UPDATE webhooks SET url = $2 WHERE id = $1")
        .bind(id)
        .bind(url)
        .execute(&app.db.pool)
        .await
        .unwrap();
}

async fn set_name(app: &TestApp, id: i64, name: &str) {
    sqlx::query("UPDATE webhooks SET name = $2 WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(&app.db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_200_character_name_keeps_every_table_within_the_window() {
    let subscribed = TestApp::spawn_with_webhook(&[], json!(["task.*"]), SECRET).await;
    let app = &subscribed.app;
    let id = subscribed.webhook;
    let long_name = "Б".repeat(100) + &"x".repeat(100);
    set_name(app, id, &long_name).await;
    let long_url = format!(
        "{}/{}?{}",
        subscribed.receiver.url(),
        "path".repeat(40),
        "q".repeat(120)
    );
    app.publisher.publish(&task("long")).await.unwrap();
    subscribed.receiver.wait_for(1, WAIT).await;
    set_url(app, id, &long_url).await;

    let browser = Browser::start().await;
    sign_in(&browser, app, &subscribed.token).await;
    for path in [
        "/webhook/".to_owned(),
        format!("/webhook/{id}/logs"),
        "/webhook/stats".to_owned(),
    ] {
        browser.goto(&app.url(&path)).await;
        browser.find("table").await;
        assert_eq!(
            overflow(&browser).await,
            0,
            "{path} is wider than the window"
        );
    }
    browser.goto(&app.url("/webhook/")).await;
    // The row's other cells are in sight, next to the long name.
    for label in ["URL", "Events", "State"] {
        let cell = browser.find(&format!("td[data-label='{label}']")).await;
        assert!(cell.is_displayed().await.unwrap(), "{label}");
    }
    let name = browser.find("td[data-label='Name'] a").await;
    assert!(name.text().await.unwrap().contains("ББББ"));
    browser.screenshot("views-long-name").await;
    browser.close().await;
    subscribed.app.stop().await;
}
