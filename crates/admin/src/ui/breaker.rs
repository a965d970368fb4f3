//! A webhook's circuit breaker on the pages: a badge in the list while it
//! is open, a line in the details (docs/ARCHITECTURE.md, "Circuit breaker").

use maud::{html, Markup};
use webhookd_store::breakers::Breaker;

use super::i18n::Tr;
use super::layout::{outcome_badge, time_el};

/// Nothing while closed; `breaker open` (or `probing`) otherwise.
pub(crate) fn badge(breaker: &Breaker) -> Markup {
    match breaker.state() {
        "open" => outcome_badge(Some(false), "breaker open"),
        "half_open" => outcome_badge(Some(false), "breaker open: probing"),
        _ => html! {},
    }
}

/// The details page's line: the state, the failures counted, and while open
/// what happens to the deliveries.
pub(crate) fn summary_line(tr: &Tr, breaker: &Breaker) -> Markup {
    html! {
        dt { "Circuit breaker" } dd id="breaker-shown" {
            @match breaker.opened_at {
                None => {
                    "closed"
                    @if breaker.failures > 0 { " (" (breaker.failures) " failed attempts in a row)" }
                },
                Some(opened) => {
                    (badge(breaker)) " since " (time_el(tr, opened))
                    ": deliveries are parked, one probe at a time tests the receiver"
                    @if let Some(next) = breaker.next_probe_at { "; next probe " (time_el(tr, next)) }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn breaker(open: bool, probing: bool) -> Breaker {
        Breaker {
            failures: 12,
            opened_at: open.then(Utc::now),
            next_probe_at: open.then(Utc::now),
            probing,
        }
    }

    #[test]
    fn the_list_shows_a_badge_only_while_the_breaker_is_open() {
        assert_eq!(badge(&breaker(false, false)).into_string(), "");
        assert!(badge(&breaker(true, false))
            .into_string()
            .contains("breaker open"));
        assert!(badge(&breaker(true, true))
            .into_string()
            .contains("probing"));
    }

    #[test]
    fn the_details_say_what_happens_to_the_deliveries() {
        let closed = summary_line(&Tr::default(), &breaker(false, false)).into_string();
        assert!(
            closed.contains("closed (12 failed attempts in a row)"),
            "{closed}"
        );
        let open = summary_line(&Tr::default(), &breaker(true, false)).into_string();
        assert!(open.contains("deliveries are parked"), "{open}");
        assert!(open.contains("next probe"), "{open}");
    }
}
