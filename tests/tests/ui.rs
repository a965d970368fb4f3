//! The web UI in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/ensure-browser.sh`) driven over
//! WebDriver by `fantoccini`, against the whole daemon (`TestApp`) with a
//! real receiver on 127.0.0.1.
//!
//! Screenshots of the main pages are written to `target/ui-screenshots/`
//! for review. Without a browser these tests fail, saying how to install
//! one: a browser test that silently passes would prove nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fantoccini::Locator;
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;
use webhookd_e2e::browser::{Browser, DESKTOP, WAIT};
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "ui-test-secret-0123456789abcdef";
const PHONE_WIDTH: u32 = 375;

fn task(event: &str, title: &str) -> EventMessage {
    EventMessage::new(
        event,
        json!({"task_id": 1, "title": title, "status": "pending"}),
        chrono::Utc::now().timestamp(),
    )
    .unwrap()
    .with_user_id(7)
}

async fn delivery_status(app: &TestApp, event: &str) -> Option<String> {
    sqlx::query(
        "SELECT d.status FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.event = $1",
    )
    .bind(event)
    .fetch_optional(&app.db.pool)
    .await
    .unwrap()
    .map(|row| row.get("status"))
}

#[tokio::test]
async fn a_user_signs_in_creates_a_telegram_webhook_tests_it_watches_deliveries_retries_and_deletes_it(
) {
    let app = TestApp::spawn_with(&[
        ("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true"),
        ("WEBHOOKD__DELIVERY__MAX_ATTEMPTS", "2"),
    ])
    .await;
    let (_alice, token) = app.create_user("Alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    let browser = Browser::start().await;

    // Sign in: the list sends us to the sign-in page and back.
    browser.goto(&app.url("/webhook/")).await;
    browser.expect_heading("Sign in").await;
    browser.screenshot("login").await;
    browser.sign_in(&app, &token).await;

    // A webhook from the Telegram preset, with a live preview.
    browser.click("a[href='/webhook/new']").await;
    browser.expect_heading("New webhook").await;
    browser.fill("#name", "CRM tasks to Telegram").await;
    browser.fill("#url", &receiver.url()).await;
    browser.fill("#secret", SECRET).await;
    browser.click("#events-task-all").await;
    browser
        .find("#preset")
        .await
        .select_by_value("telegram")
        .await
        .unwrap();
    browser.click("[data-apply-preset]").await;
    let template_field = browser.find("#template").await;
    eventually(WAIT, "the Telegram preset in the editor", || async {
        let value = template_field.prop("value").await.ok()??;
        value.contains("<chat_id>").then_some(())
    })
    .await;
    let telegram = webhookd_events::find_preset("telegram")
        .and_then(|p| p.template)
        .unwrap()
        .replace("<chat_id>", "42");
    browser.fill("#template", &telegram).await;
    eventually(WAIT, "the preview of the edited template", || async {
        let preview = browser.text("#preview-output").await;
        (preview.contains(r#""chat_id": "42""#)
            && preview.contains("task.created: Call the client back"))
        .then_some(())
    })
    .await;
    browser.screenshot("form").await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Webhook created").await;
    let shown = browser
        .find("#new-secret")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(shown.as_deref(), Some(SECRET), "the secret is shown once");
    browser.click("a.button.primary").await;
    browser.expect_heading("CRM tasks to Telegram").await;
    let details = browser.path().await;
    let id: i64 = details.trim_start_matches("/webhook/").parse().unwrap();

    // Test it against the receiver.
    browser
        .click(&format!("form[action='/webhook/{id}/test'] button"))
        .await;
    browser.expect_heading("Test delivery").await;
    assert_eq!(browser.text("#test-status").await, "HTTP 200");
    let test = &receiver.wait_for(1, WAIT).await[0];
    assert!(test.seed_signature_valid && test.standard_signature_valid);
    assert_eq!(test.json()["chat_id"], "42");
    assert_eq!(
        test.json()["text"],
        "webhook.test: Test delivery from webhookd"
    );
    browser.screenshot("test-result").await;

    // A published event shows in the logs, and one attempt in full.
    app.publisher
        .publish(&task("task.created", "Ship the web UI"))
        .await
        .unwrap();
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got[1].json()["text"], "task.created: Ship the web UI");
    let logs = app.url(&format!("/webhook/{id}/logs"));
    // Its row, not just the name: the page names events elsewhere too.
    eventually(WAIT, "the delivery in the logs", || async {
        browser.goto(&logs).await;
        let events = browser.texts("td[data-label=Event]").await;
        (events.first().map(String::as_str) == Some("task.created")).then_some(())
    })
    .await;
    browser.screenshot("logs").await;
    browser.click("td[data-label=Details] a").await;
    browser.expect_heading("Attempt 1 of").await;
    assert!(browser.text("pre.body").await.contains("Ship the web UI"));
    browser.screenshot("attempt").await;

    // A failing receiver, then a retry by hand once it is back.
    receiver.always(500);
    app.publisher
        .publish(&task("task.updated", "Retry me"))
        .await
        .unwrap();
    eventually(WAIT, "the delivery to fail twice", || async {
        (delivery_status(&app, "task.updated").await.as_deref() == Some("failed")).then_some(())
    })
    .await;
    receiver.always(200);
    browser
        .goto(&app.url(&format!(
            "/webhook/{id}/logs?event=task.updated&success=false"
        )))
        .await;
    browser.click("td[data-label=Details] a").await;
    browser.expect_heading("Attempt").await;
    browser.click("form[action$='/retry'] button").await;
    browser.expect_heading("CRM tasks to Telegram").await;
    assert!(browser
        .text(".notice")
        .await
        .contains("1 delivery will be retried now"));
    eventually(WAIT, "the retried delivery to succeed", || async {
        (delivery_status(&app, "task.updated").await.as_deref() == Some("succeeded")).then_some(())
    })
    .await;
    let retried = receiver
        .received()
        .iter()
        .filter(|r| r.json()["text"] == "task.updated: Retry me")
        .count();
    assert_eq!(retried, 3, "two failed attempts and the retry");
    browser.goto(&app.url(&details)).await;
    assert!(browser.body_text().await.contains("succeeded"));
    browser.screenshot("details").await;

    // Statistics and the list with the outcomes.
    browser.goto(&app.url("/webhook/stats")).await;
    browser.expect_heading("Statistics").await;
    browser.find("svg.hourly rect.bar-ok").await;
    browser.find("svg.hourly rect.bar-fail").await;
    assert!(browser.body_text().await.contains("CRM tasks to Telegram"));
    browser.screenshot("stats").await;
    browser.goto(&app.url("/webhook/")).await;
    browser.expect_heading("Webhooks").await;
    assert!(browser.body_text().await.contains("succeeded"));
    browser.screenshot("list").await;

    // Readable on a phone: nothing wider than the screen.
    browser
        .client
        .set_window_size(PHONE_WIDTH, 800)
        .await
        .unwrap();
    for path in [
        "/webhook/".to_owned(),
        "/webhook/new".to_owned(),
        details.clone(),
        format!("/webhook/{id}/logs"),
        "/webhook/stats".to_owned(),
    ] {
        browser.goto(&app.url(&path)).await;
        browser.find("h1").await;
        let wide = browser
            .js_number("return document.documentElement.scrollWidth")
            .await;
        let view = browser.js_number("return window.innerWidth").await;
        assert!(wide <= view, "{path} is {wide}px wide on a {view}px screen");
        if path == "/webhook/" {
            browser.screenshot("list-phone").await;
        }
        if path == details {
            browser.screenshot("details-phone").await;
        }
    }
    browser
        .client
        .set_window_size(DESKTOP.0, DESKTOP.1)
        .await
        .unwrap();

    // Edit: the form comes back filled in, and saves.
    browser.goto(&app.url(&details)).await;
    browser
        .click(&format!("a[href='/webhook/{id}/edit']"))
        .await;
    browser.expect_heading("Edit webhook").await;
    let kept = browser.find("#template").await.prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some(telegram.as_str()));
    browser.fill("#name", "CRM tasks to Telegram (ops)").await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("CRM tasks to Telegram (ops)").await;
    assert!(browser.text(".notice").await.contains("Changes saved"));

    // Rotate the secret: the new one is shown once, the old one's expiry too.
    browser.click("details.rotate summary").await;
    browser
        .find("#grace_period_secs")
        .await
        .select_by_value("3600")
        .await
        .unwrap();
    browser
        .click(&format!(
            "form[action='/webhook/{id}/rotate-secret'] button"
        ))
        .await;
    browser.client.accept_alert().await.unwrap();
    browser.expect_heading("Secret rotated").await;
    let rotated = browser
        .find("#new-secret")
        .await
        .prop("value")
        .await
        .unwrap();
    assert!(rotated.is_some_and(|s| s.starts_with("whsec_")));
    assert!(browser
        .body_text()
        .await
        .contains("The previous secret stays valid until"));
    browser.click("a.button.primary").await;

    // Toggle off.
    browser.goto(&app.url(&details)).await;
    browser
        .click(&format!("form[action='/webhook/{id}/toggle'] button"))
        .await;
    browser.expect_heading("CRM tasks to Telegram").await;
    assert!(browser.text(".notice").await.contains("switched off"));
    assert!(browser.text("h1").await.contains("inactive"));
    let active: bool = sqlx::query_scalar("SELECT is_active FROM webhooks WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(!active);

    // Delete, confirmed in the script's confirm() dialog.
    browser.click("button.danger").await;
    browser.client.accept_alert().await.unwrap();
    browser.expect_heading("Webhooks").await;
    assert!(browser.text(".notice").await.contains("Webhook deleted"));
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);

    // Sign out: the pages ask for a sign-in again.
    browser.click(".sign-out button").await;
    browser.expect_heading("Sign in").await;
    browser.goto(&app.url("/webhook/")).await;
    browser.expect_heading("Sign in").await;

    browser.close().await;
    app.stop().await;
}

/// The `value` of the first `_csrf` field of a page.
#[tokio::test]
async fn a_batching_webhook_is_set_up_in_the_form_and_its_batch_attempt_opens_its_events() {
    let app = TestApp::spawn().await;
    let (_alice, token) = app.create_user("Alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;

    browser.goto(&app.url("/webhook/new")).await;
    browser.expect_heading("New webhook").await;
    let hint = browser.text("#batch-events-hint").await;
    assert!(hint.contains("Empty sends one request per event"), "{hint}");
    assert!(browser
        .text("#batch-wait-hint")
        .await
        .contains("oldest event"));
    browser.fill("#name", "Batched tasks").await;
    browser.fill("#url", &receiver.url()).await;
    browser.fill("#secret", SECRET).await;
    browser.click("#events-task-all").await;
    // With a template: refused next to the batch field, nothing saved.
    browser.fill("#batch_max_events", "3").await;
    browser.fill("#batch_max_wait_ms", "60000").await;
    browser
        .fill("#template", r#"{"text": "{{data.title}}"}"#)
        .await;
    browser.click("button.primary[value=save]").await;
    let error = browser.text("#batch_max_events-error").await;
    assert!(
        error.contains("a batch size or a template, not both"),
        "{error}"
    );
    browser.find("#template").await.clear().await.unwrap();
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Webhook created").await;
    let webhook: (i64, Option<i32>, i32) = sqlx::query_as(
        "SELECT id, batch_max_events, batch_max_wait_ms FROM webhooks WHERE name = 'Batched tasks'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!((webhook.1, webhook.2), (Some(3), 60_000));
    let id = webhook.0;

    let events: Vec<EventMessage> = (0..3)
        .map(|n| task("task.created", &format!("batched {n}")))
        .collect();
    for event in &events {
        app.publisher.publish(event).await.unwrap();
    }
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-webhook-batch-size"), "3");
    eventually(WAIT, "the batch's attempt logged", || async {
        let logged: i64 =
            sqlx::query_scalar("SELECT count(*) FROM webhook_logs WHERE event = 'batch'")
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        (logged == 1).then_some(())
    })
    .await;

    browser.goto(&app.url(&format!("/webhook/{id}/logs"))).await;
    browser.expect_heading("Logs").await;
    assert_eq!(browser.text("a.batch-size").await, "3 events");
    browser.screenshot("logs-batch").await;
    browser.click("a.batch-size").await;
    browser.expect_heading("Attempt 1 of batch").await;
    assert_eq!(
        browser.text("#batch-events").await,
        "Events in this batch (3)"
    );
    let shown = browser.texts("td[data-label='Event ID'] code").await;
    let sent: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(shown, sent, "its events, in the order sent");
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_filter_is_written_checked_against_an_event_and_saved_with_a_retry_schedule() {
    let app = TestApp::spawn().await;
    let (_alice, token) = app.create_user("Alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;

    browser.goto(&app.url("/webhook/new")).await;
    browser.expect_heading("New webhook").await;
    assert!(
        browser.text("#filter-hint").await.contains("$gte"),
        "an example"
    );
    browser.fill("#name", "Big deals").await;
    browser.fill("#url", &receiver.url()).await;
    browser.fill("#secret", SECRET).await;
    browser.click("#events-deal-all").await;
    browser.fill("#retry_schedule", "5, 300").await;

    // A filter that cannot be saved says where it is wrong, beside the field.
    browser
        .fill("#filter", r#"{"data.amount": {"$near": 1}}"#)
        .await;
    browser.click("button.primary[value=save]").await;
    let error = browser.text("#filter-error").await;
    assert!(
        error.contains("data.amount") && error.contains("$near"),
        "{error}"
    );

    // "Does this event match?" against a pasted event, both ways.
    browser
        .fill("#filter", r#"{"data.amount": {"$gte": 100000}}"#)
        .await;
    for (amount, verdict) in [(5, "Does not match"), (250_000, "Matches")] {
        let sample = json!({"event": "deal.won", "data": {"amount": amount}}).to_string();
        browser.fill("#filter_sample", &sample).await;
        browser.click("button[value=check-filter]").await;
        eventually(WAIT, verdict, || async {
            let shown = browser
                .client
                .find(Locator::Css("#filter-check"))
                .await
                .ok()?;
            let text = shown.text().await.ok()?;
            // The page before the click had no verdict, or the other one.
            (text.starts_with(verdict) && browser.text("#filter_sample").await.contains(&sample))
                .then_some(())
        })
        .await;
    }
    browser.screenshot("filter-check").await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Webhook created").await;
    let (id, filter, schedule): (i64, serde_json::Value, Vec<i32>) =
        sqlx::query_as("SELECT id, filter, retry_schedule FROM webhooks WHERE name = 'Big deals'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(filter, json!({"data.amount": {"$gte": 100000}}));
    assert_eq!(schedule, [5, 300]);

    // Only the big deal is delivered; the edit form then checks the filter
    // against that latest event.
    for amount in [5, 300_000] {
        let deal = EventMessage::new(
            "deal.won",
            json!({"deal_id": amount, "amount": amount}),
            1708435200,
        )
        .unwrap()
        .with_user_id(7);
        app.publisher.publish(&deal).await.unwrap();
    }
    let got = receiver.wait_for(1, WAIT).await;
    assert!(String::from_utf8_lossy(&got[0].body).contains("300000"));
    // The delivery is recorded after the receiver has answered.
    eventually(WAIT, "the delivery recorded", || async {
        let recorded: i64 =
            sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE webhook_id = $1")
                .bind(id)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        (recorded > 0).then_some(())
    })
    .await;
    browser.goto(&app.url(&format!("/webhook/{id}/edit"))).await;
    browser.expect_heading("Edit webhook").await;
    assert!(
        browser.text("#filter_sample").await.contains("300000"),
        "the latest event"
    );
    assert!(browser.text("#filter-check").await.starts_with("Matches"));
    assert_eq!(
        browser
            .find("#retry_schedule")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("5, 300")
    );
    browser.goto(&app.url(&format!("/webhook/{id}"))).await;
    assert_eq!(
        browser.text("#retry-schedule-shown").await,
        "after 5 s, 300 s (3 attempts in all)"
    );
    assert!(browser.text("#filter-shown").await.contains("$gte"));
    assert_eq!(receiver.count(), 1, "the small deal was never sent");
    browser.close().await;
    app.stop().await;
}

fn csrf_of(page: &str) -> String {
    let start = page.find(r#"name="_csrf" value=""#).expect("a CSRF field") + 20;
    let end = start + page[start..].find('"').unwrap();
    page[start..end].to_owned()
}

#[tokio::test]
async fn another_users_webhook_is_a_404_page_and_forms_without_the_csrf_token_are_refused() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let (_alice, alice) = app.create_user("Alice", Some(7), false).await;
    let (_bob, bob) = app.create_user("Bob", Some(8), false).await;
    // Nothing listens there: test deliveries fail at once, on 127.0.0.1.
    let nowhere = webhookd_e2e::receiver::closed_port_url().await;
    let hook = |name: &str| json!({"name": name, "url": nowhere, "events": ["*"]});
    let mine = app.create_webhook(&alice, hook("Alice's hook")).await["id"]
        .as_i64()
        .unwrap();
    let theirs = app.create_webhook(&bob, hook("Bob's secret hook")).await["id"]
        .as_i64()
        .unwrap();
    let browser = Browser::start().await;
    browser.sign_in(&app, &alice).await;
    assert!(browser.body_text().await.contains("Alice's hook"));
    assert!(!browser.body_text().await.contains("Bob's secret hook"));
    for path in [
        format!("/webhook/{theirs}"),
        format!("/webhook/{theirs}/logs"),
    ] {
        browser.goto(&app.url(&path)).await;
        browser.expect_heading("Not found").await;
        assert!(!browser.body_text().await.contains("Bob's"));
    }
    browser.screenshot("not-found").await;

    // The browser's session cookie, used by hand.
    let cookie = browser.session_cookie().await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let get = |path: String| http.get(app.url(&path)).header(COOKIE, &cookie).send();
    assert_eq!(
        get(format!("/webhook/{theirs}")).await.unwrap().status(),
        404
    );
    let page = get(format!("/webhook/{mine}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let post = |path: String, form: Vec<(&'static str, String)>| {
        http.post(app.url(&path))
            .header(COOKIE, &cookie)
            .form(&form)
            .send()
    };
    let refused = [
        (format!("/webhook/{mine}/toggle"), vec![]),
        (
            format!("/webhook/{mine}/toggle"),
            vec![("_csrf", "forged".to_owned())],
        ),
        (
            format!("/webhook/{mine}/toggle"),
            vec![("_csrf", String::new())],
        ),
        (format!("/webhook/{mine}"), vec![]),
        (
            format!("/webhook/{mine}/delete"),
            vec![("confirmed", "yes".to_owned())],
        ),
        ("/webhook/new".to_owned(), vec![("name", "x".to_owned())]),
        ("/logout".to_owned(), vec![]),
        (
            "/webhook/preview".to_owned(),
            vec![("template", "{}".to_owned())],
        ),
    ];
    for (path, form) in refused {
        let response = post(path.clone(), form).await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "POST {path}");
    }
    let still_there: (bool, i64) = sqlx::query_as(
        "SELECT is_active, (SELECT COUNT(*) FROM webhooks) FROM webhooks WHERE id = $1",
    )
    .bind(mine)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(still_there, (true, 2), "nothing was changed");

    // With the token the same requests work, and ownership still holds.
    let toggled = post(
        format!("/webhook/{mine}/toggle"),
        vec![("_csrf", csrf.clone())],
    );
    assert_eq!(toggled.await.unwrap().status(), StatusCode::SEE_OTHER);
    let theirs_toggled = post(
        format!("/webhook/{theirs}/toggle"),
        vec![("_csrf", csrf.clone())],
    );
    assert_eq!(
        theirs_toggled.await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    // Without JavaScript, deleting asks on a page of its own first.
    let ask = post(
        format!("/webhook/{mine}/delete"),
        vec![("_csrf", csrf.clone())],
    )
    .await
    .unwrap();
    assert_eq!(ask.status(), StatusCode::OK);
    assert!(ask.text().await.unwrap().contains("Delete for good"));
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);

    // Without JavaScript, the form's preset and preview buttons post it back.
    let with_preset = post(
        "/webhook/new".to_owned(),
        vec![
            ("_csrf", csrf.clone()),
            ("name", "Kept".to_owned()),
            ("action", "apply-preset".to_owned()),
            ("preset", "discord".to_owned()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(with_preset.status(), StatusCode::OK);
    let form = with_preset.text().await.unwrap();
    assert!(form.contains(r#"value="Kept""#) && form.contains("allowed_mentions"));
    let previewed = post(
        "/webhook/new".to_owned(),
        vec![
            ("_csrf", csrf.clone()),
            ("action", "preview".to_owned()),
            ("template", r#"{"t": "{{data.name}}"}"#.to_owned()),
            ("preview_event", "deal.won".to_owned()),
        ],
    );
    let previewed = previewed.await.unwrap().text().await.unwrap();
    assert!(
        previewed.contains("&quot;t&quot;: &quot;Annual licence&quot;"),
        "{previewed}"
    );
    let live = post(
        "/webhook/preview".to_owned(),
        vec![("_csrf", csrf.clone()), ("template", "{".to_owned())],
    );
    let live: serde_json::Value = live.await.unwrap().json().await.unwrap();
    assert_eq!(live["ok"], false, "{live}");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhooks")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 2, "neither button saves");

    // A failed test shows its error; the logs page one attempt at a time.
    for _ in 0..2 {
        let test = post(
            format!("/webhook/{mine}/test"),
            vec![("_csrf", csrf.clone())],
        );
        // Post/redirect/get: the answer is on the page redirected to.
        let result = test.await.unwrap().headers()["location"]
            .to_str()
            .unwrap()
            .to_owned();
        let page = get(result).await.unwrap().text().await.unwrap();
        assert!(
            page.contains("no response") && page.contains("connection"),
            "{page}"
        );
    }
    let first = get(format!("/webhook/{mine}/logs?limit=1")).await.unwrap();
    let first = first.text().await.unwrap();
    let older = first.find("cursor=").expect("a link to older attempts");
    let cursor = &first[older..older + first[older..].find('"').unwrap()];
    let second = get(format!("/webhook/{mine}/logs?limit=1&{cursor}"))
        .await
        .unwrap();
    let second = second.text().await.unwrap();
    let attempt_link = |page: &str| {
        let at = page.find(&format!("/webhook/{mine}/logs/")).unwrap();
        page[at..at + page[at..].find('"').unwrap()].to_owned()
    };
    assert_ne!(
        attempt_link(&first),
        attempt_link(&second),
        "pages do not overlap"
    );
    assert!(!second.contains("cursor="), "two attempts, two pages");
    browser.close().await;

    // Signing in by hand: the form's own token, the cookie's attributes.
    let login = http.get(app.url("/login")).send().await.unwrap();
    let nonce_cookie = login.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let nonce = csrf_of(&login.text().await.unwrap());
    let nonce_pair = nonce_cookie.split(';').next().unwrap().to_owned();
    let sign_in = |token: &str, csrf: &str, https: bool| {
        let mut request = http.post(app.url("/login")).form(&[
            ("_csrf", csrf),
            ("token", token),
            ("next", "/webhook/"),
        ]);
        if https {
            // Over HTTPS the form's cookie is `__Host-` prefixed.
            request = request
                .header("x-forwarded-proto", "https")
                .header(COOKIE, format!("__Host-{nonce_pair}"));
        } else {
            request = request.header(COOKIE, &nonce_pair);
        }
        request.send()
    };
    assert_eq!(
        sign_in(&bob, "", false).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let wrong = sign_in("whk_not-a-token", &nonce, false).await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for https in [false, true] {
        let signed_in = sign_in(&bob, &nonce, https).await.unwrap();
        assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
        let session = signed_in
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .find(|v| {
                let name = if https {
                    "__Host-webhookd_session="
                } else {
                    "webhookd_session="
                };
                v.starts_with(name)
            })
            .unwrap()
            .to_owned();
        assert!(
            session.contains("; HttpOnly") && session.contains("; SameSite=Lax"),
            "{session}"
        );
        assert_eq!(session.contains("; Secure"), https, "{session}");
    }

    // An admin sees every webhook and can pick one user's.
    let (_root, root) = app.create_user("Root", Some(1), true).await;
    let admin = sign_in(&root, &nonce, false).await.unwrap();
    let admin_cookie = admin
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("webhookd_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let (client, server, admin_cookie) = (&http, &app, &admin_cookie);
    let admin_page = |path: &'static str| async move {
        let response = client
            .get(server.url(path))
            .header(COOKIE, admin_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        response.text().await.unwrap()
    };
    let all = admin_page("/webhook/").await;
    assert!(
        all.contains("Alice's hook") && all.contains("Bob's secret hook"),
        "{all}"
    );
    let bobs = admin_page("/webhook/?user_id=8").await;
    assert!(bobs.contains("Bob's secret hook") && !bobs.contains("Alice's hook"));
    let stats = admin_page("/webhook/stats?period=7d&user_id=7").await;
    assert!(stats.contains("Alice's hook") && !stats.contains("Bob's"));
    app.stop().await;
}

/// One integration of docs/INTEGRATIONS.md: its preset, an example URL, and
/// what its preview must show.
struct Integration {
    screenshot: &'static str,
    preset: &'static str,
    name: &'static str,
    url: &'static str,
    events: &'static [&'static str],
    preview_shows: &'static str,
}

const INTEGRATIONS: &[Integration] = &[
    Integration {
        screenshot: "integration-slack",
        preset: "slack",
        name: "Deals to Slack",
        url: "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        events: &["deal.*"],
        preview_shows: r#""text": "*task.created*: Call the client back""#,
    },
    Integration {
        screenshot: "integration-telegram",
        preset: "telegram",
        name: "Tasks to Telegram",
        url: "https://api.telegram.org/bot123456789:AAExampleExampleExample/sendMessage",
        events: &["task.*"],
        preview_shows: r#""chat_id": "<chat_id>""#,
    },
    Integration {
        screenshot: "integration-discord",
        preset: "discord",
        name: "Comments to Discord",
        url: "https://discord.com/api/webhooks/123456789012345678/example-token",
        events: &["comment.added"],
        preview_shows: r#""content": "**task.created**: Call the client back""#,
    },
    Integration {
        screenshot: "integration-teams",
        preset: "teams",
        name: "Won deals to Teams",
        url:
            "https://example.westeurope.logic.azure.com/workflows/0000/triggers/manual/paths/invoke",
        events: &["deal.won"],
        preview_shows: r#""type": "AdaptiveCard""#,
    },
    Integration {
        screenshot: "integration-zapier",
        preset: "raw",
        name: "Everything to Zapier",
        url: "https://hooks.zapier.com/hooks/catch/123456/abcdef/",
        events: &["*"],
        preview_shows: r#""event": "task.created""#,
    },
    Integration {
        screenshot: "integration-make",
        preset: "raw",
        name: "Clients to Make",
        url: "https://hook.eu1.make.com/abcdefghijklmnopqrstuvwxyz012345",
        events: &["client.created"],
        preview_shows: r#""event": "task.created""#,
    },
];

#[tokio::test]
async fn the_webhook_form_starts_from_each_integrations_preset_with_its_preview() {
    let app = TestApp::spawn().await;
    let (_alice, token) = app.create_user("Alice", Some(7), false).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;
    for integration in INTEGRATIONS {
        browser.goto(&app.url("/webhook/new")).await;
        browser.expect_heading("New webhook").await;
        browser.fill("#name", integration.name).await;
        browser.fill("#url", integration.url).await;
        for event in integration.events {
            let id = match event.strip_suffix(".*") {
                Some(entity) => format!("#events-{entity}-all"),
                None if *event == "*" => "#events-all".to_owned(),
                None => format!("#events-{}", event.replace('.', "\\.")),
            };
            browser.click(&id).await;
        }
        let select = browser.find("#preset").await;
        select.select_by_value(integration.preset).await.unwrap();
        browser.click("[data-apply-preset]").await;
        eventually(WAIT, integration.preview_shows, || async {
            let preview = browser.text("#preview-output").await;
            preview.contains(integration.preview_shows).then_some(())
        })
        .await;
        let expected = webhookd_events::find_preset(integration.preset)
            .and_then(|p| p.template)
            .unwrap_or("");
        let template = browser.find("#template").await.prop("value").await.unwrap();
        assert_eq!(
            template.as_deref(),
            Some(expected),
            "{}",
            integration.preset
        );
        browser.screenshot(integration.screenshot).await;
    }

    // What the API refuses, the form refuses, naming each field.
    browser.goto(&app.url("/webhook/new")).await;
    browser.fill("#name", "Broken").await;
    browser.fill("#url", "ftp://example.com/hook").await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("New webhook").await;
    let summary = browser.text(".error-summary").await;
    for field in ["url", "events"] {
        assert!(
            browser
                .find(&format!("#{field}-error"))
                .await
                .is_displayed()
                .await
                .unwrap(),
            "{field}: {summary}"
        );
    }
    assert!(summary.contains("http://"), "{summary}");
    assert_eq!(
        browser
            .find("#name")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Broken"),
        "what was typed is kept"
    );
    browser.screenshot("form-errors").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_logs_page_shows_new_attempts_as_they_are_recorded() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let subscribed = TestApp::spawn_with_webhook(&[], json!(["task.*"]), secret).await;
    let app = &subscribed.app;
    let browser = Browser::start().await;
    browser.sign_in(app, &subscribed.token).await;
    browser
        .goto(&app.url(&format!("/webhook/{}/logs", subscribed.webhook)))
        .await;
    assert_eq!(browser.text("[data-live-empty]").await, "No attempts yet.");
    // The stream is open: whatever is recorded from now on is shown.
    browser.find("[data-live-url][data-live-open]").await;

    let everyones = EventMessage::new(
        "task.created",
        json!({"task_id": 2, "title": "Live one"}),
        chrono::Utc::now().timestamp(),
    )
    .unwrap();
    app.publisher.publish(&everyones).await.unwrap();
    subscribed.receiver.wait_for(1, WAIT).await;
    let row = browser.find("tr[data-live-row]").await;
    let text = row.text().await.unwrap();
    assert!(text.contains("task.created"), "{text}");
    assert!(text.contains("HTTP 200"), "{text}");
    assert!(
        !browser
            .find("[data-live-empty]")
            .await
            .is_displayed()
            .await
            .unwrap(),
        "the empty notice goes"
    );
    // The row links to the attempt, as the server-rendered rows do.
    let link = row
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(
        link.starts_with(&format!("/webhook/{}/logs/", subscribed.webhook)),
        "{link}"
    );
    browser.screenshot("logs-live").await;
    browser.close().await;
    subscribed.app.stop().await;
}

#[tokio::test]
async fn basic_auth_is_set_in_the_form_shown_without_its_password_and_kept_when_the_username_changes(
) {
    let app = TestApp::spawn().await;
    let (_alice, token) = app.create_user("Alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;

    browser.goto(&app.url("/webhook/new")).await;
    browser.expect_heading("New webhook").await;
    browser.fill("#name", "Behind a gateway").await;
    browser.fill("#url", &receiver.url()).await;
    browser.fill("#secret", SECRET).await;
    browser.click("#events-task-all").await;
    browser
        .find("#auth_type")
        .await
        .select_by_value("basic")
        .await
        .unwrap();
    // Only the selected type's fields are shown.
    let bearer_token = browser.find("#auth_token").await;
    assert!(!bearer_token.is_displayed().await.unwrap());
    browser.fill("#auth_username", "alice").await;
    browser.fill("#auth_password", "pa55word-ui").await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Webhook created").await;
    let id: i64 = sqlx::query_scalar("SELECT id FROM webhooks WHERE name = 'Behind a gateway'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();

    browser.goto(&app.url(&format!("/webhook/{id}"))).await;
    let shown = browser.text("#auth-shown").await;
    assert!(
        shown.contains("HTTP Basic") && shown.contains("alice"),
        "{shown}"
    );
    let source = browser.client.source().await.unwrap();
    assert!(
        !source.contains("pa55word-ui"),
        "the password is never shown"
    );
    browser.screenshot("details-auth").await;

    // Edit: the password field is empty, and left so it keeps the password.
    browser.goto(&app.url(&format!("/webhook/{id}/edit"))).await;
    browser.expect_heading("Edit webhook").await;
    let password = browser.find("#auth_password").await;
    assert_eq!(password.prop("value").await.unwrap().as_deref(), Some(""));
    assert!(!browser
        .client
        .source()
        .await
        .unwrap()
        .contains("pa55word-ui"));
    assert!(browser
        .text("#auth_password-hint")
        .await
        .contains("leave empty to keep it"));
    browser.fill("#auth_username", "bob").await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Behind a gateway").await;
    assert!(browser.text("#auth-shown").await.contains("bob"));

    app.publisher
        .publish(&task("task.created", "through the gateway"))
        .await
        .unwrap();
    let got = receiver.wait_for(1, WAIT).await;
    // base64 of `bob:pa55word-ui`: the new username with the kept password.
    assert_eq!(got[0].header("authorization"), "Basic Ym9iOnBhNTV3b3JkLXVp");
    browser.close().await;
    app.stop().await;
}
