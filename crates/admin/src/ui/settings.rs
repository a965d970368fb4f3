//! The viewer's preferences: the language switch (a cookie, so it works
//! before sign-in too) and the settings page (time zone, saved per user;
//! language).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{html, Markup};

use super::error::UiError;
use super::flash::{set_flash, Flash};
use super::form::{csrf_input, CsrfForm};
use super::i18n::{parse_tz, Lang, LANG_COOKIE, TZ_COOKIE};
use super::layout::{page, time_el, Notice};
use super::paths::{is_local_path, LIST_PATH, SETTINGS_PATH};
use super::session::{cookie, cookies_secure, set_cookie, viewer, Session};
use super::state::UiState;
use webhookd_store::users;

/// A language choice is remembered for a year.
const LANG_COOKIE_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// `GET /language/{code}`: remembers the language and returns to the page
/// the switch was clicked on (the `Referer`'s path on this site), else the
/// list. A GET so it works as a plain link everywhere, the sign-in page
/// included; it changes nothing but this browser's cookie.
pub(crate) async fn switch_language(
    State(state): State<UiState>,
    Path(code): Path<String>,
    headers: HeaderMap,
) -> Response {
    let back = back_path(&headers);
    let Some(lang) = Lang::from_code(&code) else {
        return Redirect::to(&back).into_response();
    };
    let secure = cookies_secure(state.config.secure_cookies, &headers);
    let cookie = set_cookie(LANG_COOKIE, lang.code(), "/", LANG_COOKIE_LIFETIME, secure);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}

/// The path and query of the `Referer` when it is a page of this host.
fn back_path(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|referer| url::Url::parse(referer).ok())
        .filter(|url| {
            let authority = match (url.host_str(), url.port()) {
                (Some(h), Some(p)) => Some(format!("{h}:{p}")),
                (Some(h), None) => Some(h.to_owned()),
                _ => None,
            };
            authority.is_some() && authority.as_deref() == host
        })
        .map(|url| match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
        .filter(|path| is_local_path(path))
        .unwrap_or_else(|| LIST_PATH.to_owned())
}

/// `GET /settings`.
pub(crate) async fn show_settings(session: Session, headers: HeaderMap) -> Markup {
    settings_page(&session, &headers, session.notice(), None)
}

fn settings_page(
    session: &Session,
    headers: &HeaderMap,
    notice: Option<Notice>,
    error: Option<&str>,
) -> Markup {
    let tr = &session.tr;
    let browser_tz = viewer(headers, None).tz;
    let browser_known = cookie(headers, TZ_COOKIE).is_some();
    let saved = session.saved_time_zone.as_deref();
    let content = html! {
        h1 { (tr.t("settings-title")) }
        (Notice::render(tr, notice))
        form method="post" action=(SETTINGS_PATH) class="settings-form" novalidate {
            (csrf_input(session))
            div class="field" {
                label for="time_zone" { (tr.t("settings-time-zone")) }
                select id="time_zone" name="time_zone" aria-describedby="time_zone-help"
                    aria-invalid=[error.map(|_| "true")] {
                    option value="" selected[saved.is_none()] {
                        @if browser_known {
                            (tr.t_with("settings-tz-browser", &[("zone", browser_tz.name().into())]))
                        } @else {
                            (tr.t("settings-tz-browser-unknown"))
                        }
                    }
                    @for zone in chrono_tz::TZ_VARIANTS {
                        // IANA names are identifiers, the same in every language.
                        option value=(zone.name()) translate="no" selected[saved == Some(zone.name())] { (zone.name()) }
                    }
                }
                @if let Some(error) = error {
                    p class="field-error" id="time_zone-error" { (error) }
                }
                p class="help" id="time_zone-help" {
                    (tr.t("settings-tz-help")) " "
                    (tr.t("settings-tz-now")) " " (time_el(tr, Utc::now()))
                }
            }
            div class="field" {
                label for="language" { (tr.t("settings-language")) }
                select id="language" name="language" {
                    @for lang in Lang::ALL {
                        option value=(lang.code()) lang=(lang.code()) selected[lang == tr.lang] { (lang.own_name()) }
                    }
                }
            }
            button type="submit" { (tr.t("settings-save")) }
        }
    };
    page(&tr.t("settings-title"), session, content)
}

/// `POST /settings`: saves the zone for the user and the language for this
/// browser.
pub(crate) async fn save_settings(
    State(state): State<UiState>,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, UiError> {
    let session = form.session;
    let zone = form.fields.get("time_zone").trim();
    let zone = if zone.is_empty() {
        None
    } else {
        match parse_tz(zone) {
            Some(tz) => Some(tz.name()),
            None => {
                let error = session.tr.t("settings-tz-unknown");
                let body = settings_page(&session, &headers, None, Some(&error));
                return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, body).into_response());
            }
        }
    };
    users::set_time_zone(&state.pool, session.user.id, zone).await?;
    tracing::info!(user_id = session.user.id, time_zone = ?zone, "time zone saved in the web UI");
    let lang = Lang::from_code(form.fields.get("language")).unwrap_or(session.tr.lang);
    let secure = cookies_secure(state.config.secure_cookies, &headers);
    let cookie = set_cookie(LANG_COOKIE, lang.code(), "/", LANG_COOKIE_LIFETIME, secure);
    set_flash(
        &state.pool,
        &session.id_hash,
        &Flash::Notice(Notice::Updated),
    )
    .await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(SETTINGS_PATH)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(host: &'static str, referer: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, HeaderValue::from_static(host));
        map.insert(header::REFERER, HeaderValue::from_static(referer));
        map
    }

    #[test]
    fn the_switch_returns_only_to_a_page_of_this_host() {
        assert_eq!(
            back_path(&headers(
                "127.0.0.1:8080",
                "http://127.0.0.1:8080/webhook/5/logs?success=false"
            )),
            "/webhook/5/logs?success=false"
        );
        assert_eq!(
            back_path(&headers("127.0.0.1:8080", "http://evil.example/x")),
            LIST_PATH
        );
        assert_eq!(
            back_path(&headers("127.0.0.1:8080", "not a url")),
            LIST_PATH
        );
        assert_eq!(back_path(&HeaderMap::new()), LIST_PATH);
    }
}
