//! The page shell (landmarks, navigation, sign-out) and the small pieces
//! every page uses: times, outcome badges, notices after an action.

use std::borrow::Cow;

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

/// `12.5 %` (`12,5 %` in Russian), or an em dash without data.
pub(crate) fn percent(tr: &Tr, rate: Option<f64>) -> String {
    rate.map_or_else(
        || "—".to_owned(),
        |r| decimal(tr, &format!("{:.1}", r * 100.0)) + "\u{a0}%",
    )
}

/// `84 ms` (`84 мс`), or an em dash without data.
pub(crate) fn millis(tr: &Tr, ms: Option<f64>) -> String {
    ms.map_or_else(
        || "—".to_owned(),
        |ms| tr.t_with("list-unit-ms", &[("ms", format!("{ms:.0}").into())]),
    )
}

/// A number written with the language's decimal separator.
fn decimal(tr: &Tr, number: &str) -> String {
    match tr.lang {
        Lang::Ru => number.replace('.', ","),
        Lang::En => number.to_owned(),
    }
}

/// Bidirectional-text controls (U+202E turns `gpj.exe` into `exe.jpg` on
/// screen) made visible as `<U+202E>`, so what is shown reads as stored.
pub(crate) fn visible_controls(text: &str) -> Cow<'_, str> {
    let is_control = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.contains(is_control) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            shown.push_str(&format!("<U+{:04X}>", u32::from(c)));
        } else {
            shown.push(c);
        }
    }
    Cow::Owned(shown)
}

/// A name in a table cell: bidi controls visible, wrapped anywhere and cut
/// to a few lines, in full on hover.
pub(crate) fn name_text(name: &str) -> Markup {
    let shown = visible_controls(name);
    html! { span class="clamp" title=(shown) { (shown) } }
}

/// A webhook's owner: `Ольга (7)`, or `user 7` when the user is gone.
/// For every page showing an owner (list, details).
pub(crate) fn owner_label(tr: &Tr, name: Option<&str>, id: i64) -> String {
    match name {
        Some(name) => format!("{} ({id})", visible_controls(name)),
        None => tr.t_with("list-owner-unknown", &[("id", id.into())]),
    }
}

/// A target URL as people read it: an internationalised domain in Unicode
/// with its punycode beside (`пример.рф (xn--e1afmkfd.xn--p1ai)`), bidi
/// controls visible, cut to a few lines with the URL in full on hover.
pub(crate) fn url_text(url: &str) -> Markup {
    let (shown, ascii) = unicode_host(url);
    let shown = visible_controls(&shown).into_owned();
    html! {
        code class="url clamp" title=(shown) { (shown) }
        @if let Some(ascii) = ascii {
            " " small class="punycode" { "(" code { (ascii) } ")" }
        }
    }
}

/// The URL with its host in Unicode, and the host's punycode when the
/// two differ.
fn unicode_host(url: &str) -> (String, Option<String>) {
    let Some(ascii) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    else {
        return (url.to_owned(), None);
    };
    let (unicode, checked) = idna::domain_to_unicode(&ascii);
    if checked.is_err() || unicode == ascii {
        return (url.to_owned(), None);
    }
    // Stored URLs carry the punycode form; one typed in Unicode already
    // reads well.
    let shown = url.replacen(&ascii, &unicode, 1);
    (shown, Some(ascii))
}

/// What an action did: kept in the session's flash (`flash.rs`), never
/// taken from the URL.
pub(crate) use super::flash::Notice;

/// A `<pre>` of a body: pretty-printed when it is JSON, as is otherwise.
pub(crate) fn body_block(tr: &Tr, label: &str, body: Option<&str>) -> Markup {
    // Pretty-printing decodes `\u202e` escapes into the characters
    // themselves: made visible after it, so neither form hides them.
    let pretty = body.map(|text| {
        let pretty = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.to_owned());
        visible_controls(&pretty).into_owned()
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
    fn bidi_controls_are_shown_as_their_code_points() {
        assert_eq!(visible_controls("plain"), "plain");
        assert_eq!(
            visible_controls("invoice\u{202e}gpj.exe"),
            "invoice<U+202E>gpj.exe"
        );
        let html = body_block(&Tr::default(), "b", Some(r#"{"a":"x\u202ey"}"#)).into_string();
        assert!(html.contains("x&lt;U+202E&gt;y"), "{html}");
    }

    #[test]
    fn international_domains_are_shown_in_unicode_with_the_punycode_beside() {
        let html = url_text("https://xn--e1afmkfd.xn--p1ai:8443/hook").into_string();
        assert!(html.contains("https://пример.рф:8443/hook"), "{html}");
        assert!(
            html.contains("<code>xn--e1afmkfd.xn--p1ai</code>"),
            "{html}"
        );
        let plain = url_text("http://127.0.0.1:9/x").into_string();
        assert!(!plain.contains("punycode"), "{plain}");
    }

    #[test]
    fn percents_use_the_languages_decimal_separator() {
        let ru = Tr {
            lang: Lang::Ru,
            tz: chrono_tz::Tz::UTC,
        };
        assert_eq!(percent(&ru, Some(0.125)), "12,5\u{a0}%");
        assert_eq!(percent(&Tr::default(), Some(0.125)), "12.5\u{a0}%");
        assert_eq!(millis(&ru, Some(84.2)), "84 мс");
        assert_eq!(owner_label(&ru, Some("Ольга"), 7), "Ольга (7)");
    }

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
