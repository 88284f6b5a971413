//! The health page's HTML: one string, every value escaped, numbers as plain integers.
//!
//! DOM contract (a browser test reads exactly this):
//! - `table#queues`: `tr[data-queue]` per consumed queue with `td[data-field]` `worker`,
//!   `visible`, `in_flight`, `delayed`, `oldest_age` (whole seconds or `n/a`), `last_poll`, and
//!   an `svg.spark` (visible messages over the last hour);
//! - `table#dlqs`: `tr[data-dlq]` per DLQ with `depth`, `oldest_age`;
//! - `table#codes`: `tr[data-dlq][data-code][data-worker]` per (DLQ, code, worker) with `count`
//!   and `code.cmd[data-action=inspect]`, `code.cmd[data-action=replay]`;
//! - `table#workers`: `tr[data-worker]` with `live` (`live|stalled|unknown`), `last_poll`;
//! - `section#dead-letter-rate` with `last_minute`, `last_15_minutes`, `last_hour` and an
//!   `svg.spark` of the hour's per-minute counts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::status::Status;

/// `s` safe in HTML text and in double- or single-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whole seconds, or `n/a`.
fn age(secs: Option<f64>) -> String {
    secs.map_or_else(
        || "n/a".to_string(),
        |s| format!("{}", s.max(0.0).floor() as u64),
    )
}

/// An inline SVG polyline of `values` (oldest first), scaled to its own maximum.
pub fn sparkline(values: &[u64], label: &str) -> String {
    const W: f64 = 120.0;
    const H: f64 = 24.0;
    let mut svg = format!(
        r#"<svg class="spark" viewBox="0 0 120 24" width="120" height="24" role="img" aria-label="{}">"#,
        escape(label)
    );
    if !values.is_empty() {
        let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
        let step = if values.len() > 1 {
            W / (values.len() - 1) as f64
        } else {
            0.0
        };
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let x = i as f64 * step;
                let y = H - 1.0 - (v as f64 / max) * (H - 2.0);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
    }
    svg.push_str("</svg>");
    svg
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2430;background:#fafbfc}\
h1{font-size:1.3rem;margin:0 0 .2rem}h2{font-size:1.05rem;margin:1.6rem 0 .4rem}\
.meta{color:#5b6472;margin:0 0 1rem}\
table{border-collapse:collapse;background:#fff;min-width:40rem}\
th,td{border:1px solid #d8dde4;padding:.3rem .6rem;text-align:left;vertical-align:middle}\
th{background:#eef1f5;font-weight:600}\
td[data-field=visible],td[data-field=in_flight],td[data-field=delayed],td[data-field=depth],\
td[data-field=count],td[data-field=oldest_age],td[data-field=last_poll]{text-align:right;font-variant-numeric:tabular-nums}\
.spark{color:#2f6fb3;display:block}\
code.cmd{display:block;font-size:12px;background:#f3f5f8;padding:.15rem .3rem;margin:.1rem 0;white-space:pre-wrap;word-break:break-all}\
td[data-field=live]{font-weight:600}.live{color:#1d7a3a}.stalled{color:#b3261e}.unknown{color:#7a6a1d}\
.note{color:#5b6472;font-size:12px}.empty{color:#5b6472;font-style:italic}";

/// `ms` since the epoch as UTC to the second (`2026-12-07 05:43:38 UTC`).
fn utc_time(ms: impl TryInto<i128>) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    ms.try_into()
        .ok()
        .and_then(|ms| time::OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The page for `status`, with each queue's sampled visible counts (`history`, oldest first).
pub fn render(status: &Status, history: &BTreeMap<String, Vec<u64>>, interval: Duration) -> String {
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"refresh\" content=\"{}\">\
<title>Fleet health</title><style>{CSS}</style></head><body>\n\
<h1>Fleet health</h1>\n<p class=\"meta\">Backend <span id=\"backend\">{}</span>; sampled at \
<span id=\"generated-at\" data-unix-ms=\"{}\">{}</span> (every {} s). Read-only; no message \
bodies or attribute values are shown. Same data: <a href=\"status.json\">status.json</a>.</p>\n",
        interval.as_secs().max(1),
        escape(status.backend),
        status.generated_at_unix_ms,
        utc_time(status.generated_at_unix_ms),
        interval.as_secs()
    );

    // Queues.
    h.push_str(
        "<h2>Queues</h2>\n<table id=\"queues\"><thead><tr><th>Queue</th><th>Worker</th>\
<th>Visible</th><th>In flight</th><th>Delayed</th><th>Oldest (s)</th><th>Last poll (s ago)</th>\
<th>Visible, last hour</th></tr></thead><tbody>\n",
    );
    for q in &status.queues {
        let name = escape(&q.queue);
        let spark = sparkline(
            history.get(&q.queue).map_or(&[][..], Vec::as_slice),
            &format!("{} visible, last hour", q.queue),
        );
        let _ = writeln!(
            h,
            "<tr data-queue=\"{name}\"><td data-field=\"queue\">{name}</td>\
<td data-field=\"worker\">{}</td><td data-field=\"visible\">{}</td>\
<td data-field=\"in_flight\">{}</td><td data-field=\"delayed\">{}</td>\
<td data-field=\"oldest_age\">{}</td><td data-field=\"last_poll\">{}</td>\
<td data-field=\"history\">{spark}</td></tr>",
            escape(q.worker),
            q.visible,
            q.in_flight,
            q.delayed,
            age(q.oldest_message_age_secs),
            age(q.last_poll_age_secs),
        );
    }
    h.push_str("</tbody></table>\n");

    // DLQs (each once, even if two queues share one).
    let mut dlqs = Vec::new();
    for q in &status.queues {
        if let Some(d) = &q.dlq
            && !dlqs
                .iter()
                .any(|(seen, _): &(&crate::status::DlqReport, &str)| seen.queue == d.queue)
        {
            dlqs.push((d, q.queue.as_str()));
        }
    }
    h.push_str(
        "<h2>Dead-letter queues</h2>\n<table id=\"dlqs\"><thead><tr><th>DLQ</th><th>Source</th>\
<th>Depth</th><th>Oldest (s)</th><th>Read</th></tr></thead><tbody>\n",
    );
    for (d, source) in &dlqs {
        let name = escape(&d.queue);
        let _ = writeln!(
            h,
            "<tr data-dlq=\"{name}\"><td data-field=\"dlq\">{name}</td>\
<td data-field=\"source\">{}</td><td data-field=\"depth\">{}</td>\
<td data-field=\"oldest_age\">{}</td><td data-field=\"complete\">{}</td></tr>",
            escape(source),
            d.depth,
            age(d.oldest_message_age_secs),
            if d.codes.is_none() {
                "unreadable"
            } else if d.complete {
                "complete"
            } else {
                "partial"
            }
        );
    }
    h.push_str("</tbody></table>\n");

    // Codes.
    h.push_str(
        "<h2>Dead letters by code and worker</h2>\n<table id=\"codes\"><thead><tr><th>DLQ</th>\
<th>Code</th><th>Worker</th><th>Count</th><th>Inspect / replay</th></tr></thead><tbody>\n",
    );
    let mut any = false;
    for (d, _) in &dlqs {
        let dlq = escape(&d.queue);
        for g in d.groups.iter().flatten() {
            any = true;
            let (code, worker) = (escape(&g.code), escape(&g.worker));
            let _ = writeln!(
                h,
                "<tr data-dlq=\"{dlq}\" data-code=\"{code}\" data-worker=\"{worker}\">\
<td data-field=\"dlq\">{dlq}</td><td data-field=\"code\">{code}</td>\
<td data-field=\"worker\">{worker}</td><td data-field=\"count\">{}</td>\
<td data-field=\"commands\"><code class=\"cmd\" data-action=\"inspect\">{}</code>\
<code class=\"cmd\" data-action=\"replay\">{}</code></td></tr>",
                g.count,
                escape(&g.inspect),
                escape(&g.replay)
            );
        }
    }
    h.push_str("</tbody></table>\n");
    if !any {
        h.push_str("<p class=\"empty\">No dead letters.</p>\n");
    }

    // Workers.
    h.push_str(
        "<h2>Workers</h2>\n<table id=\"workers\"><thead><tr><th>Worker</th><th>Liveness</th>\
<th>Last poll (s ago)</th></tr></thead><tbody>\n",
    );
    for w in &status.workers {
        let name = escape(w.worker);
        let live = w.live.as_str();
        let _ = writeln!(
            h,
            "<tr data-worker=\"{name}\"><td data-field=\"worker\">{name}</td>\
<td data-field=\"live\" class=\"{live}\">{live}</td><td data-field=\"last_poll\">{}</td></tr>",
            age(w.last_poll_age_secs)
        );
    }
    h.push_str("</tbody></table>\n");

    // Dead-letter rate.
    let r = &status.dead_letters;
    let _ = write!(
        h,
        "<section id=\"dead-letter-rate\"><h2>Dead-letters per minute</h2>\n\
<p><span data-field=\"last_minute\">{}</span> in the last minute, \
<span data-field=\"last_15_minutes\">{}</span> in the last 15 minutes, \
<span data-field=\"last_hour\">{}</span> in the last hour{}.</p>\n{}\n\
<p class=\"note\">By the failure time of the messages now on the dead-letter queues \
(replayed or purged ones are not counted).</p></section>\n",
        r.last_minute,
        r.last_15_minutes,
        r.last_hour,
        if r.complete {
            ""
        } else {
            " (at least: a DLQ was read partially)"
        },
        sparkline(&r.per_minute, "dead-letters per minute, last hour")
    );
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_both_attribute_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }

    #[test]
    fn sparklines_scale_to_their_maximum() {
        let s = sparkline(&[0, 5, 10], "q");
        assert!(
            s.contains(r#"points="0.0,23.0 60.0,12.0 120.0,1.0""#),
            "{s}"
        );
        assert!(!sparkline(&[], "q").contains("polyline"));
    }

    #[test]
    fn hostile_queue_and_dlq_names_are_escaped_in_text_and_attributes() {
        use crate::status::{DlqReport, QueueReport, dead_letter_rate};
        let queue = "q<script>alert(1)</script>";
        let dlq = "d\"><img src=x onerror=alert(2)>";
        let status = Status {
            backend: "aws",
            generated_at_unix_ms: 0,
            queues: vec![QueueReport {
                worker: "hl7-ingest",
                queue: queue.into(),
                visible: 1,
                in_flight: 0,
                delayed: 0,
                oldest_message_age_secs: None,
                last_poll_age_secs: None,
                dlq: Some(DlqReport {
                    queue: dlq.into(),
                    depth: 0,
                    oldest_message_age_secs: None,
                    codes: Some(Default::default()),
                    groups: Some(vec![]),
                    complete: true,
                }),
            }],
            workers: vec![],
            dead_letters: dead_letter_rate(&[], true, 0),
        };
        let history = BTreeMap::from([(queue.to_string(), vec![1, 2])]);
        let html = render(&status, &history, Duration::from_secs(10));
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("<tr data-queue=\"q&lt;script&gt;alert(1)&lt;/script&gt;\">"));
        assert!(html.contains("<tr data-dlq=\"d&quot;&gt;&lt;img src=x onerror=alert(2)&gt;\">"));
        assert!(html.contains("aria-label=\"q&lt;script&gt;"), "{html}");
    }
}
