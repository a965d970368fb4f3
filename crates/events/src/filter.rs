//! Payload filters (SPEC §13): a JSON object of conditions on an event's
//! envelope, checked once when a webhook is saved, compiled to a small tree and
//! evaluated at fan-out against an envelope parsed once for all webhooks.
//!
//! ```json
//! {"data.amount": {"$gte": 100000}, "data.status": {"$in": ["won", "open"]}}
//! ```
//!
//! # The language
//! - Keys are dotted paths into the envelope, starting at one of
//!   [`Filter::ROOTS`]. A numeric segment also indexes an array
//!   (`data.tags.0`), as in body templates.
//! - A value is a literal (equality) or an operator object, one whose keys all
//!   start with `$`: `$eq $ne $gt $gte $lt $lte $in $nin $exists $contains
//!   $startsWith`. Any other object is a literal compared by deep equality; an
//!   object mixing the two is refused as ambiguous. Several operators on one
//!   path, and several paths, are ANDed.
//! - `$and` / `$or` (non-empty arrays of filters) and `$not` (a filter) combine
//!   whole filters. They are allowed at any filter level, not only the top
//!   (friendlier, and the spec's top-level form is a special case), but not
//!   under a path: `{"data.x": {"$not": ...}}` is refused with a hint.
//!
//! # Semantics
//! - A path that is missing matches nothing but `$exists: false`. So `$ne` and
//!   `$nin` do **not** match a missing path (MongoDB differs), and `null` only
//!   matches a present `null`. `$not` is the exact complement: `{"$not":
//!   {"data.x": {"$ne": 1}}}` matches when `data.x` is 1 *or missing*.
//! - Numbers compare as numbers, exactly (`1 == 1.0`, and `2^53 + 1` is not
//!   `2^53`); strings compare by code point. `$gt $gte $lt $lte` match only a
//!   number against a number operand or a string against a string operand.
//! - Equality (`$eq`, literals, `$in`, `$nin`, `$ne`) is deep for objects and
//!   arrays, with numbers compared as numbers inside them. There is no implicit
//!   reach into arrays as in MongoDB: `{"data.tags": "x"}` compares the whole
//!   array; use `$contains` for membership.
//! - `$contains` takes a scalar: a string operand is a substring of a string
//!   value; any scalar operand (string, number, boolean, null) is equal to an
//!   element of an array value. Anything else does not match.
//! - `$startsWith` takes a string and matches string values only.
//!
//! Sizes are capped ([`Filter::MAX_DEPTH`] and friends) so a hostile filter
//! cannot make fan-out slow: evaluation is linear in the filter's size and
//! allocates nothing.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::{Map, Number, Value};

mod error;
mod limits;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use error::FilterError;
use error::{shorten, Problem};

/// A compiled payload filter. Cheap to evaluate, `Send + Sync`, meant to be
/// built once per webhook version and shared.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Field { path: Path, tests: Vec<Test> },
}

#[derive(Debug, Clone, PartialEq)]
struct Path(Box<[Segment]>);

/// A path segment, with its array index worked out once at parse time.
#[derive(Debug, Clone, PartialEq)]
struct Segment {
    key: Box<str>,
    index: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Eq(Literal),
    Ne(Literal),
    Compare(Bound, Comparison),
    In(ValueSet),
    Nin(ValueSet),
    Exists(bool),
    Contains(Literal),
    StartsWith(Box<str>),
}

/// An equality operand, pre-digested so comparing needs no conversion.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Null,
    Bool(bool),
    Number(Num),
    Text(Box<str>),
    /// Objects and arrays, compared deeply.
    Deep(Value),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Comparison {
    /// Whether a value ordered `order` against the bound passes.
    fn accepts(self, order: Ordering) -> bool {
        match self {
            Comparison::Gt => order.is_gt(),
            Comparison::Gte => order.is_ge(),
            Comparison::Lt => order.is_lt(),
            Comparison::Lte => order.is_le(),
        }
    }
}

/// The operand of `$gt $gte $lt $lte`.
#[derive(Debug, Clone, PartialEq)]
enum Bound {
    Number(Num),
    Text(Box<str>),
}

/// The values of `$in` / `$nin`, bucketed by type so a lookup is a hash probe.
#[derive(Debug, Clone, PartialEq, Default)]
struct ValueSet {
    null: bool,
    bools: [bool; 2],
    numbers: HashSet<Num>,
    texts: HashSet<Box<str>>,
    deep: Vec<Value>,
}

/// A JSON number in a canonical form where equality is numeric equality:
/// every integral value that fits an `i128` (all of `i64`, `u64` and the
/// integral `f64`s in that range) is `Int`, anything else is an `f64`'s bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Num {
    Int(i128),
    Float(u64),
}

impl Filter {
    /// The envelope fields a path may start with.
    pub const ROOTS: &'static [&'static str] = limits::ROOTS;
    /// How deep `$and` / `$or` / `$not` may nest (the filter itself is level 1).
    pub const MAX_DEPTH: usize = limits::MAX_DEPTH;
    /// Paths, operators and combinators in one filter.
    pub const MAX_CONDITIONS: usize = limits::MAX_CONDITIONS;
    /// JSON values in all the operands together (each `$in` item counts, and
    /// each value inside an object or array operand).
    pub const MAX_VALUES: usize = limits::MAX_VALUES;
    /// Longest path, in bytes, and most segments in one.
    pub const MAX_PATH_BYTES: usize = limits::MAX_PATH_BYTES;
    pub const MAX_PATH_SEGMENTS: usize = limits::MAX_PATH_SEGMENTS;
    /// Longest string operand, in bytes.
    pub const MAX_STRING_BYTES: usize = limits::MAX_STRING_BYTES;

    /// Checks and compiles a filter given as JSON. `null` is not a filter here:
    /// use [`Filter::parse_optional`] for the API field, where it means none.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        let mut budget = Budget::default();
        match value {
            Value::Object(map) => Ok(Filter {
                root: budget.parse_filter(map, 1)?,
            }),
            other => Err(FilterError::new(Problem::NotAFilter(kind_of(other)))),
        }
    }

    /// The webhook's `filter` field: `null` means no filter.
    pub fn parse_optional(value: &Value) -> Result<Option<Self>, FilterError> {
        match value {
            Value::Null => Ok(None),
            other => Self::parse(other).map(Some),
        }
    }

    /// Checks and compiles a filter given as JSON text (as stored).
    pub fn parse_str(text: &str) -> Result<Self, FilterError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| FilterError::new(Problem::NotJson(e.to_string())))?;
        Self::parse(&value)
    }

    /// Whether the event passes. `envelope` is the event as the filter sees
    /// it, parsed once by the caller and shared by every webhook's filter:
    /// an object with `id`, `event`, `timestamp`, `user_id` and `data` (see
    /// [`filter_subject`]). Allocates nothing.
    pub fn matches(&self, envelope: &Value) -> bool {
        self.root.matches(envelope)
    }
}

/// The value filters are evaluated against: a delivered envelope (`id`,
/// `event`, `timestamp`, `data`, as stored and sent) plus `user_id` (`null`
/// when the event has none, so `{"user_id": null}` selects events without a
/// user). Built once per event, at fan-out, and shared by every subscribed
/// webhook's filter; replay and the UI's filter check build it the same way.
/// `None` when `envelope` is not a JSON object.
pub fn filter_subject(envelope: &str, user_id: Option<i64>) -> Option<Value> {
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(envelope) else {
        return None;
    };
    map.insert("user_id".into(), user_id.map_or(Value::Null, Value::from));
    Some(Value::Object(map))
}

// ---------------------------------------------------------------------------
// Parsing

/// What a filter has used of its caps so far.
#[derive(Default)]
struct Budget {
    conditions: usize,
    values: usize,
}

/// Where an operand sits, for error messages.
#[derive(Clone, Copy)]
struct At<'a> {
    path: &'a str,
    op: &'static str,
}

impl At<'_> {
    fn error(self, problem: Problem) -> FilterError {
        FilterError::new(problem)
            .with_path(self.path)
            .with_operator(self.op)
    }
}

/// Operators that test the value at a path, and those that combine filters.
const OPERATORS: &[&str] = &[
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$contains",
    "$startsWith",
];
const COMBINATORS: &[&str] = &["$and", "$or", "$not"];

impl Budget {
    fn count_condition(&mut self) -> Result<(), Problem> {
        self.conditions += 1;
        if self.conditions > Filter::MAX_CONDITIONS {
            return Err(Problem::TooManyConditions);
        }
        Ok(())
    }

    fn parse_filter(
        &mut self,
        map: &Map<String, Value>,
        depth: usize,
    ) -> Result<Node, FilterError> {
        if depth > Filter::MAX_DEPTH {
            return Err(FilterError::new(Problem::TooDeep));
        }
        // Capacity capped: a hostile object may have far more keys than the
        // budget lets through.
        let mut nodes = Vec::with_capacity(map.len().min(Filter::MAX_CONDITIONS));
        for (key, value) in map {
            self.count_condition().map_err(FilterError::new)?;
            let node = match key.as_str() {
                "$and" => self.parse_list("$and", value, depth)?,
                "$or" => self.parse_list("$or", value, depth)?,
                "$not" => match value {
                    Value::Object(inner) => {
                        Node::Not(Box::new(self.parse_filter(inner, depth + 1)?))
                    }
                    other => {
                        return Err(FilterError::new(Problem::NeedsFilter(kind_of(other)))
                            .with_operator("$not"))
                    }
                },
                op if op.starts_with('$') => {
                    let problem = match OPERATORS.iter().find(|known| **known == op) {
                        Some(_) => Problem::OperatorWithoutPath,
                        None => Problem::UnknownOperator,
                    };
                    return Err(FilterError::new(problem).with_operator(op));
                }
                path => self.parse_field(path, value)?,
            };
            nodes.push(node);
        }
        Ok(match nodes.len() {
            1 => nodes.swap_remove(0),
            _ => Node::All(nodes),
        })
    }

    fn parse_list(
        &mut self,
        op: &'static str,
        value: &Value,
        depth: usize,
    ) -> Result<Node, FilterError> {
        let fail = |p| FilterError::new(p).with_operator(op);
        let items = match value {
            Value::Array(items) if items.is_empty() => return Err(fail(Problem::EmptyList)),
            Value::Array(items) => items,
            other => return Err(fail(Problem::NeedsFilterList(kind_of(other)))),
        };
        let mut nodes = Vec::with_capacity(items.len().min(Filter::MAX_CONDITIONS));
        for (n, item) in items.iter().enumerate() {
            match item {
                Value::Object(map) => nodes.push(self.parse_filter(map, depth + 1)?),
                other => return Err(fail(Problem::NeedsFilterItem(n, kind_of(other)))),
            }
        }
        Ok(if op == "$and" {
            Node::All(nodes)
        } else {
            Node::Any(nodes)
        })
    }

    fn parse_field(&mut self, path_text: &str, value: &Value) -> Result<Node, FilterError> {
        let path = parse_path(path_text).map_err(|p| FilterError::new(p).with_path(path_text))?;
        let tests = match value {
            Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => {
                if let Some(plain) = map.keys().find(|k| !k.starts_with('$')) {
                    return Err(
                        FilterError::new(Problem::Mixed(shorten(plain))).with_path(path_text)
                    );
                }
                let mut tests = Vec::with_capacity(map.len().min(OPERATORS.len()));
                for (op, operand) in map {
                    self.count_condition()
                        .map_err(|p| FilterError::new(p).with_path(path_text))?;
                    tests.push(self.parse_test(path_text, op, operand)?);
                }
                tests
            }
            literal => {
                let at = At {
                    path: path_text,
                    op: "$eq",
                };
                vec![Test::Eq(self.literal(at, literal)?)]
            }
        };
        Ok(Node::Field { path, tests })
    }

    fn parse_test(&mut self, path: &str, op: &str, operand: &Value) -> Result<Test, FilterError> {
        let Some(op) = OPERATORS.iter().copied().find(|known| *known == op) else {
            let problem = match COMBINATORS.contains(&op) {
                true => Problem::CombinatorUnderPath,
                false => Problem::UnknownOperator,
            };
            return Err(FilterError::new(problem).with_path(path).with_operator(op));
        };
        let at = At { path, op };
        Ok(match op {
            "$eq" => Test::Eq(self.literal(at, operand)?),
            "$ne" => Test::Ne(self.literal(at, operand)?),
            "$gt" => Test::Compare(self.bound(at, operand)?, Comparison::Gt),
            "$gte" => Test::Compare(self.bound(at, operand)?, Comparison::Gte),
            "$lt" => Test::Compare(self.bound(at, operand)?, Comparison::Lt),
            "$lte" => Test::Compare(self.bound(at, operand)?, Comparison::Lte),
            "$in" => Test::In(self.value_set(at, operand)?),
            "$nin" => Test::Nin(self.value_set(at, operand)?),
            "$exists" => match operand {
                Value::Bool(b) => Test::Exists(*b),
                other => return Err(at.error(Problem::NeedsBool(kind_of(other)))),
            },
            "$contains" => match operand {
                Value::Array(_) | Value::Object(_) => {
                    return Err(at.error(Problem::NeedsScalar(kind_of(operand))))
                }
                scalar => Test::Contains(self.literal(at, scalar)?),
            },
            // Only "$startsWith" is left: OPERATORS is exhaustive above.
            _ => match operand {
                Value::String(s) => Test::StartsWith(self.text(at, s)?),
                other => return Err(at.error(Problem::NeedsString(kind_of(other)))),
            },
        })
    }

    fn literal(&mut self, at: At<'_>, value: &Value) -> Result<Literal, FilterError> {
        self.count_values(at, value, 1)?;
        Ok(match value {
            Value::Null => Literal::Null,
            Value::Bool(b) => Literal::Bool(*b),
            Value::Number(n) => Literal::Number(Num::of(n)),
            Value::String(s) => Literal::Text(s.as_str().into()),
            deep => Literal::Deep(deep.clone()),
        })
    }

    fn bound(&mut self, at: At<'_>, value: &Value) -> Result<Bound, FilterError> {
        self.count_values(at, value, 1)?;
        match value {
            Value::Number(n) => Ok(Bound::Number(Num::of(n))),
            Value::String(s) => Ok(Bound::Text(s.as_str().into())),
            other => Err(at.error(Problem::NeedsNumberOrString(kind_of(other)))),
        }
    }

    fn text(&mut self, at: At<'_>, s: &str) -> Result<Box<str>, FilterError> {
        if s.len() > Filter::MAX_STRING_BYTES {
            return Err(at.error(Problem::StringTooLong));
        }
        self.values += 1;
        if self.values > Filter::MAX_VALUES {
            return Err(at.error(Problem::TooManyValues));
        }
        Ok(s.into())
    }

    fn value_set(&mut self, at: At<'_>, value: &Value) -> Result<ValueSet, FilterError> {
        let Value::Array(items) = value else {
            return Err(at.error(Problem::NeedsArray(kind_of(value))));
        };
        let mut set = ValueSet::default();
        for item in items {
            match self.literal(at, item)? {
                Literal::Null => set.null = true,
                Literal::Bool(b) => set.bools[usize::from(b)] = true,
                Literal::Number(n) => {
                    set.numbers.insert(n);
                }
                Literal::Text(s) => {
                    set.texts.insert(s);
                }
                Literal::Deep(v) => set.deep.push(v),
            }
        }
        Ok(set)
    }

    /// Counts every JSON value in an operand against the caps, refusing deep
    /// nesting and long strings on the way; stops at the first excess so a
    /// huge operand costs no more than the cap to refuse.
    fn count_values(&mut self, at: At<'_>, value: &Value, depth: usize) -> Result<(), FilterError> {
        if depth > Filter::MAX_DEPTH {
            return Err(at.error(Problem::OperandTooDeep));
        }
        self.values += 1;
        if self.values > Filter::MAX_VALUES {
            return Err(at.error(Problem::TooManyValues));
        }
        match value {
            Value::String(s) if s.len() > Filter::MAX_STRING_BYTES => {
                Err(at.error(Problem::StringTooLong))
            }
            Value::Array(items) => items
                .iter()
                .try_for_each(|v| self.count_values(at, v, depth + 1)),
            Value::Object(map) => map
                .values()
                .try_for_each(|v| self.count_values(at, v, depth + 1)),
            _ => Ok(()),
        }
    }
}

fn parse_path(text: &str) -> Result<Path, Problem> {
    if text.len() > Filter::MAX_PATH_BYTES {
        return Err(Problem::PathTooLong);
    }
    if text.split('.').any(str::is_empty) {
        return Err(Problem::EmptySegment);
    }
    if text.split('.').count() > Filter::MAX_PATH_SEGMENTS {
        return Err(Problem::PathTooLong);
    }
    let root = text.split('.').next().unwrap_or_default();
    if !Filter::ROOTS.contains(&root) {
        return Err(Problem::UnknownRoot);
    }
    Ok(Path(
        text.split('.')
            .map(|key| Segment {
                key: key.into(),
                index: key.parse().ok(),
            })
            .collect(),
    ))
}

/// Type names for messages: "`$gte` needs a number or a string, not an object".
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------
// Evaluation: borrows from the envelope, allocates nothing.

impl Node {
    fn matches(&self, envelope: &Value) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.matches(envelope)),
            Node::Any(nodes) => nodes.iter().any(|n| n.matches(envelope)),
            Node::Not(node) => !node.matches(envelope),
            Node::Field { path, tests } => {
                let value = path.lookup(envelope);
                tests.iter().all(|t| t.check(value))
            }
        }
    }
}

impl Path {
    fn lookup<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        self.0.iter().try_fold(root, |v, seg| match v {
            Value::Object(map) => map.get(&*seg.key),
            Value::Array(items) => seg.index.and_then(|i| items.get(i)),
            _ => None,
        })
    }
}

impl Test {
    fn check(&self, value: Option<&Value>) -> bool {
        let value = match (self, value) {
            (Test::Exists(wanted), v) => return v.is_some() == *wanted,
            (_, None) => return false,
            (_, Some(v)) => v,
        };
        match self {
            Test::Eq(lit) => lit.equals(value),
            Test::Ne(lit) => !lit.equals(value),
            Test::Compare(bound, accept) => bound.compare(value).is_some_and(|o| accept.accepts(o)),
            Test::In(set) => set.contains(value),
            Test::Nin(set) => !set.contains(value),
            Test::Contains(lit) => match (lit, value) {
                (Literal::Text(needle), Value::String(s)) => s.contains(&**needle),
                (_, Value::Array(items)) => items.iter().any(|item| lit.equals(item)),
                _ => false,
            },
            Test::StartsWith(prefix) => value.as_str().is_some_and(|s| s.starts_with(&**prefix)),
            Test::Exists(_) => true,
        }
    }
}

impl Literal {
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Literal::Null, Value::Null) => true,
            (Literal::Bool(a), Value::Bool(b)) => a == b,
            (Literal::Number(a), Value::Number(b)) => *a == Num::of(b),
            (Literal::Text(a), Value::String(b)) => **a == **b,
            (Literal::Deep(a), b) => deep_equal(a, b),
            _ => false,
        }
    }
}

impl Bound {
    /// How the value compares with the bound, when they are comparable.
    fn compare(&self, value: &Value) -> Option<Ordering> {
        match (self, value) {
            (Bound::Number(b), Value::Number(v)) => Some(Num::of(v).cmp_num(*b)),
            // `str`'s order is byte order of UTF-8, which is code point order.
            (Bound::Text(b), Value::String(v)) => Some(v.as_str().cmp(&**b)),
            _ => None,
        }
    }
}

impl ValueSet {
    fn contains(&self, value: &Value) -> bool {
        match value {
            Value::Null => self.null,
            Value::Bool(b) => self.bools[usize::from(*b)],
            Value::Number(n) => self.numbers.contains(&Num::of(n)),
            Value::String(s) => self.texts.contains(s.as_str()),
            deep => self.deep.iter().any(|item| deep_equal(item, deep)),
        }
    }
}

/// JSON equality with numbers compared as numbers (`serde_json`'s own `==`
/// says `1 != 1.0`). Recursion is bounded by the literal's depth cap: it stops
/// as soon as the literal side runs out.
fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Num::of(x) == Num::of(y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| deep_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, xv)| y.get(k).is_some_and(|yv| deep_equal(xv, yv)))
        }
        _ => a == b,
    }
}

/// 2^64: integers from `i64`/`u64` are strictly inside ±this bound, so a
/// float at or beyond it is larger or smaller than any of them.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

impl Num {
    fn of(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            // JSON numbers are finite, so `as_f64` is only `None` for
            // representations we do not enable; treat that as 0 rather than
            // panic on input.
            let f = n.as_f64().unwrap_or(0.0);
            if f.fract() == 0.0 && f.abs() < TWO_POW_64 {
                // Exact: an integral float below 2^64 fits an i128.
                Num::Int(f as i128)
            } else {
                Num::Float(f.to_bits())
            }
        }
    }

    /// Exact numeric order, with no rounding of large integers through `f64`.
    fn cmp_num(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => f64::from_bits(a).total_cmp(&f64::from_bits(b)),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, f64::from_bits(b)),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, f64::from_bits(a)).reverse(),
        }
    }
}

/// Compares an integer below 2^64 in size with a finite float, exactly.
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    if f >= TWO_POW_64 {
        return Ordering::Less;
    }
    if f <= -TWO_POW_64 {
        return Ordering::Greater;
    }
    let whole = f.trunc();
    // Exact: |whole| < 2^64.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => whole.total_cmp(&f),
        unequal => unequal,
    }
}
