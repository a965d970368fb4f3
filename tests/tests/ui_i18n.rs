//! The web UI in both languages, in headless Chromium: every main page is
//! walked in English and in Russian (screenshots of each in
//! `target/ui-screenshots/i18n-*.png`), no English is left on a Russian page,
//! the language switch is remembered, and times are shown in the user's
//! zone (the browser's until they choose one) with UTC on hover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use fantoccini::Locator;
use serde_json::{json, Value};
use webhookd_e2e::browser::{Browser, WAIT};
use webhookd_e2e::{eventually, Receiver, TestApp};
use webhookd_producer::EventMessage;

const SECRET: &str = "i18n-test-secret-0123456789abcdef";

/// Words a Russian page may show in Latin letters: names of products and
/// standards, which Russian writes the same way.
const LATIN_ALLOWED: &[&str] = &[
    "webhookd", "api", "openapi", "json", "url", "http", "https", "hmac", "sha", "telegram",
    "slack", "discord", "graphql", "utc", "id", "crm",
];

/// The Latin words of the page's visible text and of the attributes people
/// meet (labels of phone cards, tooltips, placeholders, confirmations),
/// outside code-like elements, elements marked as English (`lang="en"`) or
/// not to be translated (`translate="no"`: time-zone names), URLs, dotted
/// names (`task.created`) and slashed ones (`Europe/Moscow`).
const LATIN_WORDS_SCRIPT: &str = r#"
const skip = 'code, pre, kbd, samp, script, style, noscript, [lang="en"], [translate="no"]';
const attributes = ['title', 'aria-label', 'placeholder', 'alt', 'data-label', 'data-confirm'];
const found = [];
function scan(text, where) {
  const cleaned = text
    .replace(/\S+:\/\/\S*/g, ' ')
    .replace(/[A-Za-z_]+(\/[A-Za-z_+-]+)+/g, ' ')
    .replace(/\S*[A-Za-z0-9_*]\.[A-Za-z_*]\S*/g, ' ');
  for (const word of cleaned.match(/[A-Za-z]{2,}/g) || []) {
    found.push(word + ' (' + where + ': ' + text.trim().slice(0, 80) + ')');
  }
}
scan(document.title, 'title');
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  const node = walker.currentNode;
  if (node.parentElement && !node.parentElement.closest(skip)) {
    scan(node.textContent, node.parentElement.tagName.toLowerCase());
  }
}
for (const element of document.body.querySelectorAll('*')) {
  if (element.closest(skip)) continue;
  for (const name of attributes) {
    const value = element.getAttribute(name);
    if (value) scan(value, element.tagName.toLowerCase() + '@' + name);
  }
  if (element.matches('input[type=submit], input[type=button]')) {
    scan(element.value, 'button');
  }
}
return found;
"#;

async fn latin_words(browser: &Browser) -> Vec<String> {
    let value = browser
        .client
        .execute(LATIN_WORDS_SCRIPT, vec![])
        .await
        .unwrap();
    value
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|found| {
            let word = found.split(' ').next().unwrap_or_default();
            !LATIN_ALLOWED.contains(&word.to_ascii_lowercase().as_str())
        })
        .map(str::to_owned)
        .collect()
}

async fn html_lang(browser: &Browser) -> String {
    let value = browser
        .client
        .execute("return document.documentElement.lang", vec![])
        .await
        .unwrap();
    value.as_str().unwrap_or_default().to_owned()
}

fn event(name: &str, title: &str) -> EventMessage {
    EventMessage::new(
        name,
        json!({"task_id": 1, "title": title, "status": "pending"}),
        Utc::now().timestamp(),
    )
    .unwrap()
    .with_user_id(7)
}

/// A daemon with Ольга (user 7) and one webhook of hers that has received a
/// delivery, so that every page has something to show.
struct World {
    app: TestApp,
    token: String,
    webhook: i64,
    log: i64,
    _receiver: Receiver,
}

async fn world() -> World {
    let app = TestApp::spawn_with(&[("WEBHOOKD__DELIVERY__ALLOW_PRIVATE_TARGETS", "true")]).await;
    let (_, token) = app.create_user("Ольга", Some(7), false).await;
    let receiver = Receiver::start(SECRET).await;
    let created = app
        .create_webhook(
            &token,
            json!({
                "name": "Задачи в отдел продаж",
                "url": receiver.url(),
                "events": ["task.created"],
                "secret": SECRET,
            }),
        )
        .await;
    let webhook = created["id"].as_i64().unwrap();
    app.publisher
        .publish(&event("task.created", "Позвонить клиенту"))
        .await
        .unwrap();
    receiver.wait_for(1, WAIT).await;
    let log = eventually(WAIT, "the attempt in the logs", || async {
        sqlx::query_scalar::<_, i64>("SELECT id FROM webhook_logs WHERE webhook_id = $1")
            .bind(webhook)
            .fetch_optional(&app.db.pool)
            .await
            .unwrap()
    })
    .await;
    World {
        app,
        token,
        webhook,
        log,
        _receiver: receiver,
    }
}

/// The pages walked, by name and path.
fn main_pages(webhook: i64, log: i64) -> Vec<(&'static str, String)> {
    vec![
        ("list", "/webhook/".to_owned()),
        ("new", "/webhook/new".to_owned()),
        ("details", format!("/webhook/{webhook}")),
        ("edit", format!("/webhook/{webhook}/edit")),
        ("logs", format!("/webhook/{webhook}/logs")),
        ("attempt", format!("/webhook/{webhook}/logs/{log}")),
        ("stats", "/webhook/stats".to_owned()),
        ("settings", "/settings".to_owned()),
        ("delete", format!("/webhook/{webhook}/delete")),
        ("not-found", "/webhook/999999".to_owned()),
        ("sign-out", "/logout".to_owned()),
    ]
}

#[tokio::test]
async fn every_main_page_is_walked_in_both_languages_and_russian_pages_have_no_english() {
    let world = world().await;
    let mut english_left = Vec::new();
    for lang in ["en", "ru"] {
        let browser = Browser::start_in(lang).await;
        browser.goto(&world.app.url("/login")).await;
        browser.find("#token").await;
        assert_eq!(html_lang(&browser).await, lang, "the sign-in page's lang");
        browser.screenshot(&format!("i18n-{lang}-login")).await;
        if lang == "ru" {
            for word in latin_words(&browser).await {
                english_left.push(format!("login: {word}"));
            }
        }
        browser.sign_in_any_language(&world.app, &world.token).await;
        for (name, path) in main_pages(world.webhook, world.log) {
            browser.goto(&world.app.url(&path)).await;
            browser.find("main h1").await;
            assert_eq!(html_lang(&browser).await, lang, "{path}: <html lang>");
            browser.screenshot(&format!("i18n-{lang}-{name}")).await;
            if name == "details" {
                // The owner by name, not "user 7".
                let summary = browser.text("dl.summary").await;
                assert!(summary.contains("Ольга (7)"), "{summary}");
            }
            if lang == "ru" {
                for word in latin_words(&browser).await {
                    english_left.push(format!("{name}: {word}"));
                }
            }
        }
        browser.close().await;
    }
    assert!(
        english_left.is_empty(),
        "English left on Russian pages:\n{}",
        english_left.join("\n")
    );
    world.app.stop().await;
}

#[tokio::test]
async fn the_scan_finds_english_on_a_russian_page() {
    // The scan itself must be able to fail: the same page with an English
    // sentence added is caught, and code, URLs and English-marked text are not.
    let world = world().await;
    let browser = Browser::start_in("ru").await;
    browser.sign_in_any_language(&world.app, &world.token).await;
    browser
        .goto(&world.app.url(&format!("/webhook/{}", world.webhook)))
        .await;
    browser.find("main h1").await;
    let before = latin_words(&browser).await;
    browser
        .client
        .execute(
            "const p = document.createElement('p'); p.textContent = 'Delivery failed, see http://x.test/a and task.created';
             document.querySelector('main').appendChild(p);
             const c = document.createElement('code'); c.textContent = 'Signature mismatch';
             document.querySelector('main').appendChild(c);
             const e = document.createElement('span'); e.lang = 'en'; e.textContent = 'English';
             document.querySelector('main').appendChild(e);",
            vec![],
        )
        .await
        .unwrap();
    let after = latin_words(&browser).await;
    let added: Vec<&String> = after.iter().filter(|w| !before.contains(w)).collect();
    let words: Vec<&str> = added.iter().filter_map(|w| w.split(' ').next()).collect();
    assert_eq!(words, ["Delivery", "failed", "see", "and"], "{added:?}");
    browser.close().await;
    world.app.stop().await;
}

#[tokio::test]
async fn the_language_switch_is_remembered_across_pages_and_sign_in() {
    let world = world().await;
    let browser = Browser::start_in("ru").await;
    browser.goto(&world.app.url("/login")).await;
    browser.find("#token").await;
    assert_eq!(html_lang(&browser).await, "ru");

    // The switch names English in English and comes back to the same page.
    browser.click(".language-switch a[lang='en']").await;
    eventually(WAIT, "the sign-in page in English", || async {
        (html_lang(&browser).await == "en").then_some(())
    })
    .await;
    assert_eq!(browser.path().await, "/login");
    let cookie = browser
        .client
        .get_named_cookie("webhookd_lang")
        .await
        .unwrap();
    assert_eq!(cookie.value(), "en");

    // Remembered over the browser's own Russian: after sign-in, on every page.
    browser.sign_in_any_language(&world.app, &world.token).await;
    assert_eq!(html_lang(&browser).await, "en");
    let details = format!("/webhook/{}/logs", world.webhook);
    browser.goto(&world.app.url(&details)).await;
    assert_eq!(html_lang(&browser).await, "en");

    // And back to Russian, on the page it was clicked on.
    browser.click(".language-switch a[lang='ru']").await;
    eventually(WAIT, "the logs page in Russian", || async {
        (html_lang(&browser).await == "ru").then_some(())
    })
    .await;
    assert_eq!(browser.path().await, details);
    assert!(browser.text("nav .nav-links").await.contains("Вебхуки"));
    browser.close().await;
    world.app.stop().await;
}

/// The `time` elements of the page: what they say, their title and the
/// instant they stand for.
async fn times(browser: &Browser) -> Vec<(String, String, DateTime<Utc>)> {
    let mut found = Vec::new();
    for element in browser
        .client
        .find_all(Locator::Css("main time[datetime]"))
        .await
        .unwrap()
    {
        let text = element.text().await.unwrap();
        let title = element.attr("title").await.unwrap().unwrap_or_default();
        let at = element.attr("datetime").await.unwrap().unwrap();
        let at = DateTime::parse_from_rfc3339(&at)
            .unwrap()
            .with_timezone(&Utc);
        found.push((text, title, at));
    }
    found
}

async fn assert_times_in(browser: &Browser, zone: Tz, abbreviation: &str) {
    let shown = times(browser).await;
    assert!(!shown.is_empty(), "no times on {}", browser.path().await);
    for (text, title, at) in shown {
        let local = at
            .with_timezone(&zone)
            .format("%d.%m.%Y %H:%M:%S")
            .to_string();
        assert_eq!(text, format!("{local} {abbreviation}"), "shown in {zone}");
        let utc = at.format("%d.%m.%Y %H:%M:%S UTC").to_string();
        assert!(
            title.contains(&utc),
            "{title:?} gives the time in UTC ({utc})"
        );
    }
}

#[tokio::test]
async fn times_are_in_the_browsers_zone_until_the_user_chooses_one() {
    let world = world().await;
    let browser = Browser::start_with("ru", Some("Asia/Tokyo")).await;
    browser.sign_in_any_language(&world.app, &world.token).await;
    let details = world.app.url(&format!("/webhook/{}", world.webhook));

    // The first page told the server the browser's zone; the next shows it.
    browser.goto(&details).await;
    browser.find("main h1").await;
    assert_times_in(&browser, Tz::Asia__Tokyo, "JST").await;

    // A zone chosen on the settings page wins, and is saved for the user.
    browser.goto(&world.app.url("/settings")).await;
    browser
        .find("#time_zone")
        .await
        .select_by_value("Asia/Vladivostok")
        .await
        .unwrap();
    browser
        .click("form[action='/settings'] button[type=submit]")
        .await;
    eventually(WAIT, "the settings saved", || async {
        let saved: Option<String> = sqlx::query_scalar("SELECT time_zone FROM users WHERE id = 7")
            .fetch_one(&world.app.db.pool)
            .await
            .unwrap();
        saved.filter(|zone| zone == "Asia/Vladivostok")
    })
    .await;
    browser.goto(&details).await;
    browser.find("main h1").await;
    assert_times_in(&browser, Tz::Asia__Vladivostok, "+10").await;

    // A zone that is not one is refused with a message, and nothing saved.
    browser.goto(&world.app.url("/settings")).await;
    browser
        .client
        .execute(
            "const o = document.createElement('option'); o.value = 'Mars/Olympus';
             o.selected = true; document.querySelector('#time_zone').appendChild(o);",
            vec![],
        )
        .await
        .unwrap();
    browser
        .click("form[action='/settings'] button[type=submit]")
        .await;
    let error = browser.text("#time_zone-error").await;
    assert_eq!(error, "Выберите часовой пояс из списка.");
    let saved: Option<String> = sqlx::query_scalar("SELECT time_zone FROM users WHERE id = 7")
        .fetch_one(&world.app.db.pool)
        .await
        .unwrap();
    assert_eq!(saved.as_deref(), Some("Asia/Vladivostok"));

    // Back to the browser's zone.
    browser.goto(&world.app.url("/settings")).await;
    browser
        .find("#time_zone")
        .await
        .select_by_value("")
        .await
        .unwrap();
    browser
        .click("form[action='/settings'] button[type=submit]")
        .await;
    eventually(WAIT, "the zone cleared", || async {
        let saved: Option<String> = sqlx::query_scalar("SELECT time_zone FROM users WHERE id = 7")
            .fetch_one(&world.app.db.pool)
            .await
            .unwrap();
        saved.is_none().then_some(())
    })
    .await;
    browser.goto(&details).await;
    browser.find("main h1").await;
    assert_times_in(&browser, Tz::Asia__Tokyo, "JST").await;
    browser.close().await;
    world.app.stop().await;
}
