//! An EventBridge-like bus: events are stored and routed to local queues by rule patterns.

use std::sync::Arc;

use async_trait::async_trait;
use fleet_core::ports::{
    BatchResult, BusEvent, EntryFailure, EventBus, MAX_PUT_EVENTS_BYTES, OutgoingMessage,
};
use fleet_core::requests::count;
use fleet_core::{ErrorKind, PortError};
use fleet_pattern::Pattern;
use rusqlite::{Transaction, params};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::db::{Cached, Db, json_err, sql_err};
use crate::now_ms;
use crate::queue::send_in_tx;

/// The account and region local envelopes carry.
pub const LOCAL_ACCOUNT: &str = "000000000000";
pub const LOCAL_REGION: &str = "local";
const MAX_ENTRIES: usize = 10;

pub(crate) fn put_rule(
    db: &Db,
    bus: &str,
    rule: &str,
    pattern_json: &str,
    target_queue: &str,
) -> Result<(), PortError> {
    const OP: &str = "local.put_rule";
    if bus.is_empty() || rule.is_empty() || target_queue.is_empty() {
        return Err(PortError::invalid(
            OP,
            "bus, rule name and target queue must not be empty",
        ));
    }
    Pattern::parse(pattern_json)
        .map_err(|e| PortError::invalid(OP, format!("rule {rule:?}: {e}")))?;
    let (bus, rule, pattern_json, target_queue) = (
        bus.to_owned(),
        rule.to_owned(),
        pattern_json.to_owned(),
        target_queue.to_owned(),
    );
    db.run_sync(OP, move |tx| {
        tx.exec(
            "INSERT OR REPLACE INTO bus_rules (bus, name, pattern, target_queue) VALUES (?1, ?2, ?3, ?4)",
            params![bus, rule, pattern_json, target_queue],
        )
        .map_err(sql_err(OP))?;
        Ok(())
    })
}

/// Idempotent, like EventBridge's DeleteRule.
pub(crate) fn delete_rule(db: &Db, bus: &str, rule: &str) -> Result<(), PortError> {
    const OP: &str = "local.delete_rule";
    let (bus, rule) = (bus.to_owned(), rule.to_owned());
    db.run_sync(OP, move |tx| {
        tx.exec(
            "DELETE FROM bus_rules WHERE bus = ?1 AND name = ?2",
            params![bus, rule],
        )
        .map_err(sql_err(OP))?;
        Ok(())
    })
}

pub(crate) fn list_events(db: &Db, bus: &str) -> Result<Vec<Value>, PortError> {
    const OP: &str = "local.list_bus_events";
    let bus = bus.to_owned();
    db.run_sync(OP, move |tx| {
        let mut st = tx
            .prepare("SELECT envelope FROM bus_events WHERE bus = ?1 ORDER BY seq")
            .map_err(sql_err(OP))?;
        let rows = st
            .query_map([&bus], |r| r.get::<_, String>(0))
            .map_err(sql_err(OP))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(serde_json::from_str(&row.map_err(sql_err(OP))?).map_err(json_err(OP))?);
        }
        Ok(out)
    })
}

struct Rule {
    name: String,
    pattern: Pattern,
    target: String,
}

fn load_rules(tx: &Transaction<'_>, bus: &str) -> Result<Vec<Rule>, PortError> {
    const OP: &str = "events.PutEvents";
    let mut st = tx
        .prepare_cached(
            "SELECT name, pattern, target_queue FROM bus_rules WHERE bus = ?1 ORDER BY name",
        )
        .map_err(sql_err(OP))?;
    let rows = st
        .query_map([bus], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_err(OP))?;
    let mut rules = Vec::new();
    for row in rows {
        let (name, pattern, target) = row.map_err(sql_err(OP))?;
        // Patterns are validated by put_rule; one edited by hand is skipped, not fatal.
        match Pattern::parse(&pattern) {
            Ok(pattern) => rules.push(Rule {
                name,
                pattern,
                target,
            }),
            Err(e) => {
                tracing::warn!(bus, rule = %name, error = %e, "skipping a rule whose pattern does not parse")
            }
        }
    }
    Ok(rules)
}

fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The envelope EventBridge delivers to targets, or the per-entry error code.
fn envelope(e: &BusEvent) -> Result<Value, &'static str> {
    if e.source.is_empty() || e.detail_type.is_empty() {
        return Err("InvalidArgument");
    }
    let detail: Value = serde_json::from_str(&e.detail).map_err(|_| "MalformedDetail")?;
    if !detail.is_object() {
        return Err("MalformedDetail");
    }
    let time = match &e.time {
        Some(t) => {
            OffsetDateTime::parse(t, &Rfc3339).map_err(|_| "InvalidArgument")?;
            t.clone()
        }
        None => now_rfc3339(),
    };
    Ok(json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": e.detail_type,
        "source": e.source,
        "account": LOCAL_ACCOUNT,
        "time": time,
        "region": LOCAL_REGION,
        "resources": e.resources,
        "detail": detail,
    }))
}

/// The envelope as JSON text, its `detail` the entry's own text (already checked to be a JSON
/// object) rather than the parsed detail serialised again: the detail is most of an event, and
/// parsing it is needed only for rule matching. Keys in the order `serde_json` gives a `Value`.
fn envelope_text(env: &Value, detail: &str) -> Result<String, serde_json::Error> {
    let field = |name: &str| serde_json::to_string(&env[name]);
    let mut out = String::with_capacity(detail.len() + 320);
    out.push_str("{\"account\":");
    out.push_str(&field("account")?);
    out.push_str(",\"detail\":");
    out.push_str(detail.trim());
    for name in [
        "detail-type",
        "id",
        "region",
        "resources",
        "source",
        "time",
        "version",
    ] {
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        out.push_str(&field(name)?);
    }
    out.push('}');
    Ok(out)
}

fn put_in_tx(
    tx: &Transaction<'_>,
    bus: &str,
    events: &[BusEvent],
) -> Result<BatchResult, PortError> {
    const OP: &str = "events.PutEvents";
    let rules = load_rules(tx, bus)?;
    let now = now_ms();
    let mut result = BatchResult::default();
    for (index, e) in events.iter().enumerate() {
        let env = match envelope(e) {
            Ok(env) => env,
            Err(code) => {
                result.failed.push(EntryFailure {
                    index,
                    code: code.into(),
                    sender_fault: true,
                });
                continue;
            }
        };
        let id = env["id"].as_str().unwrap_or_default().to_string();
        let body = envelope_text(&env, &e.detail).map_err(json_err(OP))?;
        tx.exec(
            "INSERT INTO bus_events (bus, event_id, envelope, put_ms) VALUES (?1, ?2, ?3, ?4)",
            params![bus, id, body, now],
        )
        .map_err(sql_err(OP))?;
        for rule in rules.iter().filter(|r| r.pattern.matches(&env)) {
            // The SQS target gets exactly the envelope. FIFO targets need a group: like an
            // EventBridge target's MessageGroupId, the rule name; the event id deduplicates.
            let message = OutgoingMessage {
                body: body.clone(),
                group_id: Some(rule.name.clone()),
                dedup_id: Some(id.clone()),
                ..OutgoingMessage::default()
            };
            match send_in_tx(tx, &rule.target, &message, e.trace_header.as_deref()) {
                Ok(Ok(_)) => {}
                // EventBridge accepts the event and fails the delivery on its own side.
                Ok(Err(code)) => {
                    tracing::warn!(bus, rule = %rule.name, target = %rule.target, code, "rule target refused the event")
                }
                Err(e) if e.kind == ErrorKind::NotFound => {
                    tracing::warn!(bus, rule = %rule.name, target = %rule.target, "rule target queue does not exist")
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(result)
}

/// A bus port bound to one bus name.
pub(crate) struct LocalBus {
    db: Arc<Db>,
    name: Arc<str>,
}

impl LocalBus {
    pub(crate) fn new(db: Arc<Db>, name: String) -> Self {
        Self {
            db,
            name: name.into(),
        }
    }
}

#[async_trait]
impl EventBus for LocalBus {
    fn id(&self) -> &str {
        &self.name
    }

    async fn put_events(&self, events: &[BusEvent]) -> Result<BatchResult, PortError> {
        const OP: &str = "events.PutEvents";
        count(OP);
        if events.is_empty() || events.len() > MAX_ENTRIES {
            return Err(PortError::invalid(
                OP,
                format!("PutEvents takes 1 to 10 entries, got {}", events.len()),
            ));
        }
        // EventBridge refuses the whole call (ValidationException), not one entry, when the
        // entry sizes, computed as it documents, do not add up to less than 256 KiB.
        let total: usize = events.iter().map(BusEvent::entry_size).sum();
        if total >= MAX_PUT_EVENTS_BYTES {
            return Err(PortError::invalid(
                OP,
                format!(
                    "Total size of the entries in the request is over the limit ({total} bytes, limit {MAX_PUT_EVENTS_BYTES})"
                ),
            ));
        }
        let bus = self.name.clone();
        let events = events.to_vec();
        self.db
            .run(OP, move |tx| put_in_tx(tx, &bus, &events))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_text_is_the_envelope_with_the_entry_s_own_detail_text() {
        let event = BusEvent {
            source: "fleet.test".into(),
            detail_type: "Patient\"Admitted".into(),
            detail: r#"{"z":1,"a":{"nested":["x","é\n"]},"m":null}"#.into(),
            resources: vec!["arn:x".into()],
            time: Some("2026-01-02T03:04:05Z".into()),
            trace_header: None,
        };
        let env = envelope(&event).expect("valid entry");
        let text = envelope_text(&env, &event.detail).unwrap();
        // The same document as the envelope (key order aside: serde_json's map order depends
        // on the features the build unifies), with the detail's bytes exactly as sent.
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reparsed, env);
        assert!(text.contains(&event.detail), "{text}");
    }
}
