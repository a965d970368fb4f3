//! The webhook form in Chromium: the preset shown for a stored template,
//! the secondary buttons without JavaScript, field errors in people's words
//! (all at once, in the form's order, in English and Russian), and what the
//! form and the API refuse (bidi controls in names, Telegram's `<chat_id>`
//! left in place).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use fantoccini::Locator;
use reqwest::{Method, StatusCode};
use serde_json::json;
use webhookd_e2e::browser::{Browser, WAIT};
use webhookd_e2e::{eventually, TestApp};

fn telegram_template() -> &'static str {
    webhookd_events::find_preset("telegram")
        .and_then(|p| p.template)
        .unwrap()
}

async fn selected_preset(browser: &Browser) -> (String, String) {
    let option = browser.find("#preset option:checked").await;
    (
        option.attr("value").await.unwrap().unwrap_or_default(),
        option.text().await.unwrap(),
    )
}

#[tokio::test]
async fn editing_a_telegram_webhook_shows_telegram_not_slack() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let filled = telegram_template().replace("<chat_id>", "-100200300");
    let created = app
        .create_webhook(
            &token,
            json!({"name": "Tasks to Telegram", "url": "https://example.com/bot/sendMessage",
                   "events": ["task.*"], "template": filled}),
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;
    browser.goto(&app.url(&format!("/webhook/{id}/edit"))).await;
    browser.expect_heading("Edit webhook").await;
    let (value, text) = selected_preset(&browser).await;
    assert_eq!(value, "custom", "{text}");
    assert!(text.contains("Telegram"), "made from Telegram: {text}");
    // Saving it again keeps the template as it was.
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Tasks to Telegram").await;
    let (status, stored) = app
        .api(
            &token,
            Method::GET,
            &format!("/api/v1/webhooks/{id}"),
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["template"], filled.as_str());
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn without_javascript_apply_preset_and_update_preview_post_the_form_with_empty_fields() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let browser = Browser::start_without_script().await;
    browser.client.goto(&app.url("/login")).await.unwrap();
    browser
        .find("#token")
        .await
        .send_keys(&token)
        .await
        .unwrap();
    browser
        .find("form[action='/login'] button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    browser.find("a[href='/webhook/new']").await;
    browser.client.goto(&app.url("/webhook/new")).await.unwrap();
    // The script would hide the fields of auth types not selected: it is off.
    assert!(browser
        .find("#auth_token")
        .await
        .is_displayed()
        .await
        .unwrap());
    // Name and URL (both required) are left empty.
    browser
        .find("#preset")
        .await
        .select_by_value("telegram")
        .await
        .unwrap();
    browser
        .find("[data-apply-preset]")
        .await
        .click()
        .await
        .unwrap();
    eventually(WAIT, "the Telegram preset from the server", || async {
        let field = browser.client.find(Locator::Css("#template")).await.ok()?;
        let value = field.text().await.ok()?;
        value.contains("<chat_id>").then_some(())
    })
    .await;
    browser
        .find("#preview_event")
        .await
        .select_by_value("deal.won")
        .await
        .unwrap();
    browser
        .find("[data-preview-button]")
        .await
        .click()
        .await
        .unwrap();
    eventually(WAIT, "the server's preview of deal.won", || async {
        let preview = browser
            .client
            .find(Locator::Css("#preview-output"))
            .await
            .ok()?;
        let text = preview.text().await.ok()?;
        text.contains("deal.won: Annual licence").then_some(())
    })
    .await;
    browser.close().await;
    app.stop().await;
}

/// Sets a field's value as a paste would (characters WebDriver cannot type).
async fn set_value(browser: &Browser, css: &str, value: &str) {
    browser
        .client
        .execute(
            "document.querySelector(arguments[0]).value = arguments[1];",
            vec![json!(css), json!(value)],
        )
        .await
        .unwrap();
}

/// Fills the form with a bad value in several fields and saves it.
async fn submit_bad_form(browser: &Browser, app: &TestApp) {
    browser.goto(&app.url("/webhook/new")).await;
    browser.find("#name").await;
    set_value(browser, "#name", "Sales \u{202E}gnp.exe").await;
    set_value(browser, "#url", "ftp://example.com/hook").await;
    set_value(browser, "#timeout_ms", "5").await;
    set_value(browser, "#retry_schedule", "5, soon").await;
    set_value(
        browser,
        "#headers",
        "X-Team sales\nX-Webhook-Id: forged\nX-Ok: fine\nbad header: 1",
    )
    .await;
    browser.click("button.primary[value=save]").await;
}

/// The error summary's links (their targets) and texts, in order.
async fn summary(browser: &Browser) -> Vec<(String, String)> {
    let mut items = Vec::new();
    for link in browser
        .client
        .find_all(Locator::Css(".error-summary li a"))
        .await
        .unwrap()
    {
        let href = link.attr("href").await.unwrap().unwrap_or_default();
        items.push((href, link.text().await.unwrap()));
    }
    items
}

async fn assert_marked_invalid(browser: &Browser, id: &str, error_id: &str) {
    let field = browser.find(&format!("#{id}")).await;
    assert_eq!(
        field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true"),
        "{id}"
    );
    let described = field
        .attr("aria-describedby")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(
        described.split(' ').any(|d| d == error_id),
        "{id}: {described}"
    );
    // Checkboxes are drawn without their border: theirs is an outline.
    let edge = match field.attr("type").await.unwrap().as_deref() {
        Some("checkbox") => "outline-color",
        _ => "border-top-color",
    };
    let colour = field.css_value(edge).await.unwrap();
    assert!(
        colour.contains("207, 34, 46"),
        "{id}: a red {edge}, not {colour}"
    );
    assert!(
        browser
            .find(&format!("#{error_id}"))
            .await
            .is_displayed()
            .await
            .unwrap(),
        "{error_id}"
    );
}

const BAD_FIELDS: &[(&str, &str)] = &[
    ("#name", "name-error"),
    ("#url", "url-error"),
    ("#events-all", "events-error"),
    ("#timeout_ms", "timeout_ms-error"),
    ("#retry_schedule", "retry_schedule-error"),
    ("#headers", "headers-error"),
];

async fn check_every_error_in_order(browser: &Browser, texts: &[&str]) {
    let items = summary(browser).await;
    let targets: Vec<&str> = items.iter().map(|(href, _)| href.as_str()).collect();
    let expected: Vec<&str> = BAD_FIELDS.iter().map(|(css, _)| *css).collect();
    assert_eq!(targets, expected, "{items:?}");
    for (css, error_id) in BAD_FIELDS {
        assert_marked_invalid(browser, css.trim_start_matches('#'), error_id).await;
    }
    let all: String = items.iter().map(|(_, t)| format!("{t}\n")).collect();
    for text in texts {
        assert!(all.contains(text), "{text:?} in {all}");
    }
    let headers = browser.text("#headers-error").await;
    for line in ["1", "2", "4"] {
        assert!(headers.contains(line), "line {line}: {headers}");
    }
    assert!(!all.contains('`'), "no Markdown quotes: {all}");
}

#[tokio::test]
async fn field_errors_are_shown_at_once_in_the_forms_order_in_english_and_russian() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Ольга", Some(7), false).await;

    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;
    submit_bad_form(&browser, &app).await;
    browser.expect_heading("New webhook").await;
    check_every_error_in_order(
        &browser,
        &[
            "invisible characters",
            "http://",
            "at least one event",
            "100",
            "soon",
        ],
    )
    .await;
    browser.screenshot("forms-errors-en").await;
    browser.close().await;

    let browser = Browser::start_in("ru").await;
    browser.sign_in_any_language(&app, &token).await;
    submit_bad_form(&browser, &app).await;
    browser.expect_heading("Новый вебхук").await;
    check_every_error_in_order(
        &browser,
        &[
            "невидимые символы",
            "http://",
            "хотя бы одно событие",
            "100",
            "soon",
        ],
    )
    .await;
    browser.screenshot("forms-errors-ru").await;
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_name_with_bidi_controls_is_refused_by_the_api_and_the_form() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    for control in ['\u{202E}', '\u{2066}', '\u{200F}', '\u{061C}'] {
        let (status, body) = app
            .api(
                &token,
                Method::POST,
                "/api/v1/webhooks",
                json!({"name": format!("Deals{control}txt"), "url": "https://example.com/h",
                       "events": ["*"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "name", "{body}");
        assert!(body["error"].as_str().unwrap().contains("name"), "{body}");
    }
    let browser = Browser::start().await;
    browser.sign_in(&app, &token).await;
    browser.goto(&app.url("/webhook/new")).await;
    browser.find("#name").await;
    set_value(&browser, "#name", "Deals \u{202E}fdp.exe").await;
    browser.fill("#url", "https://example.com/h").await;
    browser.click("#events-all").await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("New webhook").await;
    assert_marked_invalid(&browser, "name", "name-error").await;
    let error = browser.text("#name-error").await;
    assert!(error.contains("name"), "{error}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    browser.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_telegram_preset_is_not_saved_with_its_chat_id_placeholder() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", Some(7), false).await;
    let (status, body) = app
        .api(
            &token,
            Method::POST,
            "/api/v1/webhooks",
            json!({"name": "Telegram", "url": "https://example.com/h", "events": ["*"],
                   "template": telegram_template()}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "template", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("chat_id"),
        "{body}"
    );

    let browser = Browser::start_in("ru").await;
    browser.sign_in_any_language(&app, &token).await;
    browser.goto(&app.url("/webhook/new")).await;
    browser.fill("#name", "Задачи в Telegram").await;
    browser.fill("#url", "https://example.com/h").await;
    browser.click("#events-task-all").await;
    browser
        .find("#preset")
        .await
        .select_by_value("telegram")
        .await
        .unwrap();
    browser.click("[data-apply-preset]").await;
    // The preset's message and the preview's sample speak Russian.
    eventually(WAIT, "a Russian preview", || async {
        let preview = browser.text("#preview-output").await;
        (preview.contains("Перезвонить клиенту") && preview.contains("Новое событие")).then_some(())
    })
    .await;
    browser.click("button.primary[value=save]").await;
    browser.expect_heading("Новый вебхук").await;
    assert_marked_invalid(&browser, "template", "template-error").await;
    let error = browser.text("#template-error").await;
    assert!(error.contains("chat_id"), "{error}");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM webhooks")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0);
    browser.close().await;

    let (status, presets) = app
        .api(
            &token,
            Method::GET,
            "/api/v1/templates?lang=ru",
            json!(null),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let telegram = presets
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "telegram")
        .unwrap();
    assert!(
        telegram["template"]
            .as_str()
            .unwrap()
            .contains("Новое событие"),
        "{telegram}"
    );
    app.stop().await;
}

/// Latin words in the text and the attributes people meet under `root`,
/// outside code-like elements, elements marked English or not to be
/// translated, URLs and dotted names; brand names allowed.
const LATIN_WORDS_UNDER: &str = r#"
const root = document.querySelector(arguments[0]);
const skip = 'code, pre, kbd, samp, script, style, noscript, [lang="en"], [translate="no"]';
const allowed = ['webhookd', 'api', 'openapi', 'json', 'url', 'http', 'https', 'hmac', 'sha',
  'telegram', 'slack', 'discord', 'graphql', 'utc', 'id', 'crm'];
const found = [];
function scan(text, where) {
  const cleaned = text
    .replace(/\S+:\/\/\S*/g, ' ')
    .replace(/\S*[A-Za-z0-9_*]\.[A-Za-z_*]\S*/g, ' ');
  for (const word of cleaned.match(/[A-Za-z]{2,}/g) || []) {
    if (!allowed.includes(word.toLowerCase())) {
      found.push(word + ' (' + where + ': ' + text.trim().slice(0, 80) + ')');
    }
  }
}
const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  if (node.parentElement && !node.parentElement.closest(skip)) {
    scan(node.textContent, node.parentElement.tagName.toLowerCase());
  }
}
for (const element of root.querySelectorAll('*')) {
  if (element.closest(skip)) continue;
  for (const name of ['title', 'aria-label', 'placeholder', 'alt', 'data-label', 'data-confirm']) {
    const value = element.getAttribute(name);
    if (value) scan(value, element.tagName.toLowerCase() + '@' + name);
  }
}
return found;
"#;

async fn latin_words_under(browser: &Browser, root: &str) -> Vec<String> {
    let found = browser
        .client
        .execute(LATIN_WORDS_UNDER, vec![json!(root)])
        .await
        .unwrap();
    found
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_form_in_russian_has_no_english_words_new_edit_with_errors_and_auth() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Ольга", Some(7), false).await;
    let created = app
        .create_webhook(
            &token,
            json!({"name": "Сделки в Telegram", "url": "https://example.com/bot/sendMessage",
                   "events": ["deal.*", "task.created"],
                   "template": telegram_template().replace("<chat_id>", "-100200300"),
                   "filter": {"data.amount": {"$gte": 100000}},
                   "headers": {"X-Team": "sales"}, "retry_schedule": [5, 300],
                   "auth": {"type": "basic", "username": "olga", "password": "pa55word"}}),
        )
        .await;
    let id = created["id"].as_i64().unwrap();
    let browser = Browser::start_in("ru").await;
    browser.sign_in_any_language(&app, &token).await;

    let mut english = Vec::new();
    for (page, heading) in [
        ("/webhook/new".to_owned(), "Новый вебхук"),
        (format!("/webhook/{id}/edit"), "Изменение вебхука"),
    ] {
        browser.goto(&app.url(&page)).await;
        browser.expect_heading(heading).await;
        english.extend(latin_words_under(&browser, "main").await);
    }
    // The edited Telegram template is "Свой шаблон (на основе Telegram)".
    let custom = browser.text("#preset option:checked").await;
    assert!(custom.contains("Telegram"), "{custom}");
    browser.screenshot("forms-edit-ru").await;

    submit_bad_form(&browser, &app).await;
    browser.expect_heading("Новый вебхук").await;
    english.extend(latin_words_under(&browser, "main").await);

    browser.goto(&app.url(&format!("/webhook/{id}"))).await;
    english.extend(latin_words_under(&browser, "#auth-shown").await);
    assert!(english.is_empty(), "English left: {english:#?}");
    browser.close().await;
    app.stop().await;
}
