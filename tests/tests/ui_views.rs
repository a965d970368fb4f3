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
    browser.sign_in_any_language(app, &subscribed.token).await;
    let log_id: i64 = sqlx::query_scalar("SELECT id FROM webhook_logs WHERE webhook_id = $1")
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    for path in [
        "/webhook/".to_owned(),
        format!("/webhook/{id}/logs"),
        format!("/webhook/{id}/logs/{log_id}"),
        "/webhook/stats".to_owned(),
    ] {
        browser.goto(&app.url(&path)).await;
        browser.find("h1").await;
        assert_eq!(
            overflow(&browser).await,
            0,
            "{path} is wider than the window"
        );
    }
    // In English: a decimal point, and the date filters' format.
    let cards = browser.text(".cards").await;
    assert!(cards.contains("100.0"), "{cards}");
    browser
        .goto(&app.url(&format!("/webhook/{id}/logs?from=2026-01-02T03:04")))
        .await;
    assert_eq!(
        browser.find("#from").await.prop("value").await.unwrap(),
        Some("2026-01-02 03:04".to_owned())
    );
    assert_eq!(
        browser.find("#to").await.attr("placeholder").await.unwrap(),
        Some("YYYY-MM-DD HH:MM".to_owned())
    );
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

async fn first_log(app: &TestApp, webhook: i64) -> (chrono::DateTime<chrono::Utc>, Option<String>) {
    eventually(WAIT, "an attempt logged", || async {
        sqlx::query_as::<_, (chrono::DateTime<chrono::Utc>, Option<String>)>(
            "SELECT created_at, error_message FROM webhook_logs WHERE webhook_id = $1 ORDER BY id LIMIT 1",
        )
        .bind(webhook)
        .fetch_optional(&app.db.pool)
        .await
        .unwrap()
    })
    .await
}

#[tokio::test]
async fn in_russian_owners_are_named_rows_link_controls_show_and_dates_are_read_in_the_users_zone()
{
    let subscribed = TestApp::spawn_with_webhook(&[], json!(["task.*"]), SECRET).await;
    let app = &subscribed.app;
    let alices = subscribed.webhook;
    let (_, olga_token) = app.create_user("Ольга", Some(7), true).await;
    sqlx::query("UPDATE users SET time_zone = 'Asia/Vladivostok' WHERE id = 7")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let olgas = app
        .create_webhook_to(
            &olga_token,
            &subscribed.receiver.url(),
            json!(["task.deleted"]),
            SECRET,
        )
        .await;
    // As stored before names were checked, and a domain in punycode.
    set_name(app, olgas, "Счёт\u{202e}gpj.exe").await;
    set_url(app, olgas, "https://xn--e1afmkfd.xn--p1ai:8443/hook").await;
    sqlx::query(r#"UPDATE webhooks SET headers = '{"X-Api-Key": "k-123456"}' WHERE id = $1"#)
        .bind(alices)
        .execute(&app.db.pool)
        .await
        .unwrap();
    app.publisher
        .publish(&task("сделка \u{202e}dlrow"))
        .await
        .unwrap();
    subscribed.receiver.wait_for(1, WAIT).await;
    let (at, _) = first_log(app, alices).await;

    let browser = Browser::start_in("ru").await;
    browser.sign_in_any_language(app, &olga_token).await;
    browser.expect_heading("Вебхуки").await;
    let owners = browser.texts("td[data-label='Владелец']").await;
    assert!(owners.contains(&"Ольга (7)".to_owned()), "{owners:?}");
    assert!(
        owners.iter().any(|o| o.starts_with("Alice (")),
        "{owners:?}"
    );
    let names = browser.texts("td[data-label='Название']").await;
    assert!(
        names.contains(&"Счёт<U+202E>gpj.exe".to_owned()),
        "{names:?}"
    );
    let urls = browser.texts("td[data-label='URL']").await;
    assert!(
        urls.iter()
            .any(|u| u.contains("https://пример.рф:8443/hook")
                && u.contains("(xn--e1afmkfd.xn--p1ai)")),
        "{urls:?}"
    );
    let headers = browser.texts("thead th").await.join(" ");
    assert!(headers.contains("Последняя доставка"), "{headers}");
    browser.screenshot("views-list-ru").await;

    // Statistics: Alice's webhook is a link to it, the rate has a comma.
    browser.goto(&app.url("/webhook/stats")).await;
    browser.expect_heading("Статистика").await;
    let link = browser
        .find(&format!(
            "#webhooks-title ~ .table-wrap tbody th a[href='/webhook/{alices}']"
        ))
        .await;
    assert_eq!(link.text().await.unwrap(), "hook");
    let cards = browser.text(".cards").await;
    assert!(cards.contains("100,0"), "{cards}");
    assert!(cards.contains("Доля успешных"), "{cards}");
    browser.screenshot("views-stats-ru").await;

    // Logs: dates in the Russian format, in Ольга's zone (UTC+10).
    // Vladivostok keeps UTC+10 all year.
    let vladivostok = at.with_timezone(&chrono::FixedOffset::east_opt(10 * 3600).unwrap());
    let before = (vladivostok - chrono::Duration::minutes(5))
        .format("%d.%m.%Y %H:%M")
        .to_string();
    browser
        .goto(&app.url(&format!("/webhook/{alices}/logs")))
        .await;
    browser.expect_heading("Журнал вебхука «hook»").await;
    assert_eq!(
        browser
            .find("#from")
            .await
            .attr("placeholder")
            .await
            .unwrap()
            .as_deref(),
        Some("ДД.ММ.ГГГГ ЧЧ:ММ")
    );
    browser.fill("#from", &before).await;
    browser.click("form.filters button[type=submit]").await;
    eventually(WAIT, "the filtered page", || async {
        browser.path().await.contains("from=").then_some(())
    })
    .await;
    assert_eq!(browser.texts("tbody tr").await.len(), 1, "read as UTC+10");
    assert_eq!(
        browser.find("#from").await.prop("value").await.unwrap(),
        Some(before.clone()),
        "shown back as typed"
    );
    // ISO is read too, and a start after the attempt leaves nothing.
    let after = (vladivostok + chrono::Duration::minutes(5))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    browser.fill("#from", &after).await;
    browser.click("form.filters button[type=submit]").await;
    browser.find("p.muted").await;
    assert!(
        browser
            .body_text()
            .await
            .contains("Нет попыток, подходящих под условия."),
        "{after}"
    );
    browser.fill("#from", "вчера").await;
    browser.click("form.filters button[type=submit]").await;
    let error = browser.text(".field-error").await;
    assert!(error.contains("ДД.ММ.ГГГГ ЧЧ:ММ"), "{error}");
    browser.screenshot("views-logs-ru").await;

    // The attempt: its payload with the control made visible.
    browser
        .goto(&app.url(&format!("/webhook/{alices}/logs")))
        .await;
    browser.click("td[data-label='Подробности'] a").await;
    browser.expect_heading("Попытка 1").await;
    let payload = browser.text("pre.body").await;
    assert!(payload.contains("сделка <U+202E>dlrow"), "{payload}");
    assert!(!payload.contains('\u{202e}'), "{payload}");
    // Both sides' headers, the custom key masked.
    let headers = browser.texts("table.headers").await;
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert!(
        headers[0].contains("x-webhook-event task.created"),
        "{headers:?}"
    );
    assert!(headers[0].contains("x-api-key (hidden)"), "{headers:?}");
    assert!(!headers.concat().contains("k-123456"), "{headers:?}");
    assert!(
        headers[1].to_lowercase().contains("content-length"),
        "{headers:?}"
    );
    let log_id: i64 = sqlx::query_scalar("SELECT id FROM webhook_logs WHERE webhook_id = $1")
        .bind(alices)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let (status, log) = app
        .api(
            &subscribed.token,
            reqwest::Method::GET,
            &format!("/api/v1/webhooks/{alices}/logs/{log_id}"),
            json!(null),
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let sent = log["request_headers"].as_array().unwrap();
    assert!(sent.contains(&json!(["x-api-key", "(hidden)"])), "{log}");
    assert!(log["response_headers"].as_array().is_some(), "{log}");
    browser.screenshot("views-attempt-ru").await;

    // A live row is in Russian too: its texts come from the server, its
    // labels from the table's headers.
    browser
        .goto(&app.url(&format!("/webhook/{alices}/logs")))
        .await;
    browser.find("[data-live-url][data-live-open]").await;
    app.publisher.publish(&task("вживую")).await.unwrap();
    subscribed.receiver.wait_for(2, WAIT).await;
    let row = browser.find("tr[data-live-row]").await;
    let text = row.text().await.unwrap();
    assert!(
        text.contains("HTTP 200") && text.contains("Открыть"),
        "{text}"
    );
    assert!(text.contains(" мс"), "{text}");
    let first = row.find(fantoccini::Locator::Css("td")).await.unwrap();
    assert_eq!(
        first.attr("data-label").await.unwrap().as_deref(),
        Some("Время")
    );
    let shown = first.text().await.unwrap();
    assert!(
        shown.chars().nth(2) == Some('.') && shown.chars().nth(5) == Some('.'),
        "ДД.ММ.ГГГГ: {shown}"
    );
    browser.close().await;
    subscribed.app.stop().await;
}

#[tokio::test]
async fn a_connection_error_names_the_receivers_port_and_path_but_not_its_query() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/hooks/crm?token=s3cret");
    let id = app
        .create_webhook_to(&token, &url, json!(["task.*"]), SECRET)
        .await;
    app.publisher.publish(&task("nobody home")).await.unwrap();
    let (_, error) = first_log(&app, id).await;
    let error = error.unwrap();
    let place = format!("127.0.0.1:{closed}/hooks/crm");
    assert!(error.contains(&place), "{error}");
    assert!(!error.contains("s3cret"), "{error}");

    for lang in ["en", "ru"] {
        let browser = Browser::start_in(lang).await;
        browser.sign_in_any_language(&app, &token).await;
        browser.goto(&app.url(&format!("/webhook/{id}/logs"))).await;
        let shown = browser.text("td.error-cell").await;
        assert!(shown.contains(&place), "{lang}: {shown}");
        let outcome = browser.text("tbody td:nth-child(4)").await;
        let expected = if lang == "ru" {
            "нет ответа"
        } else {
            "no response"
        };
        assert_eq!(outcome, expected);
        browser
            .screenshot(&format!("views-connection-error-{lang}"))
            .await;
        browser.close().await;
    }
    app.stop().await;
}
