//! `/login` (sign in with an API token) and `/logout`.
//!
//! The sign-in form has no session yet, so its CSRF protection is a
//! double-submit token: a value in a short-lived cookie and in the form,
//! which must match, and which this server must have issued (signed,
//! `login_csrf`). A cross-site page can make a browser post the form, but
//! can neither read that cookie nor make up a token, so it cannot sign a
//! victim into the attacker's account. Failed sign-ins are throttled per
//! client (`login_throttle`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::error::UiError;
use super::form::{csrf_input, CsrfForm, FormFields, CSRF_FIELD};
use super::i18n::Tr;
use super::layout::{page, public_page};
use super::login_csrf::{LoginCsrf, LOGIN_TOKEN_LIFETIME_SECS};
use super::login_throttle::LoginThrottle;
use super::paths::LIST_PATH;
use super::session::{
    cookie, cookies_secure, hash_cookie, optional_session, random_token, session_cookie_name,
    set_cookie, tokens_match, Session, SESSION_LIFETIME,
};
use super::state::UiState;
use webhookd_store::ui_sessions;

/// The sign-in form's token lives as long as someone may take to paste theirs.
const LOGIN_COOKIE_LIFETIME: std::time::Duration =
    std::time::Duration::from_secs(LOGIN_TOKEN_LIFETIME_SECS);

/// What the sign-in routes share across requests (an `Extension` of the UI
/// router): the key of the form's tokens and the failure counts.
#[derive(Clone)]
pub(crate) struct LoginGuard {
    pub(crate) csrf: LoginCsrf,
    pub(crate) throttle: LoginThrottle,
}

/// The form token's cookie: name and path. `__Host-` needs `Path=/`.
fn login_cookie(secure: bool) -> (&'static str, &'static str) {
    if secure {
        ("__Host-webhookd_login", "/")
    } else {
        ("webhookd_login", "/login")
    }
}
const MAX_LOGIN_BYTES: usize = 8 * 1024;
/// Expired sessions deleted per sign-in (see `delete_expired_sessions`).
const EXPIRED_SESSIONS_PER_SIGN_IN: i64 = 100;

/// Where to go after signing in: only a path on this site (never `//host`,
/// which browsers read as another host), else the webhook list.
pub(crate) fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.starts_with("/login")
        && !next.starts_with("/logout")
        && next.len() <= 2048
        // Visible ASCII only: it becomes a `Location` header, and the path of
        // any real page is percent-encoded anyway.
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local {
        next
    } else {
        LIST_PATH
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// The signed-in user, if any: lets the sign-in page skip itself.
pub(crate) struct MaybeSession(pub Option<Session>);

impl FromRequestParts<UiState> for MaybeSession {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Self, UiError> {
        Ok(MaybeSession(optional_session(parts, state).await))
    }
}

pub(crate) async fn show_login(
    MaybeSession(session): MaybeSession,
    State(state): State<UiState>,
    Extension(guard): Extension<LoginGuard>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref().unwrap_or(LIST_PATH)).to_owned();
    if session.is_some() {
        return Redirect::to(&next).into_response();
    }
    let secure = cookies_secure(state.config.secure_cookies, &headers);
    login_page(&guard.csrf, secure, &next, None, StatusCode::OK)
}

/// The form with a fresh signed double-submit token (cookie and hidden
/// field).
fn login_page(
    csrf: &LoginCsrf,
    secure: bool,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let token = csrf.issue();
    let (name, path) = login_cookie(secure);
    let cookie = set_cookie(name, &token, path, LOGIN_COOKIE_LIFETIME, secure);
    let body = public_page(&Tr::default(), "Sign in", login_form(&token, next, error));
    (status, [(header::SET_COOKIE, cookie)], body).into_response()
}

fn login_form(nonce: &str, next: &str, error: Option<&str>) -> Markup {
    html! {
        section class="narrow" aria-labelledby="login-title" {
            h1 id="login-title" { "Sign in" }
            p { "Paste your API token. An administrator creates it with "
                code { "webhookd users create --name NAME" } "." }
            @if let Some(error) = error {
                div class="error-summary" role="alert" id="login-error" { (error) }
            }
            form method="post" action="/login" class="stack" {
                input type="hidden" name=(CSRF_FIELD) value=(nonce);
                input type="hidden" name="next" value=(next);
                div class="field" {
                    label for="token" { "API token" }
                    input id="token" name="token" type="password" required
                        autocomplete="current-password" spellcheck="false"
                        placeholder="whk_…" aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| "login-error")];
                }
                button type="submit" class="primary" { "Sign in" }
            }
        }
    }
}

pub(crate) async fn sign_in(
    State(state): State<UiState>,
    Extension(guard): Extension<LoginGuard>,
    request: Request,
) -> Result<Response, UiError> {
    let (parts, body) = request.into_parts();
    // The socket's peer (`serve.rs`); no forwarded address is trusted.
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    let bytes = axum::body::to_bytes(body, MAX_LOGIN_BYTES)
        .await
        .map_err(|_| UiError::BadRequest("the form is too large".to_owned()))?;
    let fields = FormFields::parse(&bytes);
    let https = cookies_secure(state.config.secure_cookies, &parts.headers);
    let (login_name, login_path) = login_cookie(https);
    let expected = cookie(&parts.headers, login_name).unwrap_or("");
    let submitted = fields.get(CSRF_FIELD);
    if !tokens_match(expected, submitted) || !guard.csrf.verify(submitted) {
        return Err(UiError::Forbidden(
            "The sign-in form expired or cookies are blocked",
        ));
    }
    let next = safe_next(fields.get("next")).to_owned();
    if let Err(wait) = guard.throttle.check(client) {
        return Ok(throttled_page(&guard.csrf, https, &next, wait));
    }
    let token = fields.get("token").trim();
    if token.is_empty() {
        let message = "Enter your API token.";
        return Ok(login_page(
            &guard.csrf,
            https,
            &next,
            Some(message),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    ui_sessions::delete_expired_sessions(&state.pool, EXPIRED_SESSIONS_PER_SIGN_IN).await?;
    let cookie_value = random_token();
    let opened = ui_sessions::create_session(
        &state.pool,
        token,
        &hash_cookie(&cookie_value),
        &random_token(),
        SESSION_LIFETIME,
    )
    .await?;
    let Some(opened) = opened else {
        tracing::info!("web UI sign-in refused: unknown or revoked token");
        guard.throttle.record_failure(client);
        let message = "That token is not valid, or it was revoked.";
        return Ok(login_page(
            &guard.csrf,
            https,
            &next,
            Some(message),
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    };
    tracing::info!(user_id = opened.user.id, "web UI sign-in");
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(
            session_cookie_name(https),
            &cookie_value,
            "/",
            SESSION_LIFETIME,
            https,
        ),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(login_name, "", login_path, std::time::Duration::ZERO, https),
    );
    Ok(response)
}

/// 429: the sign-in form again, saying when to retry, with `Retry-After`.
fn throttled_page(
    csrf: &LoginCsrf,
    secure: bool,
    next: &str,
    wait: std::time::Duration,
) -> Response {
    tracing::info!("web UI sign-in throttled: too many failures from one client");
    let minutes = wait.as_secs().div_ceil(60).max(1);
    let message = format!(
        "Too many failed sign-ins from your address. Try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    );
    let mut response = login_page(
        csrf,
        secure,
        next,
        Some(&message),
        StatusCode::TOO_MANY_REQUESTS,
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from(wait.as_secs().max(1)),
    );
    response
}

/// `GET /logout`: a button, since signing out changes state and so is a POST.
pub(crate) async fn show_logout(MaybeSession(session): MaybeSession) -> Response {
    let Some(session) = session else {
        return Redirect::to("/login").into_response();
    };
    page(
        "Sign out",
        &session,
        html! {
            section class="narrow" {
                h1 { "Sign out" }
                form method="post" action="/logout" {
                    (csrf_input(&session))
                    button type="submit" class="primary" { "Sign out now" }
                }
            }
        },
    )
    .into_response()
}

pub(crate) async fn sign_out(
    State(state): State<UiState>,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, UiError> {
    ui_sessions::delete_session(&state.pool, &form.session.id_hash).await?;
    tracing::info!(user_id = form.session.user.id, "web UI sign-out");
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, {
        let secure = cookies_secure(state.config.secure_cookies, &headers);
        set_cookie(
            session_cookie_name(secure),
            "",
            "/",
            std::time::Duration::ZERO,
            secure,
        )
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        for ok in [
            "/webhook/",
            "/webhook/5/logs?success=false",
            "/webhook/stats",
        ] {
            assert_eq!(safe_next(ok), ok);
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/login",
            "/logout",
            "/webhook/\n",
            "/webhook/é",
            "/webhook/ x",
        ] {
            assert_eq!(safe_next(bad), LIST_PATH, "{bad:?}");
        }
    }
}
