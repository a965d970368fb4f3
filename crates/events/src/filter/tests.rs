use serde_json::{json, Value};

use super::error::Problem;
use super::*;

fn envelope() -> Value {
    json!({
        "id": "0192f1d2-0000-7000-8000-000000000001",
        "event": "deal.updated",
        "timestamp": 1708435200,
        "user_id": 7,
        "data": {
            "amount": 150000,
            "price": 9.5,
            "big": 9007199254740993u64,
            "status": "won",
            "title": "Big deal: renewal",
            "done": false,
            "none": null,
            "tags": ["vip", "renewal", 3, true, null],
            "client": {"name": "Ann", "id": 42},
            "items": [{"sku": "a"}, {"sku": "b"}],
            "empty": ""
        }
    })
}

fn check(filter: Value) -> bool {
    Filter::parse(&filter)
        .unwrap_or_else(|e| panic!("{filter}: {e}"))
        .matches(&envelope())
}

/// Asserts each filter matches (`true`) or not (`false`) the sample envelope.
fn expect(cases: &[(Value, bool)]) {
    for (filter, wanted) in cases {
        assert_eq!(check(filter.clone()), *wanted, "{filter}");
    }
}

fn refused(filter: Value) -> FilterError {
    match Filter::parse(&filter) {
        Ok(f) => panic!("{filter} was accepted as {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_spec_example_matches_a_big_won_deal() {
    expect(&[
        (
            json!({"data.amount": {"$gte": 100000}, "data.status": {"$in": ["won", "open"]}}),
            true,
        ),
        (
            json!({"data.amount": {"$gte": 200000}, "data.status": {"$in": ["won", "open"]}}),
            false,
        ),
        (
            json!({"data.amount": {"$gte": 100000}, "data.status": {"$in": ["lost"]}}),
            false,
        ),
    ]);
}

#[test]
fn an_empty_filter_matches_everything_and_null_means_no_filter() {
    assert!(check(json!({})));
    assert_eq!(Filter::parse_optional(&Value::Null), Ok(None));
    assert!(Filter::parse_optional(&json!({"event": "deal.updated"}))
        .unwrap()
        .is_some());
    assert!(Filter::parse_optional(&json!([])).is_err());
}

#[test]
fn literals_are_equality_with_numbers_as_numbers() {
    expect(&[
        (json!({"event": "deal.updated"}), true),
        (json!({"event": "deal.created"}), false),
        (json!({"user_id": 7}), true),
        (json!({"user_id": 7.0}), true),
        (json!({"user_id": "7"}), false),
        (json!({"data.amount": 150000.0}), true),
        (json!({"data.amount": 1.5e5}), true),
        (json!({"data.price": 9.5}), true),
        (json!({"data.price": 9}), false),
        (json!({"data.done": false}), true),
        (json!({"data.done": 0}), false),
        (json!({"data.client.name": "Ann"}), true),
        (json!({"data.client.name": "ann"}), false),
        (json!({"data.client": {"id": 42.0, "name": "Ann"}}), true),
        (json!({"data.client": {"name": "Ann"}}), false),
        (json!({"data.items.1.sku": "b"}), true),
        (
            json!({"data.tags": ["vip", "renewal", 3.0, true, null]}),
            true,
        ),
        (json!({"data.tags": "vip"}), false),
        (json!({"data.empty": ""}), true),
    ]);
}

#[test]
fn large_integers_are_compared_exactly_not_through_floats() {
    // 2^53 + 1 rounds to 2^53 as an f64.
    expect(&[
        (json!({"data.big": 9007199254740993u64}), true),
        (json!({"data.big": 9007199254740992u64}), false),
        (json!({"data.big": {"$gt": 9007199254740992u64}}), true),
        (json!({"data.big": {"$gt": 9007199254740992.0}}), true),
        (json!({"data.big": {"$lt": 9007199254740994.0}}), true),
        (json!({"data.big": {"$in": [9007199254740992u64]}}), false),
        (json!({"data.amount": {"$lt": 1e300}}), true),
        (json!({"data.amount": {"$gt": -1e300}}), true),
        (
            json!({"data.amount": {"$gt": 149999.5, "$lt": 150000.5}}),
            true,
        ),
        (json!({"data.price": {"$gt": 9, "$lt": 10}}), true),
        (json!({"data.price": {"$gt": 9.5}}), false),
        (json!({"data.price": {"$gte": 9.5}}), true),
    ]);
}

#[test]
fn null_matches_only_a_present_null() {
    expect(&[
        (json!({"data.none": null}), true),
        (json!({"data.missing": null}), false),
        (json!({"data.done": null}), false),
        (json!({"data.none": {"$eq": null}}), true),
        (json!({"data.none": {"$ne": null}}), false),
        (json!({"data.none": {"$exists": true}}), true),
    ]);
}

#[test]
fn ne_is_inequality_on_present_paths_and_never_matches_a_missing_one() {
    expect(&[
        (json!({"data.status": {"$ne": "lost"}}), true),
        (json!({"data.status": {"$ne": "won"}}), false),
        (json!({"data.amount": {"$ne": 150000.0}}), false),
        (json!({"data.amount": {"$ne": "150000"}}), true),
        (
            json!({"data.client": {"$ne": {"name": "Ann", "id": 42}}}),
            false,
        ),
        // Unlike MongoDB: a missing path is not "not equal".
        (json!({"data.missing": {"$ne": "won"}}), false),
        (json!({"$not": {"data.missing": {"$eq": "won"}}}), true),
    ]);
}

#[test]
fn ordering_operators_compare_numbers_with_numbers_and_strings_with_strings() {
    expect(&[
        (json!({"data.amount": {"$gt": 149999}}), true),
        (json!({"data.amount": {"$gt": 150000}}), false),
        (json!({"data.amount": {"$gte": 150000}}), true),
        (json!({"data.amount": {"$lt": 150001}}), true),
        (json!({"data.amount": {"$lt": 150000}}), false),
        (json!({"data.amount": {"$lte": 150000}}), true),
        (json!({"data.status": {"$gt": "wo"}}), true),
        (json!({"data.status": {"$gt": "won"}}), false),
        (json!({"data.status": {"$gte": "won"}}), true),
        (json!({"data.status": {"$lt": "x"}}), true),
        (json!({"data.status": {"$lte": "wom"}}), false),
        // Code point order: "Z" < "a" and "é" > "z".
        (json!({"data.client.name": {"$lt": "a"}}), true),
        (json!({"data.status": {"$lt": "é"}}), true),
        // Mismatched types never match, in either direction.
        (json!({"data.amount": {"$gt": "1"}}), false),
        (json!({"data.amount": {"$lt": "1"}}), false),
        (json!({"data.status": {"$gt": 0}}), false),
        (json!({"data.status": {"$lt": 0}}), false),
        (json!({"data.done": {"$lt": 1}}), false),
        (json!({"data.none": {"$lte": 0}}), false),
        (json!({"data.tags": {"$gt": "a"}}), false),
        (json!({"data.missing": {"$lt": 1}}), false),
        (json!({"data.missing": {"$gte": ""}}), false),
    ]);
}

#[test]
fn in_and_nin_test_membership_of_present_values() {
    expect(&[
        (json!({"data.status": {"$in": ["open", "won"]}}), true),
        (json!({"data.status": {"$in": ["open"]}}), false),
        (json!({"data.status": {"$in": []}}), false),
        (json!({"data.amount": {"$in": [1, 150000.0]}}), true),
        (json!({"data.amount": {"$in": ["150000"]}}), false),
        (json!({"data.done": {"$in": [true]}}), false),
        (json!({"data.done": {"$in": [false]}}), true),
        (json!({"data.none": {"$in": [null]}}), true),
        (
            json!({"data.client": {"$in": [{"id": 42, "name": "Ann"}, 1]}}),
            true,
        ),
        (json!({"data.tags": {"$in": ["vip"]}}), false),
        (json!({"data.missing": {"$in": [null]}}), false),
        (json!({"data.status": {"$nin": ["open", "lost"]}}), true),
        (json!({"data.status": {"$nin": ["won"]}}), false),
        (json!({"data.status": {"$nin": []}}), true),
        (json!({"data.amount": {"$nin": [150000.0]}}), false),
        // Unlike MongoDB: a missing path is in no set and outside none.
        (json!({"data.missing": {"$nin": ["won"]}}), false),
    ]);
}

#[test]
fn exists_tells_present_from_missing_whatever_the_value() {
    expect(&[
        (json!({"data.status": {"$exists": true}}), true),
        (json!({"data.status": {"$exists": false}}), false),
        (json!({"data.none": {"$exists": true}}), true),
        (json!({"data.done": {"$exists": true}}), true),
        (json!({"data.missing": {"$exists": false}}), true),
        (json!({"data.missing": {"$exists": true}}), false),
        (json!({"data.status.deeper": {"$exists": false}}), true),
        (json!({"data.tags.9": {"$exists": false}}), true),
        (json!({"data.tags.0": {"$exists": true}}), true),
        (json!({"data.client.0": {"$exists": true}}), false),
        (
            json!({"user_id": {"$exists": true}, "data.missing": {"$exists": false}}),
            true,
        ),
    ]);
}

#[test]
fn contains_is_substring_for_strings_and_element_equality_for_arrays() {
    expect(&[
        (json!({"data.title": {"$contains": "deal"}}), true),
        (json!({"data.title": {"$contains": "Deal"}}), false),
        (json!({"data.title": {"$contains": ""}}), true),
        (json!({"data.tags": {"$contains": "vip"}}), true),
        (json!({"data.tags": {"$contains": "vi"}}), false),
        (json!({"data.tags": {"$contains": 3.0}}), true),
        (json!({"data.tags": {"$contains": 4}}), false),
        (json!({"data.tags": {"$contains": true}}), true),
        (json!({"data.tags": {"$contains": null}}), true),
        (json!({"data.amount": {"$contains": 150000}}), false),
        (json!({"data.amount": {"$contains": "15"}}), false),
        (json!({"data.title": {"$contains": 1}}), false),
        (json!({"data.client": {"$contains": "Ann"}}), false),
        (json!({"data.missing": {"$contains": ""}}), false),
    ]);
}

#[test]
fn starts_with_matches_string_prefixes_only() {
    expect(&[
        (json!({"event": {"$startsWith": "deal."}}), true),
        (json!({"event": {"$startsWith": "task."}}), false),
        (json!({"data.title": {"$startsWith": ""}}), true),
        (json!({"data.title": {"$startsWith": "big"}}), false),
        (json!({"data.amount": {"$startsWith": "15"}}), false),
        (json!({"data.tags": {"$startsWith": "vip"}}), false),
        (json!({"data.missing": {"$startsWith": ""}}), false),
    ]);
}

#[test]
fn operators_on_one_path_and_several_paths_are_all_required() {
    expect(&[
        (json!({"data.amount": {"$gt": 1, "$lt": 200000}}), true),
        (json!({"data.amount": {"$gt": 1, "$lt": 2}}), false),
        (json!({"event": "deal.updated", "data.status": "won"}), true),
        (
            json!({"event": "deal.updated", "data.status": "lost"}),
            false,
        ),
    ]);
}

#[test]
fn and_or_not_combine_filters_at_any_level() {
    expect(&[
        (
            json!({"$and": [{"event": "deal.updated"}, {"data.status": "won"}]}),
            true,
        ),
        (
            json!({"$and": [{"event": "deal.updated"}, {"data.status": "lost"}]}),
            false,
        ),
        (
            json!({"$or": [{"data.status": "lost"}, {"data.amount": {"$gt": 1}}]}),
            true,
        ),
        (
            json!({"$or": [{"data.status": "lost"}, {"data.missing": 1}]}),
            false,
        ),
        (json!({"$not": {"data.status": "won"}}), false),
        (json!({"$not": {"data.status": "lost"}}), true),
        (json!({"$not": {}}), false),
        (
            json!({"event": {"$startsWith": "deal."}, "$or": [
                {"$and": [{"data.status": "won"}, {"$not": {"data.done": true}}]},
                {"data.amount": {"$gt": 1e9}}
            ]}),
            true,
        ),
        (
            json!({"$not": {"$or": [{"data.status": "won"}, {"data.status": "open"}]}}),
            false,
        ),
    ]);
}

#[test]
fn a_parsed_filter_is_thread_safe_and_parses_from_text() {
    fn shared<T: Send + Sync>() {}
    shared::<Filter>();
    let filter = Filter::parse_str(r#"{"data.status": {"$in": ["won"]}}"#).unwrap();
    assert!(filter.matches(&envelope()));
    assert!(!filter.matches(&json!({})));
    assert!(!filter.matches(&json!("not an object")));
}

#[test]
fn the_filter_subject_holds_the_envelope_fields_and_user_id() {
    let id = uuid::Uuid::nil();
    let envelope = json!({"id": id.to_string(), "event": "deal.won", "timestamp": 5,
                          "data": {"amount": 3}})
    .to_string();
    let subject = filter_subject(&envelope, None).unwrap();
    let f = |v: Value| Filter::parse(&v).unwrap().matches(&subject);
    assert!(f(
        json!({"user_id": null, "event": "deal.won", "timestamp": 5})
    ));
    assert!(f(json!({"data.amount": 3, "id": id.to_string()})));
    let subject = filter_subject(&envelope, Some(9)).unwrap();
    assert!(Filter::parse(&json!({"user_id": 9}))
        .unwrap()
        .matches(&subject));
    assert_eq!(filter_subject("[1]", Some(9)), None);
    assert_eq!(filter_subject("not json", None), None);
}

#[test]
fn each_refusal_names_the_path_and_operator_at_fault() {
    // (filter, path, operator, words in the message)
    let cases: Vec<(Value, Option<&str>, Option<&str>, &str)> = vec![
        (json!([]), None, None, "not an array"),
        (json!("x"), None, None, "JSON object"),
        (
            json!({"data.amount": {"$gte": {}}}),
            Some("data.amount"),
            Some("$gte"),
            "`data.amount`: `$gte` needs a number or a string, not an object",
        ),
        (
            json!({"data.a": {"$lt": true}}),
            Some("data.a"),
            Some("$lt"),
            "not a boolean",
        ),
        (
            json!({"data.a": {"$gt": null}}),
            Some("data.a"),
            Some("$gt"),
            "not null",
        ),
        (
            json!({"data.a": {"$lte": [1]}}),
            Some("data.a"),
            Some("$lte"),
            "not an array",
        ),
        (
            json!({"data.a": {"$regex": "x"}}),
            Some("data.a"),
            Some("$regex"),
            "not an operator",
        ),
        (
            json!({"$where": "1"}),
            None,
            Some("$where"),
            "not an operator",
        ),
        (json!({"$gt": 1}), None, Some("$gt"), "needs a path"),
        (
            json!({"data.a": {"$not": {"$gt": 1}}}),
            Some("data.a"),
            Some("$not"),
            "not under one",
        ),
        (
            json!({"data.a": {"$gt": 1, "b": 2}}),
            Some("data.a"),
            None,
            "plain key `b`",
        ),
        (json!({"$and": {}}), None, Some("$and"), "non-empty array"),
        (json!({"$or": []}), None, Some("$or"), "at least one"),
        (
            json!({"$or": [{}, 1]}),
            None,
            Some("$or"),
            "item 1 (from 0) is a number",
        ),
        (
            json!({"$not": []}),
            None,
            Some("$not"),
            "filter object, not an array",
        ),
        (
            json!({"data.a": {"$in": "x"}}),
            Some("data.a"),
            Some("$in"),
            "array of values",
        ),
        (
            json!({"data.a": {"$nin": {}}}),
            Some("data.a"),
            Some("$nin"),
            "array of values",
        ),
        (
            json!({"data.a": {"$exists": 1}}),
            Some("data.a"),
            Some("$exists"),
            "true or false",
        ),
        (
            json!({"data.a": {"$startsWith": 1}}),
            Some("data.a"),
            Some("$startsWith"),
            "a string",
        ),
        (
            json!({"data.a": {"$contains": [1]}}),
            Some("data.a"),
            Some("$contains"),
            "not an array",
        ),
        (
            json!({"data.a": {"$contains": {}}}),
            Some("data.a"),
            Some("$contains"),
            "not an object",
        ),
        (
            json!({"data..a": 1}),
            Some("data..a"),
            None,
            "no empty name",
        ),
        (json!({".data": 1}), Some(".data"), None, "no empty name"),
        (json!({"data.": 1}), Some("data."), None, "no empty name"),
        (json!({"": 1}), Some(""), None, "no empty name"),
        (
            json!({"status": "won"}),
            Some("status"),
            None,
            "starts with one of",
        ),
        // A fault deep inside a combinator still names its own path.
        (
            json!({"$or": [{"event": "x"}, {"$not": {"data.b": {"$in": 3}}}]}),
            Some("data.b"),
            Some("$in"),
            "array of values",
        ),
    ];
    for (filter, path, operator, words) in cases {
        let err = refused(filter.clone());
        assert_eq!(err.path(), path, "{filter}: {err}");
        assert_eq!(err.operator(), operator, "{filter}: {err}");
        assert!(err.to_string().contains(words), "{filter}: {err}");
    }
}

#[test]
fn text_that_is_not_json_is_refused_as_such() {
    let err = Filter::parse_str("{\"data.a\": ").unwrap_err();
    assert!(matches!(err.problem(), Problem::NotJson(_)), "{err}");
    assert_eq!((err.path(), err.operator()), (None, None));
    assert!(Filter::parse_str("null").is_err());
}

#[test]
fn literal_objects_with_dollar_keys_are_only_allowed_as_operands() {
    // `$eq` takes any value, so an object that looks like operators can still
    // be compared with.
    let subject = json!({"data": {"q": {"$gt": 1}}});
    let filter = Filter::parse(&json!({"data.q": {"$eq": {"$gt": 1}}})).unwrap();
    assert!(filter.matches(&subject));
    // As a bare value it is read as operators: `{"$gt": 1}` is not > 1.
    let filter = Filter::parse(&json!({"data.q": {"$gt": 1}})).unwrap();
    assert!(!filter.matches(&subject));
}

#[test]
fn nesting_is_capped() {
    let mut filter = json!({"event": "deal.won"});
    for _ in 1..Filter::MAX_DEPTH {
        filter = json!({"$not": filter});
    }
    assert!(Filter::parse(&filter).is_ok());
    let err = refused(json!({"$and": [filter]}));
    assert_eq!(err.problem(), &Problem::TooDeep, "{err}");

    let mut operand = json!(1);
    for _ in 1..Filter::MAX_DEPTH {
        operand = json!([operand]);
    }
    assert!(Filter::parse(&json!({"data.a": operand.clone()})).is_ok());
    let err = refused(json!({"data.a": {"$in": [[operand]]}}));
    assert_eq!(err.problem(), &Problem::OperandTooDeep, "{err}");
    assert_eq!((err.path(), err.operator()), (Some("data.a"), Some("$in")));
}

#[test]
fn conditions_values_paths_and_strings_are_capped() {
    let many = |n: usize| -> Value {
        Value::Object((0..n).map(|i| (format!("data.f{i}"), json!(i))).collect())
    };
    assert!(Filter::parse(&many(Filter::MAX_CONDITIONS)).is_ok());
    let err = refused(many(Filter::MAX_CONDITIONS + 1));
    assert_eq!(err.problem(), &Problem::TooManyConditions, "{err}");

    let ors = json!({"$or": (0..Filter::MAX_CONDITIONS).map(|i| json!({"data.a": i})).collect::<Vec<_>>()});
    assert_eq!(refused(ors).problem(), &Problem::TooManyConditions);

    let values = |n: usize| json!({"data.a": {"$in": (0..n).collect::<Vec<_>>()}});
    assert!(Filter::parse(&values(Filter::MAX_VALUES)).is_ok());
    let err = refused(values(Filter::MAX_VALUES + 1));
    assert_eq!(err.problem(), &Problem::TooManyValues, "{err}");

    let path = format!("data{}", ".a".repeat(Filter::MAX_PATH_SEGMENTS));
    let err = refused(json!({ path: 1 }));
    assert_eq!(err.problem(), &Problem::PathTooLong, "{err}");
    let path = format!("data.{}", "a".repeat(Filter::MAX_PATH_BYTES));
    let err = refused(json!({ path.clone(): 1 }));
    assert_eq!(err.problem(), &Problem::PathTooLong, "{err}");
    assert_eq!(err.path().map(str::len), Some(64), "echoed paths are cut");

    let long = "x".repeat(Filter::MAX_STRING_BYTES + 1);
    for op in ["$eq", "$startsWith", "$contains", "$in"] {
        let operand = if op == "$in" {
            json!([long])
        } else {
            json!(long)
        };
        let err = refused(json!({"data.a": {op: operand}}));
        assert_eq!(err.problem(), &Problem::StringTooLong, "{op}: {err}");
    }
}

#[test]
fn arrays_are_indexed_by_numeric_segments_only() {
    expect(&[
        (json!({"data.tags.0": "vip"}), true),
        (json!({"data.tags.2": 3}), true),
        (json!({"data.tags.x": {"$exists": true}}), false),
        (json!({"data.items.0.sku": {"$in": ["a"]}}), true),
    ]);
}
