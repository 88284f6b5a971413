//! The rules file: which events become which notifications.
//!
//! ```toml
//! [[rule]]
//! name = "admissions-ward-3"
//! destination = "arn:aws:sns:eu-west-1:123456789012:ward-3"   # or "sms:+15555550123"
//! pattern = { source = ["fleet.hl7-ingest"], "detail-type" = ["PatientAdmitted"] }
//! fields = ["detail-type", "detail.payload.visit.location.point_of_care"]
//! subject = "Admission to {{ event.detail.payload.visit.location.point_of_care }}"
//! body = "A patient was admitted to {{ event.detail.payload.visit.location.point_of_care }}."
//! attributes = { team = "ward-3" }
//! ```
//!
//! `pattern` is an EventBridge event pattern (the `fleet-pattern` subset, the same one the
//! local bus routes with), as a TOML table or a JSON string. Templates are minijinja; they see
//! one variable, `event`, holding only the `fields` listed (dotted paths into the EventBridge
//! event) plus `rule` (the rule's name). Referring to anything else is an error (strict
//! undefined), so a template cannot reach a field nobody allow-listed. A rule whose
//! allow-listed fields carry one of the event's PHI values, or whose subject or body contains
//! one (after normalisation, at every stage up to the text sent), is refused for that event
//! ([`RenderError::PhiInText`]; see [`crate::phi`]).

use std::collections::BTreeMap;
use std::path::Path;

use fleet_core::Destination;
use fleet_pattern::Pattern;
use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::phi::PhiValues;

/// The largest subject SNS accepts.
pub const MAX_SUBJECT_CHARS: usize = 100;
/// The rules file's own limits.
const MAX_RULES: usize = 1000;
const MAX_ATTRIBUTES: usize = 7; // SNS allows 10; the worker adds 3 of its own.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    destination: String,
    pattern: toml::Value,
    #[serde(default)]
    fields: Vec<String>,
    subject: Option<String>,
    body: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

/// One parsed rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub destination: Destination,
    pub pattern: Pattern,
    pub fields: Vec<Vec<String>>,
    pub has_subject: bool,
    pub attributes: BTreeMap<String, String>,
}

/// Every rule of a file, with its compiled templates.
#[derive(Debug)]
pub struct Rules {
    pub rules: Vec<Rule>,
    env: Environment<'static>,
}

/// Why a rules file was refused: names the rule and the problem.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read the rules file {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("the rules file is not valid TOML: {0}")]
    Toml(String),
    #[error("rule {rule:?}: {problem}")]
    Rule { rule: String, problem: String },
    #[error("the rules file has no [[rule]]")]
    Empty,
}

/// Why one rendering failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The template failed: names the template (subject/body) and minijinja's error kind,
    /// never event data.
    Template(String),
    /// One of the event's PHI values reached the template or the text (`NOTIFY_PHI_IN_TEXT`):
    /// names where (`allow-listed fields`, `subject` or `body`), never the value.
    PhiInText(&'static str),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Template(what) => f.write_str(what),
            Self::PhiInText(place) => {
                write!(f, "{place}: contains one of the event's PHI values")
            }
        }
    }
}

/// A rendered notification text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: Option<String>,
    pub body: String,
}

fn rule_err(rule: &str, problem: impl Into<String>) -> RulesError {
    RulesError::Rule {
        rule: rule.to_string(),
        problem: problem.into(),
    }
}

impl Rules {
    pub fn load(path: &Path) -> Result<Rules, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|error| RulesError::Read {
            path: path.display().to_string(),
            error,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let spec: FileSpec =
            toml::from_str(text).map_err(|e| RulesError::Toml(e.message().to_string()))?;
        if spec.rule.is_empty() {
            return Err(RulesError::Empty);
        }
        if spec.rule.len() > MAX_RULES {
            return Err(RulesError::Toml(format!("more than {MAX_RULES} rules")));
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let mut rules = Vec::with_capacity(spec.rule.len());
        for r in spec.rule {
            let name = r.name.trim().to_string();
            let name_ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !name_ok {
                return Err(rule_err(
                    &name,
                    "name must be 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
            if rules.iter().any(|x: &Rule| x.name == name) {
                return Err(rule_err(&name, "a rule with this name exists already"));
            }
            let destination = Destination::parse(&r.destination).ok_or_else(|| {
                rule_err(
                    &name,
                    "destination must be an SNS topic ARN, a local topic name, or sms:+<E.164 number>",
                )
            })?;
            let pattern_json: Value = match &r.pattern {
                toml::Value::String(s) => serde_json::from_str(s)
                    .map_err(|e| rule_err(&name, format!("pattern is not JSON: {e}")))?,
                other => serde_json::to_value(other)
                    .map_err(|e| rule_err(&name, format!("pattern: {e}")))?,
            };
            let pattern = Pattern::from_value(&pattern_json)
                .map_err(|e| rule_err(&name, format!("pattern: {e}")))?;
            let mut fields = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let parts: Vec<String> = f.split('.').map(str::to_string).collect();
                if parts.iter().any(String::is_empty) {
                    return Err(rule_err(&name, format!("field {f:?} is not a dotted path")));
                }
                fields.push(parts);
            }
            if r.attributes.len() > MAX_ATTRIBUTES {
                return Err(rule_err(
                    &name,
                    format!("at most {MAX_ATTRIBUTES} attributes"),
                ));
            }
            if r.attributes.keys().any(|k| k.starts_with("fleet.")) {
                return Err(rule_err(
                    &name,
                    "attribute names starting fleet. are reserved",
                ));
            }
            for (part, source) in [
                ("subject", r.subject.as_deref()),
                ("body", Some(r.body.as_str())),
            ] {
                let Some(source) = source else { continue };
                if source.trim().is_empty() {
                    return Err(rule_err(&name, format!("{part} is empty")));
                }
                env.add_template_owned(format!("{name}/{part}"), source.to_string())
                    .map_err(|e| rule_err(&name, format!("{part} template: {}", e.kind())))?;
            }
            rules.push(Rule {
                name,
                destination,
                pattern,
                fields,
                has_subject: r.subject.is_some(),
                attributes: r.attributes,
            });
        }
        Ok(Rules { rules, env })
    }

    /// The rules whose pattern matches `event`, in file order.
    pub fn matching<'a>(&'a self, event: &'a Value) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.pattern.matches(event))
    }

    /// Render a rule's subject and body for `event`, seeing only the allow-listed fields,
    /// and check them against the event's PHI values ([`Rules::render_checked`]).
    pub fn render(&self, rule: &Rule, event: &Value) -> Result<Rendered, RenderError> {
        self.render_checked(rule, event, &crate::phi::phi_values(event))
    }

    /// [`Rules::render`] with the event's PHI values computed once by the caller.
    ///
    /// Refused with [`RenderError::PhiInText`]: an allow-listed field that carries one of
    /// `phi` (checked before rendering, so no filter chain can disguise it), and a subject or
    /// body that contains one at any stage: as rendered, and as sent (body trimmed; subject
    /// with whitespace collapsed and cut to [`MAX_SUBJECT_CHARS`], so a value the cut halves
    /// is still found in the whole).
    pub fn render_checked(
        &self,
        rule: &Rule,
        event: &Value,
        phi: &PhiValues,
    ) -> Result<Rendered, RenderError> {
        let visible = allowed(event, &rule.fields);
        let mut values = Vec::new();
        crate::phi::strings(&visible, &mut values);
        if values.iter().any(|v| phi.found_in(v)) {
            return Err(RenderError::PhiInText("allow-listed fields"));
        }
        let ctx = serde_json::json!({ "event": visible, "rule": rule.name });
        let render = |part: &'static str| -> Result<String, RenderError> {
            let t = self
                .env
                .get_template(&format!("{}/{part}", rule.name))
                .map_err(|e| RenderError::Template(format!("{part}: {}", e.kind())))?;
            let text = t
                .render(&ctx)
                .map_err(|e| RenderError::Template(format!("{part}: {}", e.kind())))?;
            if phi.found_in(&text) {
                return Err(RenderError::PhiInText(part));
            }
            Ok(text)
        };
        let body = render("body")?.trim().to_string();
        if body.is_empty() {
            return Err(RenderError::Template("body: rendered empty".into()));
        }
        if phi.found_in(&body) {
            return Err(RenderError::PhiInText("body"));
        }
        let subject = if rule.has_subject {
            // SNS subjects: ASCII, one line, at most 100 characters.
            let s = render("subject")?;
            let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
            if s.is_empty() {
                return Err(RenderError::Template("subject: rendered empty".into()));
            }
            if !s.is_ascii() || s.chars().any(char::is_control) {
                return Err(RenderError::Template("subject: not printable ASCII".into()));
            }
            let s: String = s.chars().take(MAX_SUBJECT_CHARS).collect();
            if phi.found_in(&s) {
                return Err(RenderError::PhiInText("subject"));
            }
            Some(s)
        } else {
            None
        };
        Ok(Rendered { subject, body })
    }
}

/// A copy of `event` holding only the values at `fields` (missing ones are left out).
pub fn allowed(event: &Value, fields: &[Vec<String>]) -> Value {
    let mut out = Value::Object(Map::new());
    for path in fields {
        let mut src = event;
        let mut found = true;
        for k in path {
            match src.get(k.as_str()) {
                Some(v) => src = v,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        let mut dst = &mut out;
        for (i, k) in path.iter().enumerate() {
            let Some(obj) = dst.as_object_mut() else {
                break;
            };
            if i + 1 == path.len() {
                obj.insert(k.clone(), src.clone());
                break;
            }
            dst = obj
                .entry(k.clone())
                .or_insert_with(|| Value::Object(Map::new()));
        }
    }
    out
}
