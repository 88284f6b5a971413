//! The typed ADT event. Anything that identifies or describes the patient sits in `Phi`, so
//! `Debug` output of an `AdtMessage` is safe for logs while serialisation keeps the values.
//! Values are [`Text`] (short ones without a heap allocation), serialised as plain strings.

use crate::dtm::Timestamp;
use crate::event::PatientEventKind;
use crate::text::Text;
use fleet_core::phi::Phi;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdtMessage {
    /// MSH-9.1 and the effective trigger, e.g. `ADT^A01`.
    pub message_type: Text,
    /// MSH-9.2, or EVN-1 when MSH-9.2 is empty.
    pub trigger: Text,
    /// EVN-1 when present (kept even when it disagrees with MSH-9.2, which wins).
    pub evn_trigger: Option<Text>,
    /// MSH-9.3 message structure, e.g. `ADT_A01`.
    pub structure: Option<Text>,
    pub event_type: PatientEventKind,
    /// MSH-10, required: with the facility it is the idempotency key.
    pub control_id: Text,
    pub sending_application: Text,
    pub sending_facility: Text,
    pub receiving_application: Text,
    pub receiving_facility: Text,
    /// MSH-12 version id.
    pub version: Option<Text>,
    /// MSH-11 processing id (P, T, D).
    pub processing_id: Option<Text>,
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
    pub id: Phi<Text>,
    /// CX.4, first component (namespace id).
    pub authority: Option<Text>,
    /// CX.5 identifier type code (MR, PI, SS, ...).
    pub id_type: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonName {
    pub family: Text,
    pub given: Text,
    /// XPN.3 second and further given names or initials.
    pub middle: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Address {
    pub street: Text,
    pub other: Text,
    pub city: Text,
    pub state: Text,
    pub postal_code: Text,
    pub country: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Patient {
    /// All PID-3 repetitions, in order; never empty.
    pub identifiers: Vec<PatientId>,
    pub name: Phi<Option<PersonName>>,
    /// PID-7 as `YYYY-MM-DD` (or `YYYY-MM` / `YYYY` when sent with less precision).
    pub birth_date: Phi<Option<Text>>,
    /// PID-8 administrative sex code.
    pub sex: Phi<Option<Text>>,
    pub address: Phi<Option<Address>>,
    /// PID-30: `Some(true)` for `Y`, `Some(false)` for `N`.
    pub death_indicator: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Location {
    pub point_of_care: Text,
    pub room: Text,
    pub bed: Text,
    pub facility: Text,
    pub building: Text,
    pub floor: Text,
    /// Non-empty parts joined with `^`-free separators for display: `point_of_care/room/bed`.
    pub display: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provider {
    pub id: Text,
    pub family: Text,
    pub given: Text,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Visit {
    /// PV1-2 patient class (I, O, E, P, R, B, ...).
    pub class: Option<Text>,
    /// PV1-3 assigned location.
    pub location: Option<Location>,
    /// PV1-19 visit number (CX.1).
    pub visit_number: Phi<Option<Text>>,
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
    pub prior_account_number: Phi<Option<Text>>,
    /// MRG-5 prior visit number (CX.1).
    pub prior_visit_number: Phi<Option<Text>>,
}
