//! The handler against the real local backend (SQLite): idempotency, out-of-order updates,
//! merges, and the codes the generated malformed samples must get.

use std::sync::Arc;
use std::time::Duration;

use fleet_core::Backend;
use fleet_hl7::MapConfig;
use fleet_local::LocalBackend;
use fleet_runtime::EventPublisher;
use fleet_samples::hl7::{self as samples, SamplePatient};
use hl7_ingest::events::PhiPolicy;
use hl7_ingest::handler::{Applied, Hl7Handler, ParsedMessage};

fn setup(dir: &std::path::Path, policy: PhiPolicy) -> (LocalBackend, Hl7Handler) {
    let local = LocalBackend::open(&dir.join("db.sqlite"), &dir.join("objects")).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(local.clone());
    let handler = Hl7Handler::new(
        backend.records("hl7"),
        EventPublisher::new(backend.event_bus("bus"), Duration::from_millis(1)),
        MapConfig::default(),
        policy,
    );
    (local, handler)
}

fn patient() -> SamplePatient {
    SamplePatient {
        mrn: "MRN5550001".into(),
        family: "Quillfeather".into(),
        given: "Rosalind".into(),
        birth_date: "19610412".into(),
    }
}

fn one(handler: &Hl7Handler, body: &str) -> ParsedMessage {
    let mut v = handler.parse_body(body.as_bytes()).expect("parses");
    assert_eq!(v.len(), 1);
    v.remove(0)
}

#[tokio::test]
async fn a_redelivered_message_writes_nothing_new_and_republishes_the_same_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let (local, handler) = setup(dir.path(), PhiPolicy::Minimal);
    let msg = one(&handler, &samples::adt("A01", "C1", &patient(), 5, 1));
    assert_eq!(handler.apply(&msg, "m1").await.unwrap(), Applied::New);
    let records_after_first = local.table_records("hl7").unwrap();
    assert_eq!(
        handler.apply(&msg, "m1").await.unwrap(),
        Applied::Republished
    );
    assert_eq!(
        local.table_records("hl7").unwrap(),
        records_after_first,
        "a redelivery changed the records"
    );
    let events = local.list_bus_events("bus").unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0]["detail"]["event_id"],
        events[1]["detail"]["event_id"]
    );
    assert_eq!(events[0]["detail-type"], "PatientAdmitted");
}

#[tokio::test]
async fn an_older_message_does_not_regress_the_patient_but_still_records_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let (local, handler) = setup(dir.path(), PhiPolicy::Minimal);
    let newer = one(&handler, &samples::adt("A08", "C2", &patient(), 30, 1));
    let mut renamed = patient();
    renamed.family = "Ashbourne".into();
    let older = one(&handler, &samples::adt("A08", "C1", &renamed, 10, 1));
    handler.apply(&newer, "m2").await.unwrap();
    assert_eq!(handler.apply(&older, "m1").await.unwrap(), Applied::New);
    let records = local.table_records("hl7").unwrap();
    let patient_rec = records
        .iter()
        .find(|r| r.sk == "PATIENT")
        .expect("patient record");
    assert_eq!(
        patient_rec.data["last_control_id"], "C2",
        "the older message overwrote the newer state"
    );
    assert!(patient_rec.data.to_string().contains("Quillfeather"));
    assert_eq!(records.iter().filter(|r| r.sk == "EVENT").count(), 2);
    assert_eq!(local.list_bus_events("bus").unwrap().len(), 2);
}

#[tokio::test]
async fn a_merge_points_the_prior_identifier_at_the_survivor() {
    let dir = tempfile::tempdir().unwrap();
    let (local, handler) = setup(dir.path(), PhiPolicy::Minimal);
    let merge = one(&handler, &samples::adt("A40", "C9", &patient(), 1, 1));
    handler.apply(&merge, "m9").await.unwrap();
    let records = local.table_records("hl7").unwrap();
    let prior = records
        .iter()
        .find(|r| r.pk == "PATIENT#GENHOSP#OLD5550001")
        .expect("prior identity record");
    assert_eq!(prior.data["merged_into"], "PATIENT#GENHOSP#MRN5550001");
    assert_eq!(
        local.list_bus_events("bus").unwrap()[0]["detail-type"],
        "PatientMerged"
    );
}

#[tokio::test]
async fn minimal_policy_events_carry_no_name_or_birth_date_and_full_ones_do() {
    for (policy, expect_phi) in [(PhiPolicy::Minimal, false), (PhiPolicy::Full, true)] {
        let dir = tempfile::tempdir().unwrap();
        let (local, handler) = setup(dir.path(), policy);
        handler
            .apply(
                &one(&handler, &samples::adt("A01", "C1", &patient(), 5, 1)),
                "m",
            )
            .await
            .unwrap();
        let text = serde_json::to_string(&local.list_bus_events("bus").unwrap()).unwrap();
        assert!(
            text.contains("MRN5550001"),
            "identifiers are part of every policy"
        );
        assert_eq!(text.contains("Quillfeather"), expect_phi, "{policy:?}");
        assert_eq!(text.contains("1961-04-12"), expect_phi, "{policy:?}");
        // The sample's second PID-3 repetition is a social security number (type SS).
        assert_eq!(
            text.contains("55500019"),
            expect_phi,
            "SSN under {policy:?}"
        );
    }
}

#[tokio::test]
async fn every_generated_malformed_sample_gets_its_expected_code_and_the_rest_parse() {
    let dir = tempfile::tempdir().unwrap();
    let (_local, handler) = setup(dir.path(), PhiPolicy::Minimal);
    let set = samples::generate(3, 120, 20);
    for s in &set {
        match (handler.parse_body(s.body.as_bytes()), s.expected_failure) {
            (Ok(msgs), None) => assert_eq!(msgs[0].control_id, s.control_id),
            (Err(e), Some(code)) => {
                assert_eq!(e.code, code, "sample {}: {}", s.control_id, e.detail)
            }
            (Ok(_), Some(code)) => {
                panic!("sample {} parsed but should fail with {code}", s.control_id)
            }
            (Err(e), None) => panic!(
                "sample {} failed with {} ({})",
                s.control_id, e.code, e.detail
            ),
        }
    }
}

/// One test per port-error kind: this worker's handler, given a valid message and a record
/// store that fails with that kind, answers exactly what the fleet's one mapping
/// (`Failure::from_port`) says. hl7-ingest, doc-pipeline and notify each carry this module,
/// so all three give the same answer for the same port error.
mod port_errors {
    use super::*;
    use fleet_core::RecordStore;
    use fleet_runtime::testing::delivery;
    use fleet_runtime::{Handler, Outcome};

    fleet_runtime::port_error_tests!(outcome_with_failing_records);

    async fn outcome_with_failing_records(records: Arc<dyn RecordStore>) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let local =
            LocalBackend::open(&dir.path().join("db.sqlite"), &dir.path().join("objects")).unwrap();
        let handler = Hl7Handler::new(
            records,
            EventPublisher::new(local.event_bus("bus"), Duration::from_millis(1)),
            MapConfig::default(),
            PhiPolicy::Minimal,
        );
        handler
            .handle(&delivery(samples::adt("A01", "C1", &patient(), 5, 1)))
            .await
    }
}

/// Issue 15 ("Correctness under SQS's real rules"): keys and the equal-time rule.
mod issue15 {
    use super::*;
    use fleet_runtime::testing::delivery;
    use fleet_runtime::{Handler, Outcome};

    /// A sample A01 with its sending facility (MSH-4) replaced by `facility` (raw HL7).
    fn from_facility(facility: &str, control_id: &str, minute: usize) -> String {
        samples::adt("A01", control_id, &patient(), minute, 1).replacen(
            "|EPICADT|GENHOSP|",
            &format!("|EPICADT|{facility}|"),
            1,
        )
    }

    /// Item 7: `A#B` + `C` and `A` + `B#C` must not share a record key, nor `A|B` + `C` and
    /// `A` + `B|C` (a `|` decoded from `\F\`) an idempotency key / event id.
    #[tokio::test]
    async fn item7_key_components_containing_separator_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let (local, handler) = setup(dir.path(), PhiPolicy::Minimal);

        // Event record key: facility `GEN#HOSP` + control id `1` against `GEN` + `HOSP#1`.
        let first = one(&handler, &from_facility("GEN#HOSP", "1", 5));
        let second = one(&handler, &from_facility("GEN", "HOSP#1", 6));
        assert_eq!(handler.apply(&first, "m1").await.unwrap(), Applied::New);
        assert_eq!(
            handler.apply(&second, "m2").await.unwrap(),
            Applied::New,
            "a different message was taken for a redelivery of the first (event keys collide)"
        );

        // Idempotency key: facility `GEN|X` + control id `2` against `GEN` + `X|2`.
        let third = one(&handler, &from_facility("GEN\\F\\X", "2", 7));
        let fourth = one(&handler, &from_facility("GEN", "X\\F\\2", 8));
        assert_eq!(third.sending_facility, "GEN|X");
        assert_eq!(fourth.control_id, "X|2");
        handler.apply(&third, "m3").await.unwrap();
        handler.apply(&fourth, "m4").await.unwrap();
        let events = local.list_bus_events("bus").unwrap();
        assert_eq!(events.len(), 4);
        assert_ne!(
            events[2]["detail"]["event_id"], events[3]["detail"]["event_id"],
            "two different messages got one event id (idempotency keys collide)"
        );

        // Patient key: authority `GENHOSP#X` + id `1` against `GENHOSP` + `X#1`.
        let by_authority = samples::adt("A01", "P1", &patient(), 9, 2).replacen(
            "MRN5550001^^^GENHOSP^MR",
            "1^^^GENHOSP#X^MR",
            1,
        );
        let by_id = samples::adt("A01", "P2", &patient(), 9, 3).replacen(
            "MRN5550001^^^GENHOSP^MR",
            "X#1^^^GENHOSP^MR",
            1,
        );
        handler
            .apply(&one(&handler, &by_authority), "m5")
            .await
            .unwrap();
        handler.apply(&one(&handler, &by_id), "m6").await.unwrap();
        let records = local.table_records("hl7").unwrap();
        let patients: Vec<&str> = records
            .iter()
            .filter(|r| {
                r.sk == "PATIENT"
                    && r.data["last_control_id"]
                        .as_str()
                        .is_some_and(|c| c.starts_with('P'))
            })
            .map(|r| r.pk.as_str())
            .collect();
        assert_eq!(
            patients.len(),
            2,
            "two patients share one record (patient keys collide): {patients:?}"
        );
        assert_eq!(records.iter().filter(|r| r.sk == "EVENT").count(), 6);
    }

    /// The patient and encounter records' last control ids after `bodies` were handled in
    /// order, each as one delivery (`group` set: from a FIFO queue).
    async fn after(bodies: &[String], group: Option<&str>) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let (local, handler) = setup(dir.path(), PhiPolicy::Minimal);
        for body in bodies {
            let mut d = delivery(body.clone());
            d.group_id = group.map(str::to_string);
            assert_eq!(handler.handle(&d).await, Outcome::Done);
        }
        let records = local.table_records("hl7").unwrap();
        let last = |sk: &str| {
            let r = records.iter().find(|r| r.sk == sk).expect(sk);
            r.data["last_control_id"].as_str().unwrap_or("").to_string()
        };
        (last("PATIENT"), last("ENCOUNTER"))
    }

    /// Item 8, FIFO queue: a later message with the same MSH-7 time applies (arrival order is
    /// the sender's order), even when its control id sorts first.
    #[tokio::test]
    async fn item8_equal_message_time_on_a_fifo_queue_applies_in_arrival_order() {
        let mut renamed = patient();
        renamed.family = "Ashbourne".into();
        let admit = samples::adt("A01", "C2", &patient(), 5, 1);
        let update = samples::adt("A08", "C1", &renamed, 5, 1);
        assert_eq!(
            after(&[admit, update], Some("patient-1")).await,
            ("C1".to_string(), "C1".to_string()),
            "the later message with the same time did not update the patient and encounter"
        );
    }

    /// Item 8, standard queue: on an equal time the control id that sorts after (natural
    /// order) wins, whatever the arrival order, so any delivery order converges.
    #[tokio::test]
    async fn item8_equal_message_time_on_a_standard_queue_goes_to_the_later_control_id() {
        let mut renamed = patient();
        renamed.family = "Ashbourne".into();
        let c9 = samples::adt("A01", "C9", &patient(), 5, 1);
        let c10 = samples::adt("A08", "C10", &renamed, 5, 1);
        for (bodies, order) in [
            ([c9.clone(), c10.clone()], "C9 then C10"),
            ([c10, c9], "C10 then C9"),
        ] {
            assert_eq!(
                after(&bodies, None).await,
                ("C10".to_string(), "C10".to_string()),
                "equal times delivered {order}: the later control id must win"
            );
        }
    }
}

/// Issue 15, item 6: one sending facility + control id (MSH-10) with two different contents.
mod item6 {
    use super::*;
    use fleet_runtime::testing::delivery;
    use fleet_runtime::{Failure, Handler, Outcome};
    use sha2::{Digest, Sha256};

    /// The hex SHA-256 of a one-message body as the handler hashes it: the message's bytes as
    /// `split_messages` normalises them (segments joined by CR).
    fn content_sha256(body: &str) -> String {
        let mut parts = fleet_hl7::split_messages(body.as_bytes());
        assert_eq!(parts.len(), 1);
        let bytes = parts.remove(0).expect("one message");
        Sha256::digest(&bytes)
            .iter()
            .fold(String::new(), |mut hex, b| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
                hex
            })
    }

    /// A second message reusing a sending facility + control id with different bytes is
    /// dead-lettered with `HL7_CONTROL_ID_REUSED`, naming both hashes' prefixes and no content;
    /// the first message's records and event stay as they were and nothing is republished.
    #[tokio::test]
    async fn item6_same_control_id_different_bytes_is_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let (local, handler) = setup(dir.path(), PhiPolicy::Minimal);
        let first = samples::adt("A01", "C1", &patient(), 5, 1);
        let mut renamed = patient();
        renamed.family = "Ashbourne".into();
        let reused = samples::adt("A08", "C1", &renamed, 6, 1);
        assert_eq!(
            handler.handle(&delivery(first.clone())).await,
            Outcome::Done
        );
        let records = local.table_records("hl7").unwrap();

        let outcome = handler.handle(&delivery(reused.clone())).await;
        let Outcome::Failed(Failure::Permanent { code, detail }) = outcome else {
            panic!("a reused control id with different content was not dead-lettered: {outcome:?}");
        };
        assert_eq!(code, fleet_core::ErrorCode::Hl7ControlIdReused);
        let (stored, received) = (content_sha256(&first), content_sha256(&reused));
        assert_ne!(stored, received);
        assert!(detail.contains(&stored[..12]), "{detail}");
        assert!(detail.contains(&received[..12]), "{detail}");
        for phi in [
            "Ashbourne",
            "Quillfeather",
            "Rosalind",
            "MRN5550001",
            "19610412",
        ] {
            assert!(
                !detail.contains(phi),
                "the detail quotes the message: {detail}"
            );
        }
        assert_eq!(
            local.table_records("hl7").unwrap(),
            records,
            "the reused control id changed the records"
        );
        assert_eq!(
            local.list_bus_events("bus").unwrap().len(),
            1,
            "the first message's event was republished for a different message"
        );
    }

    /// The same bytes again are a redelivery: nothing new is written and the stored event is
    /// published again with its id; the event record keeps the hash that tells the two apart.
    #[tokio::test]
    async fn item6_same_bytes_is_a_redelivery() {
        let dir = tempfile::tempdir().unwrap();
        let (local, handler) = setup(dir.path(), PhiPolicy::Minimal);
        let body = samples::adt("A01", "C1", &patient(), 5, 1);
        assert_eq!(handler.handle(&delivery(body.clone())).await, Outcome::Done);
        let records = local.table_records("hl7").unwrap();
        assert_eq!(handler.handle(&delivery(body.clone())).await, Outcome::Done);
        assert_eq!(local.table_records("hl7").unwrap(), records);
        let events = local.list_bus_events("bus").unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            events[0]["detail"]["event_id"],
            events[1]["detail"]["event_id"]
        );
        let event_record = records.iter().find(|r| r.sk == "EVENT").expect("event");
        assert_eq!(
            event_record.data["content_sha256"],
            content_sha256(&body),
            "the event record does not keep the message's content hash"
        );
    }
}
