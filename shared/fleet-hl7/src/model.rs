//! The typed ADT event. Anything that identifies or describes the patient sits in `Phi`, so
//! `Debug` output of an `AdtMessage` is safe for logs while serialisation keeps the values.

use crate::dtm::Timestamp;
use crate::event::PatientEventKind;
use fleet_core::phi::Phi;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdtMessage {
    /// MSH-9.1 and the effective trigger, e.g. `ADT^A01`.
    pub message_type: String,
    /// MSH-9.2, or EVN-1 when MSH-9.2 is empty.
    pub trigger: String,
    /// EVN-1 when present (kept even when it disagrees with MSH-9.2, which wins).
    pub evn_trigger: Option<String>,
    /// MSH-9.3 message structure, e.g. `ADT_A01`.
    pub structure: Option<String>,
    pub event_type: PatientEventKind,
    /// MSH-10, required: with the facility it is the idempotency key.
    pub control_id: String,
    pub sending_application: String,
    pub sending_facility: String,
    pub receiving_application: String,
    pub receiving_facility: String,
    /// MSH-12 version id.
    pub version: Option<String>,
    /// MSH-11 processing id (P, T, D).
    pub processing_id: Option<String>,
    /// MSH-7 with its offset (the configured zone when the message has none); serialised as
    /// RFC 3339 text.
    pub message_time: Timestamp,
    pub message_time_ms: i64,
    /// EVN-6 (event occurred), falling back to EVN-2 (recorded), when valid.
    pub event_time: Option<Timestamp>,
    pub patient: Patient,
    pub visit: Option<Visit>,
    pub merge: Option<Merge>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientId {
    /// CX.1.
    pub id: Phi<String>,
    /// CX.4, first component (namespace id).
    pub authority: Option<String>,
    /// CX.5 identifier type code (MR, PI, SS, ...).
    pub id_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonName {
    pub family: String,
    pub given: String,
    /// XPN.3 second and further given names or initials.
    pub middle: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Address {
    pub street: String,
    pub other: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patient {
    /// All PID-3 repetitions, in order; never empty.
    pub identifiers: Vec<PatientId>,
    pub name: Phi<Option<PersonName>>,
    /// PID-7 as `YYYY-MM-DD` (or `YYYY-MM` / `YYYY` when sent with less precision).
    pub birth_date: Phi<Option<String>>,
    /// PID-8 administrative sex code.
    pub sex: Phi<Option<String>>,
    pub address: Phi<Option<Address>>,
    /// PID-30: `Some(true)` for `Y`, `Some(false)` for `N`.
    pub death_indicator: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Location {
    pub point_of_care: String,
    pub room: String,
    pub bed: String,
    pub facility: String,
    pub building: String,
    pub floor: String,
    /// Non-empty parts joined with `^`-free separators for display: `point_of_care/room/bed`.
    pub display: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provider {
    pub id: String,
    pub family: String,
    pub given: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visit {
    /// PV1-2 patient class (I, O, E, P, R, B, ...).
    pub class: Option<String>,
    /// PV1-3 assigned location.
    pub location: Option<Location>,
    /// PV1-19 visit number (CX.1).
    pub visit_number: Phi<Option<String>>,
    /// PV1-44 admit time.
    pub admit_time: Option<Timestamp>,
    /// PV1-45 discharge time (first repetition).
    pub discharge_time: Option<Timestamp>,
    /// PV1-7 attending doctor (first repetition).
    pub attending: Phi<Option<Provider>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Merge {
    /// MRG-1 prior patient identifier list.
    pub prior_identifiers: Vec<PatientId>,
    /// MRG-3 prior patient account number (CX.1).
    pub prior_account_number: Phi<Option<String>>,
    /// MRG-5 prior visit number (CX.1).
    pub prior_visit_number: Phi<Option<String>>,
}
