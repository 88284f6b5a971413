//! ADT trigger → published event kind. Every trigger A01–A62 has a row; the table in DESIGN.md
//! is generated from the same match (see the test that checks it).

use serde::{Deserialize, Serialize};

/// The `Patient*` event a message becomes. Serialised as the variant name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PatientEventKind {
    PatientAdmitted,
    PatientTransferred,
    PatientDischarged,
    PatientRegistered,
    PatientUpdated,
    PatientClassChanged,
    PatientVisitUpdated,
    PatientLocationTracked,
    PatientTrackingCancelled,
    PatientPendingEvent,
    PatientPendingEventCancelled,
    PatientAdmissionCancelled,
    PatientTransferCancelled,
    PatientDischargeCancelled,
    PatientPreAdmissionCancelled,
    PatientLeaveOfAbsence,
    PatientLeaveOfAbsenceCancelled,
    PatientsSwapped,
    PatientMerged,
    PatientLinked,
    PatientUnlinked,
    PatientDeleted,
    PatientAllergiesUpdated,
    BedStatusUpdated,
    PatientOtherEvent,
}

impl PatientEventKind {
    pub fn as_str(self) -> &'static str {
        use PatientEventKind::*;
        match self {
            PatientAdmitted => "PatientAdmitted",
            PatientTransferred => "PatientTransferred",
            PatientDischarged => "PatientDischarged",
            PatientRegistered => "PatientRegistered",
            PatientUpdated => "PatientUpdated",
            PatientClassChanged => "PatientClassChanged",
            PatientVisitUpdated => "PatientVisitUpdated",
            PatientLocationTracked => "PatientLocationTracked",
            PatientTrackingCancelled => "PatientTrackingCancelled",
            PatientPendingEvent => "PatientPendingEvent",
            PatientPendingEventCancelled => "PatientPendingEventCancelled",
            PatientAdmissionCancelled => "PatientAdmissionCancelled",
            PatientTransferCancelled => "PatientTransferCancelled",
            PatientDischargeCancelled => "PatientDischargeCancelled",
            PatientPreAdmissionCancelled => "PatientPreAdmissionCancelled",
            PatientLeaveOfAbsence => "PatientLeaveOfAbsence",
            PatientLeaveOfAbsenceCancelled => "PatientLeaveOfAbsenceCancelled",
            PatientsSwapped => "PatientsSwapped",
            PatientMerged => "PatientMerged",
            PatientLinked => "PatientLinked",
            PatientUnlinked => "PatientUnlinked",
            PatientDeleted => "PatientDeleted",
            PatientAllergiesUpdated => "PatientAllergiesUpdated",
            BedStatusUpdated => "BedStatusUpdated",
            PatientOtherEvent => "PatientOtherEvent",
        }
    }
}

impl std::fmt::Display for PatientEventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one trigger maps, and whether the message must carry an MRG segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerRule {
    pub kind: PatientEventKind,
    pub requires_mrg: bool,
    pub meaning: &'static str,
}

/// `None` for anything outside A01–A62 (the caller reports Hl7UnsupportedTrigger).
pub fn rule(trigger: &str) -> Option<TriggerRule> {
    use PatientEventKind::*;
    let digits = trigger.strip_prefix('A')?;
    if digits.len() != 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u8 = digits.parse().ok()?;
    let r = |kind, meaning| TriggerRule {
        kind,
        requires_mrg: false,
        meaning,
    };
    let m = |meaning| TriggerRule {
        kind: PatientMerged,
        requires_mrg: true,
        meaning,
    };
    Some(match n {
        1 => r(PatientAdmitted, "admit/visit notification"),
        2 => r(PatientTransferred, "transfer a patient"),
        3 => r(PatientDischarged, "discharge/end visit"),
        4 => r(PatientRegistered, "register a patient"),
        5 => r(PatientRegistered, "pre-admit a patient"),
        6 => r(PatientClassChanged, "change an outpatient to an inpatient"),
        7 => r(PatientClassChanged, "change an inpatient to an outpatient"),
        8 => r(PatientUpdated, "update patient information"),
        9 => r(PatientLocationTracked, "patient departing - tracking"),
        10 => r(PatientLocationTracked, "patient arriving - tracking"),
        11 => r(PatientAdmissionCancelled, "cancel admit/visit notification"),
        12 => r(PatientTransferCancelled, "cancel transfer"),
        13 => r(PatientDischargeCancelled, "cancel discharge/end visit"),
        14 => r(PatientRegistered, "pending admit"),
        15 => r(PatientPendingEvent, "pending transfer"),
        16 => r(PatientPendingEvent, "pending discharge"),
        17 => r(PatientsSwapped, "swap patients (first PID mapped)"),
        18 => m("merge patient information"),
        19 => r(PatientOtherEvent, "patient query (normally QRY/ADR)"),
        20 => r(BedStatusUpdated, "bed status update"),
        21 => r(PatientLeaveOfAbsence, "patient goes on a leave of absence"),
        22 => r(
            PatientLeaveOfAbsence,
            "patient returns from a leave of absence",
        ),
        23 => r(PatientDeleted, "delete a patient record"),
        24 => r(PatientLinked, "link patient information"),
        25 => r(PatientPendingEventCancelled, "cancel pending discharge"),
        26 => r(PatientPendingEventCancelled, "cancel pending transfer"),
        27 => r(PatientPreAdmissionCancelled, "cancel pending admit"),
        28 => r(PatientRegistered, "add person information"),
        29 => r(PatientDeleted, "delete person information"),
        30 => m("merge person information"),
        31 => r(PatientUpdated, "update person information"),
        32 => r(
            PatientTrackingCancelled,
            "cancel patient arriving - tracking",
        ),
        33 => r(
            PatientTrackingCancelled,
            "cancel patient departing - tracking",
        ),
        34 => m("merge patient information - patient ID only"),
        35 => m("merge patient information - account number only"),
        36 => m("merge patient information - patient ID and account number"),
        37 => r(PatientUnlinked, "unlink patient information"),
        38 => r(PatientPreAdmissionCancelled, "cancel pre-admit"),
        39 => m("merge person - patient ID"),
        40 => m("merge patient - patient identifier list"),
        41 => m("merge account - patient account number"),
        42 => m("merge visit - visit number"),
        43 => m("move patient information - patient identifier list"),
        44 => m("move account information - patient account number"),
        45 => m("move visit information - visit number"),
        46 => m("change patient ID"),
        47 => m("change patient identifier list"),
        48 => m("change alternate patient ID"),
        49 => m("change patient account number"),
        50 => m("change visit number"),
        51 => m("change alternate visit ID"),
        52 => r(PatientLeaveOfAbsenceCancelled, "cancel leave of absence"),
        53 => r(
            PatientLeaveOfAbsenceCancelled,
            "cancel patient returns from leave of absence",
        ),
        54 => r(PatientVisitUpdated, "change attending doctor"),
        55 => r(PatientVisitUpdated, "cancel change attending doctor"),
        56..=59 => r(PatientOtherEvent, "not assigned by HL7 (kept, not dropped)"),
        60 => r(PatientAllergiesUpdated, "update allergy information"),
        61 => r(PatientVisitUpdated, "change consulting doctor"),
        62 => r(PatientVisitUpdated, "cancel change consulting doctor"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_a01_to_a62_maps_and_nothing_else_does() {
        for n in 1..=62 {
            assert!(rule(&format!("A{n:02}")).is_some(), "A{n:02}");
        }
        for t in ["A00", "A63", "A99", "A1", "A001", "B01", "", "A+1", "R01"] {
            assert!(rule(t).is_none(), "{t}");
        }
    }

    #[test]
    fn brief_fixed_rows() {
        use PatientEventKind::*;
        let fixed = [
            ("A01", PatientAdmitted),
            ("A02", PatientTransferred),
            ("A03", PatientDischarged),
            ("A04", PatientRegistered),
            ("A05", PatientRegistered),
            ("A14", PatientRegistered),
            ("A28", PatientRegistered),
            ("A08", PatientUpdated),
            ("A31", PatientUpdated),
            ("A11", PatientAdmissionCancelled),
            ("A12", PatientTransferCancelled),
            ("A13", PatientDischargeCancelled),
            ("A27", PatientPreAdmissionCancelled),
            ("A38", PatientPreAdmissionCancelled),
        ];
        for (t, k) in fixed {
            assert_eq!(rule(t).map(|r| r.kind), Some(k), "{t}");
        }
        for t in [
            "A18", "A30", "A34", "A35", "A36", "A39", "A40", "A41", "A42", "A46", "A47", "A48",
            "A49", "A50", "A51",
        ] {
            let r = rule(t).unwrap();
            assert_eq!((r.kind, r.requires_mrg), (PatientMerged, true), "{t}");
        }
    }

    /// DESIGN.md's trigger table must list exactly what `rule` does.
    #[test]
    fn design_table_matches_code() {
        let design = include_str!("../DESIGN.md");
        for n in 1..=62 {
            let t = format!("A{n:02}");
            let r = rule(&t).unwrap();
            let row = format!(
                "| {t} | {} | {} |",
                r.kind.as_str(),
                if r.requires_mrg { "yes" } else { "no" }
            );
            assert!(design.contains(&row), "DESIGN.md lacks row `{row}`");
        }
    }
}
