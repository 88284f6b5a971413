//! The EventBridge event-pattern subset shared by the local bus and the notify worker.
//!
//! A pattern is a JSON object shaped like the events it selects. Keys are ANDed; every leaf is
//! an array of alternatives that are ORed. Supported alternatives: exact values (string,
//! number, boolean, null), `prefix`, `suffix`, `equals-ignore-case` (also nested inside
//! `prefix`/`suffix`), `anything-but` (a value, a list of values, or a `prefix`, `suffix` or
//! `equals-ignore-case` object), `exists` and `numeric` ranges. Anything else (`wildcard`,
//! `cidr`, `$or`, ...) is rejected at parse time rather than silently never matching, so a
//! rule that would behave differently on AWS fails loudly here.
//!
//! Matching follows EventBridge: an event array matches when any element matches; a missing
//! field matches only `{"exists": false}` (`anything-but` does not match a missing field);
//! numbers compare numerically (`5` equals `5.0`).

use serde_json::{Map, Value};

/// Why a pattern was rejected. Messages name the path and the problem, never event data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern is not valid JSON: {0}")]
    Json(String),
    #[error("pattern must be a JSON object, found {found} at {path}")]
    NotAnObject { path: String, found: &'static str },
    #[error("pattern object at {path} is empty")]
    Empty { path: String },
    #[error("pattern leaf at {path} must be an array of alternatives, found {found}")]
    LeafNotArray { path: String, found: &'static str },
    #[error("pattern leaf at {path} has no alternatives")]
    NoAlternatives { path: String },
    #[error("unsupported value at {path}: {reason}")]
    BadValue { path: String, reason: String },
    #[error("unknown or unsupported operator {op:?} at {path}")]
    UnknownOperator { path: String, op: String },
    #[error("bad numeric range at {path}: {reason}")]
    BadNumeric { path: String, reason: String },
}

/// A parsed event pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    root: Node,
}

/// One level of a pattern: field name to either a nested object or a leaf.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    fields: Vec<(String, Field)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Nested(Node),
    Leaf(Vec<Matcher>),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    /// Strings, booleans and null compare by equality.
    Exact(Value),
    /// Numbers compare numerically.
    Number(f64),
    Prefix(StrTest),
    Suffix(StrTest),
    EqualsIgnoreCase(String),
    AnythingBut(AnythingBut),
    Exists(bool),
    Numeric(Range),
}

/// The operand of `prefix`/`suffix`: a plain string or `{"equals-ignore-case": ".."}`.
#[derive(Debug, Clone, PartialEq)]
struct StrTest {
    text: String,
    ignore_case: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum AnythingBut {
    /// None of these scalars (numbers compared numerically).
    Values(Vec<Value>),
    Prefix(String),
    Suffix(String),
    EqualsIgnoreCase(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    /// (bound, inclusive)
    lower: Option<(f64, bool)>,
    upper: Option<(f64, bool)>,
}

impl Pattern {
    /// Parse a pattern from JSON text.
    pub fn parse(json: &str) -> Result<Pattern, PatternError> {
        let v: Value = serde_json::from_str(json).map_err(|e| PatternError::Json(e.to_string()))?;
        Self::from_value(&v)
    }

    /// Parse a pattern from a JSON value.
    pub fn from_value(v: &Value) -> Result<Pattern, PatternError> {
        match v {
            Value::Object(map) => Ok(Pattern {
                root: parse_node(map, "$")?,
            }),
            other => Err(PatternError::NotAnObject {
                path: "$".into(),
                found: kind(other),
            }),
        }
    }

    /// Whether `event` (typically the EventBridge envelope) matches.
    pub fn matches(&self, event: &Value) -> bool {
        match_node(&self.root, Some(event))
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn child_path(path: &str, key: &str) -> String {
    format!("{path}.{key}")
}

fn parse_node(map: &Map<String, Value>, path: &str) -> Result<Node, PatternError> {
    if map.is_empty() {
        return Err(PatternError::Empty { path: path.into() });
    }
    let mut fields = Vec::with_capacity(map.len());
    for (key, value) in map {
        let p = child_path(path, key);
        if key.starts_with('$') {
            // `$or` and friends change the meaning of the whole level; unsupported here.
            return Err(PatternError::UnknownOperator {
                path: p,
                op: key.clone(),
            });
        }
        let field = match value {
            Value::Object(inner) => Field::Nested(parse_node(inner, &p)?),
            Value::Array(alts) => {
                if alts.is_empty() {
                    return Err(PatternError::NoAlternatives { path: p });
                }
                let mut matchers = Vec::with_capacity(alts.len());
                for (i, alt) in alts.iter().enumerate() {
                    matchers.push(parse_alternative(alt, &format!("{p}[{i}]"))?);
                }
                Field::Leaf(matchers)
            }
            other => {
                return Err(PatternError::LeafNotArray {
                    path: p,
                    found: kind(other),
                });
            }
        };
        fields.push((key.clone(), field));
    }
    Ok(Node { fields })
}

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

fn parse_alternative(alt: &Value, path: &str) -> Result<Matcher, PatternError> {
    match alt {
        Value::Null | Value::Bool(_) | Value::String(_) => Ok(Matcher::Exact(alt.clone())),
        Value::Number(_) => {
            number(alt)
                .map(Matcher::Number)
                .ok_or_else(|| PatternError::BadValue {
                    path: path.into(),
                    reason: "number out of range".into(),
                })
        }
        Value::Array(_) => Err(PatternError::BadValue {
            path: path.into(),
            reason: "nested arrays are not allowed in a pattern leaf".into(),
        }),
        Value::Object(map) => parse_operator(map, path),
    }
}

fn single_entry<'a>(
    map: &'a Map<String, Value>,
    path: &str,
) -> Result<(&'a String, &'a Value), PatternError> {
    let mut it = map.iter();
    match (it.next(), it.next()) {
        (Some(entry), None) => Ok(entry),
        (None, _) => Err(PatternError::BadValue {
            path: path.into(),
            reason: "empty operator object".into(),
        }),
        (Some(_), Some(_)) => Err(PatternError::BadValue {
            path: path.into(),
            reason: "an operator object must have exactly one key".into(),
        }),
    }
}

fn expect_string(v: &Value, path: &str, op: &str) -> Result<String, PatternError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| PatternError::BadValue {
            path: path.into(),
            reason: format!("{op} takes a string, found {}", kind(v)),
        })
}

fn parse_str_test(v: &Value, path: &str, op: &str) -> Result<StrTest, PatternError> {
    match v {
        Value::String(s) => Ok(StrTest {
            text: s.clone(),
            ignore_case: false,
        }),
        Value::Object(map) => {
            let (k, inner) = single_entry(map, path)?;
            if k != "equals-ignore-case" {
                return Err(PatternError::UnknownOperator {
                    path: path.into(),
                    op: format!("{op}.{k}"),
                });
            }
            Ok(StrTest {
                text: expect_string(inner, path, k)?,
                ignore_case: true,
            })
        }
        other => Err(PatternError::BadValue {
            path: path.into(),
            reason: format!(
                "{op} takes a string or an equals-ignore-case object, found {}",
                kind(other)
            ),
        }),
    }
}

fn parse_operator(map: &Map<String, Value>, path: &str) -> Result<Matcher, PatternError> {
    let (op, arg) = single_entry(map, path)?;
    match op.as_str() {
        "prefix" => Ok(Matcher::Prefix(parse_str_test(arg, path, op)?)),
        "suffix" => Ok(Matcher::Suffix(parse_str_test(arg, path, op)?)),
        "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(expect_string(arg, path, op)?)),
        "exists" => match arg {
            Value::Bool(b) => Ok(Matcher::Exists(*b)),
            other => Err(PatternError::BadValue {
                path: path.into(),
                reason: format!("exists takes true or false, found {}", kind(other)),
            }),
        },
        "numeric" => parse_numeric(arg, path).map(Matcher::Numeric),
        "anything-but" => parse_anything_but(arg, path).map(Matcher::AnythingBut),
        other => Err(PatternError::UnknownOperator {
            path: path.into(),
            op: other.into(),
        }),
    }
}

fn anything_but_scalar(v: &Value, path: &str) -> Result<Value, PatternError> {
    match v {
        Value::String(_) | Value::Bool(_) | Value::Null => Ok(v.clone()),
        Value::Number(_) => {
            number(v).ok_or_else(|| PatternError::BadValue {
                path: path.into(),
                reason: "number out of range".into(),
            })?;
            Ok(v.clone())
        }
        other => Err(PatternError::BadValue {
            path: path.into(),
            reason: format!(
                "anything-but list entries must be strings or numbers, found {}",
                kind(other)
            ),
        }),
    }
}

fn parse_anything_but(arg: &Value, path: &str) -> Result<AnythingBut, PatternError> {
    match arg {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(PatternError::BadValue {
                    path: path.into(),
                    reason: "anything-but list is empty".into(),
                });
            }
            let values = items
                .iter()
                .map(|v| anything_but_scalar(v, path))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(AnythingBut::Values(values))
        }
        Value::Object(map) => {
            let (op, inner) = single_entry(map, path)?;
            match op.as_str() {
                "prefix" => Ok(AnythingBut::Prefix(expect_string(inner, path, op)?)),
                "suffix" => Ok(AnythingBut::Suffix(expect_string(inner, path, op)?)),
                "equals-ignore-case" => match inner {
                    Value::String(s) => Ok(AnythingBut::EqualsIgnoreCase(vec![s.clone()])),
                    Value::Array(items) if !items.is_empty() => Ok(AnythingBut::EqualsIgnoreCase(
                        items
                            .iter()
                            .map(|v| expect_string(v, path, op))
                            .collect::<Result<_, _>>()?,
                    )),
                    other => Err(PatternError::BadValue {
                        path: path.into(),
                        reason: format!(
                            "anything-but equals-ignore-case takes a string or a non-empty list of strings, found {}",
                            kind(other)
                        ),
                    }),
                },
                other => Err(PatternError::UnknownOperator {
                    path: path.into(),
                    op: format!("anything-but.{other}"),
                }),
            }
        }
        scalar => Ok(AnythingBut::Values(vec![anything_but_scalar(
            scalar, path,
        )?])),
    }
}

fn parse_numeric(arg: &Value, path: &str) -> Result<Range, PatternError> {
    let bad = |reason: &str| PatternError::BadNumeric {
        path: path.into(),
        reason: reason.into(),
    };
    let items = arg
        .as_array()
        .ok_or_else(|| bad("numeric takes an array like [\">\", 0, \"<=\", 5]"))?;
    if items.is_empty() || items.len() % 2 != 0 || items.len() > 4 {
        return Err(bad("expected one or two (operator, number) pairs"));
    }
    let mut range = Range {
        lower: None,
        upper: None,
    };
    for pair in items.chunks(2) {
        let op = pair[0]
            .as_str()
            .ok_or_else(|| bad("operator must be a string"))?;
        let n = number(&pair[1]).ok_or_else(|| bad("operand must be a finite number"))?;
        match op {
            "=" => {
                if items.len() != 2 {
                    return Err(bad("\"=\" cannot be combined with another comparison"));
                }
                range.lower = Some((n, true));
                range.upper = Some((n, true));
            }
            ">" | ">=" => {
                if range.lower.is_some() {
                    return Err(bad("more than one lower bound"));
                }
                range.lower = Some((n, op == ">="));
            }
            "<" | "<=" => {
                if range.upper.is_some() {
                    return Err(bad("more than one upper bound"));
                }
                range.upper = Some((n, op == "<="));
            }
            _ => return Err(bad("operator must be one of =, >, >=, <, <=")),
        }
    }
    if let (Some((lo, lo_inc)), Some((hi, hi_inc))) = (range.lower, range.upper)
        && (lo > hi || (lo == hi && !(lo_inc && hi_inc)))
    {
        return Err(bad("lower bound is not below upper bound"));
    }
    Ok(range)
}

// ---------------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------------

fn match_node(node: &Node, value: Option<&Value>) -> bool {
    match value {
        // A missing (or non-object) level behaves as if every field below it were missing.
        Some(Value::Object(map)) => node.fields.iter().all(|(k, f)| match_field(f, map.get(k))),
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().any(|item| match_node(node, Some(item)))
        }
        _ => node.fields.iter().all(|(_, f)| match_field(f, None)),
    }
}

fn match_field(field: &Field, value: Option<&Value>) -> bool {
    match field {
        Field::Nested(node) => match_node(node, value),
        Field::Leaf(matchers) => matchers.iter().any(|m| match_leaf(m, value)),
    }
}

/// Whether a value counts as present for `exists`: leaves only, and an empty array has no
/// leaves (EventBridge flattens arrays).
fn present_leaf(value: &Value) -> bool {
    match value {
        Value::Object(_) => false,
        Value::Array(items) => items.iter().any(present_leaf),
        _ => true,
    }
}

fn match_leaf(m: &Matcher, value: Option<&Value>) -> bool {
    match m {
        Matcher::Exists(want) => value.is_some_and(present_leaf) == *want,
        _ => match value {
            None => false,
            Some(Value::Array(items)) => items.iter().any(|item| match_scalar(m, item)),
            Some(v) => match_scalar(m, v),
        },
    }
}

fn scalar_eq(pattern: &Value, v: &Value) -> bool {
    match (pattern, v) {
        (Value::Number(_), Value::Number(_)) => {
            number(pattern).zip(number(v)).is_some_and(|(a, b)| a == b)
        }
        _ => pattern == v,
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.to_lowercase().ends_with(&suffix.to_lowercase())
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.to_lowercase().starts_with(&prefix.to_lowercase())
}

fn match_scalar(m: &Matcher, v: &Value) -> bool {
    match m {
        Matcher::Exact(p) => p == v,
        Matcher::Number(n) => number(v).is_some_and(|x| x == *n),
        Matcher::Prefix(t) => v.as_str().is_some_and(|s| {
            if t.ignore_case {
                starts_with_ignore_case(s, &t.text)
            } else {
                s.starts_with(&t.text)
            }
        }),
        Matcher::Suffix(t) => v.as_str().is_some_and(|s| {
            if t.ignore_case {
                ends_with_ignore_case(s, &t.text)
            } else {
                s.ends_with(&t.text)
            }
        }),
        Matcher::EqualsIgnoreCase(t) => v
            .as_str()
            .is_some_and(|s| s.to_lowercase() == t.to_lowercase()),
        Matcher::Numeric(r) => number(v).is_some_and(|x| in_range(r, x)),
        Matcher::AnythingBut(ab) => match ab {
            AnythingBut::Values(values) => !values.iter().any(|p| scalar_eq(p, v)),
            AnythingBut::Prefix(p) => v.as_str().is_some_and(|s| !s.starts_with(p.as_str())),
            AnythingBut::Suffix(p) => v.as_str().is_some_and(|s| !s.ends_with(p.as_str())),
            AnythingBut::EqualsIgnoreCase(list) => v
                .as_str()
                .is_some_and(|s| !list.iter().any(|p| s.to_lowercase() == p.to_lowercase())),
        },
        Matcher::Exists(_) => false,
    }
}

fn in_range(r: &Range, x: f64) -> bool {
    let lower_ok = match r.lower {
        None => true,
        Some((lo, true)) => x >= lo,
        Some((lo, false)) => x > lo,
    };
    let upper_ok = match r.upper {
        None => true,
        Some((hi, true)) => x <= hi,
        Some((hi, false)) => x < hi,
    };
    lower_ok && upper_ok
}
