//! The seeded ADT stream: patients move through register (A04) → admit (A01) → transfer (A02)
//! → update (A08) → discharge (A03), some are merged (A40), a configured share of bodies is
//! malformed. Message bodies come from `fleet_samples::hl7` (the same builders the demo and the
//! end-to-end tests use), with the optional segments real feeds carry added for realistic sizes.
//! One patient's messages are in time order; the stream interleaves many patients.

use fleet_core::ErrorCode;
use fleet_samples::hl7::{self as samples, SamplePatient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scenario::Scenario;

/// One generated message.
#[derive(Debug, Clone)]
pub struct Message {
    pub body: String,
    /// MSH-10 (empty for bodies without an MSH).
    pub control_id: String,
    /// `None`: must produce one event. `Some(code)`: must be dead-lettered with it.
    pub expected_failure: Option<ErrorCode>,
    pub trigger: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    New,
    Registered,
    Admitted,
}

struct Episode {
    patient: SamplePatient,
    stage: Stage,
    visit: usize,
    /// Messages left in this stay before discharge.
    moves_left: u32,
}

/// The stream a scenario describes. The same scenario (seed included) gives the same bodies.
pub fn stream(s: &Scenario) -> Vec<Message> {
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut pool: Vec<Episode> = Vec::with_capacity(s.active_patients);
    let mut next_visit = 1usize;
    let mut out = Vec::with_capacity(s.messages);
    let mut malformed_kind = 0usize;
    // Message time: a facility clock that advances a few seconds per message, so each
    // patient's messages are in time order and no update is older than the record it updates.
    let mut clock = 0u64;
    for i in 0..s.messages {
        clock += rng.random_range(1..8);
        let time = timestamp(clock);
        let control_id = format!("LT{:04}{i:07}", s.seed % 10_000);
        while pool.len() < s.active_patients {
            pool.push(Episode {
                patient: new_patient(&mut rng),
                stage: Stage::New,
                visit: 0,
                moves_left: 0,
            });
        }
        let slot = rng.random_range(0..pool.len());
        if rng.random_bool(s.malformed_fraction) {
            // With a worker size limit set, every ninth poison message is an otherwise valid
            // update padded past it.
            let oversized = s.worker_max_message_bytes.filter(|_| {
                malformed_kind % (samples::MALFORMED_KINDS + 1) == samples::MALFORMED_KINDS
            });
            let (body, code) = match oversized {
                Some(limit) => {
                    let p = &pool[slot].patient;
                    let mut body = samples::adt_at("A08", &control_id, p, &time, next_visit);
                    while body.len() <= limit {
                        pad(&mut body, 6, &mut rng, &time);
                    }
                    (body, ErrorCode::BodyTooLarge)
                }
                None => samples::malformed(
                    malformed_kind,
                    &control_id,
                    &pool[slot].patient,
                    (clock / 60 % 60) as usize,
                ),
            };
            malformed_kind += 1;
            out.push(Message {
                body,
                control_id,
                expected_failure: Some(code),
                trigger: "",
            });
            continue;
        }
        let ep = &mut pool[slot];
        let trigger = if ep.stage != Stage::New && rng.random_bool(s.merge_fraction) {
            "A40"
        } else {
            match ep.stage {
                Stage::New => {
                    // A registration opens its own (outpatient) visit: visit numbers are never
                    // shared between patients, as in a real feed.
                    ep.stage = Stage::Registered;
                    ep.visit = next_visit;
                    next_visit += 1;
                    "A04"
                }
                Stage::Registered => {
                    ep.stage = Stage::Admitted;
                    ep.visit = next_visit;
                    next_visit += 1;
                    ep.moves_left = rng.random_range(0..4);
                    "A01"
                }
                Stage::Admitted if ep.moves_left > 0 => {
                    ep.moves_left -= 1;
                    if rng.random_bool(0.5) { "A02" } else { "A08" }
                }
                Stage::Admitted => "A03",
            }
        };
        let mut body = samples::adt_at(trigger, &control_id, &ep.patient, &time, ep.visit);
        let extra = rng.random_range(s.extra_segments[0]..=s.extra_segments[1]);
        pad(&mut body, extra, &mut rng, &time);
        out.push(Message {
            body,
            control_id,
            expected_failure: None,
            trigger,
        });
        match trigger {
            // The merged-away identifier is gone; the survivor's episode starts over.
            "A40" => pool.swap_remove(slot),
            "A03" => pool.swap_remove(slot),
            _ => continue,
        };
    }
    out
}

fn new_patient(rng: &mut StdRng) -> SamplePatient {
    SamplePatient {
        mrn: format!("MRN{:07}", rng.random_range(1_000_000..9_999_999)),
        family: samples::FAMILY[rng.random_range(0..samples::FAMILY.len())].to_string(),
        given: samples::GIVEN[rng.random_range(0..samples::GIVEN.len())].to_string(),
        birth_date: format!(
            "19{:02}{:02}{:02}",
            rng.random_range(30..99),
            rng.random_range(1..13),
            rng.random_range(1..29)
        ),
    }
}

/// `YYYYMMDDHHMMSS` for `secs` after 2026-03-01 00:00:00 (stays within March for any stream
/// under 2.6 million seconds, i.e. far beyond any scenario's message count × 7 s).
fn timestamp(secs: u64) -> String {
    let day = 1 + secs / 86_400;
    let rem = secs % 86_400;
    let (month, day) = if day > 31 { (4, day - 31) } else { (3, day) };
    format!(
        "2026{month:02}{day:02}{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Optional segments a hospital feed carries after the mapped ones: next of kin, observations,
/// allergies, diagnoses, insurance. The worker maps none of them; they make the sizes real.
fn pad(body: &mut String, extra: usize, rng: &mut StdRng, time: &str) {
    const OBS: &[(&str, &str, &str)] = &[
        ("8302-2", "Body height", "cm"),
        ("29463-7", "Body weight", "kg"),
        ("8867-4", "Heart rate", "/min"),
        ("8480-6", "Systolic blood pressure", "mm[Hg]"),
        ("8310-5", "Body temperature", "Cel"),
    ];
    const ALLERGENS: &[&str] = &["PENICILLIN", "LATEX", "PEANUT", "SULFA", "IODINE"];
    const DX: &[(&str, &str)] = &[
        ("I10", "Essential (primary) hypertension"),
        ("E11.9", "Type 2 diabetes mellitus without complications"),
        ("J18.9", "Pneumonia, unspecified organism"),
        ("N39.0", "Urinary tract infection, site not specified"),
        ("I48.91", "Unspecified atrial fibrillation"),
    ];
    for n in 1..=extra {
        let seg = match n % 6 {
            0 => format!(
                "NK1|{n}|{}^{}|SPO^Spouse^HL70063|12 Harbour Lane^^Springfield^IL^62704|(217)555-01{:02}||EC^Emergency Contact^HL70131",
                samples::FAMILY[rng.random_range(0..samples::FAMILY.len())],
                samples::GIVEN[rng.random_range(0..samples::GIVEN.len())],
                rng.random_range(10..99)
            ),
            1 | 2 => {
                let (code, text, unit) = OBS[rng.random_range(0..OBS.len())];
                format!(
                    "OBX|{n}|NM|{code}^{text}^LN||{}|{unit}^{unit}^UCUM|||||F|||{time}",
                    rng.random_range(35..190)
                )
            }
            3 => format!(
                "AL1|{n}|DA|{}^{}^L|MO|Rash and hives||",
                rng.random_range(1000..9999),
                ALLERGENS[rng.random_range(0..ALLERGENS.len())]
            ),
            4 => {
                let (code, text) = DX[rng.random_range(0..DX.len())];
                format!("DG1|{n}|I10|{code}^{text}^I10|{text}|{time}|A|||||||||1")
            }
            _ => format!(
                "IN1|{n}|PPO^Preferred Provider|{}|Lakeshore Health Plan|400 Commerce Way^^Chicago^IL^60601||(312)555-0{:03}|GRP{:05}||||20260101|20261231|||PPO|{}^{}|SEL^Self^HL70063",
                rng.random_range(10_000..99_999),
                rng.random_range(100..999),
                rng.random_range(10_000..99_999),
                samples::FAMILY[rng.random_range(0..samples::FAMILY.len())],
                samples::GIVEN[rng.random_range(0..samples::GIVEN.len())],
            ),
        };
        body.push('\r');
        body.push_str(&seg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Mode;

    fn scenario(messages: usize, malformed: f64) -> Scenario {
        Scenario {
            name: "t".into(),
            seed: 42,
            messages,
            mode: Mode::Preload,
            rate_per_s: 0,
            malformed_fraction: malformed,
            merge_fraction: 0.03,
            active_patients: 50,
            extra_segments: [4, 24],
            worker_concurrency: 8,
            worker_wait_time_s: 1,
            worker_publish_linger_ms: None,
            worker_delete_linger_ms: None,
            idle_timeout_s: 10,
            visibility_timeout_s: 60,
            worker_drain_deadline_s: 10,
            worker_max_message_bytes: Some(LIMIT),
            mllp: None,
            faults: Default::default(),
        }
    }

    const LIMIT: usize = 20_000;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
        let a = stream(&scenario(500, 0.05));
        let b = stream(&scenario(500, 0.05));
        assert_eq!(a.len(), 500);
        assert!(a.iter().zip(&b).all(|(x, y)| x.body == y.body));
        let mut other = scenario(500, 0.05);
        other.seed = 43;
        let c = stream(&other);
        assert!(a.iter().zip(&c).any(|(x, y)| x.body != y.body));
    }

    #[test]
    fn the_stream_has_every_stage_merges_and_the_malformed_share() {
        let msgs = stream(&scenario(4000, 0.05));
        for t in ["A04", "A01", "A02", "A08", "A03", "A40"] {
            assert!(msgs.iter().any(|m| m.trigger == t), "no {t}");
        }
        let bad = msgs.iter().filter(|m| m.expected_failure.is_some()).count();
        assert!((120..=280).contains(&bad), "{bad} malformed of 4000");
        let ids: std::collections::HashSet<_> = msgs.iter().map(|m| &m.control_id).collect();
        assert_eq!(ids.len(), msgs.len(), "control ids repeat");
        let mean = msgs.iter().map(|m| m.body.len()).sum::<usize>() / msgs.len();
        assert!((1000..=6000).contains(&mean), "mean size {mean}");
    }

    /// Every well-formed body maps, and every malformed one fails with the code it names: the
    /// worker's own guard and mapping decide, not this generator.
    #[test]
    fn the_worker_mapping_agrees_with_every_expected_outcome() {
        let cfg = fleet_hl7::MapConfig {
            max_message_bytes: LIMIT,
            ..fleet_hl7::MapConfig::default()
        };
        let msgs = stream(&scenario(1500, 0.05));
        let codes: std::collections::BTreeSet<_> =
            msgs.iter().filter_map(|m| m.expected_failure).collect();
        // Every poison kind occurs: the eight malformed ones and the oversized one.
        assert_eq!(codes.len(), samples::MALFORMED_KINDS + 1, "{codes:?}");
        assert!(codes.contains(&ErrorCode::BodyTooLarge));
        for m in msgs {
            let lines = fleet_hl7::inspect(m.body.as_bytes(), &cfg);
            match m.expected_failure {
                None => assert!(
                    !lines.is_empty() && lines.iter().all(|l| l["status"] == "ok"),
                    "{} ({}) did not map: {:?}",
                    m.control_id,
                    m.trigger,
                    lines.iter().map(|l| &l["code"]).collect::<Vec<_>>()
                ),
                Some(code) => assert!(
                    lines.iter().any(|l| l["code"] == code.as_str()),
                    "{}: expected {code:?}, got {:?}",
                    m.control_id,
                    lines.iter().map(|l| &l["code"]).collect::<Vec<_>>()
                ),
            }
        }
    }

    #[test]
    fn timestamps_are_calendar_valid() {
        assert_eq!(timestamp(0), "20260301000000");
        assert_eq!(timestamp(86_400 * 31 - 1), "20260331235959");
        assert_eq!(timestamp(86_400 * 31), "20260401000000");
    }
}
