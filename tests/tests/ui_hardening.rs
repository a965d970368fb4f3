//! Hygiene of the API and the web UI's sign-in [SPEC §15, issue #19
//! finding 8]: answers carrying secrets are never cached, failed sign-ins are
//! throttled per client, cookies are `Secure` and `__Host-` named by
//! configuration, and the sign-in form's CSRF token must be one the server
//! issued.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use reqwest::header::{CACHE_CONTROL, COOKIE, RETRY_AFTER, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Response, StatusCode};
use serde_json::json;
use webhookd_e2e::TestApp;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// The full `Set-Cookie` line of cookie `name`.
fn set_cookie_line(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(line: &str) -> String {
    let pair = line.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

/// Shows the sign-in form and returns its CSRF token (cookie and field).
async fn login_token(app: &TestApp, http: &reqwest::Client, cookie_name: &str) -> String {
    let form = http.get(app.url("/login")).send().await.unwrap();
    let line = set_cookie_line(&form, cookie_name).expect("the form's cookie");
    cookie_value(&line)
}

async fn sign_in(
    app: &TestApp,
    http: &reqwest::Client,
    cookie_name: &str,
    csrf: &str,
    token: &str,
) -> Response {
    http.post(app.url("/login"))
        .header(COOKIE, format!("{cookie_name}={csrf}"))
        .form(&[("_csrf", csrf), ("next", "/webhook/"), ("token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn api_answers_that_carry_a_secret_are_never_cached() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let created = app
        .http
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(&token)
        .json(&json!({"name": "hook", "url": "http://127.0.0.1:9/", "events": ["task.created"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()[CACHE_CONTROL], "no-store");
    let body: serde_json::Value = created.json().await.unwrap();
    assert!(body["secret"].is_string(), "a generated secret: {body}");

    let rotated = app
        .http
        .post(app.url(&format!("/api/v1/webhooks/{}/rotate-secret", body["id"])))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(rotated.status().is_success(), "{}", rotated.status());
    assert_eq!(rotated.headers()[CACHE_CONTROL], "no-store");
    let missing = app
        .http
        .get(app.url("/api/v1/nothing-here"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.headers()[CACHE_CONTROL], "no-store", "every answer");
    app.stop().await;
}

#[tokio::test]
async fn the_eleventh_failed_sign_in_from_one_client_is_refused_with_429() {
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let http = browser();
    let csrf = login_token(&app, &http, "webhookd_login").await;
    for attempt in 1..=10 {
        let refused = sign_in(&app, &http, "webhookd_login", &csrf, "whk_not-a-token").await;
        assert_eq!(
            refused.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "failure {attempt} is answered normally"
        );
    }
    let throttled = sign_in(&app, &http, "webhookd_login", &csrf, "whk_not-a-token").await;
    assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = throttled.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&wait), "Retry-After: {wait}");
    let page = throttled.text().await.unwrap();
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    // Even the right token waits: guesses cannot be interleaved with it.
    let right = sign_in(&app, &http, "webhookd_login", &csrf, &token).await;
    assert_eq!(right.status(), StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

#[tokio::test]
async fn with_secure_cookies_on_the_cookies_are_secure_and_host_prefixed() {
    let app = TestApp::spawn_with(&[("WEBHOOKD__HTTP__SECURE_COOKIES", "true")]).await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let http = browser();
    let form = http.get(app.url("/login")).send().await.unwrap();
    let login_line = set_cookie_line(&form, "__Host-webhookd_login").expect("a __Host- cookie");
    assert!(login_line.contains("; Secure"), "{login_line}");
    assert!(login_line.contains("Path=/;"), "{login_line}");
    let csrf = cookie_value(&login_line);

    let signed_in = sign_in(&app, &http, "__Host-webhookd_login", &csrf, &token).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let session_line =
        set_cookie_line(&signed_in, "__Host-webhookd_session").expect("a __Host- session cookie");
    assert!(session_line.contains("; Secure"), "{session_line}");
    assert!(session_line.contains("Path=/;"), "{session_line}");
    assert!(!session_line.contains("Domain"), "{session_line}");

    let list = http
        .get(app.url("/webhook/"))
        .header(
            COOKIE,
            format!("__Host-webhookd_session={}", cookie_value(&session_line)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK, "the session works");
    app.stop().await;
}

#[tokio::test]
async fn a_sign_in_whose_csrf_cookie_and_field_match_but_were_not_issued_by_the_server_is_refused()
{
    let app = TestApp::spawn().await;
    let (_, token) = app.create_user("Alice", None, false).await;
    let http = browser();
    let issued = login_token(&app, &http, "webhookd_login").await;
    let (payload, _) = issued.split_once('.').unwrap();
    for forged in [
        "attacker-chosen-value".to_owned(),
        format!("{payload}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let refused = sign_in(&app, &http, "webhookd_login", &forged, &token).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{forged}");
        assert!(set_cookie_line(&refused, "webhookd_session").is_none());
    }
    let accepted = sign_in(&app, &http, "webhookd_login", &issued, &token).await;
    assert_eq!(
        accepted.status(),
        StatusCode::SEE_OTHER,
        "an issued token works"
    );
    app.stop().await;
}
