//! The UI's languages (English, Russian) and the viewer's time zone.
//!
//! Texts live in Fluent files, `crates/admin/locales/{en,ru}/*.ftl`, one
//! file per area of the UI, compiled in (no files to ship). Fluent because
//! Russian needs its three plural forms (`1 доставка`, `3 доставки`,
//! `5 доставок`) chosen by CLDR rules, which format strings cannot do.
//!
//! The language is the `webhookd_lang` cookie (the header's switch sets it)
//! or else the browser's `Accept-Language`; the time zone is the user's
//! setting, else the browser's own (the script stores it in the
//! `webhookd_tz` cookie), else UTC.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

/// The cookie the language switch sets.
pub(crate) const LANG_COOKIE: &str = "webhookd_lang";
/// The cookie the script sets to the browser's IANA time zone.
pub(crate) const TZ_COOKIE: &str = "webhookd_tz";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Lang {
    #[default]
    En,
    Ru,
}

impl Lang {
    pub(crate) const ALL: [Lang; 2] = [Lang::En, Lang::Ru];

    /// The BCP 47 tag, for `<html lang>` and the cookie.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
        }
    }

    /// The language's name in itself, for the switch.
    pub(crate) fn own_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ru => "Русский",
        }
    }

    /// `ru`, `ru-RU`, `RU`: by the primary subtag.
    pub(crate) fn from_code(code: &str) -> Option<Lang> {
        let primary = code.trim().split(['-', '_']).next()?;
        Lang::ALL
            .into_iter()
            .find(|lang| lang.code().eq_ignore_ascii_case(primary))
    }

    /// The first language of an `Accept-Language` header (by `q`, then by
    /// order) that the UI speaks.
    pub(crate) fn from_accept_language(header: &str) -> Option<Lang> {
        let mut offered: Vec<(f32, usize, Lang)> = header
            .split(',')
            .enumerate()
            .filter_map(|(position, item)| {
                let mut parts = item.split(';');
                let lang = Lang::from_code(parts.next()?)?;
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (q > 0.0).then_some((q, position, lang))
            })
            .collect();
        offered.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        offered.first().map(|(_, _, lang)| *lang)
    }

    fn bundle(self) -> &'static FluentBundle<FluentResource> {
        match self {
            Lang::En => &BUNDLES.0,
            Lang::Ru => &BUNDLES.1,
        }
    }
}

/// Every message file, by language; a new area's file is added to both.
const EN_FILES: &[(&str, &str)] = &[
    ("common", include_str!("../../locales/en/common.ftl")),
    ("login", include_str!("../../locales/en/login.ftl")),
    ("list", include_str!("../../locales/en/list.ftl")),
    ("details", include_str!("../../locales/en/details.ftl")),
    ("actions", include_str!("../../locales/en/actions.ftl")),
    ("form", include_str!("../../locales/en/form.ftl")),
    ("logs", include_str!("../../locales/en/logs.ftl")),
    ("stats", include_str!("../../locales/en/stats.ftl")),
    ("replay", include_str!("../../locales/en/replay.ftl")),
    ("errors", include_str!("../../locales/en/errors.ftl")),
    ("settings", include_str!("../../locales/en/settings.ftl")),
];
const RU_FILES: &[(&str, &str)] = &[
    ("common", include_str!("../../locales/ru/common.ftl")),
    ("login", include_str!("../../locales/ru/login.ftl")),
    ("list", include_str!("../../locales/ru/list.ftl")),
    ("details", include_str!("../../locales/ru/details.ftl")),
    ("actions", include_str!("../../locales/ru/actions.ftl")),
    ("form", include_str!("../../locales/ru/form.ftl")),
    ("logs", include_str!("../../locales/ru/logs.ftl")),
    ("stats", include_str!("../../locales/ru/stats.ftl")),
    ("replay", include_str!("../../locales/ru/replay.ftl")),
    ("errors", include_str!("../../locales/ru/errors.ftl")),
    ("settings", include_str!("../../locales/ru/settings.ftl")),
];

type Bundles = (FluentBundle<FluentResource>, FluentBundle<FluentResource>);

static BUNDLES: LazyLock<Bundles> = LazyLock::new(|| {
    (
        build_bundle(Lang::En, EN_FILES),
        build_bundle(Lang::Ru, RU_FILES),
    )
});

/// A bundle of `files`. A file that does not parse, or a message defined
/// twice, is logged and its good messages kept; the unit tests make sure
/// none does.
fn build_bundle(lang: Lang, files: &[(&str, &str)]) -> FluentBundle<FluentResource> {
    let id: LanguageIdentifier = lang.code().parse().unwrap_or_default();
    let mut bundle = FluentBundle::new_concurrent(vec![id]);
    // Unicode isolation marks around arguments would put bidi controls into
    // every page and every attribute.
    bundle.set_use_isolating(false);
    for (name, text) in files {
        let resource = match FluentResource::try_new((*text).to_owned()) {
            Ok(resource) => resource,
            Err((resource, errors)) => {
                tracing::error!(file = name, lang = lang.code(), ?errors, "bad Fluent file");
                resource
            }
        };
        if let Err(errors) = bundle.add_resource(resource) {
            tracing::error!(
                file = name,
                lang = lang.code(),
                ?errors,
                "Fluent messages clash"
            );
        }
    }
    bundle
}

/// How to speak to this viewer: language and time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tr {
    pub(crate) lang: Lang,
    pub(crate) tz: Tz,
}

impl Default for Tr {
    fn default() -> Self {
        Tr {
            lang: Lang::En,
            tz: Tz::UTC,
        }
    }
}

impl Tr {
    /// Resolves a request's viewer from what it carries: the switch's
    /// cookie, `Accept-Language`, the user's saved time zone and the
    /// browser's.
    pub(crate) fn resolve(
        lang_cookie: Option<&str>,
        accept_language: Option<&str>,
        user_tz: Option<&str>,
        browser_tz: Option<&str>,
    ) -> Tr {
        let lang = lang_cookie
            .and_then(Lang::from_code)
            .or_else(|| accept_language.and_then(Lang::from_accept_language))
            .unwrap_or_default();
        let tz = user_tz
            .and_then(parse_tz)
            .or_else(|| browser_tz.and_then(parse_tz))
            .unwrap_or(Tz::UTC);
        Tr { lang, tz }
    }

    /// The message `id`.
    pub(crate) fn t(&self, id: &str) -> String {
        self.format(id, None)
    }

    /// The message `id` with its arguments: `tr.t_with("retried", &[("count", n.into())])`.
    pub(crate) fn t_with(&self, id: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let mut fluent_args = FluentArgs::new();
        for (name, value) in args {
            fluent_args.set(*name, value.clone());
        }
        self.format(id, Some(&fluent_args))
    }

    /// In this language, else in English (a message not translated yet),
    /// else the id itself so the gap shows and the scan tests catch it.
    fn format(&self, id: &str, args: Option<&FluentArgs<'_>>) -> String {
        for lang in [self.lang, Lang::En] {
            let bundle = lang.bundle();
            if let Some(pattern) = bundle.get_message(id).and_then(|m| m.value()) {
                let mut errors = Vec::new();
                let text = bundle.format_pattern(pattern, args, &mut errors);
                if !errors.is_empty() {
                    tracing::warn!(id, lang = lang.code(), ?errors, "Fluent message formatting");
                }
                return text.into_owned();
            }
        }
        tracing::warn!(id, "no such UI message");
        id.to_owned()
    }

    /// An instant in this viewer's zone and language's format, with the
    /// zone's abbreviation: `2026-12-04 21:03:05 MSK`, `04.12.2026 21:03:05 MSK`.
    pub(crate) fn local_time(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.tz);
        match self.lang {
            Lang::En => local.format("%Y-%m-%d %H:%M:%S %Z").to_string(),
            Lang::Ru => local.format("%d.%m.%Y %H:%M:%S %Z").to_string(),
        }
    }

    /// The same instant in UTC, for a hover title.
    pub(crate) fn utc_time(&self, at: DateTime<Utc>) -> String {
        match self.lang {
            Lang::En => at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            Lang::Ru => at.format("%d.%m.%Y %H:%M:%S UTC").to_string(),
        }
    }
}

/// An IANA zone name (`Europe/Moscow`); `None` for anything else.
pub(crate) fn parse_tz(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use std::collections::BTreeSet;

    fn ids(files: &[(&str, &str)]) -> BTreeSet<String> {
        let mut ids = BTreeSet::new();
        for (name, text) in files {
            let resource = FluentResource::try_new((*text).to_owned())
                .unwrap_or_else(|(_, errors)| panic!("{name}.ftl does not parse: {errors:?}"));
            for entry in resource.entries() {
                if let fluent_syntax::ast::Entry::Message(message) = entry {
                    assert!(
                        ids.insert(message.id.name.to_owned()),
                        "{} defined twice",
                        message.id.name
                    );
                }
            }
        }
        ids
    }

    #[test]
    fn both_languages_parse_and_define_the_same_messages() {
        let en = ids(EN_FILES);
        let ru = ids(RU_FILES);
        let only_en: Vec<_> = en.difference(&ru).collect();
        let only_ru: Vec<_> = ru.difference(&en).collect();
        assert!(only_en.is_empty(), "not translated to Russian: {only_en:?}");
        assert!(only_ru.is_empty(), "missing in English: {only_ru:?}");
        assert!(en.contains("nav-webhooks"));
    }

    #[test]
    fn russian_plurals_follow_cldr() {
        let ru = Tr {
            lang: Lang::Ru,
            tz: Tz::UTC,
        };
        let count = |n: i64| ru.t_with("n-deliveries", &[("count", n.into())]);
        assert_eq!(count(1), "1 доставка");
        assert_eq!(count(3), "3 доставки");
        assert_eq!(count(5), "5 доставок");
        assert_eq!(count(21), "21 доставка");
        assert_eq!(count(11), "11 доставок");
        let en = Tr::default();
        assert_eq!(
            en.t_with("n-deliveries", &[("count", 1.into())]),
            "1 delivery"
        );
        assert_eq!(
            en.t_with("n-deliveries", &[("count", 2.into())]),
            "2 deliveries"
        );
    }

    #[test]
    fn the_language_comes_from_the_cookie_then_the_browser() {
        let lang = |cookie, header| Tr::resolve(cookie, header, None, None).lang;
        assert_eq!(lang(None, None), Lang::En);
        assert_eq!(lang(None, Some("ru-RU,ru;q=0.9,en-US;q=0.8")), Lang::Ru);
        assert_eq!(lang(None, Some("de-DE, en;q=0.5, ru;q=0.7")), Lang::Ru);
        assert_eq!(lang(None, Some("ru;q=0, en")), Lang::En);
        assert_eq!(lang(None, Some("fr, de")), Lang::En);
        assert_eq!(lang(Some("en"), Some("ru")), Lang::En);
        assert_eq!(lang(Some("xx"), Some("ru")), Lang::Ru);
    }

    #[test]
    fn the_zone_is_the_users_then_the_browsers_then_utc() {
        let tz = |user, browser| Tr::resolve(None, None, user, browser).tz;
        assert_eq!(tz(None, None), Tz::UTC);
        assert_eq!(tz(None, Some("Europe/Moscow")), Tz::Europe__Moscow);
        assert_eq!(
            tz(Some("Asia/Vladivostok"), Some("Europe/Moscow")),
            Tz::Asia__Vladivostok
        );
        assert_eq!(tz(Some("Mars/Olympus"), None), Tz::UTC);
    }

    #[test]
    fn times_are_shown_in_the_zone_and_the_languages_format() {
        let at = Utc.with_ymd_and_hms(2026, 12, 4, 21, 3, 5).single();
        let Some(at) = at else {
            panic!("a valid instant");
        };
        let ru = Tr {
            lang: Lang::Ru,
            tz: Tz::Europe__Moscow,
        };
        assert_eq!(ru.local_time(at), "05.12.2026 00:03:05 MSK");
        assert_eq!(ru.utc_time(at), "04.12.2026 21:03:05 UTC");
        let en = Tr {
            lang: Lang::En,
            tz: Tz::America__New_York,
        };
        assert_eq!(en.local_time(at), "2026-12-04 16:03:05 EST");
    }
}
