//! Subscription patterns: an exact event name, `entity.*` or `*`.

use std::fmt;

use crate::catalogue::{find_event, CATALOGUE};

/// A validated subscription pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventPattern(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("empty event name")]
    Empty,
    #[error("unknown event `{0}`")]
    UnknownEvent(String),
    #[error("no event matches `{0}`")]
    UnknownEntity(String),
}

impl EventPattern {
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text == "*" || find_event(text).is_some() {
            return Ok(EventPattern(text.to_owned()));
        }
        let shown: String = text.chars().take(64).collect();
        match text.strip_suffix(".*") {
            Some(entity) if CATALOGUE.iter().any(|e| entity_of(e.name) == entity) => {
                Ok(EventPattern(text.to_owned()))
            }
            Some(_) => Err(PatternError::UnknownEntity(shown)),
            None => Err(PatternError::UnknownEvent(shown)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an event with this name is delivered to a subscription on this pattern.
    pub fn matches(&self, event: &str) -> bool {
        match self.0.strip_suffix(".*") {
            _ if self.0 == "*" => true,
            Some(entity) => entity_of(event) == entity,
            None => self.0 == event,
        }
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn entity_of(event: &str) -> &str {
    event.split_once('.').map_or(event, |(entity, _)| entity)
}

/// Every pattern that matches `event`: the storage layer finds subscribed
/// webhooks with one indexed array-overlap query on this list.
pub fn candidate_patterns(event: &str) -> [String; 3] {
    [
        event.to_owned(),
        format!("{}.*", entity_of(event)),
        "*".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EventPattern {
        EventPattern::parse(s).unwrap()
    }

    #[test]
    fn exact_names_entity_wildcards_and_star_are_accepted() {
        for ok in ["task.created", "task.*", "deal.*", "*", " comment.added "] {
            assert!(EventPattern::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(p(" comment.added ").as_str(), "comment.added");
    }

    #[test]
    fn unknown_names_and_malformed_wildcards_are_refused() {
        assert_eq!(EventPattern::parse(""), Err(PatternError::Empty));
        assert_eq!(EventPattern::parse("  "), Err(PatternError::Empty));
        for bad in ["task.exploded", "task", "*.created", "ta*", "task.c*", "**"] {
            assert!(
                matches!(EventPattern::parse(bad), Err(PatternError::UnknownEvent(_))),
                "{bad}"
            );
        }
        assert_eq!(
            EventPattern::parse("invoice.*"),
            Err(PatternError::UnknownEntity("invoice.*".into()))
        );
        assert!(EventPattern::parse(".*").is_err());
    }

    #[test]
    fn matching_follows_exact_entity_and_star_rules_for_every_event() {
        for spec in CATALOGUE {
            let e = spec.name;
            assert!(p("*").matches(e));
            assert!(p(e).matches(e));
            let entity = entity_of(e);
            for other in CATALOGUE {
                assert_eq!(p(other.name).matches(e), other.name == e);
                assert_eq!(
                    p(&format!("{}.*", entity_of(other.name))).matches(e),
                    entity_of(other.name) == entity
                );
            }
        }
    }

    #[test]
    fn candidate_patterns_are_exactly_the_patterns_that_match() {
        let all_patterns: Vec<EventPattern> = CATALOGUE
            .iter()
            .flat_map(|e| [e.name.to_owned(), format!("{}.*", entity_of(e.name))])
            .chain(["*".to_owned()])
            .map(|s| p(&s))
            .collect();
        for spec in CATALOGUE {
            let candidates = candidate_patterns(spec.name);
            for pattern in &all_patterns {
                assert_eq!(
                    candidates.iter().any(|c| c == pattern.as_str()),
                    pattern.matches(spec.name),
                    "{pattern} vs {}",
                    spec.name
                );
            }
        }
    }
}
