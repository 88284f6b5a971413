//! Issue 16 item 7: minimum necessary identifiers. Under the minimal PHI policy an event
//! carries only identifiers whose type is on the allow-list (default MR, PI, PN;
//! `--phi-identifier-types` / `FLEET_PHI_IDENTIFIER_TYPES`); social security, licence,
//! national and health-plan numbers can never be allow-listed.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use fleet_core::Backend;
use fleet_local::LocalBackend;
use fleet_runtime::EventPublisher;
use fleet_samples::hl7::{self as samples, SamplePatient};
use hl7_ingest::WorkerConfig;
use hl7_ingest::events::PhiPolicy;
use hl7_ingest::handler::Hl7Handler;

#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct Flags {
    #[command(flatten)]
    worker: WorkerConfig,
}

fn parse(args: &[&str]) -> WorkerConfig {
    Flags::try_parse_from(args).expect("flags parse").worker
}

/// Every identifier type of the test message: (type, id).
const IDS: &[(&str, &str)] = &[
    ("MR", "MRN5550001"),
    ("PI", "PI5550002"),
    ("PN", "PN5550003"),
    ("SS", "5550001999"),
    ("DL", "DL5550004"),
    ("NI", "NI5550005"),
    ("MC", "MC5550006"),
    ("MA", "MA5550007"),
    ("JHN", "JHN5550008"),
    ("HC", "HC5550009"),
    ("AN", "AN5550010"),
    ("", "NOTYPE5550011"),
];

/// An admission whose PID-3 carries every identifier of [`IDS`].
fn admit() -> String {
    let p = SamplePatient {
        mrn: "MRN5550001".into(),
        family: "Quillfeather".into(),
        given: "Rosalind".into(),
        birth_date: "19610412".into(),
    };
    let body = samples::adt("A01", "C1", &p, 1, 1);
    let pid3 = "MRN5550001^^^GENHOSP^MR~55500019^^^SSA^SS";
    assert!(body.contains(pid3), "the sample's PID-3 changed");
    let ids: Vec<String> = IDS
        .iter()
        .map(|(t, id)| format!("{id}^^^GENHOSP^{t}"))
        .collect();
    body.replacen(pid3, &ids.join("~"), 1)
}

/// The identifier types of the one event published for [`admit`] under `policy`.
async fn published_types(
    handler: impl FnOnce(Hl7Handler) -> Hl7Handler,
    policy: PhiPolicy,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let local =
        LocalBackend::open(&dir.path().join("db.sqlite"), &dir.path().join("objects")).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    let h = handler(Hl7Handler::new(
        backend.records("hl7"),
        EventPublisher::new(backend.event_bus("bus"), Duration::from_millis(1)),
        fleet_hl7::MapConfig::default(),
        policy,
    ));
    let msg = h.parse_body(admit().as_bytes()).unwrap().remove(0);
    h.apply(&msg, "m").await.unwrap();
    let events = local.list_bus_events("bus").unwrap();
    assert_eq!(events.len(), 1);
    let text = events[0].to_string();
    let ids = events[0]["detail"]["payload"]["patient"]["identifiers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let types: Vec<String> = ids
        .iter()
        .map(|i| i["id_type"].as_str().unwrap_or("").to_string())
        .collect();
    // Nothing of a left-out identifier anywhere in the event.
    for (t, id) in IDS {
        assert_eq!(
            text.contains(id),
            types.iter().any(|x| x == t),
            "{t} {id} under {policy:?}"
        );
    }
    types
}

#[tokio::test]
async fn item7_minimal_events_carry_only_mr_pi_pn_by_default() {
    let types = published_types(|h| h, PhiPolicy::Minimal).await;
    assert_eq!(types, ["MR", "PI", "PN"]);
    // Through the worker's configuration with no flag: the same default.
    let config = parse(&[]);
    let types = published_types(
        |h| h.with_identifier_types(config.identifier_types().unwrap()),
        PhiPolicy::Minimal,
    )
    .await;
    assert_eq!(types, ["MR", "PI", "PN"]);
}

#[tokio::test]
async fn item7_the_allow_list_is_configurable() {
    let config = parse(&["--phi-identifier-types", "MR,AN"]);
    let types = published_types(
        |h| h.with_identifier_types(config.identifier_types().unwrap()),
        PhiPolicy::Minimal,
    )
    .await;
    assert_eq!(types, ["MR", "AN"]);
}

#[test]
fn item7_an_allow_list_naming_a_personal_number_is_refused_at_start() {
    for code in ["SS", "DL", "NI", "MC", "MA", "JHN", "HC", "NNGBR", "ss"] {
        let config = parse(&["--phi-identifier-types", &format!("MR,{code}")]);
        let err = config.identifier_types().unwrap_err().to_string();
        assert!(
            err.contains("FLEET_PHI_IDENTIFIER_TYPES") && err.contains(&code.to_uppercase()),
            "{code}: {err}"
        );
    }
}

#[tokio::test]
async fn the_full_policy_still_carries_every_identifier() {
    let types = published_types(|h| h, PhiPolicy::Full).await;
    assert_eq!(types.len(), IDS.len());
}
