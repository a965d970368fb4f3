//! The page shell (landmarks, navigation, sign-out) and the small pieces
//! every page uses: times, outcome badges, notices after an action.

use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::assets::{SCRIPT_PATH, STYLESHEET_PATH};
use super::form::csrf_input;
use super::session::Session;

/// A whole page. `session` is `None` on the sign-in and error pages.
pub(crate) fn page(title: &str, session: Option<&Session>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · webhookd" }
                link rel="stylesheet" href=(STYLESHEET_PATH);
                script src=(SCRIPT_PATH) defer {}
            }
            body {
                a class="skip-link" href="#main" { "Skip to content" }
                header class="site-header" {
                    nav aria-label="Main" {
                        a class="brand" href="/webhook/" { "webhookd" }
                        @if let Some(session) = session {
                            ul class="nav-links" {
                                li { a href="/webhook/" { "Webhooks" } }
                                li { a href="/webhook/stats" { "Statistics" } }
                            }
                            form class="sign-out" method="post" action="/logout" {
                                (csrf_input(session))
                                span class="who" {
                                    (session.user.name)
                                    @if session.user.is_admin { " (admin)" }
                                }
                                button type="submit" class="link-button" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    (content)
                }
                footer class="site-footer" {
                    p { "webhookd " (env!("CARGO_PKG_VERSION")) " · "
                        a href="/api/v1/openapi.json" { "API (OpenAPI)" } }
                }
            }
        }
    }
}

/// An instant, readable and machine-readable; always UTC, said so.
pub(crate) fn time_el(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
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

/// A delivery status (`pending`, `succeeded`, `failed`) as a badge.
pub(crate) fn delivery_badge(status: &str) -> Markup {
    let success = match status {
        "succeeded" => Some(true),
        "failed" => Some(false),
        _ => None,
    };
    outcome_badge(success, status)
}

pub(crate) fn active_badge(is_active: bool) -> Markup {
    if is_active {
        outcome_badge(Some(true), "active")
    } else {
        outcome_badge(None, "inactive")
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

/// What an action did, shown on the page it redirects to. Only these fixed
/// messages can be shown: the query string picks one, it never carries text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    Created,
    Updated,
    Deleted,
    SwitchedOn,
    SwitchedOff,
    Retried(u64),
    /// Retried a range's first deliveries; more failed in it.
    RetriedMore(u64),
}

impl Notice {
    pub(crate) fn query(self) -> String {
        match self {
            Notice::Created => "notice=created".to_owned(),
            Notice::Updated => "notice=updated".to_owned(),
            Notice::Deleted => "notice=deleted".to_owned(),
            Notice::SwitchedOn => "notice=on".to_owned(),
            Notice::SwitchedOff => "notice=off".to_owned(),
            Notice::Retried(n) => format!("notice=retried&count={n}"),
            Notice::RetriedMore(n) => format!("notice=retried_more&count={n}"),
        }
    }

    pub(crate) fn from_query(notice: Option<&str>, count: Option<&str>) -> Option<Notice> {
        Some(match notice? {
            "created" => Notice::Created,
            "updated" => Notice::Updated,
            "deleted" => Notice::Deleted,
            "on" => Notice::SwitchedOn,
            "off" => Notice::SwitchedOff,
            "retried" => Notice::Retried(count.and_then(|c| c.parse().ok()).unwrap_or(0)),
            "retried_more" => Notice::RetriedMore(count.and_then(|c| c.parse().ok()).unwrap_or(0)),
            _ => return None,
        })
    }

    fn text(self) -> String {
        match self {
            Notice::Created => "Webhook created.".to_owned(),
            Notice::Updated => "Changes saved.".to_owned(),
            Notice::Deleted => "Webhook deleted, with its deliveries and logs.".to_owned(),
            Notice::SwitchedOn => "Webhook switched on: it receives events again.".to_owned(),
            Notice::SwitchedOff => "Webhook switched off: it receives no events.".to_owned(),
            Notice::Retried(0) => "Nothing to retry: no failed deliveries.".to_owned(),
            Notice::Retried(1) => "1 delivery will be retried now.".to_owned(),
            Notice::Retried(n) => format!("{n} deliveries will be retried now."),
            Notice::RetriedMore(n) => format!(
                "{n} deliveries will be retried now; more failed in that range: \
                 submit the range again to retry the next ones."
            ),
        }
    }

    pub(crate) fn render(notice: Option<Notice>) -> Markup {
        html! {
            @if let Some(notice) = notice {
                div class="notice" role="status" { (notice.text()) }
            }
        }
    }
}

/// A `<pre>` of a body: pretty-printed when it is JSON, as is otherwise.
pub(crate) fn body_block(label: &str, body: Option<&str>) -> Markup {
    let pretty = body.map(|text| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| text.to_owned())
    });
    html! {
        @match pretty {
            Some(text) => pre class="body" tabindex="0" aria-label=(label) { code { (text) } },
            None => p class="muted" { "None." },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_through_the_query_and_unknown_ones_show_nothing() {
        for notice in [
            Notice::Created,
            Notice::Updated,
            Notice::Deleted,
            Notice::SwitchedOn,
            Notice::SwitchedOff,
            Notice::Retried(3),
            Notice::RetriedMore(10_000),
        ] {
            let query = notice.query();
            let mut pairs = url::form_urlencoded::parse(query.as_bytes());
            let kind = pairs.next().map(|(_, v)| v.into_owned());
            let count = pairs.next().map(|(_, v)| v.into_owned());
            assert_eq!(
                Notice::from_query(kind.as_deref(), count.as_deref()),
                Some(notice)
            );
        }
        assert_eq!(Notice::from_query(Some("<script>"), None), None);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let html = page("<b>", None, html! { p { ("<script>alert(1)</script>") } }).into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("<title>&lt;b&gt; · webhookd</title>"));
    }
}
