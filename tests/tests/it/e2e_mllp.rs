//! End to end through the MLLP gateway, on the local backend and on moto, with an independent
//! client: python-hl7's `mllp_send` (PyPI `hl7`, pinned by `scripts/hl7-client`, path in
//! `FLEET_MLLP_SEND`) sends the shared corpus' messages and messages made here, the real
//! `mllp-gateway` answers and queues, and the real `hl7-ingest` consumes the same queue.
//!
//! How `mllp_send` is used (read from `hl7/client.py` of the pinned version): without `--loose`
//! it reads an MLLP stream (`<SB>message<EB><CR>` per message), splits it on `<EB>`, strips
//! `<SB>`/`<CR>` from each end, frames each message again, sends it and waits for one `recv` of
//! at most 4096 bytes, which it prints as received (the framed ACK) followed by a newline; it
//! always prints (its `-q` does nothing) and has no timeout. `--loose` (split on `MSH|^~\&|`) is
//! not used: a corpus file starting with a UTF-8 BOM would make it send the BOM as a message of
//! its own, and it cannot send a message without a standard MSH (the broken cases). So the test
//! writes each message, as `fleet_hl7::split_messages` reads the corpus file (CR segment ends,
//! BOM and blank lines gone: what `hl7-ingest inspect` also reads), into an MLLP stream file
//! and gives that file to `mllp_send`. A message whose MSH-15 is `NE` gets no ACK, and
//! `mllp_send` would wait for one forever: those are sent by the fleet's own client, each
//! followed on the same connection by a probe message, whose ACK must be the first to arrive.
//!
//! The expected ACK of every message comes from the gateway's table (mllp-gateway DESIGN.md,
//! "Acknowledgements", HL7 v2.5.1 chapter 2): [`Fate`] and [`ack_code`] below restate it. What
//! hl7-ingest does with each queued message is what `hl7-ingest inspect` (the real binary)
//! says: a record and an event, or the dead-letter queue with the code inspect gives.
//!
//! The corpus reuses a sending facility + control id across unrelated samples (21 files are
//! `GHHSFacility` / `MSG00001`), which hl7-ingest rightly refuses as `HL7_CONTROL_ID_REUSED`
//! (a feed never does that). So queued messages go in rounds in which each (facility, control
//! id) appears once; after a round's records and events are checked, its event records (the
//! idempotency keys) are removed, so the next round's message is a new message to hl7-ingest.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use fleet_core::ports::{BODY_ENCODING_ATTRIBUTE, MessageQueue};
use fleet_core::{Backend, FailureMetadata};
use fleet_local::{LocalBackend, QueueSpec};
use fleet_samples::hl7 as samples;
use fleet_testkit::ProvisionExt as _;
use fleet_testkit::provision::QueueSetup;
use fleet_testkit::workers::{Worker, binary, receive_all, wait_drained};
use fleet_testkit::{aws_backend, moto_env, unique};
use mllp_gateway::client::Client;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// The independent client

/// The `mllp_send` console script. Panics (failing the test) when it is not configured.
fn mllp_send_path() -> PathBuf {
    match fleet_core::env::get(fleet_core::env::MLLP_SEND) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "{} is not set. The MLLP end-to-end tests send with python-hl7's mllp_send: run \
             them with `scripts/test`, or `scripts/hl7-client install` and \
             `export {}=$(scripts/hl7-client path)`.",
            fleet_core::env::MLLP_SEND,
            fleet_core::env::MLLP_SEND
        ),
    }
}

/// Send `messages` in order over one connection with `mllp_send` (an MLLP stream file written
/// in `dir`) and return the ACK frames it printed, one per message.
async fn mllp_send(addr: SocketAddr, messages: &[&[u8]], dir: &Path, gateway: &Worker) -> Vec<Ack> {
    let script = mllp_send_path();
    assert!(
        script.is_file(),
        "{} (from {}) does not exist: run scripts/hl7-client install",
        script.display(),
        fleet_core::env::MLLP_SEND
    );
    let file = dir.join(format!("{}.mllp", unique("stream")));
    let mut stream = Vec::new();
    for m in messages {
        assert!(
            !m.contains(&0x0C) && !m.contains(&0x1C) && !m.starts_with(b"\r"),
            "mllp_send would split or strip this message"
        );
        stream.extend_from_slice(&mllp_gateway::frame::encode(m));
    }
    std::fs::write(&file, stream).unwrap();
    // Output to files, not pipes: nothing reads a pipe while the test waits for the exit.
    let (out_path, err_path) = (file.with_extension("out"), file.with_extension("err"));
    let mut child = Command::new(&script)
        .arg("--port")
        .arg(addr.port().to_string())
        .arg("--file")
        .arg(&file)
        .arg(addr.ip().to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    // mllp_send has no timeout of its own: a missing ACK would hang it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "mllp_send did not finish within 120 s (an ACK never came); gateway log tail:\n{}",
                tail(&gateway.log_text())
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "mllp_send exited {status}: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let stdout = std::fs::read(&out_path).unwrap();
    let mut lines: Vec<&[u8]> = stdout.split(|b| *b == b'\n').collect();
    assert_eq!(lines.pop(), Some(&b""[..]), "output ends with a newline");
    assert_eq!(
        lines.len(),
        messages.len(),
        "one ACK printed per message sent"
    );
    lines.into_iter().map(Ack::read).collect()
}

/// A received ACK as an independent reader sees it (not the gateway's own parser).
#[derive(Debug)]
struct Ack {
    /// `msh[n]` is MSH-n.
    msh: Vec<String>,
    code: String,
    control_id: String,
    /// ERR-3.1 (v2.5 and later) or ERR-1.4.1 (before).
    error_code: Option<String>,
}

impl Ack {
    fn read(frame: &[u8]) -> Ack {
        let body = frame
            .strip_prefix(b"\x0b")
            .and_then(|b| b.strip_suffix(b"\x1c\r"))
            .unwrap_or_else(|| panic!("not one MLLP frame: {:?}", String::from_utf8_lossy(frame)));
        let text = String::from_utf8_lossy(body);
        let segments: Vec<&str> = text.split('\r').filter(|s| !s.is_empty()).collect();
        let msh = msh_fields(segments[0].as_bytes()).expect("an ACK starts with MSH");
        let sep = msh[1].chars().next().unwrap();
        let enc: Vec<char> = msh[2].chars().collect();
        let (comp, sub) = (enc[0], enc[3]);
        let fields = |id: &str| {
            segments
                .iter()
                .find(|s| s.starts_with(id) && s[3..].starts_with(sep))
                .map(|s| s.split(sep).map(str::to_string).collect::<Vec<_>>())
        };
        let msa = fields("MSA").expect("an ACK has an MSA segment");
        let error_code = fields("ERR").map(|err| {
            let err3 = err
                .get(3)
                .map_or("", |f| f.split(comp).next().unwrap_or(""));
            if !err3.is_empty() {
                return err3.to_string();
            }
            let err1 = err.get(1).map_or("", String::as_str);
            err1.split(comp)
                .nth(3)
                .and_then(|ce| ce.split(sub).next())
                .unwrap_or("")
                .to_string()
        });
        Ack {
            code: msa.get(1).cloned().unwrap_or_default(),
            control_id: msa.get(2).cloned().unwrap_or_default(),
            error_code,
            msh,
        }
    }
}

/// The first segment's fields when it is an MSH: `f[n]` is MSH-n (`f[1]` the field separator,
/// `f[2]` the encoding characters). None when the message does not start with MSH.
fn msh_fields(message: &[u8]) -> Option<Vec<String>> {
    let text = String::from_utf8_lossy(message);
    let line = text.split(['\r', '\n']).next()?;
    let sep = line.strip_prefix("MSH")?.chars().next()?;
    let mut f = vec!["MSH".to_string(), sep.to_string()];
    f.extend(line[3 + sep.len_utf8()..].split(sep).map(str::to_string));
    Some(f)
}

fn field(f: &[String], n: usize) -> &str {
    f.get(n).map_or("", String::as_str)
}

// ---------------------------------------------------------------------------------------------
// The ACK table (mllp-gateway DESIGN.md, "Acknowledgements")

/// What the gateway decides about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Queued: AA / CA.
    Queued,
    /// A content error (no usable MSH, bad encoding characters, a required MSH field missing,
    /// an unreadable MSH-18): AE / CE with this table 0357 code.
    ContentError(&'static str),
    /// Refused (no route for the type, unsupported version or processing id): AR / CR.
    Rejected(&'static str),
}

/// MSA-1 for `fate` (HL7 v2.5.1 2.9.2 original mode, 2.9.3 enhanced mode): enhanced when MSH-15
/// or MSH-16 is set, MSH-15 NE sends nothing, ER only errors, SU only success, anything else
/// (AL) always. A message without a readable MSH is answered in original mode.
fn ack_code(fate: Fate, msh: Option<&[String]>) -> Option<&'static str> {
    let (msh15, msh16) = msh.map_or(("", ""), |f| (field(f, 15).trim(), field(f, 16).trim()));
    let queued = fate == Fate::Queued;
    if msh15.is_empty() && msh16.is_empty() {
        return Some(match fate {
            Fate::Queued => "AA",
            Fate::ContentError(_) => "AE",
            Fate::Rejected(_) => "AR",
        });
    }
    let send = match msh15.to_ascii_uppercase().as_str() {
        "NE" => false,
        "ER" => !queued,
        "SU" => queued,
        _ => true,
    };
    send.then_some(match fate {
        Fate::Queued => "CA",
        Fate::ContentError(_) => "CE",
        Fate::Rejected(_) => "CR",
    })
}

// ---------------------------------------------------------------------------------------------
// The messages

/// One message the test sends.
struct Case {
    label: String,
    bytes: Vec<u8>,
    fate: Fate,
    /// Whether the gateway can read its MSH (delimiters, sender, MSH-15) to answer in kind.
    readable_msh: bool,
    /// What `hl7-ingest inspect` says about it (filled in before sending).
    inspect: serde_json::Value,
}

impl Case {
    fn new(label: impl Into<String>, bytes: impl Into<Vec<u8>>, fate: Fate) -> Case {
        Case {
            label: label.into(),
            bytes: bytes.into(),
            fate,
            readable_msh: true,
            inspect: serde_json::Value::Null,
        }
    }

    /// A message with no usable MSH (none, or bad MSH-1/MSH-2): answered in original mode, from
    /// nothing, with AE and this code.
    fn unreadable(label: impl Into<String>, bytes: impl Into<Vec<u8>>, code: &'static str) -> Case {
        Case {
            readable_msh: false,
            ..Case::new(label, bytes, Fate::ContentError(code))
        }
    }

    /// The MSH fields the gateway answers from, when it can read them.
    fn msh(&self) -> Option<Vec<String>> {
        msh_fields(&self.bytes).filter(|_| self.readable_msh)
    }

    fn expected_ack(&self) -> Option<&'static str> {
        ack_code(self.fate, self.msh().as_deref())
    }

    /// Queued and mapped by hl7-ingest: a record and an event.
    fn recorded(&self) -> bool {
        self.fate == Fate::Queued && self.inspect["status"] == "ok"
    }

    /// Queued and refused by hl7-ingest: the DLQ, with this code.
    fn dead_letter_code(&self) -> Option<&str> {
        (self.fate == Fate::Queued && self.inspect["status"] == "error").then(|| {
            self.inspect["code"]
                .as_str()
                .expect("inspect names the code")
        })
    }

    /// The message as hl7-ingest hashes it (`split_messages` normalises segment ends).
    fn content_sha256(&self) -> String {
        let mut parts = fleet_hl7::split_messages(&self.bytes);
        assert_eq!(parts.len(), 1, "{}: one message", self.label);
        hex::encode(Sha256::digest(parts.remove(0).unwrap()))
    }

    fn sending_facility(&self) -> &str {
        self.inspect["sending_facility"].as_str().unwrap_or("")
    }

    fn control_id(&self) -> &str {
        self.inspect["control_id"].as_str().unwrap_or("")
    }
}

/// Every message of every corpus file: ADT ones are queued (every corpus ADT message has a
/// version and processing id the gateway takes, checked here), every other type is refused for
/// want of a route (table 0357 code 200).
fn corpus_cases() -> Vec<Case> {
    let root = fleet_core::env::corpus_dir().join("hl7");
    assert!(
        root.is_dir(),
        "HL7 corpus not found at {}: set {}",
        root.display(),
        fleet_core::env::CORPUS_DIR
    );
    let mut out = Vec::new();
    for file in fleet_testkit::hl7_files(&root) {
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let parts = fleet_hl7::split_messages(&std::fs::read(&file).unwrap());
        for (i, part) in parts.into_iter().enumerate() {
            let bytes = part.unwrap_or_else(|e| panic!("{name}: {e}"));
            let msh = msh_fields(&bytes).unwrap_or_else(|| panic!("{name}#{i}: no MSH"));
            let enc = field(&msh, 2);
            assert_eq!((field(&msh, 1), enc), ("|", "^~\\&"), "{name}#{i}");
            let ty = field(&msh, 9).split('^').next().unwrap_or("");
            let fate = if ty == "ADT" {
                let version = field(&msh, 12).split('^').next().unwrap_or("");
                assert!(
                    ["2.3", "2.4", "2.5", "2.5.1", "2.6", "2.8"].contains(&version)
                        && ["P", "T", "D"].contains(&field(&msh, 11)),
                    "{name}#{i}: a corpus ADT message the gateway would refuse: the table \
                     restated here needs updating"
                );
                Fate::Queued
            } else {
                Fate::Rejected("200")
            };
            out.push(Case::new(format!("{name}#{}", i + 1), bytes, fate));
        }
    }
    assert!(
        out.len() >= 90,
        "corpus looks incomplete: {} messages",
        out.len()
    );
    out
}

/// Messages made here, each around a generated patient (so the PHI scans have something to
/// find): well-formed ADT in enhanced mode (CA), one in ISO 8859-1 (carried base64), ADT
/// messages the gateway queues and hl7-ingest refuses, and broken ones.
fn made_cases(seed: u64) -> Vec<Case> {
    let set = samples::generate(seed, 12, 0);
    let p = |i: usize| &set[i].patient;
    // The non-MSH segments of a generated admission.
    let rest = |i: usize| {
        let body = &set[i].body;
        body[body.find('\r').unwrap()..].to_string()
    };
    let ctl = |what: &str| format!("MK{seed}-{what}");
    let hdr = |msh9: &str, control: &str, tail: &str| {
        format!(
            "MSH|^~\\&|EPICADT|GENHOSP|FLEET|FLEET|20260315090000-0500||{msh9}|{control}|{tail}"
        )
    };
    let mut out: Vec<Case> = set[..4]
        .iter()
        .map(|s| {
            Case::new(
                format!("generated {}", s.control_id),
                s.body.clone(),
                Fate::Queued,
            )
        })
        .collect();

    // ISO 8859-1 (not UTF-8): SQS cannot carry it as text, so the gateway sends it base64.
    let mut latin1 = samples::adt("A04", &ctl("LATIN1"), p(4), 7, 4)
        .replace("|2.5.1|||AL|NE", "|2.5.1|||AL|NE||8859/1")
        .into_bytes();
    let at = latin1.windows(7).position(|w| w == b"Harbour").unwrap();
    latin1.splice(at..at + 7, b"H\xE4rbour".iter().copied());
    out.push(Case::new("ISO 8859-1 admission", latin1, Fate::Queued));

    // Queued (the gateway does not map ADT), refused by hl7-ingest.
    for (kind, what) in [
        (2, "no PID-3"),
        (3, "merge without MRG"),
        (5, "mis-encoded"),
        (7, "trigger A99"),
    ] {
        let (body, _) = samples::malformed(kind, &ctl(&format!("BAD{kind}")), p(5 + kind % 4), 9);
        out.push(Case::new(
            format!("ADT hl7-ingest refuses: {what}"),
            body,
            Fate::Queued,
        ));
    }

    // Broken: answered by the gateway, never queued.
    let (no_msh, _) = samples::malformed(1, &ctl("NOMSH"), p(9), 9);
    out.push(Case::unreadable("no MSH", no_msh, "100"));
    out.push(Case::unreadable("empty message", "", "100"));
    let (two_enc, _) = samples::malformed(6, &ctl("ENC2"), p(10), 9);
    out.push(Case::unreadable(
        "MSH-2 with two characters",
        two_enc,
        "102",
    ));
    // MSH-15 NE cannot be read behind broken delimiters: answered anyway.
    out.push(Case::unreadable(
        "MSH-2 repeats a delimiter, MSH-15 NE",
        format!(
            "MSH|^^\\&|EPICADT|GENHOSP|FLEET|FLEET|20260315090000||ADT^A01|{}|P|2.5.1|||NE|NE{}",
            ctl("ENCDUP"),
            rest(11)
        ),
        "102",
    ));
    out.push(Case::new(
        "MSH-9.1 not a code",
        hdr("A-D^A01", &ctl("BADTYPE"), &format!("P|2.5.1{}", rest(11))),
        Fate::ContentError("102"),
    ));
    out.push(Case::new(
        "MSH-9 missing",
        hdr("", &ctl("NOTYPE"), &format!("P|2.5.1{}", rest(11))),
        Fate::ContentError("101"),
    ));
    out.push(Case::new(
        "MSH-10 missing",
        hdr("ADT^A01", "", &format!("P|2.5.1{}", rest(11))),
        Fate::ContentError("101"),
    ));
    out.push(Case::new(
        "version 3.0",
        hdr("ADT^A01", &ctl("V30"), &format!("P|3.0{}", rest(11))),
        Fate::Rejected("203"),
    ));
    out.push(Case::new(
        "version 3.0, enhanced mode",
        hdr(
            "ADT^A01",
            &ctl("V30AL"),
            &format!("P|3.0|||AL|AL{}", rest(11)),
        ),
        Fate::Rejected("203"),
    ));
    out.push(Case::new(
        "processing id X",
        hdr("ADT^A01", &ctl("PIDX"), &format!("X|2.5.1{}", rest(11))),
        Fate::Rejected("202"),
    ));
    out.push(Case::new(
        "processing id X, version 2.3 (ERR-1)",
        hdr("ADT^A01", &ctl("PIDX23"), &format!("X|2.3{}", rest(11))),
        Fate::Rejected("202"),
    ));
    out.push(Case::new(
        "MSH-18 the fleet cannot read",
        hdr(
            "ADT^A01",
            &ctl("CHARSET"),
            &format!("P|2.5.1||||||KLINGON-8{}", rest(11)),
        ),
        Fate::ContentError("103"),
    ));
    out.push(Case::new(
        "MSH-18 the fleet cannot read, enhanced mode",
        hdr(
            "ADT^A01",
            &ctl("CHARSETAL"),
            &format!("P|2.5.1|||AL|NE||KLINGON-8{}", rest(11)),
        ),
        Fate::ContentError("103"),
    ));
    let (oru, _) = samples::malformed(0, &ctl("ORU"), p(11), 9);
    out.push(Case::new(
        "generated ORU (enhanced mode)",
        oru,
        Fate::Rejected("200"),
    ));
    out
}

/// Fill in each case's `inspect` from the real `hl7-ingest inspect`, one file per case.
fn inspect_all(cases: &mut [Case], dir: &Path) {
    let files: Vec<PathBuf> = (0..cases.len())
        .map(|i| dir.join(format!("case-{i:03}.hl7")))
        .collect();
    for (case, file) in cases.iter().zip(&files) {
        std::fs::write(file, &case.bytes).unwrap();
    }
    let out = Command::new(binary("hl7-ingest"))
        .arg("inspect")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hl7-ingest inspect exited {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut by_file: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        by_file
            .entry(v["file"].as_str().unwrap().to_string())
            .or_default()
            .push(v);
    }
    for (case, file) in cases.iter_mut().zip(&files) {
        let mut lines = by_file
            .remove(&file.display().to_string())
            .unwrap_or_default();
        if case.fate == Fate::Queued {
            assert_eq!(lines.len(), 1, "{}: inspect sees one message", case.label);
            case.inspect = lines.remove(0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The stacks

/// Queues, bus, tap and table on one backend, and what the binaries need to use them.
struct Stack {
    backend: Arc<dyn Backend>,
    /// FLEET_/AWS_ variables selecting the backend.
    env: Vec<(&'static str, String)>,
    /// The queue the gateway routes ADT to and hl7-ingest consumes (name or URL).
    source: String,
    dlq: String,
    tap: String,
    bus: String,
    table: String,
    fifo: bool,
    dir: tempfile::TempDir,
}

async fn local_stack(fifo: bool) -> Stack {
    let dir = tempfile::tempdir().unwrap();
    let (db, objects) = (dir.path().join("fleet.sqlite"), dir.path().join("objects"));
    let local = LocalBackend::open(&db, &objects).expect("open local backend");
    let suffix = if fifo { ".fifo" } else { "" };
    let (source, dlq) = (format!("hl7-in{suffix}"), format!("hl7-in-dlq{suffix}"));
    local
        .create_queue(
            &dlq,
            QueueSpec {
                fifo,
                ..QueueSpec::default()
            },
        )
        .unwrap();
    local
        .create_queue(
            &source,
            QueueSpec {
                fifo,
                redrive: Some((dlq.clone(), 5)),
                ..QueueSpec::default()
            },
        )
        .unwrap();
    local.create_queue("tap", QueueSpec::default()).unwrap();
    local
        .put_rule("fleet", "all", r#"{"source":["fleet.hl7-ingest"]}"#, "tap")
        .unwrap();
    Stack {
        backend: Arc::new(local),
        env: vec![
            ("FLEET_BACKEND", "local".into()),
            ("FLEET_LOCAL_DB", db.display().to_string()),
            ("FLEET_LOCAL_OBJECTS", objects.display().to_string()),
            ("FLEET_ALLOW_UNENCRYPTED", "1".into()),
        ],
        source,
        dlq,
        tap: "tap".into(),
        bus: "fleet".into(),
        table: "hl7".into(),
        fifo,
        dir,
    }
}

async fn moto_stack(fifo: bool) -> Stack {
    let backend = aws_backend().await;
    let p = backend.provisioner();
    let key = p.create_kms_key("mllp e2e").await.unwrap();
    let setup = |redrive| QueueSetup {
        fifo,
        kms_key_id: Some(key.clone()),
        sqs_managed_sse: false,
        redrive,
        ..QueueSetup::default()
    };
    let suffix = if fifo { ".fifo" } else { "" };
    let dlq = p
        .create_queue(&format!("{}{suffix}", unique("mllp-dlq")), setup(None))
        .await
        .unwrap();
    let dlq_arn = p.queue_arn(&dlq).await.unwrap();
    let source = p
        .create_queue(
            &format!("{}{suffix}", unique("mllp-in")),
            setup(Some((dlq_arn, 5))),
        )
        .await
        .unwrap();
    let tap = p
        .create_queue(
            &unique("mllp-tap"),
            QueueSetup {
                fifo: false,
                ..setup(None)
            },
        )
        .await
        .unwrap();
    let bus = unique("bus");
    p.create_bus(&bus).await.unwrap();
    p.put_rule_to_queue(
        &bus,
        &unique("rule"),
        r#"{"source":["fleet.hl7-ingest"]}"#,
        &tap,
    )
    .await
    .unwrap();
    let table = unique("hl7");
    p.create_table(&table).await.unwrap();
    Stack {
        backend: Arc::new(backend),
        env: moto_env(),
        source,
        dlq,
        tap,
        bus,
        table,
        fifo,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Stack {
    /// The gateway on a loopback port the system picks (read back from its `listening` line),
    /// routing ADT to the source queue.
    async fn gateway(&self, log: &str) -> (Worker, SocketAddr) {
        let mut env = self.env.clone();
        env.extend([
            ("FLEET_DRAIN_DEADLINE_SECS", "5".into()),
            // Every level: the PHI scan must cover debug and trace output too.
            ("FLEET_LOG", "trace".into()),
        ]);
        let route = format!("ADT^*={}", self.source);
        let mut worker = Worker::start(
            "mllp-gateway",
            &["--listen", "127.0.0.1:0", "--route", &route],
            &env,
            self.dir.path().join(log),
        );
        let addr = worker.gateway_addr().await;
        (worker, addr)
    }

    fn ingest(&self, log: &str) -> Worker {
        let mut env = self.env.clone();
        env.extend([
            ("FLEET_HL7_QUEUE", self.source.clone()),
            ("FLEET_EVENT_BUS", self.bus.clone()),
            ("FLEET_HL7_TABLE", self.table.clone()),
            ("FLEET_WAIT_TIME_SECS", "1".into()),
            ("FLEET_DRAIN_DEADLINE_SECS", "5".into()),
            ("FLEET_LOG", "trace".into()),
        ]);
        Worker::start("hl7-ingest", &[], &env, self.dir.path().join(log))
    }

    async fn queue(&self, name: &str) -> Arc<dyn MessageQueue> {
        self.backend.queue(name).await.unwrap()
    }
}

/// Receive (and delete) events from the tap until `n` have arrived; their `detail`s.
async fn take_events(tap: &dyn MessageQueue, n: usize, ingest: &Worker) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} events within 120 s; hl7-ingest log tail:\n{}",
            out.len(),
            tail(&ingest.log_text())
        );
        let got = tap
            .receive(10, Duration::from_secs(1), Some(Duration::from_secs(300)))
            .await
            .unwrap();
        if got.is_empty() {
            continue;
        }
        let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
        assert!(tap.delete_batch(&receipts).await.unwrap().all_ok());
        for m in got {
            let e: serde_json::Value = serde_json::from_str(&m.body).expect("event JSON");
            assert_eq!(e["source"], "fleet.hl7-ingest");
            out.push(e["detail"].clone());
        }
    }
    out
}

/// A numeric field of the last `run finished` line of a log.
fn finished_field(log: &str, name: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("run finished"))
        .unwrap_or_else(|| panic!("no `run finished` line; log tail:\n{}", tail(log)));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v.get(name)
        .or_else(|| v["fields"].get(name))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// The corpus run

/// Send one message whose MSH-15 is NE (no ACK is due, whatever its fate) followed, on the same
/// connection, by a probe the gateway refuses in original mode: the first ACK to arrive must be
/// the probe's, so none was sent for the NE message.
async fn send_unanswered(addr: SocketAddr, case: &Case, probe_id: &str) {
    use tokio::io::AsyncWriteExt as _;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&mllp_gateway::frame::encode(&case.bytes))
        .await
        .unwrap();
    let mut client = Client::over(Box::new(tcp));
    let probe = format!(
        "MSH|^~\\&|PROBE|PROBEFAC|FLEET|FLEET|20260315090000||ORU^R01|{probe_id}|P|2.5.1\rOBX|1"
    );
    let reply = client
        .exchange(probe.as_bytes(), Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{}: {e:#}", case.label));
    let ack = Ack::read(&mllp_gateway::frame::encode(&reply));
    assert_eq!(
        (
            ack.code.as_str(),
            ack.control_id.as_str(),
            ack.error_code.as_deref()
        ),
        ("AR", probe_id, Some("200")),
        "{}: an ACK came for a message whose MSH-15 is NE",
        case.label
    );
    client.close().await;
}

fn check_ack(case: &Case, ack: &Ack, want: &str) {
    let label = &case.label;
    assert_eq!(ack.code, want, "{label}: MSA-1");
    assert!(
        field(&ack.msh, 9).starts_with("ACK"),
        "{label}: MSH-9 {:?}",
        ack.msh
    );
    let want_err = match case.fate {
        Fate::Queued => None,
        Fate::ContentError(c) | Fate::Rejected(c) => Some(c),
    };
    assert_eq!(ack.error_code.as_deref(), want_err, "{label}: ERR code");
    // Answered from the inbound MSH when it is usable: sender and receiver swapped, MSA-2 =
    // MSH-10, MSH-12 echoed; otherwise from nothing (empty MSA-2 and MSH-3 to MSH-6).
    match case.msh() {
        Some(m) => {
            assert_eq!(ack.control_id, field(&m, 10), "{label}: MSA-2");
            let swapped: Vec<&str> = [5, 6, 3, 4].iter().map(|&n| field(&m, n)).collect();
            let got: Vec<&str> = (3..=6).map(|n| field(&ack.msh, n)).collect();
            assert_eq!(got, swapped, "{label}: MSH-3..6 of the ACK");
            assert_eq!(field(&ack.msh, 12), field(&m, 12), "{label}: MSH-12");
            assert_eq!(field(&ack.msh, 18), field(&m, 18), "{label}: MSH-18");
        }
        None => {
            assert_eq!(ack.control_id, "", "{label}: MSA-2");
            let got: Vec<&str> = (3..=6).map(|n| field(&ack.msh, n)).collect();
            assert_eq!(got, ["", "", "", ""], "{label}: MSH-3..6 of the ACK");
        }
    }
}

async fn corpus_run(stack: Stack, seed: u64) {
    let mut cases = corpus_cases();
    cases.extend(made_cases(seed));
    inspect_all(&mut cases, stack.dir.path());

    // Rounds: each (sending facility, control id) hl7-ingest records at most once per round.
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let round_of: Vec<usize> = cases
        .iter()
        .map(|c| {
            if !c.recorded() {
                return 0;
            }
            let key = (c.sending_facility().to_string(), c.control_id().to_string());
            let n = seen.entry(key).or_default();
            *n += 1;
            *n - 1
        })
        .collect();
    let rounds = round_of.iter().max().copied().unwrap_or(0) + 1;

    let (gateway, addr) = stack.gateway("gateway.log").await;
    let ingest = stack.ingest("ingest.log");
    let tap = stack.queue(&stack.tap).await;
    let records = stack.backend.records(&stack.table);
    let mut probes = 0;
    let mut recorded_files = BTreeSet::new();
    for round in 0..rounds {
        let in_round: Vec<&Case> = cases
            .iter()
            .zip(&round_of)
            .filter(|(_, r)| **r == round)
            .map(|(c, _)| c)
            .collect();
        let (answered, unanswered): (Vec<&Case>, Vec<&Case>) =
            in_round.iter().partition(|c| c.expected_ack().is_some());
        let bytes: Vec<&[u8]> = answered.iter().map(|c| c.bytes.as_slice()).collect();
        let acks = mllp_send(addr, &bytes, stack.dir.path(), &gateway).await;
        for (case, ack) in answered.iter().zip(&acks) {
            check_ack(case, ack, case.expected_ack().unwrap());
        }
        for case in &unanswered {
            probes += 1;
            send_unanswered(addr, case, &format!("PROBE{probes}")).await;
        }

        // Every message hl7-ingest maps: its event record (this message's bytes) and its event.
        let mapped: Vec<&Case> = in_round.iter().copied().filter(|c| c.recorded()).collect();
        let events = take_events(tap.as_ref(), mapped.len(), &ingest).await;
        assert_eq!(events.len(), mapped.len(), "round {round}: events");
        let by_id: HashMap<&str, &serde_json::Value> = events
            .iter()
            .map(|e| (e["event_id"].as_str().unwrap(), e))
            .collect();
        assert_eq!(
            by_id.len(),
            events.len(),
            "round {round}: an event id repeats"
        );
        for case in &mapped {
            let (pk, sk) =
                hl7_ingest::handler::event_record_key(case.sending_facility(), case.control_id());
            let record = records
                .get(&pk, sk)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{}: no event record", case.label));
            assert_eq!(
                record.data["content_sha256"].as_str(),
                Some(case.content_sha256().as_str()),
                "{}: the event record is of another message",
                case.label
            );
            let event_id = record.data["event_id"].as_str().unwrap();
            let event = by_id
                .get(event_id)
                .unwrap_or_else(|| panic!("{}: no event {event_id}", case.label));
            assert_eq!(
                event["payload"]["control_id"], case.inspect["control_id"],
                "{}",
                case.label
            );
            assert_eq!(
                event["event_type"], case.inspect["event_type"],
                "{}",
                case.label
            );
            recorded_files.insert(case.label.clone());
        }
        if round + 1 < rounds {
            for case in &mapped {
                let (pk, sk) = hl7_ingest::handler::event_record_key(
                    case.sending_facility(),
                    case.control_id(),
                );
                records.delete(&pk, sk).await.unwrap();
            }
        }
    }

    // The messages hl7-ingest refuses: each in its DLQ once, with the code inspect gave.
    let source = stack.queue(&stack.source).await;
    wait_drained(source.as_ref(), Duration::from_secs(120)).await;
    let dlq = stack.queue(&stack.dlq).await;
    let dead = receive_all(dlq.as_ref(), false).await;
    let mut expected_dead: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for case in &cases {
        if let Some(code) = case.dead_letter_code() {
            expected_dead.insert(case.content_sha256(), (case.label.as_str(), code));
        }
    }
    let mut got_dead = BTreeMap::new();
    for m in &dead {
        let meta = FailureMetadata::from_attributes(&m.attributes).expect("failure attribute");
        let body = match m.attributes.get(BODY_ENCODING_ATTRIBUTE) {
            None => m.body.clone().into_bytes(),
            Some(_) => BASE64_STANDARD.decode(&m.body).expect("a base64 body"),
        };
        let mut parts = fleet_hl7::split_messages(&body);
        let hash = hex::encode(Sha256::digest(parts.remove(0).unwrap()));
        got_dead.insert(hash, meta.code.as_str().to_string());
    }
    let want: BTreeMap<&String, &str> = expected_dead.iter().map(|(h, (_, c))| (h, *c)).collect();
    let got: BTreeMap<&String, &str> = got_dead.iter().map(|(h, c)| (h, c.as_str())).collect();
    assert_eq!(got, want, "dead letters (by message hash) and their codes");

    // Nothing else happened: no further event, and the gateway counted what the table says.
    let extra = receive_all(tap.as_ref(), true).await;
    assert!(extra.is_empty(), "{} events nobody expected", extra.len());
    let mut gateway = gateway;
    let mut ingest = ingest;
    let (_, status) = gateway.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "gateway exit {status}; log tail:\n{}",
        tail(&gateway.log_text())
    );
    let (_, status) = ingest.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "hl7-ingest exit {status}; log tail:\n{}",
        tail(&ingest.log_text())
    );
    let log = gateway.log_text();
    let count = |f: fn(Fate) -> bool| cases.iter().filter(|c| f(c.fate)).count() as u64;
    assert_eq!(
        finished_field(&log, "messages"),
        cases.len() as u64 + probes,
        "messages counted by the gateway"
    );
    assert_eq!(finished_field(&log, "queued"), count(|f| f == Fate::Queued));
    assert_eq!(
        finished_field(&log, "content_errors"),
        count(|f| matches!(f, Fate::ContentError(_)))
    );
    assert_eq!(
        finished_field(&log, "rejected"),
        count(|f| matches!(f, Fate::Rejected(_))) + probes
    );

    let dead_labels: Vec<&str> = expected_dead.values().map(|(label, _)| *label).collect();
    eprintln!(
        "{} backend: {} messages in {rounds} rounds; {} recorded by hl7-ingest; dead-lettered \
         by hl7-ingest: {:?}; sent without an ACK (MSH-15 NE): {:?}",
        stack.backend.kind(),
        cases.len(),
        recorded_files.len(),
        dead_labels,
        cases
            .iter()
            .filter(|c| c.expected_ack().is_none())
            .map(|c| c.label.as_str())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn local_mllp_send_gets_each_ack_the_table_gives_and_every_queued_adt_reaches_hl7_ingest() {
    mllp_send_path();
    corpus_run(local_stack(false).await, 1701).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_mllp_send_gets_each_ack_the_table_gives_and_every_queued_adt_reaches_hl7_ingest() {
    mllp_send_path();
    corpus_run(moto_stack(false).await, 1702).await;
}

// ---------------------------------------------------------------------------------------------
// Duplicates: a resend after a lost ACK

/// What hl7-ingest left after a message was delivered once or twice.
#[derive(Debug, PartialEq)]
struct IngestResult {
    /// Distinct event ids published.
    event_ids: BTreeSet<String>,
    /// The event record (without the envelope's correlation id, the SQS message id of the
    /// delivery that wrote it), the patient record and the encounter record: (order, data).
    records: Vec<(String, i64, serde_json::Value)>,
}

/// Send the same admission twice with `mllp_send` (the second time on a new connection, as a
/// sender that lost the first ACK does): AA both times. Then let hl7-ingest consume the queue.
/// Returns what hl7-ingest left and how many events it published.
async fn resend_run(stack: Stack, patient: &samples::SamplePatient) -> (IngestResult, usize) {
    let control = "RESEND-0001";
    // Original mode (no MSH-15/16): the AA of the table.
    let message = samples::adt("A01", control, patient, 3, 77).replace("|2.5.1|||AL|NE", "|2.5.1");
    let (gateway, addr) = stack.gateway("gateway.log").await;
    for attempt in 1..=2 {
        let acks = mllp_send(addr, &[message.as_bytes()], stack.dir.path(), &gateway).await;
        assert_eq!(
            (acks[0].code.as_str(), acks[0].control_id.as_str()),
            ("AA", control),
            "attempt {attempt}"
        );
    }
    // The standard queue holds both copies; on a FIFO queue the deduplication id (facility,
    // control id, content) absorbed the second.
    let source = stack.queue(&stack.source).await;
    let attrs = source.attributes().await.unwrap();
    assert_eq!(attrs.fifo, stack.fifo);
    let copies = if stack.fifo { 1 } else { 2 };
    assert_eq!(
        attrs.approximate_visible, copies,
        "copies on the queue (fifo: {})",
        stack.fifo
    );

    let mut ingest = stack.ingest("ingest.log");
    let tap = stack.queue(&stack.tap).await;
    // hl7-ingest publishes once per delivery: the first writes the records, a redelivery finds
    // its event record and publishes the stored event again, with the same event id.
    let events = take_events(tap.as_ref(), copies as usize, &ingest).await;
    wait_drained(source.as_ref(), Duration::from_secs(60)).await;
    let extra = receive_all(tap.as_ref(), true).await;
    assert!(
        extra.is_empty(),
        "{} more events than deliveries",
        extra.len()
    );
    assert!(
        events.windows(2).all(|w| w[0] == w[1]),
        "a republished event differs from the first: {events:?}"
    );
    let dlq = stack.queue(&stack.dlq).await;
    assert!(
        receive_all(dlq.as_ref(), false).await.is_empty(),
        "dead letters"
    );

    let records = stack.backend.records(&stack.table);
    let (event_pk, event_sk) = hl7_ingest::handler::event_record_key("GENHOSP", control);
    let patient_pk = fleet_hl7::key::record_key("PATIENT", &["GENHOSP", &patient.mrn]);
    let encounter_pk = fleet_hl7::key::record_key("ENCOUNTER", &["GENHOSP", "V00000077"]);
    let mut kept = Vec::new();
    for (pk, sk) in [
        (event_pk.as_str(), event_sk),
        (&patient_pk, "PATIENT"),
        (&encounter_pk, "ENCOUNTER"),
    ] {
        let all = records.query(pk).await.unwrap();
        assert_eq!(all.len(), 1, "{sk}: one record under its key");
        let mut r = all.into_iter().next().unwrap();
        assert_eq!(r.sk, sk);
        if let Some(envelope) = r.data.get_mut("envelope").and_then(|e| e.as_object_mut()) {
            envelope.remove("correlation_id");
        }
        kept.push((format!("{pk}/{sk}"), r.order, r.data));
    }
    let stored_id = kept[0].2["event_id"].as_str().unwrap().to_string();
    let event_ids: BTreeSet<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        event_ids,
        BTreeSet::from([stored_id]),
        "every event carries the event record's id"
    );

    let mut gateway = gateway;
    let (_, status) = ingest.terminate(Duration::from_secs(30));
    assert!(status.success(), "hl7-ingest exit {status}");
    let (_, status) = gateway.terminate(Duration::from_secs(30));
    assert!(status.success(), "gateway exit {status}");
    assert_eq!(finished_field(&gateway.log_text(), "queued"), 2);
    (
        IngestResult {
            event_ids,
            records: kept,
        },
        events.len(),
    )
}

async fn resend_on_both_queue_kinds(standard: Stack, fifo: Stack) {
    let patient = samples::generate(1703, 1, 0).remove(0).patient;
    let (on_standard, standard_events) = resend_run(standard, &patient).await;
    let (on_fifo, fifo_events) = resend_run(fifo, &patient).await;
    assert_eq!((standard_events, fifo_events), (2, 1), "events published");
    assert_eq!(
        on_standard, on_fifo,
        "hl7-ingest's result differs between the standard queue (its idempotency absorbed the \
         resend) and the FIFO queue (the deduplication id did)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn local_a_resend_after_a_lost_ack_is_acked_again_and_hl7_ingest_records_it_once_on_standard_and_fifo_queues()
 {
    mllp_send_path();
    resend_on_both_queue_kinds(local_stack(false).await, local_stack(true).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aws_a_resend_after_a_lost_ack_is_acked_again_and_hl7_ingest_records_it_once_on_standard_and_fifo_queues()
 {
    mllp_send_path();
    resend_on_both_queue_kinds(moto_stack(false).await, moto_stack(true).await).await;
}
