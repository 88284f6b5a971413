//! Table-driven checks of the pattern subset, plus a property that parsing never panics.

use fleet_pattern::{Pattern, PatternError};
use proptest::prelude::*;
use serde_json::{Value, json};

#[track_caller]
fn check(pattern: Value, event: Value, expected: bool) {
    let p =
        Pattern::from_value(&pattern).unwrap_or_else(|e| panic!("pattern {pattern} rejected: {e}"));
    assert_eq!(
        p.matches(&event),
        expected,
        "pattern {pattern} against event {event}"
    );
}

#[track_caller]
fn check_err(pattern: &str, needle: &str) {
    match Pattern::parse(pattern) {
        Ok(p) => panic!("pattern {pattern} accepted as {p:?}"),
        Err(e) => assert!(
            e.to_string().contains(needle),
            "error for {pattern} was {e:?}, expected {needle:?}"
        ),
    }
}

fn envelope(detail: Value) -> Value {
    json!({
        "version": "0", "id": "e1", "detail-type": "PatientAdmitted", "source": "fleet.hl7",
        "account": "000000000000", "time": "2026-01-02T03:04:05Z", "region": "local",
        "resources": [], "detail": detail
    })
}

#[test]
fn exact_values_and_keys() {
    let ev = envelope(json!({"state": "new", "n": 5, "flag": true, "nothing": null, "empty": ""}));
    let table = [
        (json!({"source": ["fleet.hl7"]}), true),
        (json!({"source": ["other"]}), false),
        (json!({"source": ["other", "fleet.hl7"]}), true),
        // keys are ANDed
        (
            json!({"source": ["fleet.hl7"], "detail-type": ["PatientAdmitted"]}),
            true,
        ),
        (
            json!({"source": ["fleet.hl7"], "detail-type": ["Other"]}),
            false,
        ),
        (json!({"detail": {"state": ["new"]}}), true),
        (json!({"detail": {"state": ["NEW"]}}), false),
        (json!({"detail": {"n": [5]}}), true),
        (json!({"detail": {"n": [5.0]}}), true),
        (json!({"detail": {"n": [6]}}), false),
        (json!({"detail": {"n": ["5"]}}), false),
        (json!({"detail": {"flag": [true]}}), true),
        (json!({"detail": {"flag": [false]}}), false),
        (json!({"detail": {"nothing": [null]}}), true),
        (json!({"detail": {"empty": [""]}}), true),
        (json!({"detail": {"empty": [null]}}), false),
        // null does not match a missing field
        (json!({"detail": {"absent": [null]}}), false),
        (json!({"detail": {"state": {"deeper": ["x"]}}}), false),
    ];
    for (p, want) in table {
        check(p, ev.clone(), want);
    }
}

#[test]
fn string_operators() {
    let ev = envelope(json!({"file": "scan.PNG", "region": "us-east-1", "n": 12}));
    let table = [
        (json!({"detail": {"region": [{"prefix": "us-"}]}}), true),
        (json!({"detail": {"region": [{"prefix": "eu-"}]}}), false),
        (
            json!({"detail": {"region": [{"prefix": {"equals-ignore-case": "US-"}}]}}),
            true,
        ),
        (json!({"detail": {"file": [{"suffix": ".PNG"}]}}), true),
        (json!({"detail": {"file": [{"suffix": ".png"}]}}), false),
        (
            json!({"detail": {"file": [{"suffix": {"equals-ignore-case": ".png"}}]}}),
            true,
        ),
        (
            json!({"detail": {"file": [{"equals-ignore-case": "SCAN.png"}]}}),
            true,
        ),
        (
            json!({"detail": {"file": [{"equals-ignore-case": "scan.jpg"}]}}),
            false,
        ),
        // string operators never match numbers
        (json!({"detail": {"n": [{"prefix": "1"}]}}), false),
        (json!({"detail": {"missing": [{"prefix": ""}]}}), false),
    ];
    for (p, want) in table {
        check(p, ev.clone(), want);
    }
}

#[test]
fn anything_but() {
    let ev = envelope(json!({"state": "running", "n": 5, "file": "a.png"}));
    let table = [
        (
            json!({"detail": {"state": [{"anything-but": "stopped"}]}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": "running"}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": ["stopped", "running"]}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": ["stopped", "paused"]}]}}),
            true,
        ),
        (json!({"detail": {"n": [{"anything-but": 5.0}]}}), false),
        (json!({"detail": {"n": [{"anything-but": [1, 2]}]}}), true),
        (
            json!({"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"prefix": "stop"}}]}}),
            true,
        ),
        (
            json!({"detail": {"file": [{"anything-but": {"suffix": ".png"}}]}}),
            false,
        ),
        (
            json!({"detail": {"file": [{"anything-but": {"suffix": ".jpg"}}]}}),
            true,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": "RUNNING"}}]}}),
            false,
        ),
        (
            json!({"detail": {"state": [{"anything-but": {"equals-ignore-case": ["X", "Y"]}}]}}),
            true,
        ),
        // anything-but does not match a missing field
        (
            json!({"detail": {"absent": [{"anything-but": "x"}]}}),
            false,
        ),
    ];
    for (p, want) in table {
        check(p, ev.clone(), want);
    }
}

#[test]
fn exists_and_missing_fields() {
    let ev = envelope(json!({"a": "x", "nul": null, "obj": {"b": 1}, "empty": []}));
    let table = [
        (json!({"detail": {"a": [{"exists": true}]}}), true),
        (json!({"detail": {"a": [{"exists": false}]}}), false),
        (json!({"detail": {"zz": [{"exists": false}]}}), true),
        (json!({"detail": {"zz": [{"exists": true}]}}), false),
        (json!({"detail": {"nul": [{"exists": true}]}}), true),
        // exists applies to leaves
        (json!({"detail": {"obj": [{"exists": true}]}}), false),
        (json!({"detail": {"obj": {"b": [{"exists": true}]}}}), true),
        (json!({"detail": {"empty": [{"exists": false}]}}), true),
        // a whole missing branch: only exists:false matches
        (json!({"nope": {"deep": [{"exists": false}]}}), true),
        (json!({"nope": {"deep": ["x"]}}), false),
        (json!({"nope": {"deep": ["x", {"exists": false}]}}), true),
        (json!({"detail": {"zz": [{"numeric": [">", 0]}]}}), false),
    ];
    for (p, want) in table {
        check(p, ev.clone(), want);
    }
}

#[test]
fn numeric_ranges() {
    let ev = envelope(json!({"n": 5, "f": 2.5, "s": "5"}));
    let table = [
        (
            json!({"detail": {"n": [{"numeric": [">", 0, "<=", 5]}]}}),
            true,
        ),
        (
            json!({"detail": {"n": [{"numeric": [">", 0, "<", 5]}]}}),
            false,
        ),
        (json!({"detail": {"n": [{"numeric": [">=", 5]}]}}), true),
        (json!({"detail": {"n": [{"numeric": [">", 5]}]}}), false),
        (json!({"detail": {"n": [{"numeric": ["=", 5.0]}]}}), true),
        (json!({"detail": {"n": [{"numeric": ["<", 5]}]}}), false),
        (
            json!({"detail": {"f": [{"numeric": [">", 2, "<", 3]}]}}),
            true,
        ),
        (json!({"detail": {"f": [{"numeric": ["<=", 2.5]}]}}), true),
        // strings are not numbers
        (json!({"detail": {"s": [{"numeric": ["=", 5]}]}}), false),
    ];
    for (p, want) in table {
        check(p, ev.clone(), want);
    }
}

#[test]
fn event_arrays_match_any_element() {
    let ev = envelope(json!({
        "codes": ["A01", "A08"],
        "nums": [1, 7],
        "items": [{"kind": "x", "v": 1}, {"kind": "y", "v": 2}]
    }));
    let table = [
        (json!({"detail": {"codes": ["A08"]}}), true),
        (json!({"detail": {"codes": ["A03"]}}), false),
        (json!({"detail": {"codes": [{"prefix": "A0"}]}}), true),
        (json!({"detail": {"nums": [{"numeric": [">", 5]}]}}), true),
        (json!({"detail": {"nums": [{"numeric": [">", 8]}]}}), false),
        (json!({"detail": {"items": {"kind": ["y"]}}}), true),
        (json!({"detail": {"items": {"kind": ["z"]}}}), false),
        (json!({"resources": [{"exists": false}]}), true),
        // anything-but over an array: some element differs
        (
            json!({"detail": {"codes": [{"anything-but": "A01"}]}}),
            true,
        ),
        (
            json!({"detail": {"codes": [{"anything-but": ["A01", "A08"]}]}}),
            false,
        ),
    ];
    for (p, want) in table {
        check(p, ev.clone(), want);
    }
}

#[test]
fn malformed_patterns_are_rejected_with_clear_messages() {
    let table = [
        ("not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ("{}", "is empty"),
        (r#"{"source": "x"}"#, "must be an array of alternatives"),
        (r#"{"source": []}"#, "no alternatives"),
        (r#"{"source": [["x"]]}"#, "nested arrays"),
        (
            r#"{"source": [{"wildcard": "x*"}]}"#,
            "unknown or unsupported operator \"wildcard\"",
        ),
        (r#"{"$or": [{"a": ["x"]}]}"#, "unsupported operator \"$or\""),
        (r#"{"source": [{"prefix": 1}]}"#, "prefix takes a string"),
        (
            r#"{"source": [{"prefix": "a", "suffix": "b"}]}"#,
            "exactly one key",
        ),
        (
            r#"{"source": [{"exists": "yes"}]}"#,
            "exists takes true or false",
        ),
        (
            r#"{"n": [{"numeric": [">", 5, "<", 1]}]}"#,
            "lower bound is not below upper bound",
        ),
        (
            r#"{"n": [{"numeric": [">", 5, "<", 5]}]}"#,
            "lower bound is not below upper bound",
        ),
        (
            r#"{"n": [{"numeric": [">", 1, ">", 2]}]}"#,
            "more than one lower bound",
        ),
        (
            r#"{"n": [{"numeric": ["~", 1]}]}"#,
            "operator must be one of",
        ),
        (r#"{"n": [{"numeric": [">", "1"]}]}"#, "finite number"),
        (r#"{"n": [{"numeric": [">"]}]}"#, "pairs"),
        (
            r#"{"n": [{"numeric": ["=", 1, "<", 2]}]}"#,
            "cannot be combined",
        ),
        (r#"{"n": [{"anything-but": []}]}"#, "list is empty"),
        (
            r#"{"n": [{"anything-but": {"wildcard": "x"}}]}"#,
            "anything-but.wildcard",
        ),
        (
            r#"{"n": [{"anything-but": [{"a": 1}]}]}"#,
            "must be strings or numbers",
        ),
    ];
    for (p, needle) in table {
        check_err(p, needle);
    }
    // The error names where it is.
    assert_eq!(
        Pattern::parse(r#"{"detail": {"x": 1}}"#).unwrap_err(),
        PatternError::LeafNotArray {
            path: "$.detail.x".into(),
            found: "a number"
        }
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("prefix".to_string()),
        Just("suffix".to_string()),
        Just("anything-but".to_string()),
        Just("numeric".to_string()),
        Just("exists".to_string()),
        Just("equals-ignore-case".to_string()),
        "[a-z$<>=-]{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            Just(">".to_string()),
            Just("<=".to_string()),
            Just("=".to_string()),
            ".{0,4}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parse_and_match_never_panic(p in arb_json(), ev in arb_json()) {
        if let Ok(pattern) = Pattern::from_value(&p) {
            let _ = pattern.matches(&ev);
            // A pattern that parsed also parses from its text form.
            prop_assert!(Pattern::parse(&p.to_string()).is_ok());
        }
    }

    #[test]
    fn parse_never_panics_on_text(s in ".{0,64}") {
        let _ = Pattern::parse(&s);
    }
}

/// The shapes notify rules match on: the fleet's envelope in `detail`, identifiers as an
/// array of objects, optional visit fields, entity counts.
#[test]
fn notify_rule_shapes_on_fleet_events() {
    let admitted = envelope(json!({
        "event_id": "e", "event_type": "PatientAdmitted",
        "payload": {
            "patient": {"identifiers": [{"id": "1", "id_type": "MR"}, {"id": "2", "id_type": "AN"}]},
            "visit": {"class": "I", "location": {"point_of_care": "4EAST"}, "discharge_time": null}
        }
    }));
    let doc = json!({
        "version": "0", "id": "e2", "detail-type": "DocumentProcessed", "source": "fleet.doc-pipeline",
        "detail": {"payload": {"entities": {"medications": 0, "by_category": {"MEDICATION": 0}}}}
    });
    let table = [
        // prefix on detail-type, exact on a nested field, ANDed
        (
            json!({"detail-type": [{"prefix": "Patient"}], "detail": {"payload": {"visit": {"class": ["I"]}}}}),
            &admitted,
            true,
        ),
        // array of objects: any element's field
        (
            json!({"detail": {"payload": {"patient": {"identifiers": {"id_type": ["AN"]}}}}}),
            &admitted,
            true,
        ),
        (
            json!({"detail": {"payload": {"patient": {"identifiers": {"id_type": ["SS"]}}}}}),
            &admitted,
            false,
        ),
        // a null leaf exists; a missing one does not
        (
            json!({"detail": {"payload": {"visit": {"discharge_time": [{"exists": true}]}}}}),
            &admitted,
            true,
        ),
        (
            json!({"detail": {"payload": {"visit": {"admit_time": [{"exists": false}]}}}}),
            &admitted,
            true,
        ),
        // anything-but on a field one event type lacks: no match there
        (
            json!({"detail": {"payload": {"visit": {"class": [{"anything-but": "O"}]}}}}),
            &doc,
            false,
        ),
        (
            json!({"detail": {"payload": {"visit": {"class": [{"anything-but": "O"}]}}}}),
            &admitted,
            true,
        ),
        // numeric on counts
        (
            json!({"detail": {"payload": {"entities": {"medications": [{"numeric": [">", 0]}]}}}}),
            &doc,
            false,
        ),
        (
            json!({"detail": {"payload": {"entities": {"medications": [{"numeric": [">=", 0, "<", 1]}]}}}}),
            &doc,
            true,
        ),
        // a source list
        (
            json!({"source": ["fleet.hl7-ingest", "fleet.doc-pipeline"]}),
            &doc,
            true,
        ),
    ];
    for (p, ev, want) in table {
        check(p, ev.clone(), want);
    }
}
