//! The page shell (landmarks, navigation, sign-out) and the small pieces
//! every page uses: times, outcome badges, notices after an action.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::assets::{SCRIPT_PATH, STYLESHEET_PATH};
use super::form::csrf_input;
use super::i18n::{Lang, Tr};
use super::paths::{language_path, SETTINGS_PATH};
use super::session::Session;

/// A signed-in user's page, in their language, with the navigation.
pub(crate) fn page(title: &str, session: &Session, content: Markup) -> Markup {
    shell(&session.tr, title, Some(session), content)
}

/// A page for a signed-out visitor (sign-in, errors before sign-in).
pub(crate) fn public_page(tr: &Tr, title: &str, content: Markup) -> Markup {
    shell(tr, title, None, content)
}

fn shell(tr: &Tr, title: &str, session: Option<&Session>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(tr.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · webhookd" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
                script src=(SCRIPT_PATH) defer {}
            }
            body {
                a class="skip-link" href="#main" { (tr.t("skip-to-content")) }
                header class="site-header" {
                    nav aria-label=(tr.t("nav-main")) {
                        a class="brand" href="/webhook/" { "webhookd" }
                        @if session.is_some() {
                            ul class="nav-links" {
                                li { a href="/webhook/" { (tr.t("nav-webhooks")) } }
                                li { a href="/webhook/stats" { (tr.t("nav-stats")) } }
                                li { a href=(SETTINGS_PATH) { (tr.t("nav-settings")) } }
                            }
                        }
                        (language_switch(tr))
                        @if let Some(session) = session {
                            form class="sign-out" method="post" action="/logout" {
                                (csrf_input(session))
                                span class="who" {
                                    (session.user.name)
                                    @if session.user.is_admin { " " (tr.t("admin-marker")) }
                                }
                                button type="submit" class="link-button" { (tr.t("sign-out")) }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    (content)
                }
                footer class="site-footer" {
                    p { "webhookd " (env!("CARGO_PKG_VERSION")) " · "
                        a href="/api/v1/openapi.json" { (tr.t("footer-api")) } }
                }
            }
        }
    }
}

/// Links to the other languages, each named in itself (and marked as
/// being in it, for screen readers and the pages' language checks).
fn language_switch(tr: &Tr) -> Markup {
    html! {
        ul class="language-switch" aria-label=(tr.t("nav-language")) {
            @for lang in Lang::ALL {
                @if lang != tr.lang {
                    li {
                        a href=(language_path(lang.code())) lang=(lang.code()) hreflang=(lang.code()) {
                            (lang.own_name())
                        }
                    }
                }
            }
        }
    }
}

/// An instant in the viewer's zone and language, UTC on hover.
pub(crate) fn time_el(tr: &Tr, at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) title=(tr.t_with("time-utc-hint", &[("utc", tr.utc_time(at).into())])) {
            (tr.local_time(at))
        }
    }
}

/// A delivery's or attempt's outcome, in words as well as colour.
pub(crate) fn outcome_badge(success: Option<bool>, text: &str) -> Markup {
    let class = match success {
        Some(true) => "badge ok",
        Some(false) => "badge fail",
        None => "badge neutral",
    };
    html! { span class=(class) { (text) } }
}

/// A delivery status (`pending`, `succeeded`, `failed`, `queued`) as a
/// badge in the viewer's language.
pub(crate) fn delivery_badge(tr: &Tr, status: &str) -> Markup {
    let success = match status {
        "succeeded" => Some(true),
        "failed" => Some(false),
        _ => None,
    };
    let text = match status {
        "pending" | "succeeded" | "failed" | "queued" => tr.t(&format!("status-{status}")),
        other => other.to_owned(),
    };
    outcome_badge(success, &text)
}

pub(crate) fn active_badge(tr: &Tr, is_active: bool) -> Markup {
    if is_active {
        outcome_badge(Some(true), &tr.t("badge-active"))
    } else {
        outcome_badge(None, &tr.t("badge-inactive"))
    }
}

/// `12.5 %`, or an em dash without data.
pub(crate) fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".to_owned(), |r| format!("{:.1} %", r * 100.0))
}

/// `84 ms`, or an em dash without data.
pub(crate) fn millis(ms: Option<f64>) -> String {
    ms.map_or_else(|| "—".to_owned(), |ms| format!("{ms:.0} ms"))
}

/// What an action did: kept in the session's flash (`flash.rs`), never
/// taken from the URL.
pub(crate) use super::flash::Notice;

/// A `<pre>` of a body: pretty-printed when it is JSON, as is otherwise.
pub(crate) fn body_block(tr: &Tr, label: &str, body: Option<&str>) -> Markup {
    let pretty = body.map(|text| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.to_owned())
    });
    html! {
        @match pretty {
            Some(text) => pre class="body" tabindex="0" aria-label=(label) { code { (text) } },
            None => p class="muted" { (tr.t("body-none")) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let html = public_page(
            &Tr::default(),
            "<b>",
            html! { p { ("<script>alert(1)</script>") } },
        )
        .into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("<title>&lt;b&gt; · webhookd</title>"));
    }
}
