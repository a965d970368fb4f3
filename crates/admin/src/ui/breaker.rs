//! A webhook's circuit breaker on the pages: a badge in the list while it
//! is open, a line in the details (docs/ARCHITECTURE.md, "Circuit breaker").

use maud::{html, Markup};
use webhookd_store::breakers::Breaker;

use super::i18n::Tr;
use super::layout::{outcome_badge, time_el};

/// Nothing while closed; `breaker open` (or `probing`) otherwise.
pub(crate) fn badge(tr: &Tr, breaker: &Breaker) -> Markup {
    match breaker.state() {
        "open" => outcome_badge(Some(false), &tr.t("details-breaker-open")),
        "half_open" => outcome_badge(Some(false), &tr.t("details-breaker-probing")),
        _ => html! {},
    }
}

/// The details page's line: the state, the failures counted, and while open
/// what happens to the deliveries.
pub(crate) fn summary_line(tr: &Tr, breaker: &Breaker) -> Markup {
    html! {
        dt { (tr.t("details-breaker-title")) } dd id="breaker-shown" {
            @match breaker.opened_at {
                None => {
                    (tr.t("details-breaker-closed"))
                    @if breaker.failures > 0 { " " (tr.t_with("details-breaker-failures", &[("count", breaker.failures.into())])) }
                },
                Some(opened) => {
                    (badge(tr, breaker)) " " (tr.t("details-breaker-since")) " " (time_el(tr, opened))
                    (tr.t("details-breaker-parked"))
                    @if let Some(next) = breaker.next_probe_at { (tr.t("details-breaker-next-probe")) " " (time_el(tr, next)) }
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
        let tr = Tr::default();
        assert_eq!(badge(&tr, &breaker(false, false)).into_string(), "");
        assert!(badge(&tr, &breaker(true, false))
            .into_string()
            .contains("breaker open"));
        assert!(badge(&tr, &breaker(true, true))
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
