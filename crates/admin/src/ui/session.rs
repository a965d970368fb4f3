//! Browser sessions: a random cookie value whose SHA-256 names a row of
//! `ui_sessions` (so a stolen database cannot be replayed as cookies), kept
//! server-side so sessions survive restarts and work on every API replica.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Lax` (not sent
//! on cross-site POSTs) and `Secure` as `http.secure_cookies` says: always,
//! never, or (`auto`) when the request came over HTTPS, which behind a proxy
//! is what `X-Forwarded-Proto`/`Forwarded` say (a cookie set over plain HTTP
//! must not be `Secure` or the browser drops it). A `Secure` cookie is named
//! with the `__Host-` prefix, which browsers accept only with `Secure`,
//! `Path=/` and no `Domain`: a sibling subdomain or a plain-HTTP page cannot
//! plant one.

use std::fmt;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use super::error::UiError;
use super::flash::{take_flash, Flash, Notice};
use super::i18n::{Tr, LANG_COOKIE, TZ_COOKIE};
use super::state::UiState;
use crate::api::webhooks::Redacted;
use crate::api::SecureCookies;
use webhookd_store::ui_sessions::{self, UiSession};
use webhookd_store::users::User;
use webhookd_store::webhooks::Scope;

pub(crate) const SESSION_COOKIE: &str = "webhookd_session";
const SECURE_SESSION_COOKIE: &str = "__Host-webhookd_session";
/// How long a sign-in lasts; the user signs in again afterwards.
pub(crate) const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

/// The signed-in user of a request, with the session's CSRF token. Its
/// `Debug` hides the token.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) user: User,
    pub(crate) csrf_token: String,
    /// SHA-256 of the cookie value: the row's key, for sign-out.
    pub(crate) id_hash: Vec<u8>,
    /// The user's language and time zone.
    pub(crate) tr: Tr,
    /// The zone the user chose on the settings page; `None`: the browser's.
    pub(crate) saved_time_zone: Option<String>,
    /// What the previous action left for this page (page loads only).
    pub(crate) flash: Option<Flash>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("csrf_token", &Redacted)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The webhooks this user may see and change.
    pub(crate) fn scope(&self) -> Scope {
        if self.user.is_admin {
            Scope::All
        } else {
            Scope::User(self.user.id)
        }
    }

    /// Whether a submitted form's token is this session's, compared in
    /// constant time so the comparison leaks nothing about the token.
    /// The notice the flash carries, if any.
    pub(crate) fn notice(&self) -> Option<Notice> {
        self.flash.as_ref().and_then(Flash::notice)
    }

    pub(crate) fn csrf_matches(&self, submitted: &str) -> bool {
        tokens_match(&self.csrf_token, submitted)
    }
}

impl FromRequestParts<UiState> for Session {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Self, UiError> {
        let sign_in = || UiError::SignInRequired {
            next: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .filter(|_| parts.method == axum::http::Method::GET),
        };
        let mut session = session_of(&parts.headers, state)
            .await?
            .ok_or_else(sign_in)?;
        if is_page_load(parts) {
            session.flash = take_flash(&state.pool, &session.id_hash).await?;
        }
        Ok(session)
    }
}

/// The session a request's cookie names, if it is live (its flash left
/// unread).
pub(crate) async fn session_of(
    headers: &HeaderMap,
    state: &UiState,
) -> Result<Option<Session>, UiError> {
    let secure = cookies_secure(state.config.secure_cookies, headers);
    let Some(value) = cookie(headers, session_cookie_name(secure)) else {
        return Ok(None);
    };
    let id_hash = hash_cookie(value);
    let found: Option<UiSession> = ui_sessions::find_session(&state.pool, &id_hash).await?;
    Ok(found.map(|found| Session {
        tr: viewer(headers, found.time_zone.as_deref()),
        user: found.user,
        csrf_token: found.csrf_token,
        id_hash,
        saved_time_zone: found.time_zone,
        flash: None,
    }))
}

/// A browser loading a page (not a script's fetch or the live feed): only
/// such a request takes the flash, which is for the page shown next.
fn is_page_load(parts: &Parts) -> bool {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    parts.method == axum::http::Method::GET
        && !header("accept").contains("text/event-stream")
        && matches!(header("sec-fetch-dest"), "" | "document")
}

/// The language and zone of a signed-out visitor (the sign-in page).
impl<S: Send + Sync> FromRequestParts<S> for Tr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(viewer(&parts.headers, None))
    }
}

/// A request's language and zone; `user_tz` is the signed-in user's saved
/// zone, which wins over the browser's.
pub(crate) fn viewer(headers: &HeaderMap, user_tz: Option<&str>) -> Tr {
    let accept_language = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let browser_tz = cookie(headers, TZ_COOKIE).map(|raw| {
        url::form_urlencoded::parse(format!("tz={raw}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    });
    Tr::resolve(
        cookie(headers, LANG_COOKIE),
        accept_language,
        user_tz,
        browser_tz.as_deref(),
    )
}

/// The session, when there is one: for pages that also serve signed-out
/// visitors (the sign-in page).
pub(crate) async fn optional_session(parts: &mut Parts, state: &UiState) -> Option<Session> {
    Session::from_request_parts(parts, state).await.ok()
}

/// 32 random bytes as unpadded base64url: session cookie values and CSRF
/// tokens.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // ThreadRng is a CSPRNG seeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn hash_cookie(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

pub(crate) fn tokens_match(expected: &str, submitted: &str) -> bool {
    // `ct_eq` on slices of different lengths is false without comparing;
    // the length of a random token is no secret.
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes()))
}

/// The value of cookie `name` among the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether this request's cookies are `Secure` (`http.secure_cookies`).
pub(crate) fn cookies_secure(mode: SecureCookies, headers: &HeaderMap) -> bool {
    match mode {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => request_is_https(headers),
    }
}

/// The session cookie's name: `__Host-` prefixed when `Secure`.
pub(crate) fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// Whether the browser's request reached us over HTTPS: directly (never, we
/// serve plain HTTP) or through a proxy that says so.
pub(crate) fn request_is_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
    // RFC 7239: `Forwarded: for=1.2.3.4;proto=https, for=...`; the first
    // element is the hop nearest the browser.
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            first.split(';').any(|pair| {
                pair.trim().split_once('=').is_some_and(|(k, v)| {
                    k.eq_ignore_ascii_case("proto")
                        && v.trim_matches('"').eq_ignore_ascii_case("https")
                })
            })
        });
    forwarded_proto || forwarded
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Duration,
    secure: bool,
) -> HeaderValue {
    let mut text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Lax",
        max_age.as_secs()
    );
    if secure {
        text.push_str("; Secure");
    }
    // Names, paths and our base64url values are all visible ASCII.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn cookies_are_found_by_exact_name_across_headers() {
        let h = headers(&[
            ("cookie", "a=1; webhookd_session_x=no"),
            ("cookie", "webhookd_session=abc; b=2"),
        ]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "missing"), None);
        assert_eq!(
            cookie(&headers(&[("cookie", "webhookd_session=")]), SESSION_COOKIE),
            None
        );
    }

    #[test]
    fn https_is_read_from_the_proxy_headers_nearest_the_browser() {
        assert!(!request_is_https(&headers(&[])));
        assert!(request_is_https(&headers(&[(
            "x-forwarded-proto",
            "https"
        )])));
        assert!(request_is_https(&headers(&[(
            "x-forwarded-proto",
            "HTTPS, http"
        )])));
        assert!(!request_is_https(&headers(&[(
            "x-forwarded-proto",
            "http, https"
        )])));
        assert!(request_is_https(&headers(&[(
            "forwarded",
            "for=192.0.2.1;proto=https;by=proxy"
        )])));
        assert!(request_is_https(&headers(&[(
            "forwarded",
            "proto=\"https\""
        )])));
        assert!(!request_is_https(&headers(&[(
            "forwarded",
            "proto=http, proto=https"
        )])));
    }

    #[test]
    fn session_cookies_are_httponly_lax_and_secure_only_over_https() {
        let plain = set_cookie(SESSION_COOKIE, "v", "/", SESSION_LIFETIME, false);
        assert_eq!(
            plain.to_str().ok(),
            Some("webhookd_session=v; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax")
        );
        let secure = set_cookie(SESSION_COOKIE, "v", "/", Duration::ZERO, true);
        assert!(secure
            .to_str()
            .is_ok_and(|s| s.ends_with("; Secure") && s.contains("Max-Age=0")));
    }

    #[test]
    fn csrf_tokens_match_only_exactly_and_never_when_empty() {
        let token = random_token();
        assert_eq!(token.len(), 43);
        assert_ne!(token, random_token());
        assert!(tokens_match(&token, &token));
        assert!(!tokens_match(&token, &token[1..]));
        assert!(!tokens_match(&token, ""));
        assert!(!tokens_match("", ""));
    }
}
