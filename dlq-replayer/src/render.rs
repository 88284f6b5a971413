//! Human output. Pure functions of the reports (and of "now" where ages are shown), so the
//! snapshot tests pin them exactly.
//!
//! Every field printed here can come from a producer (codes, details, worker and queue names in
//! the failure attribute, attribute names, bodies) or from a service's error text, so every one
//! goes through [`escape`]: a control character never reaches the terminal, where an ANSI
//! sequence could rewrite the screen or a newline forge a line of the report. `--output json` is
//! escaped by serde.

use std::borrow::Cow;
use std::fmt::Write;

use crate::inspect::{DlqInfo, Shown, Summary};
use crate::mover::MoveReport;

/// Ids listed in full in human output; the rest are counted (`--output json` lists all).
const IDS_SHOWN: usize = 20;

/// `s` with every control character (C0, DEL, C1) and every bidirectional formatting character
/// (which can reorder what a terminal shows) written as `\u{..}`, so it prints on one line and
/// changes nothing on the screen. The one escaping function of every text renderer.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// JSON output as serde writes it, with the characters serde leaves raw (C1 controls, DEL,
/// bidi formatting) written as `\uXXXX` escapes too. They can only occur inside strings, where
/// such an escape means the same character, so the JSON is unchanged for a parser.
pub fn escape_json(json: &str) -> Cow<'_, str> {
    if !json
        .chars()
        .any(|c| unsafe_char(c) && !matches!(c, '\n' | ' '))
    {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        // serde escapes every C0 control inside strings; the C0 left are the pretty printer's
        // own newlines (and spaces, which are not controls).
        if unsafe_char(c) && c != '\n' {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Left-aligned columns separated by two spaces; numeric columns right-aligned. Cells are
/// escaped.
fn table(header: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c).into_owned()).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if numeric[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                if i + 1 < cells.len() {
                    l.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// "3d 4h", "2h 5m", "45s".
pub fn age(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

pub fn list(dlqs: &[DlqInfo]) -> String {
    if dlqs.is_empty() {
        return "No dead-letter queues: no queue has a redrive policy.\n".to_string();
    }
    let rows: Vec<Vec<String>> = dlqs
        .iter()
        .map(|d| {
            let oldest = match (d.oldest_age_secs, d.scan_complete) {
                (None, _) => "-".to_string(),
                (Some(s), true) => age(s),
                (Some(s), false) => format!(">= {}", age(s)),
            };
            vec![
                d.queue.clone(),
                if d.fifo { "fifo" } else { "standard" }.to_string(),
                if d.encrypted { "yes" } else { "NO" }.to_string(),
                d.visible.to_string(),
                d.in_flight.to_string(),
                oldest,
                d.sources.join(", "),
            ]
        })
        .collect();
    table(
        &[
            "DLQ",
            "TYPE",
            "ENCRYPTED",
            "MESSAGES",
            "IN FLIGHT",
            "OLDEST",
            "SOURCES",
        ],
        &[false, false, false, true, true, false, false],
        &rows,
    )
}

pub fn summary(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} message{}{}",
        escape(&s.queue),
        s.total,
        if s.total == 1 { "" } else { "s" },
        if s.scan_complete {
            ""
        } else {
            " seen (partial: scan limit reached, or a FIFO queue, whose later messages in a group \
             cannot be read without moving the first)"
        }
    );
    if s.groups.is_empty() {
        return out;
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = s
        .groups
        .iter()
        .map(|g| {
            vec![
                g.count.to_string(),
                g.code.clone(),
                dash(&g.worker),
                dash(&g.source_queue),
                g.first_failure.clone(),
                g.last_failure.clone(),
                if g.min_receive_count == g.max_receive_count {
                    g.max_receive_count.to_string()
                } else {
                    format!("{}-{}", g.min_receive_count, g.max_receive_count)
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "COUNT",
            "CODE",
            "WORKER",
            "SOURCE",
            "FIRST FAILURE",
            "LAST FAILURE",
            "RECEIVES",
        ],
        &[true, false, false, false, false, false, true],
        &rows,
    ));
    out
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.into() }
}

pub fn show(queue: &str, messages: &[Shown], scan_complete: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} message{} shown{}",
        escape(queue),
        messages.len(),
        if messages.len() == 1 { "" } else { "s" },
        if scan_complete { "" } else { " (partial scan)" }
    );
    for m in messages {
        out.push('\n');
        let _ = writeln!(out, "message {}", escape(&m.message_id));
        let mut field = |name: &str, value: &str| {
            if !value.is_empty() {
                let _ = writeln!(out, "  {name:<15}{}", escape(value));
            }
        };
        field("code", &m.code);
        field("detail", &m.detail);
        field("worker", &m.worker);
        field("source queue", &m.source_queue);
        field("source id", &m.source_message_id);
        field("receive count", &m.receive_count.to_string());
        field("first failure", &m.first_failure);
        field("last failure", &m.last_failure);
        field("sent to DLQ", &m.sent);
        field("group", m.group_id.as_deref().unwrap_or(""));
        field("attributes", &m.attribute_names.join(", "));
        if let Some(body) = &m.body {
            let _ = writeln!(out, "  body");
            for line in body.split(['\r', '\n']).filter(|l| !l.is_empty()) {
                let _ = writeln!(out, "    {}", escape(line));
            }
        }
    }
    out
}

fn ids(out: &mut String, label: &str, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = writeln!(out, "{label}:");
    for id in ids.iter().take(IDS_SHOWN) {
        let _ = writeln!(out, "  {}", escape(id));
    }
    if ids.len() > IDS_SHOWN {
        let _ = writeln!(
            out,
            "  ... and {} more (--output json lists every id)",
            ids.len() - IDS_SHOWN
        );
    }
}

/// Why a destination was refused, for the reasons the mover gives.
const REFUSALS: [(&str, &str); 2] = [
    (
        crate::mover::NOT_A_SOURCE,
        "the queue the failure attribute names has no redrive policy naming this DLQ (the \
         attribute is data a producer could forge); nothing was sent there. Choose the \
         destination with --to QUEUE",
    ),
    (
        crate::mover::DESTINATION_UNENCRYPTED,
        "the destination queue is not encrypted; enable SSE-KMS or SSE-SQS on it, or pass \
         --allow-unencrypted (FLEET_ALLOW_UNENCRYPTED=1, local development only)",
    ),
];

pub fn moved(r: &MoveReport) -> String {
    let mut out = String::new();
    let verb = match (r.operation.as_str(), r.dry_run) {
        ("purge", true) => "would delete",
        ("purge", false) => "deleted",
        (_, true) => "would replay",
        (_, false) => "replayed",
    };
    if r.declined {
        let _ = writeln!(
            out,
            "{} from {}: not confirmed; nothing changed ({} selected).",
            escape(&r.operation),
            escape(&r.queue),
            r.selected
        );
        return out;
    }
    let _ = writeln!(
        out,
        "{}{} {} of {} selected message{} from {}",
        if r.dry_run { "dry run: " } else { "" },
        verb,
        r.moved,
        r.selected,
        if r.selected == 1 { "" } else { "s" },
        escape(&r.queue)
    );
    let _ = writeln!(
        out,
        "  scanned {}: {} not selected, {} arrived during the run, {} behind their FIFO group",
        r.scanned, r.not_selected, r.arrived_during_run, r.held_behind_group
    );
    for (dest, n) in &r.destinations {
        let _ = writeln!(out, "  to {}: {n}", escape(dest));
    }
    if r.partial_view {
        let _ = writeln!(
            out,
            "  FIFO queue: a dry run sees only the first messages of each group; a replay moves \
             the rest of each group in order"
        );
    }
    if r.scan_limit_reached {
        let _ = writeln!(out, "  the scan limit was reached: run again for the rest");
    }
    for a in &r.archives {
        let _ = writeln!(out, "  archive: {}", escape(a));
    }
    if let Some(why) = &r.aborted {
        let _ = writeln!(out, "STOPPED: {}", escape(why));
    }
    if !r.not_moved.is_empty() {
        let _ = writeln!(out, "not moved (still in the DLQ): {}", r.not_moved.len());
        for n in r.not_moved.iter().take(IDS_SHOWN) {
            let _ = writeln!(out, "  {}  {}", escape(&n.message_id), escape(&n.reason));
        }
        if r.not_moved.len() > IDS_SHOWN {
            let _ = writeln!(out, "  ... and {} more", r.not_moved.len() - IDS_SHOWN);
        }
        let reasons: std::collections::BTreeSet<&str> =
            r.not_moved.iter().map(|n| n.reason.as_str()).collect();
        for (reason, why) in REFUSALS {
            if reasons.contains(reason) {
                let _ = writeln!(out, "  {reason}: {why}");
            }
        }
    }
    ids(
        &mut out,
        "sent but not deleted from the DLQ (a second replay would send them again)",
        &r.sent_not_deleted,
    );
    if r.dry_run {
        ids(&mut out, "selected message ids", &r.moved_ids);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item8_json_output_escapes_c1_and_bidi_characters_too() {
        let value = serde_json::json!({"detail": "a\u{1b}[2Jb\u{9b}31mc\u{202e}d\u{85}e"});
        let raw = serde_json::to_string_pretty(&value).unwrap();
        assert!(raw.contains('\u{9b}'), "serde leaves C1 raw: {raw:?}");
        let out = escape_json(&raw);
        assert!(!out.chars().any(|c| unsafe_char(c) && c != '\n'), "{out:?}");
        assert!(out.contains("\\u009b") && out.contains("\\u202e") && out.contains("\\u001b"));
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back, value, "the same JSON for a parser");
    }
    use crate::inspect::FailureGroup;
    use crate::mover::NotMoved;

    #[test]
    fn item8_escape_writes_control_characters_as_code_points() {
        assert!(matches!(escape("hl7-inbound ^~&"), Cow::Borrowed(_)));
        assert_eq!(
            escape("a\u{1b}[2Jb\nc\rd\te\u{7f}f\u{9b}g\u{202e}h"),
            "a\\u{1b}[2Jb\\u{a}c\\u{d}d\\u{9}e\\u{7f}f\\u{9b}g\\u{202e}h"
        );
        assert_eq!(escape("Müller ✓"), "Müller ✓");
    }

    #[test]
    fn item8_every_text_renderer_escapes_producer_fields() {
        let evil = "X\u{1b}[31m\nforged line\u{7}";
        let m = Shown {
            code: evil.into(),
            detail: evil.into(),
            worker: evil.into(),
            source_queue: evil.into(),
            source_message_id: evil.into(),
            group_id: Some(evil.into()),
            attribute_names: vec![evil.into()],
            ..shown(Some(evil))
        };
        let g = FailureGroup {
            code: evil.into(),
            worker: evil.into(),
            source_queue: evil.into(),
            count: 1,
            first_failure: String::new(),
            last_failure: String::new(),
            min_receive_count: 1,
            max_receive_count: 1,
        };
        let s = Summary {
            queue: evil.into(),
            total: 1,
            scan_complete: true,
            groups: vec![g],
        };
        let d = DlqInfo {
            queue: evil.into(),
            fifo: false,
            encrypted: true,
            visible: 1,
            in_flight: 0,
            oldest_sent: None,
            oldest_age_secs: None,
            scan_complete: true,
            sources: vec![evil.into()],
        };
        let r = MoveReport {
            queue: evil.into(),
            destinations: [(evil.to_string(), 1)].into(),
            not_moved: vec![NotMoved {
                message_id: evil.into(),
                reason: evil.into(),
            }],
            aborted: Some(evil.into()),
            ..report()
        };
        for text in [show(evil, &[m], true), summary(&s), list(&[d]), moved(&r)] {
            assert!(
                !text.contains('\u{1b}') && !text.contains('\u{7}'),
                "{text}"
            );
            assert!(!text.lines().any(|l| l.starts_with("forged")), "{text}");
            assert!(
                text.contains("X\\u{1b}[31m\\u{a}forged line\\u{7}"),
                "{text}"
            );
        }
    }

    #[test]
    fn item8_refused_destinations_are_explained() {
        let r = MoveReport {
            operation: "replay".into(),
            queue: "hl7-dlq".into(),
            selected: 2,
            not_moved: vec![
                NotMoved {
                    message_id: "d-1".into(),
                    reason: crate::mover::NOT_A_SOURCE.into(),
                },
                NotMoved {
                    message_id: "d-2".into(),
                    reason: crate::mover::DESTINATION_UNENCRYPTED.into(),
                },
            ],
            ..MoveReport::default()
        };
        let text = moved(&r);
        assert!(text.contains("NOT_A_SOURCE_OF_THIS_DLQ: the queue the failure attribute names has no redrive policy naming this DLQ"), "{text}");
        assert!(text.contains("--to QUEUE"), "{text}");
        assert!(text.contains("--allow-unencrypted"), "{text}");
    }

    #[test]
    fn ages() {
        assert_eq!(age(42), "42s");
        assert_eq!(age(125), "2m");
        assert_eq!(age(3 * 3600 + 120), "3h 2m");
        assert_eq!(age(2 * 86_400 + 5 * 3600 + 59), "2d 5h");
    }

    #[test]
    fn list_snapshot() {
        let dlqs = vec![
            DlqInfo {
                queue: "hl7-dlq".into(),
                fifo: false,
                encrypted: true,
                visible: 412,
                in_flight: 0,
                oldest_sent: Some("2026-11-30T22:00:00Z".into()),
                oldest_age_secs: Some(3 * 3600 + 720),
                scan_complete: true,
                sources: vec!["hl7-inbound".into()],
            },
            DlqInfo {
                queue: "docs-dlq.fifo".into(),
                fifo: true,
                encrypted: false,
                visible: 3,
                in_flight: 1,
                oldest_sent: Some("2026-11-28T01:00:00Z".into()),
                oldest_age_secs: Some(2 * 86_400 + 3600),
                scan_complete: false,
                sources: vec!["docs-a.fifo".into(), "docs-b.fifo".into()],
            },
        ];
        insta::assert_snapshot!(list(&dlqs));
        insta::assert_snapshot!("list_empty", list(&[]));
    }

    #[test]
    fn summary_snapshot() {
        let s = Summary {
            queue: "hl7-dlq".into(),
            total: 412,
            scan_complete: true,
            groups: vec![
                FailureGroup {
                    code: "HL7_NOT_ADT".into(),
                    worker: "hl7-ingest".into(),
                    source_queue: "hl7-inbound".into(),
                    count: 400,
                    first_failure: "2026-11-30T22:00:00Z".into(),
                    last_failure: "2026-12-01T01:10:00Z".into(),
                    min_receive_count: 1,
                    max_receive_count: 3,
                },
                FailureGroup {
                    code: "REDRIVEN_WITHOUT_FAILURE".into(),
                    worker: String::new(),
                    source_queue: String::new(),
                    count: 12,
                    first_failure: "2026-11-30T23:00:00Z".into(),
                    last_failure: "2026-11-30T23:30:00Z".into(),
                    min_receive_count: 6,
                    max_receive_count: 6,
                },
            ],
        };
        insta::assert_snapshot!(summary(&s));
    }

    fn shown(body: Option<&str>) -> Shown {
        Shown {
            message_id: "d-1".into(),
            code: "HL7_NOT_ADT".into(),
            detail: "MSH-9 is ORU^R01, not ADT".into(),
            worker: "hl7-ingest".into(),
            source_queue: "hl7-inbound".into(),
            source_message_id: "s-1".into(),
            receive_count: 1,
            first_failure: "2026-11-30T22:00:00Z".into(),
            last_failure: "2026-11-30T22:00:00Z".into(),
            sent: "2026-11-30T22:00:01Z".into(),
            group_id: None,
            attribute_names: vec!["correlation_id".into(), "fleet.failure".into()],
            body: body.map(str::to_string),
        }
    }

    #[test]
    fn show_snapshot() {
        insta::assert_snapshot!(show("hl7-dlq", &[shown(None)], true));
        insta::assert_snapshot!(
            "show_with_body",
            show("hl7-dlq", &[shown(Some("MSH|^~\\&|A\rPID|1"))], true)
        );
    }

    fn report() -> MoveReport {
        MoveReport {
            operation: "replay".into(),
            queue: "hl7-dlq".into(),
            scanned: 250,
            selected: 200,
            moved: 190,
            not_selected: 40,
            arrived_during_run: 10,
            destinations: [("hl7-inbound".to_string(), 190)].into(),
            moved_ids: (0..190).map(|i| format!("d-{i}")).collect(),
            not_moved: (0..10)
                .map(|i| NotMoved {
                    message_id: format!("d-{}", 190 + i),
                    reason: "sqs.SendMessageBatch not_found".into(),
                })
                .collect(),
            aborted: Some("sending to hl7-inbound failed (sqs.SendMessageBatch not_found); the run stopped and unsent messages stay in the DLQ".into()),
            archives: vec!["/var/archive/dlq-replay-r1-001.jsonl.age".into()],
            ..MoveReport::default()
        }
    }

    #[test]
    fn move_snapshots() {
        insta::assert_snapshot!("replay_partial", moved(&report()));
        let dry = MoveReport {
            dry_run: true,
            moved: 3,
            selected: 3,
            scanned: 3,
            moved_ids: vec!["d-1".into(), "d-2".into(), "d-3".into()],
            operation: "purge".into(),
            queue: "hl7-dlq".into(),
            ..MoveReport::default()
        };
        insta::assert_snapshot!("purge_dry_run", moved(&dry));
        let declined = MoveReport {
            declined: true,
            selected: 7,
            ..report()
        };
        insta::assert_snapshot!("declined", moved(&declined));
    }
}
