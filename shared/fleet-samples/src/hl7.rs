//! Synthetic ADT messages the project generates itself, for the demo and the end-to-end tests:
//! well-formed messages across the common triggers (merges included) and malformed ones, each
//! with the error code the worker must give it. Names, birth dates and MRNs are invented; the
//! tests scan logs for them.

use fleet_core::ErrorCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The family names samples draw from (tests scan output for them).
pub const FAMILY: &[&str] = &[
    "Quillfeather",
    "Ashbourne",
    "Marrowdale",
    "Thistlewood",
    "Brackenridge",
    "Fennimore",
    "Larkspur",
    "Oakhollow",
];
/// The given names samples draw from.
pub const GIVEN: &[&str] = &[
    "Rosalind",
    "Tobias",
    "Wilhelmina",
    "Caspian",
    "Ottoline",
    "Barnaby",
    "Isolde",
    "Percival",
];
const TRIGGERS: &[&str] = &[
    "A01", "A04", "A08", "A02", "A03", "A31", "A05", "A11", "A13",
];

/// Where synthetic patient data shows in `text`: (1-based line, what kind). Finds, by shape,
/// what every generator in this project invents: the family and given names of [`FAMILY`] and
/// [`GIVEN`] (any case), MRNs (`MRN` and seven digits), and birth dates, which are all in the
/// 1900s, as ISO dates (`1953-07-14`, as events and records carry them) and as HL7 fields
/// (`|19530714`). No log line of this project has a reason to hold any of them, so the scan
/// needs no list of the patients a test used.
pub fn synthetic_phi_in(text: &str) -> Vec<(usize, &'static str)> {
    let names: Vec<String> = FAMILY
        .iter()
        .chain(GIVEN)
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let mut hits = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_ascii_lowercase();
        if names.iter().any(|n| lower.contains(n.as_str())) {
            hits.push((i + 1, "name"));
        }
        let b = line.as_bytes();
        let digits = |from: usize, n: usize| {
            b.get(from..from + n)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        };
        let not_digit_at = |at: usize| b.get(at).is_none_or(|c| !c.is_ascii_digit());
        for at in 0..b.len() {
            if b[at..].starts_with(b"MRN") && digits(at + 3, 7) {
                hits.push((i + 1, "mrn"));
            }
            let starts_1900s =
                b[at..].starts_with(b"19") && (at == 0 || !b[at - 1].is_ascii_digit());
            if starts_1900s
                && digits(at, 4)
                && b.get(at + 4) == Some(&b'-')
                && digits(at + 5, 2)
                && b.get(at + 7) == Some(&b'-')
                && digits(at + 8, 2)
                && not_digit_at(at + 10)
            {
                hits.push((i + 1, "birth date"));
            }
            if at > 0
                && matches!(b[at - 1], b'|' | b'^')
                && starts_1900s
                && digits(at, 8)
                && not_digit_at(at + 8)
            {
                hits.push((i + 1, "birth date"));
            }
        }
    }
    hits.dedup();
    hits
}

/// A synthetic patient: the PHI that must never appear in a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplePatient {
    pub mrn: String,
    pub family: String,
    pub given: String,
    pub birth_date: String,
}

/// One sample body and what the worker must do with it.
#[derive(Debug, Clone)]
pub struct Sample {
    pub body: String,
    pub control_id: String,
    /// `None`: must produce an event. `Some(code)`: must be dead-lettered with this code.
    pub expected_failure: Option<ErrorCode>,
    pub patient: SamplePatient,
    pub trigger: String,
}

/// Deterministic sample set: `total` bodies of which `malformed` fail (spread through the set).
pub fn generate(seed: u64, total: usize, malformed: usize) -> Vec<Sample> {
    let mut rng = StdRng::seed_from_u64(seed);
    let every = total
        .checked_div(malformed)
        .map_or(usize::MAX, |n| n.max(1));
    let mut out = Vec::with_capacity(total);
    let mut bad = 0;
    for i in 0..total {
        let patient = SamplePatient {
            mrn: format!("MRN{:07}", rng.random_range(1_000_000..9_999_999)),
            family: FAMILY[rng.random_range(0..FAMILY.len())].to_string(),
            given: GIVEN[rng.random_range(0..GIVEN.len())].to_string(),
            birth_date: format!(
                "19{:02}{:02}{:02}",
                rng.random_range(30..99),
                rng.random_range(1..13),
                rng.random_range(1..29)
            ),
        };
        let control_id = format!("CTL{seed:04}{i:06}");
        let minute = i % 60;
        if bad < malformed && i % every == every - 1 {
            let (body, code) = malformed_body(bad, &control_id, &patient, minute);
            bad += 1;
            out.push(Sample {
                body,
                control_id,
                expected_failure: Some(code),
                patient,
                trigger: String::new(),
            });
            continue;
        }
        let trigger = if i % 17 == 16 {
            "A40"
        } else {
            TRIGGERS[rng.random_range(0..TRIGGERS.len())]
        };
        let body = adt(trigger, &control_id, &patient, minute, i);
        out.push(Sample {
            body,
            control_id,
            expected_failure: None,
            patient,
            trigger: trigger.to_string(),
        });
    }
    out
}

fn msh(message_type: &str, control_id: &str, minute: usize) -> String {
    format!(
        "MSH|^~\\&|EPICADT|GENHOSP|FLEET|FLEET|20260315{:02}{minute:02}00-0500||{message_type}|{control_id}|P|2.5.1|||AL|NE",
        8 + minute % 10
    )
}

fn pid(p: &SamplePatient) -> String {
    format!(
        "PID|1||{}^^^GENHOSP^MR~{}9^^^SSA^SS||{}^{}^Q||{}|F|||12 Harbour Lane^^Springfield^IL^62704||(217)555-0134",
        p.mrn,
        &p.mrn[3..],
        p.family,
        p.given,
        p.birth_date
    )
}

/// A well-formed ADT message with `\r` segment ends.
pub fn adt(
    trigger: &str,
    control_id: &str,
    p: &SamplePatient,
    minute: usize,
    visit: usize,
) -> String {
    let time = format!("20260315{:02}{minute:02}00", 8 + minute % 10);
    adt_at(trigger, control_id, p, &time, visit)
}

/// [`adt`] with a chosen message time (`YYYYMMDDHHMMSS`, facility time; MSH-7 carries it with
/// a -0500 offset), for streams where one patient's messages must be in time order (loadtest).
pub fn adt_at(
    trigger: &str,
    control_id: &str,
    p: &SamplePatient,
    time: &str,
    visit: usize,
) -> String {
    let structure = match trigger {
        "A04" | "A08" | "A13" | "A05" => "ADT_A01",
        "A31" => "ADT_A05",
        "A40" => "ADT_A39",
        "A02" => "ADT_A02",
        "A03" => "ADT_A03",
        "A11" => "ADT_A09",
        _ => "ADT_A01",
    };
    let mut segs = vec![
        format!(
            "MSH|^~\\&|EPICADT|GENHOSP|FLEET|FLEET|{time}-0500||ADT^{trigger}^{structure}|{control_id}|P|2.5.1|||AL|NE"
        ),
        format!("EVN|{trigger}|{time}"),
        pid(p),
    ];
    if trigger == "A40" {
        segs.push(format!("MRG|OLD{}^^^GENHOSP^MR", &p.mrn[3..]));
    } else {
        segs.push(format!(
            "PV1|1|I|4EAST^412^B^GENHOSP||||1234^Hartwell^Jonah^^^DR|||MED||||7|||1234^Hartwell^Jonah^^^DR|IN|V{visit:08}|||||||||||||||||||||||||{time}"
        ));
    }
    segs.join("\r")
}

/// One of the malformed bodies [`generate`] mixes in (`kind` cycles through the
/// [`MALFORMED_KINDS`] defects: not ADT, no MSH, missing field, merge without MRG, bad segment,
/// wrongly encoded, bad encoding characters, unsupported trigger) and
/// the code the worker must dead-letter it with.
pub fn malformed(
    kind: usize,
    control_id: &str,
    p: &SamplePatient,
    minute: usize,
) -> (String, ErrorCode) {
    malformed_body(kind, control_id, p, minute)
}

/// How many kinds of malformed body `malformed` cycles through.
pub const MALFORMED_KINDS: usize = 8;

fn malformed_body(
    kind: usize,
    control_id: &str,
    p: &SamplePatient,
    minute: usize,
) -> (String, ErrorCode) {
    match kind % MALFORMED_KINDS {
        0 => (
            format!(
                "{}\rPID|1||{}^^^GENHOSP^MR||{}^{}\rOBR|1\rOBX|1|NM|GLU||99",
                msh("ORU^R01^ORU_R01", control_id, minute),
                p.mrn,
                p.family,
                p.given
            ),
            ErrorCode::Hl7NotAdt,
        ),
        1 => (
            format!("PID|1||{}^^^GENHOSP^MR||{}^{}", p.mrn, p.family, p.given),
            ErrorCode::Hl7NoMsh,
        ),
        2 => (
            format!(
                "{}\rEVN|A01\rPID|1||||{}^{}||{}",
                msh("ADT^A01^ADT_A01", control_id, minute),
                p.family,
                p.given,
                p.birth_date
            ),
            ErrorCode::Hl7MissingField,
        ),
        3 => (
            format!(
                "{}\rEVN|A40\r{}",
                msh("ADT^A40^ADT_A39", control_id, minute),
                pid(p)
            ),
            ErrorCode::Hl7MissingMrg,
        ),
        4 => (
            format!(
                "MSH|^~\\&|EPICADT|GENHOSP|FLEET|FLEET|2026031508{minute:02}00||ADT^A01|{control_id}|P|2.5.1\r{}\rPV1|1|I\rZZZZ|not a segment",
                pid(p)
            ),
            ErrorCode::Hl7BadSegment,
        ),
        // Wrongly encoded: MSH-18 declares ASCII, the name is not.
        5 => (
            format!(
                "{}||ASCII\rEVN|A01\rPID|1||{}^^^GENHOSP^MR||{}\u{fc}^{}||{}\rPV1|1|I",
                msh("ADT^A01^ADT_A01", control_id, minute),
                p.mrn,
                p.family,
                p.given,
                p.birth_date
            ),
            ErrorCode::Hl7BadCharset,
        ),
        // MSH-2 with two encoding characters instead of four.
        6 => (
            format!(
                "MSH|^~|EPICADT|GENHOSP|FLEET|FLEET|2026031508{minute:02}00||ADT^A01|{control_id}|P|2.5.1\r{}",
                pid(p)
            ),
            ErrorCode::Hl7BadEncodingChars,
        ),
        // An ADT trigger outside the supported A01-A62.
        _ => (
            format!(
                "{}\rEVN|A99\r{}\rPV1|1|I",
                msh("ADT^A99^ADT_A01", control_id, minute),
                pid(p)
            ),
            ErrorCode::Hl7UnsupportedTrigger,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_counts_malformed() {
        let a = generate(7, 100, 10);
        let b = generate(7, 100, 10);
        assert_eq!(a.len(), 100);
        assert_eq!(
            a.iter().filter(|s| s.expected_failure.is_some()).count(),
            10
        );
        assert!(a.iter().zip(&b).all(|(x, y)| x.body == y.body));
        let ids: std::collections::HashSet<_> = a.iter().map(|s| &s.control_id).collect();
        assert_eq!(ids.len(), 100);
    }

    #[test]
    fn every_malformed_kind_fails_the_real_mapping_with_its_code() {
        let p = SamplePatient {
            mrn: "MRN7654321".into(),
            family: FAMILY[1].into(),
            given: GIVEN[1].into(),
            birth_date: "19811224".into(),
        };
        let cfg = fleet_hl7::MapConfig::default();
        for kind in 0..MALFORMED_KINDS {
            let (body, code) = malformed(kind, "BAD1", &p, 4);
            let first = fleet_hl7::split_messages(body.as_bytes())
                .into_iter()
                .next()
                .expect("one part");
            let got = first.and_then(|raw| fleet_hl7::parse_adt(&raw, &cfg).map(|_| ()));
            assert_eq!(got.map_err(|e| e.code), Err(code), "kind {kind}");
        }
    }

    #[test]
    fn the_phi_scan_finds_every_kind_of_synthetic_datum_and_nothing_else() {
        let clean = concat!(
            r#"{"timestamp":"2026-12-01T16:11:28.398308Z","level":"WARN","code":"HL7_NOT_ADT","#,
            r#""message_id":"19450312-ab12-4c3d-9e8f-001122334455","receive_count":1}"#,
            "\nconsumer stopped received=5000 control=CTL0007000123 at 20260315081500"
        );
        assert_eq!(synthetic_phi_in(clean), vec![]);
        let p = generate(3, 1, 0).remove(0).patient;
        let iso = format!(
            "{}-{}-{}",
            &p.birth_date[..4],
            &p.birth_date[4..6],
            &p.birth_date[6..]
        );
        for (leak, kind) in [
            (format!("detail: PID-5 was {}", p.family), "name"),
            (format!("given {}", p.given.to_uppercase()), "name"),
            (format!("id {}", p.mrn), "mrn"),
            (format!("{{\"birth_date\":\"{iso}\"}}"), "birth date"),
            (format!("PID|1||X||Y^Z||{}|F", p.birth_date), "birth date"),
        ] {
            let text = format!("first line\n{leak}\nlast line");
            assert!(
                synthetic_phi_in(&text).contains(&(2, kind)),
                "{kind} not found in {leak:?}"
            );
        }
    }

    #[test]
    fn adt_at_with_the_default_time_is_adt() {
        let p = SamplePatient {
            mrn: "MRN1234567".into(),
            family: FAMILY[0].into(),
            given: GIVEN[0].into(),
            birth_date: "19700101".into(),
        };
        for trigger in ["A01", "A40"] {
            assert_eq!(
                adt(trigger, "C1", &p, 7, 3),
                adt_at(trigger, "C1", &p, "20260315150700", 3)
            );
        }
        assert!(adt("A01", "C1", &p, 7, 3).starts_with(&msh("ADT^A01^ADT_A01", "C1", 7)));
    }
}
