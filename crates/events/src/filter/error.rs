//! Why a filter was refused, phrased for the person who wrote it, with the
//! path and operator at fault kept apart so the API can name them in its 422.

use std::fmt;

use super::limits;

/// A filter that cannot be saved. Its message reads like
/// "`data.amount`: `$gte` needs a number or a string, not an object".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    path: Option<String>,
    operator: Option<String>,
    problem: Problem,
}

impl FilterError {
    pub(super) fn new(problem: Problem) -> Self {
        FilterError {
            path: None,
            operator: None,
            problem,
        }
    }

    pub(super) fn with_path(mut self, path: &str) -> Self {
        self.path = Some(shorten(path));
        self
    }

    pub(super) fn with_operator(mut self, operator: &str) -> Self {
        self.operator = Some(shorten(operator));
        self
    }

    /// The dotted path at fault (cut to 64 characters), when the fault is
    /// under a path rather than in the filter's shape.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The operator at fault (`$gte`, `$and`, or an unknown `$foo` as written),
    /// when there is one.
    pub fn operator(&self) -> Option<&str> {
        self.operator.as_deref()
    }

    #[cfg(test)]
    pub(super) fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "`{path}`: ")?;
        }
        if let Some(op) = &self.operator {
            write!(f, "`{op}` ")?;
        }
        write!(f, "{}", self.problem)
    }
}

impl std::error::Error for FilterError {}

/// The fault itself. Each message reads on after the optional "`path`: " and
/// "`$op` " prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Problem {
    NotJson(String),
    NotAFilter(&'static str),
    UnknownOperator,
    OperatorWithoutPath,
    CombinatorUnderPath,
    Mixed(String),
    NeedsFilter(&'static str),
    NeedsFilterList(&'static str),
    NeedsFilterItem(usize, &'static str),
    EmptyList,
    NeedsArray(&'static str),
    NeedsBool(&'static str),
    NeedsString(&'static str),
    NeedsNumberOrString(&'static str),
    NeedsScalar(&'static str),
    EmptySegment,
    UnknownRoot,
    PathTooLong,
    StringTooLong,
    OperandTooDeep,
    TooDeep,
    TooManyConditions,
    TooManyValues,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotJson(e) => write!(f, "filter is not valid JSON: {e}"),
            Problem::NotAFilter(kind) => write!(
                f,
                "a filter is a JSON object of conditions (or null for none), not {kind}"
            ),
            Problem::UnknownOperator => f.write_str(
                "is not an operator; the operators are $eq $ne $gt $gte $lt $lte $in $nin \
                 $exists $contains $startsWith, combined with $and $or $not",
            ),
            Problem::OperatorWithoutPath => {
                f.write_str("needs a path: write {\"data.field\": {\"$op\": value}}")
            }
            Problem::CombinatorUnderPath => f.write_str(
                "combines whole filters and goes beside paths, not under one: \
                 write {\"$not\": {\"data.field\": ...}}",
            ),
            Problem::Mixed(key) => write!(
                f,
                "mixes operators with the plain key `{key}`; use only operators, or \
                 {{\"$eq\": {{...}}}} to compare with an object"
            ),
            Problem::NeedsFilter(kind) => write!(f, "needs a filter object, not {kind}"),
            Problem::NeedsFilterList(kind) => {
                write!(f, "needs a non-empty array of filter objects, not {kind}")
            }
            Problem::NeedsFilterItem(n, kind) => write!(
                f,
                "needs an array of filter objects, but item {n} (from 0) is {kind}"
            ),
            Problem::EmptyList => f.write_str("needs at least one filter in its array"),
            Problem::NeedsArray(kind) => write!(f, "needs an array of values, not {kind}"),
            Problem::NeedsBool(kind) => write!(f, "needs true or false, not {kind}"),
            Problem::NeedsString(kind) => write!(f, "needs a string, not {kind}"),
            Problem::NeedsNumberOrString(kind) => {
                write!(f, "needs a number or a string, not {kind}")
            }
            Problem::NeedsScalar(kind) => write!(
                f,
                "needs a string, number, boolean or null to look for, not {kind}"
            ),
            Problem::EmptySegment => {
                f.write_str("a path is names joined by dots, with no empty name")
            }
            Problem::UnknownRoot => write!(
                f,
                "a path starts with one of {} (e.g. `data.status`)",
                limits::ROOTS.join(", ")
            ),
            Problem::PathTooLong => write!(
                f,
                "a path is at most {} bytes and {} names long",
                limits::MAX_PATH_BYTES,
                limits::MAX_PATH_SEGMENTS
            ),
            Problem::StringTooLong => write!(
                f,
                "takes strings of at most {} bytes",
                limits::MAX_STRING_BYTES
            ),
            Problem::OperandTooDeep => {
                write!(f, "takes values nested at most {} deep", limits::MAX_DEPTH)
            }
            Problem::TooDeep => write!(
                f,
                "the filter nests $and/$or/$not more than {} deep",
                limits::MAX_DEPTH
            ),
            Problem::TooManyConditions => write!(
                f,
                "the filter has more than {} paths, operators and combinators in all",
                limits::MAX_CONDITIONS
            ),
            Problem::TooManyValues => write!(
                f,
                "brings the filter over {} values in its operands in all",
                limits::MAX_VALUES
            ),
        }
    }
}

/// User text echoed in an error is cut short: it lands in API responses and logs.
pub(super) fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}
