//! A web UI session driven over plain HTTP (no browser): signed in through
//! the login form, for tests that post UI forms themselves.

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::StatusCode;

use crate::TestApp;

/// Signs in with `token` and reads the CSRF token from `page`: a client
/// that follows no redirects, the session's `Cookie` header value and the
/// CSRF token.
pub async fn ui_session(
    app: &TestApp,
    token: &str,
    page: &str,
) -> (reqwest::Client, String, String) {
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let cookie_value = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .expect("the cookie is set")
    };
    let login = http.get(app.url("/login")).send().await.unwrap();
    let nonce = cookie_value(&login, "webhookd_login");
    let signed_in = http
        .post(app.url("/login"))
        .header(COOKIE, format!("webhookd_login={nonce}"))
        .form(&[
            ("_csrf", nonce.as_str()),
            ("next", "/webhook/"),
            ("token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = format!(
        "webhookd_session={}",
        cookie_value(&signed_in, "webhookd_session")
    );
    let html = http
        .get(app.url(page))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let field = r#"name="_csrf" value=""#;
    let start = html.find(field).expect("a CSRF field") + field.len();
    let csrf = html[start..].split('"').next().unwrap().to_owned();
    (http, cookie, csrf)
}
