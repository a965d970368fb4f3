//! The filter language's algebra on generated events and filters: `$not` is a
//! complement, `$and`/`$or` are conjunction/disjunction, and the operators
//! that are defined through one another agree.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

use super::Filter;

/// Paths the generated filters use: present, nested, indexed, sometimes
/// missing in the event, and one never present.
const PATHS: &[&str] = &[
    "event",
    "user_id",
    "data.a",
    "data.b",
    "data.c",
    "data.c.d",
    "data.arr",
    "data.arr.0",
    "data.nope",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..=3).prop_map(Value::from),
        // Floats that equal integers exercise numeric equality (`1 == 1.0`).
        select(vec![0.5, 1.0, -2.0, 2.5, 3.0]).prop_map(Value::from),
        select(vec!["", "a", "ab", "b", "won", "open", "Won", "é"]).prop_map(Value::from),
    ]
}

fn number_or_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..=3).prop_map(Value::from),
        select(vec![0.5, 1.0, -2.0, 2.5]).prop_map(Value::from),
        select(vec!["", "a", "ab", "b", "won"]).prop_map(Value::from),
    ]
}

/// A field's value in an event, or `None` when the field is missing.
fn field() -> impl Strategy<Value = Option<Value>> {
    proptest::option::weighted(
        0.8,
        prop_oneof![
            4 => scalar(),
            1 => proptest::collection::vec(scalar(), 0..3).prop_map(Value::Array),
        ],
    )
}

fn event() -> impl Strategy<Value = Value> {
    (
        select(vec!["deal.created", "deal.won", "task.created"]),
        field(),
        (field(), field(), field(), field()),
        proptest::collection::vec(scalar(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(name, user_id, (a, b, c, d), arr, has_arr)| {
            let mut data = Map::new();
            let put = |map: &mut Map<String, Value>, key: &str, v: Option<Value>| {
                if let Some(v) = v {
                    map.insert(key.into(), v);
                }
            };
            put(&mut data, "a", a);
            put(&mut data, "b", b);
            // `data.c` is an object holding `d`, or a plain value.
            match c {
                Some(Value::Null) => {
                    let mut inner = Map::new();
                    put(&mut inner, "d", d);
                    data.insert("c".into(), Value::Object(inner));
                }
                other => put(&mut data, "c", other),
            }
            if has_arr {
                data.insert("arr".into(), Value::Array(arr));
            }
            let mut envelope = Map::new();
            envelope.insert("event".into(), name.into());
            put(&mut envelope, "user_id", user_id);
            envelope.insert("data".into(), Value::Object(data));
            Value::Object(envelope)
        })
}

/// One operator with an operand of the type it takes.
fn operator() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (select(vec!["$eq", "$ne", "$contains"]), scalar()),
        (
            select(vec!["$gt", "$gte", "$lt", "$lte", "$startsWith"]),
            number_or_string()
        )
            .prop_map(|(op, v)| match op {
                "$startsWith" => (op, Value::from(v.to_string().trim_matches('"'))),
                _ => (op, v),
            }),
        (
            select(vec!["$in", "$nin"]),
            proptest::collection::vec(scalar(), 0..4).prop_map(Value::Array)
        ),
        any::<bool>().prop_map(|b| ("$exists", Value::Bool(b))),
    ]
}

/// A filter on one path: a literal or an object of one to three operators.
fn condition() -> impl Strategy<Value = Value> {
    (
        select(PATHS),
        prop_oneof![
            scalar(),
            proptest::collection::vec(operator(), 1..4).prop_map(|ops| Value::Object(
                ops.into_iter().map(|(k, v)| (k.into(), v)).collect()
            )),
        ],
    )
        .prop_map(|(path, test)| json!({ path: test }))
}

fn filter() -> impl Strategy<Value = Value> {
    condition().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|fs| json!({"$and": fs})),
            proptest::collection::vec(inner.clone(), 1..4).prop_map(|fs| json!({"$or": fs})),
            inner.clone().prop_map(|f| json!({"$not": f})),
            // Several keys in one object are ANDed too.
            (inner.clone(), condition()).prop_map(|(f, c)| {
                let mut map = f.as_object().cloned().unwrap_or_default();
                map.extend(c.as_object().cloned().unwrap_or_default());
                Value::Object(map)
            }),
        ]
    })
}

fn eval(filter: &Value, event: &Value) -> bool {
    match Filter::parse(filter) {
        Ok(f) => f.matches(event),
        Err(e) => panic!("generated filter {filter} refused: {e}"),
    }
}

fn lookup<'v>(event: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(event, |v, seg| match v {
        Value::Object(map) => map.get(seg),
        Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

proptest! {
    #[test]
    fn not_of_a_filter_is_its_complement(f in filter(), e in event()) {
        prop_assert_eq!(eval(&json!({"$not": f.clone()}), &e), !eval(&f, &e));
    }

    #[test]
    fn and_is_both_and_or_is_either(a in filter(), b in filter(), e in event()) {
        let (ra, rb) = (eval(&a, &e), eval(&b, &e));
        prop_assert_eq!(eval(&json!({"$and": [a.clone(), b.clone()]}), &e), ra && rb);
        prop_assert_eq!(eval(&json!({"$or": [a, b]}), &e), ra || rb);
    }

    #[test]
    fn in_a_single_value_is_equality(path in select(PATHS), x in scalar(), e in event()) {
        prop_assert_eq!(
            eval(&json!({ path: {"$in": [x.clone()]} }), &e),
            eval(&json!({ path: {"$eq": x.clone()} }), &e)
        );
        prop_assert_eq!(
            eval(&json!({ path: {"$eq": x.clone()} }), &e),
            eval(&json!({ path: x }), &e),
            "a literal is $eq"
        );
    }

    #[test]
    fn nin_and_ne_are_the_negations_of_in_and_eq_on_present_paths(
        path in select(PATHS),
        xs in proptest::collection::vec(scalar(), 0..4),
        e in event(),
    ) {
        let in_ = eval(&json!({ path: {"$in": xs.clone()} }), &e);
        let nin = eval(&json!({ path: {"$nin": xs.clone()} }), &e);
        let x = xs.first().cloned().unwrap_or(Value::Null);
        let eq = eval(&json!({ path: {"$eq": x.clone()} }), &e);
        let ne = eval(&json!({ path: {"$ne": x} }), &e);
        if lookup(&e, path).is_some() {
            prop_assert_eq!(nin, !in_);
            prop_assert_eq!(ne, !eq);
        } else {
            prop_assert!(!in_ && !nin && !eq && !ne);
        }
    }

    #[test]
    fn a_missing_path_matches_only_exists_false((op, operand) in operator(), e in event()) {
        let matched = eval(&json!({"data.nope": { op: operand.clone() }}), &e);
        prop_assert_eq!(matched, op == "$exists" && operand == json!(false));
    }

    #[test]
    fn ordering_is_a_total_order_within_a_type(
        path in select(PATHS),
        x in number_or_string(),
        e in event(),
    ) {
        let test = |op: &str| eval(&json!({ path: { op: x.clone() } }), &e);
        let (lt, eq, gt) = (test("$lt"), test("$eq"), test("$gt"));
        prop_assert_eq!(test("$lte"), lt || eq);
        prop_assert_eq!(test("$gte"), gt || eq);
        let comparable = matches!(
            (lookup(&e, path), &x),
            (Some(Value::Number(_)), Value::Number(_)) | (Some(Value::String(_)), Value::String(_))
        );
        // Exactly one of <, =, > for comparable values; none otherwise.
        let count = [lt, eq, gt].iter().filter(|b| **b).count();
        prop_assert_eq!(count, usize::from(comparable));
    }

    #[test]
    fn integers_and_equal_floats_are_the_same_number(
        path in select(PATHS),
        n in -3i64..=3,
        op in select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$contains"]),
        e in event(),
    ) {
        prop_assert_eq!(
            eval(&json!({ path: { op: n } }), &e),
            eval(&json!({ path: { op: n as f64 } }), &e)
        );
    }

    #[test]
    fn a_filter_parsed_from_its_own_json_text_is_the_same(f in filter(), e in event()) {
        let parsed = Filter::parse(&f).map_err(|err| TestCaseError::fail(err.to_string()))?;
        let text = serde_json::to_string_pretty(&f).map_err(|err| TestCaseError::fail(err.to_string()))?;
        let reparsed = Filter::parse_str(&text).map_err(|err| TestCaseError::fail(err.to_string()))?;
        prop_assert_eq!(&parsed, &reparsed);
        prop_assert_eq!(parsed.matches(&e), reparsed.matches(&e));
    }

    #[test]
    fn several_keys_are_the_and_of_each(a in condition(), b in condition(), e in event()) {
        let mut both = a.as_object().cloned().unwrap_or_default();
        both.extend(b.as_object().cloned().unwrap_or_default());
        let both = Value::Object(both);
        // Two conditions on one path collapse to the latter, as in JSON.
        let parts: Vec<Value> = both
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| json!({ k.as_str(): v.clone() }))
            .collect();
        prop_assert_eq!(eval(&both, &e), eval(&json!({"$and": parts}), &e));
    }
}

/// Guards the properties above from passing vacuously: generated filters
/// both match and miss generated events often enough.
#[test]
fn generated_filters_match_some_events_and_miss_others() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let (mut matched, total) = (0, 1000);
    for _ in 0..total {
        let (f, e) = (filter(), event())
            .new_tree(&mut runner)
            .map(|tree| tree.current())
            .unwrap_or_else(|reason| panic!("generator failed: {reason}"));
        matched += usize::from(eval(&f, &e));
    }
    assert!(
        (total / 10..total * 9 / 10).contains(&matched),
        "{matched} of {total} matched"
    );
}
