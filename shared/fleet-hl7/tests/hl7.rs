//! Integration tests for fleet-hl7: table-driven mapping checks, property tests (no input
//! panics), and the third-party corpus checked against a naive independent oracle.

use fleet_core::ErrorCode;
use fleet_hl7::{AdtMessage, Hl7Error, MapConfig, inspect, parse_adt, split_messages};
use proptest::prelude::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Building messages

/// One segment with the given fields set (1-based numbering; MSH is written by `msh`).
fn seg(id: &str, fields: &[(usize, &str)]) -> String {
    let max = fields.iter().map(|f| f.0).max().unwrap_or(0);
    let mut v = vec![""; max];
    for (n, val) in fields {
        v[n - 1] = val;
    }
    format!("{id}|{}", v.join("|"))
}

fn msh(enc: &str, msh9: &str, msh7: &str, msh10: &str, msh18: &str) -> String {
    format!(
        "MSH|{enc}|EPIC^1.2.3^ISO|GOODHOSP|RECVAPP|RECVFAC|{msh7}||{msh9}|{msh10}|P|2.5.1||||||{msh18}"
    )
}

fn base_segments() -> Vec<String> {
    vec![
        msh("^~\\&", "ADT^A01^ADT_A01", "20240315143000", "CTRL-001", ""),
        seg(
            "EVN",
            &[
                (1, "A01"),
                (2, "20240315142900"),
                (6, "20240315142500-0500"),
            ],
        ),
        seg(
            "PID",
            &[
                (1, "1"),
                (3, "MRN123^^^GOODHOSP&1.2.3&ISO^MR~SSN999^^^SSA^SS"),
                (5, "SMITH\\S\\JONES^ANNA^K"),
                (7, "19800229"),
                (8, "F"),
                (11, "12 MAIN ST^APT 4^SPRINGFIELD^IL^62701^USA"),
                (30, "N"),
            ],
        ),
        seg("NK1", &[(1, "1"), (2, "SMITH^BOB")]),
        seg(
            "PV1",
            &[
                (1, "1"),
                (2, "I"),
                (3, "4W^401^A^GOODHOSP^^^MAIN^4"),
                (7, "1234^HOUSE^GREGORY~5678^WILSON^JAMES"),
                (19, "V0001^^^GOODHOSP^VN"),
                (44, "20240315140000"),
            ],
        ),
        seg("AL1", &[(1, "1"), (3, "PENICILLIN")]),
    ]
}

fn join(segs: &[String]) -> String {
    segs.join("\r")
}

fn base() -> String {
    join(&base_segments())
}

/// The base message with segment `i` replaced (or removed when `with` is None).
fn edit(i: usize, with: Option<String>) -> String {
    let mut s = base_segments();
    match with {
        Some(w) => s[i] = w,
        None => {
            s.remove(i);
        }
    }
    join(&s)
}

// ---------------------------------------------------------------------------------------------
// The check helper

/// `expected` is either `{"error": CODE, "detail": ...}` or a JSON subset of `full()`.
fn check(input: impl AsRef<[u8]>, expected: Value) {
    check_cfg(input, &MapConfig::default(), expected)
}

fn check_cfg(input: impl AsRef<[u8]>, cfg: &MapConfig, expected: Value) {
    let got = match parse_adt(input.as_ref(), cfg) {
        Ok(m) => m.full(),
        Err(Hl7Error { code, detail }) => json!({"error": code.as_str(), "detail": detail}),
    };
    assert_subset(&expected, &got, "$");
}

fn assert_subset(expected: &Value, got: &Value, path: &str) {
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (k, v) in e {
                let gv = g.get(k).unwrap_or(&Value::Null);
                assert_subset(v, gv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(g)) => {
            assert_eq!(e.len(), g.len(), "{path}: array length; got {got}");
            for (i, (ev, gv)) in e.iter().zip(g).enumerate() {
                assert_subset(ev, gv, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, got, "at {path}"),
    }
}

fn error(code: &str, detail: &str) -> Value {
    json!({"error": code, "detail": detail})
}

// ---------------------------------------------------------------------------------------------
// Mapping table

#[test]
fn maps_a_full_admit() {
    check(
        base(),
        json!({
            "message_type": "ADT^A01",
            "trigger": "A01",
            "evn_trigger": "A01",
            "structure": "ADT_A01",
            "event_type": "PatientAdmitted",
            "control_id": "CTRL-001",
            "sending_application": "EPIC",
            "sending_facility": "GOODHOSP",
            "receiving_application": "RECVAPP",
            "receiving_facility": "RECVFAC",
            "version": "2.5.1",
            "processing_id": "P",
            "message_time": "2024-03-15T14:30:00+00:00",
            "message_time_ms": 1_710_513_000_000i64,
            "event_time": "2024-03-15T14:25:00-05:00",
            "patient": {
                "identifiers": [
                    {"id": "MRN123", "authority": "GOODHOSP", "id_type": "MR"},
                    {"id": "SSN999", "authority": "SSA", "id_type": "SS"}
                ],
                "name": {"family": "SMITH^JONES", "given": "ANNA", "middle": "K"},
                "birth_date": "1980-02-29",
                "sex": "F",
                "address": {"street": "12 MAIN ST", "other": "APT 4", "city": "SPRINGFIELD",
                            "state": "IL", "postal_code": "62701", "country": "USA"},
                "death_indicator": false
            },
            "visit": {
                "class": "I",
                "location": {"point_of_care": "4W", "room": "401", "bed": "A",
                             "facility": "GOODHOSP", "building": "MAIN", "floor": "4",
                             "display": "4W/401/A"},
                "visit_number": "V0001",
                "admit_time": "2024-03-15T14:00:00+00:00",
                "discharge_time": null,
                "attending": {"id": "1234", "family": "HOUSE", "given": "GREGORY"}
            },
            "merge": null
        }),
    );
}

#[test]
fn framing_line_endings_and_delimiters() {
    let ok = json!({"control_id": "CTRL-001", "trigger": "A01", "sending_application": "EPIC"});
    check(base().replace('\r', "\n"), ok.clone());
    check(base().replace('\r', "\r\n"), ok.clone());
    check(base().replace('\r', "\n\n"), ok.clone());
    check(format!("\x0b{}\r\x1c\r", base()), ok.clone());
    check(format!("\u{feff}{}\n", base()), ok.clone());
    // v2.7 truncation character in MSH-2.
    check(base().replacen("^~\\&", "^~\\&#", 1), ok.clone());
    // Other delimiters entirely.
    let alt = base().replace('|', "!").replace('^', "$");
    check(
        alt,
        json!({"control_id": "CTRL-001", "patient": {"identifiers": [{"id": "MRN123"}, {"id": "SSN999"}]}}),
    );
    // A batch holding one message is that message; two are refused.
    check(format!("BHS|^~\\&\r{}\rBTS|1", base()), ok);
    check(
        format!("BHS|^~\\&\r{}\r{}\rBTS|2", base(), base()),
        error(
            "HL7_BAD_BATCH",
            "batch holds 2 messages or errors; split it first",
        ),
    );
    check(
        format!("{}\r{}", base(), base()),
        error(
            "HL7_BAD_BATCH",
            "segment 7 starts a second message; split the input first",
        ),
    );
}

#[test]
fn triggers() {
    // MSH-9.2 missing: EVN-1 decides.
    check(
        edit(0, Some(msh("^~\\&", "ADT", "20240315143000", "C1", "")))
            .replace("EVN|A01", "EVN|A03"),
        json!({"trigger": "A03", "message_type": "ADT^A03", "event_type": "PatientDischarged"}),
    );
    // They disagree: MSH-9.2 wins, EVN-1 recorded.
    check(
        base().replace("EVN|A01", "EVN|A08"),
        json!({"trigger": "A01", "evn_trigger": "A08", "event_type": "PatientAdmitted"}),
    );
    for (t, kind) in [
        ("A02", "PatientTransferred"),
        ("A04", "PatientRegistered"),
        ("A05", "PatientRegistered"),
        ("A06", "PatientClassChanged"),
        ("A08", "PatientUpdated"),
        ("A11", "PatientAdmissionCancelled"),
        ("A12", "PatientTransferCancelled"),
        ("A13", "PatientDischargeCancelled"),
        ("A27", "PatientPreAdmissionCancelled"),
        ("A28", "PatientRegistered"),
        ("A31", "PatientUpdated"),
        ("A60", "PatientAllergiesUpdated"),
    ] {
        check(
            base().replacen("ADT^A01^ADT_A01", &format!("ADT^{t}"), 1),
            json!({"trigger": t, "event_type": kind, "evn_trigger": "A01"}),
        );
    }
    check(
        base().replacen("ADT^A01", "ADT^A99", 1),
        error(
            "HL7_UNSUPPORTED_TRIGGER",
            "trigger A99 is not an ADT trigger A01-A62",
        ),
    );
    check(
        base().replacen("ADT^A01", "ADT^Z01", 1),
        error(
            "HL7_UNSUPPORTED_TRIGGER",
            "trigger Z01 is not an ADT trigger A01-A62",
        ),
    );
    check(
        edit(0, Some(msh("^~\\&", "ADT", "20240315143000", "C1", ""))).replace("EVN|A01", "EVN|"),
        error("HL7_MISSING_FIELD", "MSH-9.2 and EVN-1 are both empty"),
    );
    for (t, shown) in [
        ("ORU^R01", "ORU^R01"),
        ("ACK^A01", "ACK^A01"),
        ("SIU^S12", "SIU^S12"),
        ("MDM^T02", "MDM^T02"),
        ("VXU^V04", "VXU^V04"),
    ] {
        check(
            base().replacen("ADT^A01^ADT_A01", t, 1),
            error("HL7_NOT_ADT", &format!("MSH-9 is {shown}")),
        );
    }
    check(
        base().replacen("ADT^A01^ADT_A01", "", 1),
        error("HL7_MISSING_FIELD", "MSH-9 is empty"),
    );
}

#[test]
fn merges() {
    let a40 = base().replacen("ADT^A01^ADT_A01", "ADT^A40^ADT_A39", 1);
    check(
        &a40,
        error("HL7_MISSING_MRG", "A40 requires an MRG segment"),
    );
    check(
        format!(
            "{a40}\r{}",
            seg("MRG", &[(1, "OLD1^^^GOODHOSP^MR~OLD2^^^X"), (5, "V-OLD")])
        ),
        json!({
            "event_type": "PatientMerged",
            "merge": {
                "prior_identifiers": [
                    {"id": "OLD1", "authority": "GOODHOSP", "id_type": "MR"},
                    {"id": "OLD2", "authority": "X", "id_type": null}
                ],
                "prior_account_number": null,
                "prior_visit_number": "V-OLD"
            }
        }),
    );
    check(
        format!("{a40}\rMRG|||"),
        error("HL7_MISSING_MRG", "MRG-1, MRG-3 and MRG-5 are all empty"),
    );
    // A move (A45) and an identifier change (A47) are merge-class too.
    for t in ["A45", "A47"] {
        let m = base().replacen("ADT^A01^ADT_A01", &format!("ADT^{t}"), 1);
        check(
            &m,
            error("HL7_MISSING_MRG", &format!("{t} requires an MRG segment")),
        );
    }
}

#[test]
fn required_and_invalid_fields() {
    check(
        edit(0, Some(msh("^~\\&", "ADT^A01", "20240315143000", "", ""))),
        error("HL7_MISSING_FIELD", "MSH-10 is empty"),
    );
    check(
        edit(0, Some(msh("^~\\&", "ADT^A01", "", "C", ""))),
        error("HL7_MISSING_FIELD", "MSH-7 is empty"),
    );
    check(
        edit(0, Some(msh("^~\\&", "ADT^A01", "20241345", "C", ""))),
        error("HL7_INVALID_FIELD", "MSH-7 is not a valid timestamp"),
    );
    check(
        edit(2, None),
        error("HL7_MISSING_FIELD", "PID segment is missing"),
    );
    check(
        edit(
            2,
            Some(seg("PID", &[(1, "1"), (3, "^^^HOSP^MR"), (5, "X^Y")])),
        ),
        error("HL7_MISSING_FIELD", "PID-3 has no identifier"),
    );
    check(
        edit(2, Some(seg("PID", &[(3, "M1"), (7, "19800230")]))),
        error("HL7_INVALID_FIELD", "PID-7 is not a valid date"),
    );
    check(
        edit(4, Some(seg("PV1", &[(2, "O"), (45, "2024x")]))),
        error("HL7_INVALID_FIELD", "PV1-45 is not a valid timestamp"),
    );
    // Explicit HL7 null and missing optional parts.
    check(
        edit(2, Some(seg("PID", &[(3, "M1"), (7, "\"\""), (8, "\"\"")]))),
        json!({"patient": {"identifiers": [{"id": "M1", "authority": null, "id_type": null}],
               "name": null, "birth_date": null, "sex": null, "address": null, "death_indicator": null}}),
    );
    check(edit(4, None), json!({"visit": null}));
    check(
        edit(0, Some(msh("^~\\&", "ADT^A01", "20240315143000", "C", "")))
            .replace("|GOODHOSP|RECVAPP", "||RECVAPP"),
        json!({"sending_facility": "", "control_id": "C"}),
    );
}

#[test]
fn guard_refusals() {
    check(
        "",
        error(
            "HL7_EMPTY",
            "no content after removing framing and whitespace",
        ),
    );
    check(
        "PID|1||X",
        error("HL7_NO_MSH", "input does not start with an MSH segment"),
    );
    check(
        base().replacen("^~\\&", "^~", 1),
        error(
            "HL7_BAD_ENCODING_CHARS",
            "MSH-2 has 2 characters, expected 4 or 5",
        ),
    );
    check(
        base().replace("\rNK1|", "\rNK1X|"),
        error(
            "HL7_BAD_SEGMENT",
            "segment 4 has an id longer than three characters",
        ),
    );
    check(
        base().replace("\rNK1|1|SMITH^BOB", "\rZZZ"),
        error("HL7_BAD_SEGMENT", "segment 4 has no field separator"),
    );
    let cfg = MapConfig {
        max_message_bytes: 64,
        ..MapConfig::default()
    };
    let len = base().len();
    check_cfg(
        base(),
        &cfg,
        error(
            "BODY_TOO_LARGE",
            &format!("message is {len} bytes, limit 64"),
        ),
    );
}

#[test]
fn charsets_and_escapes() {
    let mut latin = edit(
        0,
        Some(msh("^~\\&", "ADT^A01", "20240315143000", "C", "8859/1")),
    )
    .into_bytes();
    let pos = latin.windows(5).position(|w| w == b"SMITH").unwrap();
    latin.splice(pos..pos + 5, b"M\xDCLLER".iter().copied());
    check(
        &latin,
        json!({"patient": {"name": {"family": "MÜLLER^JONES"}}}),
    );
    check(
        edit(
            0,
            Some(msh("^~\\&", "ADT^A01", "20240315143000", "C", "ISO IR87")),
        ),
        error(
            "HL7_BAD_CHARSET",
            "MSH-18 character set ISO IR87 is not supported",
        ),
    );
    check(
        base().replace("ANNA", "J\\XC3A9\\\\R\\MIE"),
        json!({"patient": {"name": {"given": "Jé~MIE"}}}),
    );
    // Non-ASCII text before an escape (panics inside hl7-parser 0.3.0's decoder).
    check(
        base().replace("ANNA", "ÄÖÜ\\T\\X"),
        json!({"patient": {"name": {"given": "ÄÖÜ&X"}}}),
    );
}

#[test]
fn timezone_applies_only_without_offset() {
    let cfg = MapConfig {
        timezone: "America/Chicago".parse().unwrap(),
        ..MapConfig::default()
    };
    check_cfg(
        base(),
        &cfg,
        json!({"message_time": "2024-03-15T14:30:00-05:00", "event_time": "2024-03-15T14:25:00-05:00"}),
    );
    check_cfg(
        edit(
            0,
            Some(msh("^~\\&", "ADT^A01", "20240115143000+0100", "C", "")),
        ),
        &cfg,
        json!({"message_time": "2024-01-15T14:30:00+01:00", "message_time_ms": 1_705_325_400_000i64}),
    );
}

/// Issue 15, item 9: a facility in `facility_timezones` has its times without an offset read
/// in its own zone; other facilities use `timezone`; a sent offset still wins.
#[test]
fn item9_facility_zone_applies_to_its_own_facility_only() {
    let cfg = MapConfig {
        timezone: "America/Chicago".parse().unwrap(),
        facility_timezones: [("GOODHOSP".to_string(), "Europe/Oslo".parse().unwrap())].into(),
        ..MapConfig::default()
    };
    check_cfg(
        base(),
        &cfg,
        json!({"sending_facility": "GOODHOSP", "message_time": "2024-03-15T14:30:00+01:00",
               "event_time": "2024-03-15T14:25:00-05:00",
               "visit": {"admit_time": "2024-03-15T14:00:00+01:00"}}),
    );
    check_cfg(
        base().replacen("|GOODHOSP|", "|OTHERHOSP|", 1),
        &cfg,
        json!({"sending_facility": "OTHERHOSP", "message_time": "2024-03-15T14:30:00-05:00"}),
    );
}

#[test]
fn phi_stays_out_of_debug_and_minimal() {
    let m: AdtMessage = parse_adt(base().as_bytes(), &MapConfig::default()).unwrap();
    let debug = format!("{m:?}");
    for secret in [
        "MRN123",
        "SMITH",
        "ANNA",
        "1980",
        "SPRINGFIELD",
        "HOUSE",
        "V0001",
    ] {
        assert!(!debug.contains(secret), "Debug shows {secret}");
    }
    let minimal = m.phi_minimal().to_string();
    for secret in [
        "SMITH",
        "ANNA",
        "1980",
        "SPRINGFIELD",
        "HOUSE",
        "birth_date",
        "address",
        "SSN999",
    ] {
        assert!(!minimal.contains(secret), "minimal shows {secret}");
    }
    assert!(
        minimal.contains("MRN123") && minimal.contains("V0001") && minimal.contains("4W/401/A")
    );
    let full = m.full().to_string();
    assert!(full.contains("SMITH") && full.contains("1980-02-29") && full.contains("SSN999"));
}

#[test]
fn inspect_reports_each_message() {
    let file = format!(
        "{}\n\n{}\n{}\n",
        base().replace('\r', "\n"),
        base()
            .replacen("ADT^A01^ADT_A01", "ORU^R01", 1)
            .replace('\r', "\n"),
        base()
            .replacen("CTRL-001", "CTRL-002", 1)
            .replace('\r', "\n"),
    );
    let out = inspect(file.as_bytes(), &MapConfig::default());
    assert_eq!(out.len(), 3);
    assert_subset(
        &json!({"index": 0, "status": "ok", "message_type": "ADT^A01", "trigger": "A01",
                "control_id": "CTRL-001", "event_type": "PatientAdmitted",
                "sending_facility": "GOODHOSP", "message_time": "2024-03-15T14:30:00+00:00",
                "patient_ids": [{"id": "MRN123", "authority": "GOODHOSP", "type": "MR"},
                                {"id": "SSN999", "authority": "SSA", "type": "SS"}]}),
        &out[0],
        "$[0]",
    );
    assert_eq!(
        out[1],
        json!({"index": 1, "status": "error", "code": "HL7_NOT_ADT", "detail": "MSH-9 is ORU^R01",
               "message_type": "ORU^R01", "control_id": "CTRL-001"})
    );
    assert_eq!(out[2]["control_id"], "CTRL-002");
    assert!(!out[0].to_string().contains("ANNA"));
}

// ---------------------------------------------------------------------------------------------
// Properties: no input panics, and every refusal carries an HL7 code.

const HL7_CODES: &[ErrorCode] = &[
    ErrorCode::Hl7Empty,
    ErrorCode::Hl7NoMsh,
    ErrorCode::Hl7BadEncodingChars,
    ErrorCode::Hl7BadCharset,
    ErrorCode::Hl7ParseError,
    ErrorCode::Hl7BadSegment,
    ErrorCode::Hl7NotAdt,
    ErrorCode::Hl7UnsupportedTrigger,
    ErrorCode::Hl7MissingField,
    ErrorCode::Hl7InvalidField,
    ErrorCode::Hl7MissingMrg,
    ErrorCode::Hl7BadBatch,
    ErrorCode::BodyTooLarge,
];

fn exercise(input: &[u8]) {
    let cfg = MapConfig::default();
    for part in split_messages(input) {
        match part {
            Ok(m) => {
                if let Err(e) = parse_adt(&m, &cfg) {
                    assert!(HL7_CODES.contains(&e.code), "{e}");
                }
            }
            Err(e) => assert!(HL7_CODES.contains(&e.code), "{e}"),
        }
    }
    if let Err(e) = parse_adt(input, &cfg) {
        assert!(HL7_CODES.contains(&e.code), "{e}");
    }
    let n = split_messages(input).len();
    assert_eq!(inspect(input, &cfg).len(), n);
}

#[derive(Debug, Clone)]
enum Mutation {
    Insert(usize, u8),
    Replace(usize, u8),
    Delete(usize, usize),
}

fn special_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        prop::sample::select(vec![
            b'|', b'^', b'~', b'\\', b'&', b'#', b'\r', b'\n', 0x0B, 0x1C, 0xEF, 0xBB, 0xBF, 0xC3,
            0xA9, 0xFF, b'"', b'+', b'-', b'.', b'0', b'9', b'A', b'X', b'M', b'S', b'H',
        ]),
        any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), special_byte()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), special_byte()).prop_map(|(p, b)| Mutation::Replace(p, b)),
        (any::<usize>(), 0usize..40).prop_map(|(p, n)| Mutation::Delete(p, n)),
    ]
}

fn apply(mut m: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for mu in muts {
        let len = m.len();
        match *mu {
            Mutation::Insert(p, b) => m.insert(p % (len + 1), b),
            Mutation::Replace(p, b) if len > 0 => m[p % len] = b,
            Mutation::Delete(p, n) if len > 0 => {
                let s = p % len;
                m.drain(s..(s + n).min(len));
            }
            _ => {}
        }
    }
    m
}

fn valid_seeds() -> Vec<Vec<u8>> {
    let a40 = format!(
        "{}\r{}",
        base().replacen("ADT^A01^ADT_A01", "ADT^A40", 1),
        seg("MRG", &[(1, "OLD1^^^H^MR"), (5, "V1")])
    );
    let batch = format!("FHS|^~\\&\rBHS|^~\\&\r{}\r{a40}\rBTS|2\rFTS|1", base());
    vec![
        base().into_bytes(),
        a40.into_bytes(),
        batch.into_bytes(),
        format!("\x0b{}\x1c\r", base().replacen("^~\\&", "^~\\&#", 1)).into_bytes(),
        edit(
            0,
            Some(msh(
                "^~\\&",
                "ADT^A08",
                "20240315143000+0130",
                "C",
                "8859/1",
            )),
        )
        .into_bytes(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise(&input);
    }

    #[test]
    fn msh_prefixed_bytes_never_panic(tail in prop::collection::vec(special_byte(), 0..400)) {
        let mut input = b"MSH|^~\\&|".to_vec();
        input.extend(tail);
        exercise(&input);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        seed in 0usize..5,
        muts in prop::collection::vec(mutation(), 1..8),
    ) {
        let seeds = valid_seeds();
        let input = apply(seeds[seed % seeds.len()].clone(), &muts);
        exercise(&input);
    }
}

// ---------------------------------------------------------------------------------------------
// Corpus: every ADT maps with the trigger, control id and first PID-3 id a naive reader finds;
// everything else is refused as not ADT; nothing panics.

fn corpus_dir() -> std::path::PathBuf {
    fleet_core::env::corpus_dir()
}

/// What a naive reader sees in one message: lines split on CR/LF, fields on `|`, parts on `^`.
#[derive(Debug)]
struct Oracle {
    msh9: String,
    trigger: String,
    control_id: String,
    first_pid3: Option<String>,
}

fn oracle(file: &[u8]) -> Vec<Oracle> {
    let text = String::from_utf8_lossy(file);
    let text = text.trim_start_matches('\u{feff}');
    let mut out: Vec<Oracle> = Vec::new();
    for line in text.split(['\r', '\n']) {
        let f: Vec<&str> = line.split('|').collect();
        match f[0] {
            "MSH" => {
                let get = |i: usize| f.get(i).copied().unwrap_or("").trim().to_string();
                let msh9 = get(8);
                out.push(Oracle {
                    trigger: msh9.split('^').nth(1).unwrap_or("").to_string(),
                    msh9,
                    control_id: get(9),
                    first_pid3: None,
                });
            }
            "EVN" => {
                if let Some(o) = out.last_mut()
                    && o.trigger.is_empty()
                {
                    o.trigger = f.get(1).copied().unwrap_or("").to_string();
                }
            }
            "PID" => {
                if let Some(o) = out.last_mut()
                    && o.first_pid3.is_none()
                {
                    let pid3 = f.get(3).copied().unwrap_or("");
                    let first = pid3
                        .split('~')
                        .next()
                        .unwrap_or("")
                        .split('^')
                        .next()
                        .unwrap_or("");
                    o.first_pid3 = Some(first.trim().to_string());
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn corpus_adt_messages_map_and_others_are_refused() {
    let root = corpus_dir().join("hl7");
    assert!(
        root.is_dir(),
        "HL7 corpus not found at {} — set FLEET_CORPUS_DIR to the shared corpus directory",
        root.display()
    );
    let cfg = MapConfig::default();
    let mut files = 0;
    let mut adt = 0;
    let mut non_adt = 0;
    let mut no_pid = 0;
    for folder in ["fhir-converter", "mirth", "hl7-parser"] {
        let dir = root.join(folder);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "hl7"))
            .collect();
        entries.sort();
        assert!(!entries.is_empty(), "no .hl7 files in {}", dir.display());
        for path in entries {
            files += 1;
            let name = path.display().to_string();
            let bytes = std::fs::read(&path).unwrap();
            let expected = oracle(&bytes);
            let parts = split_messages(&bytes);
            assert_eq!(parts.len(), expected.len(), "{name}: message count");
            for (i, (part, exp)) in parts.into_iter().zip(&expected).enumerate() {
                let msg = part.unwrap_or_else(|e| panic!("{name}#{i}: split error {e}"));
                let got = parse_adt(&msg, &cfg);
                let has_pid3 = exp.first_pid3.as_deref().is_some_and(|id| !id.is_empty());
                if exp.msh9.starts_with("ADT") && !has_pid3 {
                    // An ADT without a patient identifier (an MSH+EVN-only sample) is refused.
                    no_pid += 1;
                    let e = got.expect_err(&format!("{name}#{i}: ADT without PID-3 accepted"));
                    assert_eq!(e.code, ErrorCode::Hl7MissingField, "{name}#{i}: {e}");
                } else if exp.msh9.starts_with("ADT") {
                    adt += 1;
                    let m = got.unwrap_or_else(|e| panic!("{name}#{i}: {e}"));
                    assert_eq!(m.trigger, exp.trigger, "{name}#{i}: trigger");
                    assert_eq!(m.control_id, exp.control_id, "{name}#{i}: control id");
                    assert_eq!(
                        Some(m.patient.identifiers[0].id.expose().as_str()),
                        exp.first_pid3.as_deref(),
                        "{name}#{i}: first PID-3"
                    );
                } else {
                    non_adt += 1;
                    let e = got.expect_err(&format!("{name}#{i}: non-ADT accepted"));
                    assert_eq!(e.code, ErrorCode::Hl7NotAdt, "{name}#{i}: {e}");
                }
                // The whole file through parse_adt must not panic either.
            }
            let _ = parse_adt(&bytes, &cfg);
            let view = inspect(&bytes, &cfg);
            assert_eq!(view.len(), expected.len(), "{name}: inspect count");
        }
    }
    assert!(files >= 90, "only {files} corpus files");
    assert!(adt >= 40 && non_adt >= 40, "adt {adt}, non-adt {non_adt}");
    assert!(no_pid <= 1, "{no_pid} ADT messages without PID-3");
    eprintln!(
        "corpus: {files} files, {adt} ADT messages mapped, {non_adt} non-ADT refused, \
         {no_pid} ADT without PID-3 refused"
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 16 item 4: failure details carry codes, positions and lengths, never producer text

#[test]
fn item4_refusal_details_never_echo_the_producers_field_contents() {
    // Each field a detail used to echo when it "looked like a code": a name fits that charset.
    let name = "SMITH JOHN";
    let cases = [
        // MSH-9.1 not ADT: the message code.
        msh("^~\\&", &format!("{name}^A01"), "20240315143000", "C", ""),
        // MSH-9.1 of a known type, MSH-9.2 free text.
        msh("^~\\&", &format!("ORU^{name}"), "20240315143000", "C", ""),
        // ADT with a trigger that is free text.
        msh("^~\\&", &format!("ADT^{name}"), "20240315143000", "C", ""),
        // MSH-18 naming no character set.
        msh("^~\\&", "ADT^A01", "20240315143000", "C", name),
    ];
    let cfg = MapConfig::default();
    for (i, header) in cases.iter().enumerate() {
        let mut segs = base_segments();
        segs[0] = header.clone();
        let raw = segs.join("\r");
        let e = parse_adt(raw.as_bytes(), &cfg).expect_err("refused");
        assert!(
            !e.detail.contains("SMITH") && !e.detail.contains("JOHN"),
            "case {i}: the detail of {} quotes the field",
            e.code.as_str()
        );
        if i == 1 {
            // The known code is shown, the free-text trigger is not.
            assert_eq!(e.detail, "MSH-9 is ORU");
        } else {
            assert!(
                e.detail.contains("10 characters"),
                "case {i}: the detail should give the length instead: {}",
                e.detail
            );
        }
        // inspect's header names no free-text message type either.
        let out = serde_json::to_string(&inspect(raw.as_bytes(), &cfg)).unwrap();
        assert!(!out.contains("SMITH"), "case {i}: inspect quotes the field");
    }
}
