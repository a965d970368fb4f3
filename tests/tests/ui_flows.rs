//! The web UI's flows in a real browser (issue #22): an action answered
//! with a redirect is never repeated by a reload (creation, rotation, test),
//! notices come from the session and never from the URL, a form posted
//! after its session ended comes back after a sign-in, rotating a secret
//! asks first, and error pages keep the viewer's language and header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::json;
use webhookd_e2e::browser::{Browser, WAIT};
use webhookd_e2e::ui_session::ui_session;
use webhookd_e2e::{eventually, Receiver, TestApp};

const SECRET: &str = "ui-flows-secret-0123456789abcdef";

async fn count(app: &TestApp, sql: &str, id: i64) -> i64 {
    sqlx::query_scalar(sql)
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

async fn webhooks_named(app: &TestApp, name: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM webhooks WHERE name = $1")
        .bind(name)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

async fn test_deliveries(app: &TestApp, webhook: i64) -> i64 {
    count(
        app,
        "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE d.webhook_id = $1 AND e.event = 'webhook.test'",
        webhook,
    )
    .await
}

/// The secrets of a webhook as stored (sealed or not): a second rotation
/// would change both.
async fn stored_secrets(app: &TestApp, webhook: i64) -> (String, Option<String>) {
    sqlx::query_as("SELECT secret, previous_secret FROM webhooks WHERE id = $1")
        .bind(webhook)
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

/// Creates a webhook through the browser's form; returns its id.
async fn create_in_form(browser: &Browser, app: &TestApp, name: &str, url: &str) -> i64 {
    browser.goto(&app.url("/webhook/new")).await;
    browser.expect_heading("New webhook").await;
    browser.fill("#name", name).await;
    browser.fill("#url", url).await;
    browser.fill("#secret", SECRET).await;
    browser.click("#events-task-all").await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Webhook created").await;
    let path = browser.path().await;
    path.trim_start_matches("/webhook/")
        .trim_end_matches("/secret")
        .parse()
        .unwrap_or_else(|_| panic!("the secret page's path: {path}"))
}

#[tokio::test]
async fn reloading_after_creating_rotating_or_testing_repeats_nothing() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;

    // Created once; the reloaded result no longer shows the secret.
    let id = create_in_form(&browser, &app, "Created once", &receiver.url()).await;
    let shown = browser
        .find("#new-secret")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(shown.as_deref(), Some(SECRET));
    browser.client.refresh().await.unwrap();
    browser.expect_heading("Created once").await;
    assert!(browser.texts("#new-secret").await.is_empty());
    assert_eq!(webhooks_named(&app, "Created once").await, 1);

    // Rotated once with a 24 h grace period, then the result reloaded.
    browser.click("details.rotate summary").await;
    browser
        .find("#grace_period_secs")
        .await
        .select_by_value("86400")
        .await
        .unwrap();
    browser
        .click(&format!(
            "form[action='/webhook/{id}/rotate-secret'] button"
        ))
        .await;
    browser.client.accept_alert().await.unwrap();
    browser.expect_heading("Secret rotated").await;
    let rotated = stored_secrets(&app, id).await;
    assert_eq!(
        rotated.1.as_deref(),
        Some(SECRET),
        "the old secret is kept for the grace period"
    );
    browser.client.refresh().await.unwrap();
    browser.expect_heading("Created once").await;
    assert!(browser.texts("#new-secret").await.is_empty());
    assert_eq!(stored_secrets(&app, id).await, rotated, "rotated only once");

    // Tested once; reloading the result shows it again without sending.
    browser
        .click(&format!("form[action='/webhook/{id}/test'] button"))
        .await;
    browser.expect_heading("Test delivery").await;
    let test = &receiver.wait_for(1, WAIT).await[0];
    // Signed with both secrets: the receiver's old one still checks out.
    assert!(
        test.standard_signature_valid,
        "the receiver's old secret still checks out during the grace period"
    );
    browser.client.refresh().await.unwrap();
    browser.expect_heading("Test delivery").await;
    browser.find("#test-status").await;
    assert_eq!(test_deliveries(&app, id).await, 1);
    assert_eq!(receiver.count(), 1);

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn notices_come_from_the_session_once_and_never_from_the_url() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let webhook = app
        .create_webhook_to(
            &token,
            "https://example.com/hook",
            json!(["task.*"]),
            SECRET,
        )
        .await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;

    let details = format!("/webhook/{webhook}");
    browser
        .goto(&app.url(&format!("{details}?notice=retried&count=99999")))
        .await;
    browser.find("h1").await;
    assert!(browser.texts(".notice").await.is_empty());
    assert!(!browser.body_text().await.contains("99999"));
    browser.goto(&app.url("/webhook/?notice=deleted")).await;
    browser.expect_heading("Webhooks").await;
    assert!(browser.texts(".notice").await.is_empty());

    // A real notice shows once: a reload drops it.
    browser.goto(&app.url(&details)).await;
    browser
        .click(&format!("form[action='/webhook/{webhook}/toggle'] button"))
        .await;
    eventually(WAIT, "the switched-off notice", || async {
        let notices = browser.texts(".notice").await;
        notices
            .iter()
            .any(|n| n.contains("switched off"))
            .then_some(())
    })
    .await;
    assert_eq!(browser.path().await, details);
    browser.client.refresh().await.unwrap();
    browser.find("h1").await;
    assert!(browser.texts(".notice").await.is_empty());

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_session_that_ends_mid_form_keeps_the_form_over_a_sign_in() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;

    browser.goto(&app.url("/webhook/new")).await;
    browser.expect_heading("New webhook").await;
    browser
        .fill("#name", "Typed before the session ended")
        .await;
    browser.fill("#url", "https://example.com/kept").await;
    browser.click("#events-task-all").await;
    sqlx::query("DELETE FROM ui_sessions")
        .execute(&app.db.pool)
        .await
        .unwrap();
    browser.click("button.primary[value=save]").await;

    // The sign-in page says why, and nothing was saved.
    browser.expect_heading("Sign in").await;
    assert!(browser
        .text("#session-ended")
        .await
        .contains("Your session ended"));
    assert_eq!(
        webhooks_named(&app, "Typed before the session ended").await,
        0
    );
    browser.submit_token(&token).await;

    // Back on the form, with what was typed; sending it saves it.
    browser.expect_heading("New webhook").await;
    let name = browser.find("#name").await.prop("value").await.unwrap();
    assert_eq!(name.as_deref(), Some("Typed before the session ended"));
    let url = browser.find("#url").await.prop("value").await.unwrap();
    assert_eq!(url.as_deref(), Some("https://example.com/kept"));
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Webhook created").await;
    assert_eq!(
        webhooks_named(&app, "Typed before the session ended").await,
        1
    );

    // The same for an edit form: the change comes back, then saves.
    let path = browser.path().await;
    let id = path
        .trim_start_matches("/webhook/")
        .trim_end_matches("/secret");
    browser.goto(&app.url(&format!("/webhook/{id}/edit"))).await;
    browser.expect_heading("Edit webhook").await;
    browser
        .fill("#name", "Renamed before the session ended")
        .await;
    sqlx::query("DELETE FROM ui_sessions")
        .execute(&app.db.pool)
        .await
        .unwrap();
    browser.click("button.primary[value=save]").await;
    browser.find("#session-ended").await;
    browser.submit_token(&token).await;
    browser.expect_heading("Edit webhook").await;
    let name = browser.find("#name").await.prop("value").await.unwrap();
    assert_eq!(name.as_deref(), Some("Renamed before the session ended"));
    browser.click("button.primary[value=save]").await;
    browser
        .expect_heading("Renamed before the session ended")
        .await;
    assert!(browser.text(".notice").await.contains("Changes saved"));

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn error_pages_keep_the_signed_in_header_in_the_viewers_language() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Ольга", Some(7), false).await;
    let browser = Browser::start_in("ru").await;
    browser.goto(&app.url("/webhook/")).await;
    browser.expect_heading("Вход").await;
    browser.submit_token(&token).await;
    eventually(WAIT, "the list after signing in", || async {
        (browser.path().await == "/webhook/").then_some(())
    })
    .await;

    for path in ["/webhook/424242", "/webhook/424242/logs", "/no-such-page"] {
        browser.goto(&app.url(path)).await;
        browser.expect_heading("Не найдено").await;
        assert_eq!(
            browser
                .find("html")
                .await
                .attr("lang")
                .await
                .unwrap()
                .as_deref(),
            Some("ru"),
            "{path}"
        );
        assert!(
            browser.text(".sign-out .who").await.contains("Ольга"),
            "{path} keeps the signed-in header"
        );
        assert!(browser.body_text().await.contains("К вашим вебхукам"));
    }
    browser.screenshot("flows-404-ru").await;

    // The API keeps its bare 404, and the status is a 404 here too.
    let http = reqwest::Client::new();
    let api = http.get(app.url("/api/v1/no-such")).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert!(!api.text().await.unwrap().contains("<html"));
    let page = http.get(app.url("/no-such-page")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);

    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn rotating_a_secret_asks_first_with_and_without_the_script() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let webhook = app
        .create_webhook_to(
            &token,
            "https://example.com/hook",
            json!(["task.*"]),
            SECRET,
        )
        .await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;
    let before = stored_secrets(&app, webhook).await;

    // The script asks; saying no rotates nothing.
    browser.goto(&app.url(&format!("/webhook/{webhook}"))).await;
    browser.click("details.rotate summary").await;
    browser
        .find("#grace_period_secs")
        .await
        .select_by_value("0")
        .await
        .unwrap();
    browser
        .click(&format!(
            "form[action='/webhook/{webhook}/rotate-secret'] button"
        ))
        .await;
    let question = browser.client.get_alert_text().await.unwrap();
    assert!(question.contains("revoke it now"), "{question}");
    browser.client.dismiss_alert().await.unwrap();
    assert_eq!(stored_secrets(&app, webhook).await, before);

    // Without it, a confirmation page, which then rotates.
    let (http, cookie, csrf) = ui_session(&app, &token, "/webhook/").await;
    let ask = http
        .post(app.url(&format!("/webhook/{webhook}/rotate-secret")))
        .header(COOKIE, &cookie)
        .form(&[("_csrf", csrf.as_str()), ("grace_period_secs", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(ask.status(), StatusCode::OK);
    let ask = ask.text().await.unwrap();
    assert!(ask.contains("stops working at once"), "{ask}");
    assert!(ask.contains(r#"name="confirmed" value="yes""#));
    assert_eq!(stored_secrets(&app, webhook).await, before);
    let key = form_key(&ask, &format!("/webhook/{webhook}/rotate-secret"));
    let confirm = || {
        http.post(app.url(&format!("/webhook/{webhook}/rotate-secret")))
            .header(COOKIE, &cookie)
            .form(&[
                ("_csrf", csrf.as_str()),
                ("_form", key.as_str()),
                ("grace_period_secs", "0"),
                ("confirmed", "yes"),
            ])
            .send()
    };
    let first = confirm().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let rotated = stored_secrets(&app, webhook).await;
    assert_ne!(rotated, before);
    // The same submission again (the back button, a re-post): same answer,
    // no second rotation.
    let again = confirm().await.unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.headers()[LOCATION], first.headers()[LOCATION]);
    assert_eq!(stored_secrets(&app, webhook).await, rotated);

    browser.close().await;
    app.stop().await;
}

/// The `_form` key of the form posting to `action` on a page.
fn form_key(page: &str, action: &str) -> String {
    let form = &page[page.find(&format!(r#"action="{action}""#)).unwrap()..];
    let at = form.find(r#"name="_form" value=""#).unwrap() + r#"name="_form" value=""#.len();
    form[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_same_create_form_posted_twice_makes_one_webhook() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let (http, cookie, csrf) = ui_session(&app, &token, "/webhook/").await;
    let form = http
        .get(app.url("/webhook/new"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let key = form_key(&form, "/webhook/new");
    let post = || {
        http.post(app.url("/webhook/new"))
            .header(COOKIE, &cookie)
            .form(&[
                ("_csrf", csrf.as_str()),
                ("_form", key.as_str()),
                ("name", "Posted twice"),
                ("url", "https://example.com/twice"),
                ("events", "task.*"),
                ("action", "save"),
            ])
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let second = post().await.unwrap();
    assert_eq!(second.status(), StatusCode::SEE_OTHER);
    assert_eq!(second.headers()[LOCATION], first.headers()[LOCATION]);
    assert_eq!(webhooks_named(&app, "Posted twice").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn retrying_a_failed_test_gives_it_one_more_attempt_not_a_schedule() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    receiver.always(500);
    let webhook = app
        .create_webhook_to(&token, &receiver.url(), json!(["task.*"]), SECRET)
        .await;
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;
    let details = format!("/webhook/{webhook}");
    browser.goto(&app.url(&details)).await;
    browser
        .click(&format!("form[action='{details}/test'] button"))
        .await;
    browser.expect_heading("Test delivery").await;
    assert_eq!(receiver.count(), 1);

    // "Retry failed" leaves the failed test alone: no schedule starts.
    browser.goto(&app.url(&details)).await;
    browser
        .click("form[action$='/retry'] input[name=all_failed] + button")
        .await;
    eventually(WAIT, "the retry notice", || async {
        let notices = browser.texts(".notice").await;
        notices
            .iter()
            .any(|n| n.contains("Nothing to retry"))
            .then_some(())
    })
    .await;
    let pending = count(
        &app,
        "SELECT COUNT(*) FROM deliveries WHERE webhook_id = $1 AND status <> 'failed'",
        webhook,
    )
    .await;
    assert_eq!(pending, 0, "the failed test is not made pending");

    // Its own Retry sends exactly one more attempt, shown at once.
    browser
        .click("td[data-label=Actions] form[action$='/retry'] button")
        .await;
    browser.expect_heading("Test delivery").await;
    assert_eq!(receiver.count(), 2);
    assert_eq!(test_deliveries(&app, webhook).await, 2);
    let pending = count(
        &app,
        "SELECT COUNT(*) FROM deliveries WHERE webhook_id = $1 AND status <> 'failed'",
        webhook,
    )
    .await;
    assert_eq!(pending, 0, "no schedule of retries follows");

    browser.close().await;
    app.stop().await;
}

/// Latin words a Russian page shows outside `code`/`kbd`/`samp`/`pre` and
/// `[lang=en]`, in text and in the attributes people meet, brand names
/// aside.
async fn latin_words(browser: &Browser) -> Vec<String> {
    let script = r#"
        const allowed = new Set(["webhookd", "API", "OpenAPI", "JSON", "URL", "HTTP",
            "HTTPS", "HMAC", "Telegram", "Slack", "Discord", "GraphQL", "UTC", "ID"]);
        // `#auth-shown` is the form's own summary, another part's texts.
        const technical = "code, kbd, samp, pre, [lang=en], script, style, #auth-shown";
        const found = [];
        const scan = (text, where) => {
            for (const word of text.match(/[A-Za-z]{2,}/g) || []) {
                if (!allowed.has(word)) { found.push(word + " (" + where + ")"); }
            }
        };
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const node = walker.currentNode;
            if (!node.parentElement.closest(technical)) { scan(node.textContent, "text"); }
        }
        for (const el of document.querySelectorAll("*")) {
            if (el.closest(technical)) { continue; }
            for (const name of ["title", "aria-label", "placeholder", "data-label", "data-confirm", "alt"]) {
                const value = el.getAttribute(name);
                if (value) { scan(value, name); }
            }
        }
        scan(document.title, "title");
        return found;
    "#;
    let value = browser.client.execute(script, vec![]).await.unwrap();
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn the_flow_pages_speak_russian() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let (_, token) = app.create_user("Ольга", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    let webhook = app
        .create_webhook_to(&token, &receiver.url(), json!(["task.*"]), SECRET)
        .await;
    sqlx::query("UPDATE webhooks SET name = 'Задачи' WHERE id = $1")
        .bind(webhook)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let browser = Browser::start_in("ru").await;
    let check = |name: &'static str| {
        let browser = &browser;
        async move {
            browser.find("h1").await;
            let latin = latin_words(browser).await;
            assert!(latin.is_empty(), "{name}: {latin:?}");
            browser.screenshot(&format!("flows-{name}-ru")).await;
        }
    };
    browser.goto(&app.url("/webhook/")).await;
    browser.expect_heading("Вход").await;
    check("login").await;
    browser.submit_token(&token).await;
    eventually(WAIT, "the list after signing in", || async {
        (browser.path().await == "/webhook/").then_some(())
    })
    .await;

    let details = format!("/webhook/{webhook}");
    browser.goto(&app.url(&details)).await;
    check("details").await;
    browser
        .click(&format!("form[action='{details}/test'] button"))
        .await;
    browser.expect_heading("Тестовая доставка").await;
    check("test-result").await;

    browser.goto(&app.url(&details)).await;
    browser.click("details.rotate summary").await;
    browser
        .click(&format!("form[action='{details}/rotate-secret'] button"))
        .await;
    browser.client.accept_alert().await.unwrap();
    browser.expect_heading("Секрет сменён").await;
    check("secret").await;

    browser.goto(&app.url(&format!("{details}/delete"))).await;
    check("delete").await;
    browser.goto(&app.url("/webhook/424242")).await;
    check("404").await;

    browser.close().await;
    app.stop().await;
}
