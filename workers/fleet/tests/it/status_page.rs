//! The fleet health page (`fleet::page`) over real HTTP on loopback, on a real local backend
//! (SQLite) with dead letters: the page's cells carry the backend's numbers, `/status.json` is
//! what `fleet status --output json` prints, the bearer token is enforced, hostile names are
//! escaped, and no body or attribute value (other than the failure's code and worker) appears.

use std::path::Path;
use std::time::Duration;

use fleet::FleetConfig;
use fleet::page::{PageOptions, serve};
use fleet::status::StatusSource;
use fleet_core::Backend;
use fleet_core::failure::FAILURE_ATTRIBUTE;
use fleet_core::ports::{AttributeValue, Attributes, OutgoingMessage};
use fleet_local::LocalBackend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// Patient-like content that must never reach the page.
const BODY_SECRET: &str = "MSH|^~\\&|PID|MRN7770001|DOE^JANE";
const ATTRIBUTE_SECRET: &str = "attr-value-SECRET-4711";
const DETAIL_SECRET: &str = "detail-SECRET-0815";

/// `GET path` over a fresh connection: (status code, body).
async fn get(addr: std::net::SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    request(addr, "GET", path, token).await
}

async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut raw))
        .await
        .expect("the page answers")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_string())
}

fn failure(code: &str, worker: &str, source: &str) -> Attributes {
    let json = serde_json::json!({
        "code": code,
        "detail": DETAIL_SECRET,
        "worker": worker,
        "source_queue": source,
        "first_failure": "2020-01-01T00:00:00Z",
        "last_failure": "2020-01-01T00:00:00Z",
        "receive_count": 1,
        "message_id": "m-1",
    });
    let mut attrs = Attributes::new();
    attrs.insert(
        FAILURE_ATTRIBUTE.into(),
        AttributeValue {
            data_type: "String.json".into(),
            string_value: Some(json.to_string()),
            binary_value: None,
        },
    );
    attrs.insert("patient".into(), AttributeValue::string(ATTRIBUTE_SECRET));
    attrs
}

async fn send(b: &LocalBackend, queue: &str, n: usize, attributes: Attributes) {
    let q = b.queue(queue).await.unwrap();
    for _ in 0..n {
        q.send(OutgoingMessage {
            body: BODY_SECRET.into(),
            attributes: attributes.clone(),
            ..OutgoingMessage::default()
        })
        .await
        .unwrap();
    }
}

/// The local stack in `dir` (as `fleet run --dir` creates it) and its configuration.
fn stack(dir: &Path) -> (FleetConfig, LocalBackend) {
    let source = fleet::config::ConfigSource {
        dir: Some(dir.to_path_buf()),
        config: None,
    };
    let config = source.resolve().unwrap();
    let local = fleet::local_stack::open(dir).unwrap();
    (config, local)
}

async fn start(
    config: &FleetConfig,
    local: &LocalBackend,
    token: Option<&str>,
) -> (std::net::SocketAddr, CancellationToken) {
    let stop = CancellationToken::new();
    let page = serve(
        PageOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            interval: Duration::from_secs(1),
            token: token.map(str::to_string),
        },
        config.clone(),
        StatusSource::Local(local.clone()),
        stop.clone(),
    )
    .await
    .unwrap();
    (page.addr, stop)
}

/// The `<tr …>` row whose opening tag contains `marker`.
fn row<'a>(html: &'a str, marker: &str) -> &'a str {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} missing from:\n{html}"));
    let end = start + html[start..].find("</tr>").unwrap();
    &html[start..end]
}

/// The text of `<td data-field="field">` in `row`.
fn cell<'a>(row: &'a str, field: &str) -> &'a str {
    let open = format!("data-field=\"{field}\"");
    let at = row
        .find(&open)
        .unwrap_or_else(|| panic!("{field} missing from {row}"));
    let rest = &row[at..];
    let text = &rest[rest.find('>').unwrap() + 1..];
    &text[..text.find('<').unwrap()]
}

/// The status JSON without what changes between two reads (the time and the ages).
fn without_times(mut v: serde_json::Value) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !k.ends_with("_age_secs") && k != "generated_at_unix_ms");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

#[tokio::test]
async fn the_page_shows_the_local_backends_numbers_and_status_json_is_fleet_status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fleet");
    let (config, local) = stack(&dir);
    send(&local, "hl7-inbound", 3, Attributes::new()).await;
    send(
        &local,
        "hl7-inbound-dlq",
        2,
        failure("HL7_NOT_ADT", "hl7-ingest", "hl7-inbound"),
    )
    .await;
    send(
        &local,
        "hl7-inbound-dlq",
        1,
        failure("HL7_PARSE_ERROR", "hl7-ingest", "hl7-inbound"),
    )
    .await;
    // Redriven by the queue's own policy: no failure attribute.
    send(&local, "notify-inbound-dlq", 1, Attributes::new()).await;
    // One of hl7-inbound's messages in flight.
    let q = local.queue("hl7-inbound").await.unwrap();
    let held = q
        .receive(1, Duration::ZERO, Some(Duration::from_secs(600)))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);

    let (addr, stop) = start(&config, &local, None).await;
    let (code, html) = get(addr, "/", None).await;
    assert_eq!(code, 200, "{html}");

    let hl7 = row(&html, "<tr data-queue=\"hl7-inbound\">");
    assert_eq!(cell(hl7, "worker"), "hl7-ingest");
    assert_eq!(cell(hl7, "visible"), "2");
    assert_eq!(cell(hl7, "in_flight"), "1");
    assert_eq!(cell(hl7, "delayed"), "0");
    assert!(cell(hl7, "oldest_age").parse::<u64>().is_ok(), "{hl7}");
    assert!(hl7.contains("<svg class=\"spark\""), "{hl7}");
    let docs = row(&html, "<tr data-queue=\"doc-uploads\">");
    assert_eq!(cell(docs, "oldest_age"), "n/a");

    let dlq = row(&html, "<tr data-dlq=\"hl7-inbound-dlq\">");
    assert_eq!(cell(dlq, "depth"), "3");
    assert!(cell(dlq, "oldest_age").parse::<u64>().is_ok(), "{dlq}");
    assert_eq!(
        cell(
            row(&html, "<tr data-dlq=\"doc-uploads-dlq\">"),
            "oldest_age"
        ),
        "n/a"
    );

    let not_adt = row(
        &html,
        "<tr data-dlq=\"hl7-inbound-dlq\" data-code=\"HL7_NOT_ADT\" data-worker=\"hl7-ingest\">",
    );
    assert_eq!(cell(not_adt, "count"), "2");
    assert!(
        not_adt.contains("<code class=\"cmd\" data-action=\"inspect\">dlq-replay --backend local")
            && not_adt.contains("show hl7-inbound-dlq --code HL7_NOT_ADT</code>"),
        "{not_adt}"
    );
    assert!(
        not_adt.contains("<code class=\"cmd\" data-action=\"replay\">dlq-replay --backend local")
            && not_adt
                .contains("--allow-unencrypted replay hl7-inbound-dlq --code HL7_NOT_ADT</code>"),
        "{not_adt}"
    );
    let parse = row(
        &html,
        "<tr data-dlq=\"hl7-inbound-dlq\" data-code=\"HL7_PARSE_ERROR\" data-worker=\"hl7-ingest\">",
    );
    assert_eq!(cell(parse, "count"), "1");
    let redriven = row(
        &html,
        "<tr data-dlq=\"notify-inbound-dlq\" data-code=\"REDRIVEN_WITHOUT_FAILURE\" data-worker=\"\">",
    );
    assert_eq!(cell(redriven, "count"), "1");

    // The receive above is hl7-inbound's last poll: hl7-ingest is live by it; nobody polled
    // notify's queue.
    let worker = row(&html, "<tr data-worker=\"hl7-ingest\">");
    assert_eq!(cell(worker, "live"), "live");
    assert!(cell(worker, "last_poll").parse::<u64>().is_ok(), "{worker}");
    let worker = row(&html, "<tr data-worker=\"notify\">");
    assert_eq!(cell(worker, "live"), "unknown");
    assert_eq!(cell(worker, "last_poll"), "n/a");
    // The failures are dated 2020 except the redriven one, dead-lettered (sent) just now.
    let rate_at = html.find("<section id=\"dead-letter-rate\">").unwrap();
    let rate = &html[rate_at..];
    assert!(
        rate.contains("<span data-field=\"last_minute\">1</span>"),
        "{rate}"
    );
    assert!(
        rate.contains("<span data-field=\"last_hour\">1</span>"),
        "{rate}"
    );

    // /status.json is `fleet status --output json` (up to the times).
    let (code, json) = get(addr, "/status.json", None).await;
    assert_eq!(code, 200);
    let served: serde_json::Value = serde_json::from_str(&json).unwrap();
    let out = std::process::Command::new(fleet_testkit::workers::binary("fleet"))
        .args(["status", "--dir"])
        .arg(&dir)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "fleet status: {out:?}");
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(without_times(served.clone()), without_times(printed));
    let hl7_json = &served["queues"][0];
    assert_eq!(hl7_json["queue"], "hl7-inbound");
    assert_eq!(
        (&hl7_json["visible"], &hl7_json["in_flight"]),
        (&2.into(), &1.into())
    );
    assert_eq!(hl7_json["dlq"]["codes"]["HL7_NOT_ADT"], 2);
    assert_eq!(served["dead_letters"]["last_minute"], 1);

    // No body, no attribute value but the failure's code and worker, no detail.
    for text in [&html, &json] {
        for secret in [BODY_SECRET, "MRN7770001", ATTRIBUTE_SECRET, DETAIL_SECRET] {
            assert!(!text.contains(secret), "{secret} leaked");
        }
    }
    // Read-only: the page changed nothing (the DLQ still holds its messages, the held one is
    // still in flight) and refuses other methods.
    assert_eq!(
        local
            .queue_messages_snapshot("hl7-inbound-dlq")
            .unwrap()
            .len(),
        3
    );
    let (code, _) = request(addr, "POST", "/", None).await;
    assert_eq!(code, 405);
    let (code, live) = get(addr, "/health/live", None).await;
    assert_eq!((code, live.as_str()), (200, "live\n"));
    stop.cancel();
}

#[tokio::test]
async fn with_a_token_every_route_but_liveness_needs_the_bearer() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, local) = stack(&tmp.path().join("fleet"));
    let token = "s3cret-token-with-enough-entropy";
    let (addr, stop) = start(&config, &local, Some(token)).await;
    for path in ["/", "/status.json", "/metrics"] {
        assert_eq!(get(addr, path, None).await.0, 401, "{path} without a token");
        assert_eq!(
            get(addr, path, Some("s3cret-token-with-enough-entropX"))
                .await
                .0,
            401,
            "{path} with a wrong token"
        );
        assert_eq!(
            get(addr, path, Some("s3cret")).await.0,
            401,
            "{path} with a prefix"
        );
        assert_eq!(
            get(addr, path, Some(token)).await.0,
            200,
            "{path} with the token"
        );
    }
    assert_eq!(get(addr, "/health/live", None).await.0, 200);
    stop.cancel();
}

/// The local backend refuses queue names outside `[A-Za-z0-9_-]` (so hostile queue names are
/// covered by the renderer's unit test); codes and workers come from a message attribute any
/// producer can write.
#[tokio::test]
async fn hostile_codes_and_workers_from_the_failure_attribute_are_escaped() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, local) = stack(&tmp.path().join("fleet"));
    send(
        &local,
        "hl7-inbound-dlq",
        1,
        failure(
            "<b>CODE</b>",
            "w'\"><script>alert(1)</script>",
            "hl7-inbound",
        ),
    )
    .await;
    let (addr, stop) = start(&config, &local, None).await;
    let (code, html) = get(addr, "/", None).await;
    assert_eq!(code, 200, "{html}");
    for raw in ["<script>", "<b>CODE"] {
        assert!(!html.contains(raw), "{raw} unescaped in:\n{html}");
    }
    let codes = row(
        &html,
        "data-dlq=\"hl7-inbound-dlq\" data-code=\"&lt;b&gt;CODE&lt;/b&gt;\" data-worker=\"w&#39;&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\"",
    );
    assert_eq!(cell(codes, "count"), "1");
    // The command quotes the code for the shell, and the page escapes that for HTML.
    assert!(
        codes.contains("show hl7-inbound-dlq --code &#39;&lt;b&gt;CODE&lt;/b&gt;&#39;</code>"),
        "{codes}"
    );
    let (_, json) = get(addr, "/status.json", None).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["queues"][0]["dlq"]["codes"]["<b>CODE</b>"], 1, "{json}");
    stop.cancel();
}
