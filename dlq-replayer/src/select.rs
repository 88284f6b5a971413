//! Which dead-lettered messages a command applies to.

use std::time::Duration;

use regex::Regex;
use serde::Serialize;

use crate::audit::AuditKey;
use crate::message::Dead;

/// The filters of `show`, `replay` and `purge`. Every given filter must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Any of these failure codes (empty: any code).
    pub codes: Vec<String>,
    /// Failed longer ago than this.
    pub older_than: Option<Duration>,
    /// Failed more recently than this.
    pub newer_than: Option<Duration>,
    /// Message attributes with exactly this string value.
    pub attributes: Vec<(String, String)>,
    /// The body matches this expression.
    pub body_regex: Option<Regex>,
    /// At most this many messages.
    pub max: Option<usize>,
}

impl Filter {
    /// No filter at all: every message present is selected.
    pub fn is_unfiltered(&self) -> bool {
        self.codes.is_empty()
            && self.older_than.is_none()
            && self.newer_than.is_none()
            && self.attributes.is_empty()
            && self.body_regex.is_none()
            && self.max.is_none()
    }

    /// Whether `m` passes every filter except `max`, which the caller counts.
    pub fn matches(&self, m: &Dead, now_ms: i64) -> bool {
        if !self.codes.is_empty() && !self.codes.iter().any(|c| c == m.code()) {
            return false;
        }
        let age_ms = now_ms.saturating_sub(m.failed_at_ms());
        if let Some(d) = self.older_than
            && age_ms < millis(d)
        {
            return false;
        }
        if let Some(d) = self.newer_than
            && age_ms > millis(d)
        {
            return false;
        }
        let attributes_match = self.attributes.iter().all(|(name, value)| {
            m.msg
                .attributes
                .get(name)
                .and_then(|v| v.as_str())
                .is_some_and(|v| v == value)
        });
        if !attributes_match {
            return false;
        }
        self.body_regex
            .as_ref()
            .is_none_or(|re| re.is_match(&m.msg.body))
    }

    /// Whether recording these filters needs the audit key: `--attribute` values and the body
    /// pattern can be patient data (an MRN, a name).
    pub fn needs_key(&self) -> bool {
        !self.attributes.is_empty() || self.body_regex.is_some()
    }

    /// The filters as they may be written to an audit record: attribute names in clear, their
    /// values and the body pattern only as keyed hashes (never in clear, never a bare SHA-256,
    /// which a dictionary of MRNs reverses). Without a key such filters cannot be recorded, and
    /// a command that cannot write its audit record does not run.
    pub fn audit_view(&self, key: Option<&AuditKey>) -> Result<FilterView, String> {
        let key = match key {
            Some(k) => Some(k),
            None if self.needs_key() => return Err(no_key_message()),
            None => None,
        };
        Ok(FilterView {
            codes: self.codes.clone(),
            older_than: self
                .older_than
                .map(|d| humantime::format_duration(d).to_string()),
            newer_than: self
                .newer_than
                .map(|d| humantime::format_duration(d).to_string()),
            attributes: key
                .map(|k| {
                    self.attributes
                        .iter()
                        .map(|(n, v)| AttributeView {
                            name: n.clone(),
                            value_hmac: k.hash("attribute", &format!("{n}={v}")),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            body_regex_hmac: self
                .body_regex
                .as_ref()
                .zip(key)
                .map(|(re, k)| k.hash("body-regex", re.as_str())),
            hmac_key_id: key.filter(|_| self.needs_key()).map(AuditKey::id),
            max: self.max,
        })
    }
}

/// Why a filter on values cannot run without the audit key.
pub fn no_key_message() -> String {
    format!(
        "--attribute and --body-regex are recorded in the audit log as a keyed hash, and no key \
         is configured: set {} (at least {} bytes, the same for every run whose records should \
         correlate) or {} (a file readable by its owner only)",
        fleet_core::env::DLQ_AUDIT_KEY,
        crate::audit::MIN_KEY_BYTES,
        fleet_core::env::DLQ_AUDIT_KEY_FILE
    )
}

/// An `--attribute` filter in an audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeView {
    pub name: String,
    /// HMAC-SHA256 of `NAME=VALUE` under the audit key (hex).
    pub value_hmac: String,
}

/// What an audit record says about the filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilterView {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub older_than: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newer_than: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_regex_hmac: Option<String>,
    /// Which key the hashes are under ([`AuditKey::id`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hmac_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<usize>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// `NAME=VALUE` of `--attribute`.
pub fn parse_attribute(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_string(), value.to_string())),
        _ => Err("expected NAME=VALUE".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_core::failure::FAILURE_ATTRIBUTE;
    use fleet_core::{AttributeValue, Attributes, ReceivedMessage};

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn dead(code: &str, failed_hours_ago: i64, attrs: &[(&str, &str)], body: &str) -> Dead {
        let mut attributes: Attributes = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::string(*v)))
            .collect();
        let failure = serde_json::json!({
            "code": code,
            "last_failure": crate::message::format_ms(NOW - failed_hours_ago * HOUR),
        });
        attributes.insert(
            FAILURE_ATTRIBUTE.into(),
            AttributeValue::string(failure.to_string()),
        );
        Dead::new(ReceivedMessage {
            message_id: "m".into(),
            receipt: "r".into(),
            body: body.into(),
            attributes,
            receive_count: 1,
            sent_timestamp_ms: 0,
            group_id: None,
            dedup_id: None,
            sequence_number: None,
            trace_header: None,
        })
    }

    /// One case: a filter, a message, whether it matches.
    fn check(filter: &Filter, m: &Dead, expected: bool) {
        assert_eq!(filter.matches(m, NOW), expected, "{filter:?}");
    }

    #[test]
    fn each_filter_selects_and_rejects() {
        let m = dead("HL7_NOT_ADT", 3, &[("tenant", "north")], "MSH|^~\\&|ORU");
        check(&Filter::default(), &m, true);
        let code = |c: &[&str]| Filter {
            codes: c.iter().map(|s| s.to_string()).collect(),
            ..Filter::default()
        };
        check(&code(&["HL7_NOT_ADT"]), &m, true);
        check(&code(&["HL7_PARSE_ERROR", "HL7_NOT_ADT"]), &m, true);
        check(&code(&["HL7_PARSE_ERROR"]), &m, false);
        let hours = |h: u64| Some(Duration::from_secs(h * 3600));
        let older = |h| Filter {
            older_than: hours(h),
            ..Filter::default()
        };
        let newer = |h| Filter {
            newer_than: hours(h),
            ..Filter::default()
        };
        check(&older(2), &m, true);
        check(&older(4), &m, false);
        check(&newer(4), &m, true);
        check(&newer(2), &m, false);
        let attr = |n: &str, v: &str| Filter {
            attributes: vec![(n.into(), v.into())],
            ..Filter::default()
        };
        check(&attr("tenant", "north"), &m, true);
        check(&attr("tenant", "south"), &m, false);
        check(&attr("missing", "north"), &m, false);
        let body = |re: &str| Filter {
            body_regex: Some(Regex::new(re).unwrap()),
            ..Filter::default()
        };
        check(&body("ORU"), &m, true);
        check(&body("^ADT"), &m, false);
        let both = Filter {
            codes: vec!["HL7_NOT_ADT".into()],
            body_regex: Some(Regex::new("ADT").unwrap()),
            ..Filter::default()
        };
        check(&both, &m, false);
    }

    #[test]
    fn the_audit_view_records_values_only_as_keyed_hashes() {
        use sha2::{Digest, Sha256};
        let f = Filter {
            body_regex: Some(Regex::new("MRN-12345").unwrap()),
            attributes: vec![("mrn".into(), "MRN-777".into())],
            codes: vec!["HL7_NOT_ADT".into()],
            older_than: Some(Duration::from_secs(7200)),
            ..Filter::default()
        };
        let e = f.audit_view(None).unwrap_err();
        assert!(e.contains(fleet_core::env::DLQ_AUDIT_KEY), "{e}");
        let key = AuditKey::new(vec![1; 32]).unwrap();
        let json = serde_json::to_string(&f.audit_view(Some(&key)).unwrap()).unwrap();
        for clear in ["MRN-12345", "MRN-777"] {
            assert!(!json.contains(clear), "{json}");
            assert!(
                !json.contains(&hex::encode(Sha256::digest(clear.as_bytes()))),
                "{json}"
            );
        }
        assert!(
            json.contains(&key.hash("body-regex", "MRN-12345")),
            "{json}"
        );
        assert!(
            json.contains(&key.hash("attribute", "mrn=MRN-777")),
            "{json}"
        );
        assert!(json.contains(r#""name":"mrn""#), "{json}");
        assert!(json.contains(&key.id()), "{json}");
        assert!(json.contains(r#""older_than":"2h""#), "{json}");
        // Codes and ages need no key.
        let plain = Filter {
            codes: vec!["HL7_NOT_ADT".into()],
            ..Filter::default()
        };
        let json = serde_json::to_string(&plain.audit_view(None).unwrap()).unwrap();
        assert_eq!(json, r#"{"codes":["HL7_NOT_ADT"]}"#);
        assert!(!f.is_unfiltered());
        assert!(Filter::default().is_unfiltered());
    }

    #[test]
    fn attribute_arguments_need_a_name_and_an_equals_sign() {
        assert_eq!(
            parse_attribute("a=b=c"),
            Ok(("a".to_string(), "b=c".to_string()))
        );
        assert_eq!(parse_attribute("a="), Ok(("a".to_string(), String::new())));
        assert!(parse_attribute("=b").is_err());
        assert!(parse_attribute("ab").is_err());
    }
}
