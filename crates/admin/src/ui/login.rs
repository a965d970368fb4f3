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

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::error::UiError;
use super::error_page::SignInNeeded;
use super::flash::{set_flash, Flash};
use super::form::{csrf_input, CsrfForm, FormFields, CSRF_FIELD, FORM_KEY_FIELD};
use super::i18n::Tr;
use super::layout::{page, public_page};
use super::login_csrf::{LoginCsrf, LOGIN_TOKEN_LIFETIME_SECS};
use super::login_throttle::LoginThrottle;
use super::paths::{is_local_path, LIST_PATH};
use super::session::{
    cookie, cookies_secure, hash_cookie, optional_session, random_token, session_cookie_name,
    set_cookie, tokens_match, viewer, Session, SESSION_LIFETIME,
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
/// A token and, after a session ended mid-form, the form kept.
const MAX_LOGIN_BYTES: usize = 8 * 1024 + 2 * MAX_KEPT_FORM_BYTES;
/// Expired sessions deleted per sign-in (see `delete_expired_sessions`).
const EXPIRED_SESSIONS_PER_SIGN_IN: i64 = 100;

/// Where to go after signing in: only a path on this site (never `//host`,
/// which browsers read as another host), else the webhook list.
pub(crate) fn safe_next(next: &str) -> &str {
    let local = is_local_path(next) && !next.starts_with("/login") && !next.starts_with("/logout");
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
    tr: Tr,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref().unwrap_or(LIST_PATH)).to_owned();
    if session.is_some() {
        return Redirect::to(&next).into_response();
    }
    let secure = cookies_secure(state.config.secure_cookies, &headers);
    let view = LoginView {
        next,
        ..LoginView::default()
    };
    login_page(&tr, &guard.csrf, secure, &view, StatusCode::OK)
}

/// A form posted after its session ended: where it went and what it held
/// (its tokens removed), carried through the sign-in form's hidden fields
/// (protected by that form's own token) and given back afterwards.
#[derive(Debug, Clone, Default)]
struct Resume {
    path: String,
    body: String,
}

/// What the sign-in page shows besides the form.
#[derive(Debug, Default)]
struct LoginView {
    next: String,
    error: Option<String>,
    resume: Option<Resume>,
}

/// The form with a fresh signed double-submit token (cookie and hidden
/// field).
fn login_page(
    tr: &Tr,
    csrf: &LoginCsrf,
    secure: bool,
    view: &LoginView,
    status: StatusCode,
) -> Response {
    let token = csrf.issue();
    let (name, path) = login_cookie(secure);
    let cookie = set_cookie(name, &token, path, LOGIN_COOKIE_LIFETIME, secure);
    let body = public_page(tr, &tr.t("login-title"), login_form(tr, &token, view));
    (status, [(header::SET_COOKIE, cookie)], body).into_response()
}

fn login_form(tr: &Tr, nonce: &str, view: &LoginView) -> Markup {
    let error = view.error.as_deref();
    html! {
        section class="narrow" aria-labelledby="login-title" {
            h1 id="login-title" { (tr.t("login-title")) }
            @if view.resume.is_some() {
                div class="notice warn" role="status" id="session-ended" { (tr.t("login-session-ended")) }
            }
            p { (tr.t("login-help")) " "
                code { "webhookd users create --name NAME" } }
            @if let Some(error) = error {
                div class="error-summary" role="alert" id="login-error" { (error) }
            }
            form method="post" action="/login" class="stack" {
                input type="hidden" name=(CSRF_FIELD) value=(nonce);
                input type="hidden" name="next" value=(view.next);
                @if let Some(resume) = &view.resume {
                    input type="hidden" name="resume_path" value=(resume.path);
                    input type="hidden" name="resume_body" value=(resume.body);
                }
                div class="field" {
                    label for="token" { (tr.t("login-token")) }
                    input id="token" name="token" type="password" required
                        autocomplete="current-password" spellcheck="false"
                        placeholder=(tr.t("login-token-placeholder")) aria-invalid=[error.map(|_| "true")]
                        aria-describedby=[error.map(|_| "login-error")];
                }
                button type="submit" class="primary" { (tr.t("login-button")) }
            }
        }
    }
}

/// The resume fields of a sign-in form, when they name a page of this site.
fn resume_of(fields: &FormFields) -> Option<Resume> {
    let path = fields.get("resume_path");
    (!path.is_empty() && safe_next(path) == path).then(|| Resume {
        path: path.to_owned(),
        body: fields.get("resume_body").to_owned(),
    })
}

pub(crate) async fn sign_in(
    State(state): State<UiState>,
    Extension(guard): Extension<LoginGuard>,
    request: Request,
) -> Result<Response, UiError> {
    let (parts, body) = request.into_parts();
    let tr = viewer(&parts.headers, None);
    // The socket's peer (`serve.rs`); no forwarded address is trusted.
    let client = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    let bytes = axum::body::to_bytes(body, MAX_LOGIN_BYTES)
        .await
        .map_err(|_| UiError::BadRequest(tr.t("login-too-large")))?;
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
    let mut view = LoginView {
        next: safe_next(fields.get("next")).to_owned(),
        error: None,
        resume: resume_of(&fields),
    };
    if let Err(wait) = guard.throttle.check(client) {
        return Ok(throttled_page(&tr, &guard.csrf, https, view, wait));
    }
    let token = fields.get("token").trim();
    if token.is_empty() {
        view.error = Some(tr.t("login-token-missing"));
        return Ok(login_page(
            &tr,
            &guard.csrf,
            https,
            &view,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    }
    ui_sessions::delete_expired_sessions(&state.pool, EXPIRED_SESSIONS_PER_SIGN_IN).await?;
    let cookie_value = random_token();
    let session_hash = hash_cookie(&cookie_value);
    let opened = ui_sessions::create_session(
        &state.pool,
        token,
        &session_hash,
        &random_token(),
        SESSION_LIFETIME,
    )
    .await?;
    let Some(opened) = opened else {
        tracing::info!("web UI sign-in refused: unknown or revoked token");
        guard.throttle.record_failure(client);
        view.error = Some(tr.t("login-token-invalid"));
        return Ok(login_page(
            &tr,
            &guard.csrf,
            https,
            &view,
            StatusCode::UNPROCESSABLE_ENTITY,
        ));
    };
    tracing::info!(user_id = opened.user.id, "web UI sign-in");
    let target = match view.resume {
        Some(resume) => {
            let flash = Flash::Resume {
                path: resume.path,
                body: resume.body,
            };
            set_flash(&state.pool, &session_hash, &flash).await?;
            RESUME_PATH.to_owned()
        }
        None => view.next,
    };
    let mut response = Redirect::to(&target).into_response();
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
    tr: &Tr,
    csrf: &LoginCsrf,
    secure: bool,
    mut view: LoginView,
    wait: std::time::Duration,
) -> Response {
    tracing::info!("web UI sign-in throttled: too many failures from one client");
    let minutes = wait.as_secs().div_ceil(60).max(1);
    view.error = Some(tr.t_with("login-throttled", &[("minutes", minutes.into())]));
    let mut response = login_page(tr, csrf, secure, &view, StatusCode::TOO_MANY_REQUESTS);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from(wait.as_secs().max(1)),
    );
    response
}

/// Where a browser goes after signing in again with a kept form.
pub(crate) const RESUME_PATH: &str = "/resume";

/// Middleware: a form posted after its session ended (expired, signed out
/// elsewhere, token revoked) is answered with the sign-in page, saying why
/// and keeping what was typed for after the sign-in. Only a form this site
/// posted (`Sec-Fetch-Site`/`Origin`) is kept: another site must not be
/// able to fill in a form for someone signing in.
pub(crate) async fn keep_form_over_sign_in(
    State((state, guard)): State<(UiState, LoginGuard)>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    // The script's preview is no form to keep.
    let kept_path = !path.starts_with("/login") && path != "/logout" && path != PREVIEW_PATH;
    if request.method() != Method::POST || !kept_path {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_KEPT_FORM_BYTES).await else {
        let tr = viewer(&parts.headers, None);
        return UiError::BadRequest(tr.t("login-too-large")).into_response();
    };
    let headers = parts.headers.clone();
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if response.extensions().get::<SignInNeeded>().is_none()
        || !posted_by_this_site(&headers)
        || safe_next(&path) != path
    {
        return response;
    }
    let kept: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            url::form_urlencoded::parse(&bytes)
                .filter(|(name, _)| name != CSRF_FIELD && name != FORM_KEY_FIELD),
        )
        .finish();
    tracing::info!(
        path,
        "web UI form posted after its session ended: kept over a sign-in"
    );
    let tr = viewer(&headers, None);
    let secure = cookies_secure(state.config.secure_cookies, &headers);
    let view = LoginView {
        next: LIST_PATH.to_owned(),
        error: None,
        resume: Some(Resume { path, body: kept }),
    };
    login_page(&tr, &guard.csrf, secure, &view, StatusCode::UNAUTHORIZED)
}

const PREVIEW_PATH: &str = "/webhook/preview";

/// A form kept over a sign-in is as big as the UI's forms may be.
const MAX_KEPT_FORM_BYTES: usize = 256 * 1024;

/// Whether the browser says this site's own page sent the request.
fn posted_by_this_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if let Some(site) = fetch_site {
        return site == "same-origin";
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|origin| url::Url::parse(origin).ok())
        .is_some_and(|origin| {
            let authority = match (origin.host_str(), origin.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => return false,
            };
            Some(authority.as_str()) == host
        })
}

/// `GET /logout`: a button, since signing out changes state and so is a POST.
pub(crate) async fn show_logout(MaybeSession(session): MaybeSession) -> Response {
    let Some(session) = session else {
        return Redirect::to("/login").into_response();
    };
    let tr = &session.tr;
    page(
        &tr.t("login-sign-out-title"),
        &session,
        html! {
            section class="narrow" {
                h1 { (tr.t("login-sign-out-title")) }
                form method="post" action="/logout" {
                    (csrf_input(&session))
                    button type="submit" class="primary" { (tr.t("login-sign-out-button")) }
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
