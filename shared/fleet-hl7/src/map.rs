//! Guarded segments → `AdtMessage`. Reads only MSH, EVN, PID, PV1 and MRG, and only the fields
//! the event needs; every other segment is validated by the guard and then ignored.

use crate::dtm::{parse_date, parse_instant};
use crate::error::{Hl7Error, err, message_type_code, shown_message_code, shown_trigger};
use crate::escape::decode;
use crate::event::rule;
use crate::guard::{self, Guarded};
use crate::idtypes::IdentifierTypes;
use crate::model::*;
use crate::seg::{Fields, Separators, comp, first_sub};
use crate::text::Text;
use crate::{MapConfig, split};
use chrono_tz::Tz;
use compact_str::CompactStringExt;
use fleet_core::ErrorCode;
use fleet_core::phi::Phi;

/// Decoded, trimmed leaf text; HL7's explicit null `""` counts as empty.
fn txt(raw: &str, seps: &Separators) -> Text {
    let t = raw.trim();
    if t == "\"\"" {
        return Text::default();
    }
    Text::from(decode(t, seps))
}

/// `s` with ASCII letters upper-cased (one copy, no temporary `String`).
fn upper(s: &str) -> Text {
    let mut t = Text::from(s);
    t.make_ascii_uppercase();
    t
}

fn opt(raw: &str, seps: &Separators) -> Option<Text> {
    Some(txt(raw, seps)).filter(|s| !s.is_empty())
}

/// A CX value (PID-3, MRG-1): id, assigning authority namespace, identifier type.
fn cx(rep: &str, seps: &Separators) -> Option<PatientId> {
    let id = txt(comp(rep, seps, 1), seps);
    if id.is_empty() {
        return None;
    }
    Some(PatientId {
        id: Phi(id),
        authority: opt(first_sub(comp(rep, seps, 4), seps), seps),
        id_type: opt(comp(rep, seps, 5), seps),
    })
}

/// A timestamp field; a time without an offset is read in `tz` (the sending facility's zone).
fn instant(
    seg: &Fields<'_>,
    n: usize,
    rep: usize,
    seps: &Separators,
    tz: Tz,
) -> Result<Option<crate::dtm::Timestamp>, Hl7Error> {
    let raw = seg.comp(n, rep, 1, seps).trim();
    if raw.is_empty() || raw == "\"\"" {
        return Ok(None);
    }
    match parse_instant(raw, tz) {
        Some(i) => Ok(Some(i)),
        None => err(
            ErrorCode::Hl7InvalidField,
            format!("{}-{n} is not a valid timestamp", seg.id),
        ),
    }
}

/// Guard + parse + map one message, given as received: the guard removes BOM and MLLP framing
/// again, accepts any line ending, decodes the MSH-18 charset and validates every segment
/// before the mapping reads MSH, EVN, PID, PV1 and MRG. A batch envelope around exactly one
/// message is accepted; several messages are `HL7_BAD_BATCH` (use `split_messages` first).
pub fn parse_adt(raw: &[u8], cfg: &MapConfig) -> Result<AdtMessage, Hl7Error> {
    if raw.len() > cfg.max_message_bytes {
        return err(
            ErrorCode::BodyTooLarge,
            format!(
                "message is {} bytes, limit {}",
                raw.len(),
                cfg.max_message_bytes
            ),
        );
    }
    let body = guard::trim_envelope(raw);
    if split::is_envelope(body) {
        // A batch file holding exactly one message is accepted as that message.
        let parts = split::split_messages(body);
        return match parts.as_slice() {
            [Ok(one)] if one.starts_with(b"MSH") => parse_one(one, cfg),
            [Err(e)] => Err(e.clone()),
            _ => err(
                ErrorCode::Hl7BadBatch,
                format!(
                    "batch holds {} messages or errors; split it first",
                    parts.len()
                ),
            ),
        };
    }
    parse_one(raw, cfg)
}

fn parse_one(raw: &[u8], cfg: &MapConfig) -> Result<AdtMessage, Hl7Error> {
    let (text, seps) = guard::decode_message(raw, cfg)?;
    let g = guard::guard(&text, seps)?;
    map(&g, cfg)
}

/// The first segment with this id, split into fields (only the five mapped segments are).
fn find<'a>(g: &Guarded<'a>, id: &str) -> Option<Fields<'a>> {
    g.find(id).map(|s| s.fields(&g.seps))
}

fn map(g: &Guarded<'_>, cfg: &MapConfig) -> Result<AdtMessage, Hl7Error> {
    let s = &g.seps;
    let Some(msh) = g.first.map(|m| m.fields(s)) else {
        return err(ErrorCode::Hl7NoMsh, "no MSH segment");
    };
    let msh = &msh;

    let code_raw = msh.comp(9, 0, 1, s).trim();
    let msh_trigger = upper(msh.comp(9, 0, 2, s).trim());
    if code_raw.is_empty() {
        return err(ErrorCode::Hl7MissingField, "MSH-9 is empty");
    }
    if !code_raw.eq_ignore_ascii_case("ADT") {
        let code = code_raw.to_ascii_uppercase();
        // Codes from closed lists, or lengths: never the producer's text (error.rs).
        let shown = match message_type_code(&code, &msh_trigger) {
            Some(t) => t,
            None => shown_message_code(&code),
        };
        return err(ErrorCode::Hl7NotAdt, format!("MSH-9 is {shown}"));
    }

    let evn = find(g, "EVN");
    let evn_trigger = evn
        .as_ref()
        .map(|e| upper(e.field(1).trim()))
        .filter(|t| !t.is_empty());
    let trigger = if !msh_trigger.is_empty() {
        msh_trigger
    } else if let Some(t) = &evn_trigger {
        t.clone()
    } else {
        return err(
            ErrorCode::Hl7MissingField,
            "MSH-9.2 and EVN-1 are both empty",
        );
    };
    let Some(rule) = rule(&trigger) else {
        let shown = shown_trigger(&trigger);
        return err(
            ErrorCode::Hl7UnsupportedTrigger,
            format!("trigger {shown} is not an ADT trigger A01-A62"),
        );
    };

    let control_id = txt(msh.field(10), s);
    if control_id.is_empty() {
        return err(ErrorCode::Hl7MissingField, "MSH-10 is empty");
    }
    // Times without an offset are read in the sending facility's zone (MSH-4.1).
    let sending_facility = txt(msh.comp(4, 0, 1, s), s);
    let tz = cfg.timezone_for(&sending_facility);
    let Some(message_time) = instant(msh, 7, 0, s, tz)? else {
        return err(ErrorCode::Hl7MissingField, "MSH-7 is empty");
    };
    let event_time = match &evn {
        Some(e) => match instant(e, 6, 0, s, tz)? {
            Some(t) => Some(t),
            None => instant(e, 2, 0, s, tz)?,
        },
        None => None,
    };

    let Some(pid) = find(g, "PID") else {
        return err(ErrorCode::Hl7MissingField, "PID segment is missing");
    };
    let patient = patient(&pid, s)?;
    let visit = find(g, "PV1").map(|pv1| visit(&pv1, s, tz)).transpose()?;
    let merge = match find(g, "MRG") {
        Some(mrg) => Some(merge(&mrg, s)),
        None if rule.requires_mrg => {
            return err(
                ErrorCode::Hl7MissingMrg,
                format!("{trigger} requires an MRG segment"),
            );
        }
        None => None,
    };
    if rule.requires_mrg
        && let Some(m) = &merge
        && m.prior_identifiers.is_empty()
        && m.prior_account_number.expose().is_none()
        && m.prior_visit_number.expose().is_none()
    {
        return err(
            ErrorCode::Hl7MissingMrg,
            "MRG-1, MRG-3 and MRG-5 are all empty",
        );
    }

    let opt_code = |n: usize| opt(msh.comp(n, 0, 1, s), s);
    Ok(AdtMessage {
        message_type: ["ADT", &trigger].join_compact("^"),
        trigger,
        evn_trigger,
        structure: opt(msh.comp(9, 0, 3, s), s),
        event_type: rule.kind,
        control_id,
        sending_application: txt(msh.comp(3, 0, 1, s), s),
        sending_facility,
        receiving_application: txt(msh.comp(5, 0, 1, s), s),
        receiving_facility: txt(msh.comp(6, 0, 1, s), s),
        version: opt_code(12),
        processing_id: opt_code(11),
        message_time_ms: message_time.epoch_ms(),
        message_time,
        event_time,
        patient,
        visit,
        merge,
    })
}

fn patient(pid: &Fields<'_>, s: &Separators) -> Result<Patient, Hl7Error> {
    let identifiers: Vec<PatientId> = pid.reps(3, s).filter_map(|r| cx(r, s)).collect();
    if identifiers.is_empty() {
        return err(ErrorCode::Hl7MissingField, "PID-3 has no identifier");
    }
    let name = {
        let [f, g, m] = pid.comps(5, 0, s);
        let family = txt(first_sub(f, s), s);
        let given = txt(g, s);
        let middle = opt(m, s);
        (!family.is_empty() || !given.is_empty() || middle.is_some()).then_some(PersonName {
            family,
            given,
            middle,
        })
    };
    let birth_raw = pid.comp(7, 0, 1, s).trim();
    let birth_date = if birth_raw.is_empty() || birth_raw == "\"\"" {
        None
    } else {
        match parse_date(birth_raw) {
            Some(d) => Some(d),
            None => return err(ErrorCode::Hl7InvalidField, "PID-7 is not a valid date"),
        }
    };
    let address = {
        let [street, other, city, state, zip, country] = pid.comps(11, 0, s);
        let a = Address {
            street: txt(first_sub(street, s), s),
            other: txt(other, s),
            city: txt(city, s),
            state: txt(state, s),
            postal_code: txt(zip, s),
            country: txt(country, s),
        };
        let empty = [
            &a.street,
            &a.other,
            &a.city,
            &a.state,
            &a.postal_code,
            &a.country,
        ]
        .iter()
        .all(|v| v.is_empty());
        (!empty).then_some(a)
    };
    let death_indicator = match pid.comp(30, 0, 1, s).trim() {
        "Y" | "y" => Some(true),
        "N" | "n" => Some(false),
        _ => None,
    };
    Ok(Patient {
        identifiers,
        name: Phi(name),
        birth_date: Phi(birth_date),
        sex: Phi(opt(pid.comp(8, 0, 1, s), s)),
        address: Phi(address),
        death_indicator,
    })
}

fn visit(pv1: &Fields<'_>, s: &Separators, tz: Tz) -> Result<Visit, Hl7Error> {
    let location = {
        let p: [&str; 8] = pv1.comps(3, 0, s);
        let part = |c: usize| txt(first_sub(p[c - 1], s), s);
        let (point_of_care, room, bed) = (part(1), part(2), part(3));
        let (facility, building, floor) = (part(4), part(7), part(8));
        let mut shown = [""; 3];
        let mut k = 0;
        for v in [&point_of_care, &room, &bed] {
            if !v.is_empty() {
                shown[k] = v;
                k += 1;
            }
        }
        let display = shown[..k].iter().join_compact("/");
        let any = !display.is_empty()
            || !facility.is_empty()
            || !building.is_empty()
            || !floor.is_empty();
        any.then_some(Location {
            point_of_care,
            room,
            bed,
            facility,
            building,
            floor,
            display,
        })
    };
    let attending = {
        let [id, family, given] = pv1.comps(7, 0, s);
        let id = txt(id, s);
        let family = txt(first_sub(family, s), s);
        let given = txt(given, s);
        (!id.is_empty() || !family.is_empty() || !given.is_empty()).then_some(Provider {
            id,
            family,
            given,
        })
    };
    Ok(Visit {
        class: opt(pv1.comp(2, 0, 1, s), s),
        location,
        visit_number: Phi(opt(pv1.comp(19, 0, 1, s), s)),
        admit_time: instant(pv1, 44, 0, s, tz)?,
        discharge_time: instant(pv1, 45, 0, s, tz)?,
        attending: Phi(attending),
    })
}

fn merge(mrg: &Fields<'_>, s: &Separators) -> Merge {
    Merge {
        prior_identifiers: mrg.reps(1, s).filter_map(|r| cx(r, s)).collect(),
        prior_account_number: Phi(opt(mrg.comp(3, 0, 1, s), s)),
        prior_visit_number: Phi(opt(mrg.comp(5, 0, 1, s), s)),
    }
}

impl AdtMessage {
    /// The `minimal` PHI policy with the default identifier allow-list
    /// ([`IdentifierTypes::default`]: MR, PI, PN).
    pub fn phi_minimal(&self) -> serde_json::Value {
        self.phi_minimal_with(&IdentifierTypes::default())
    }

    /// The `minimal` PHI policy: identifiers and event facts; no name, birth date, sex,
    /// address, attending doctor or death indicator. Only identifiers whose type (PID-3.5,
    /// MRG-1.5) is on `id_types` are carried: minimum necessary, so a social security,
    /// licence, national or health-plan number, an unknown type or no type is left out.
    pub fn phi_minimal_with(&self, id_types: &IdentifierTypes) -> serde_json::Value {
        let ids = |v: &[PatientId]| {
            let kept: Vec<&PatientId> = v
                .iter()
                .filter(|id| id_types.allows(id.id_type.as_deref()))
                .collect();
            serde_json::to_value(kept).unwrap_or_default()
        };
        serde_json::json!({
            "message_type": self.message_type,
            "trigger": self.trigger,
            "evn_trigger": self.evn_trigger,
            "event_type": self.event_type,
            "control_id": self.control_id,
            "sending_application": self.sending_application,
            "sending_facility": self.sending_facility,
            "receiving_application": self.receiving_application,
            "receiving_facility": self.receiving_facility,
            "version": self.version,
            "processing_id": self.processing_id,
            "message_time": self.message_time,
            "message_time_ms": self.message_time_ms,
            "event_time": self.event_time,
            "patient": { "identifiers": ids(&self.patient.identifiers) },
            "visit": self.visit.as_ref().map(|v| serde_json::json!({
                "class": v.class,
                "location": v.location,
                "visit_number": v.visit_number,
                "admit_time": v.admit_time,
                "discharge_time": v.discharge_time,
            })),
            "merge": self.merge.as_ref().map(|m| serde_json::json!({
                "prior_identifiers": ids(&m.prior_identifiers),
                "prior_account_number": m.prior_account_number,
                "prior_visit_number": m.prior_visit_number,
            })),
        })
    }

    /// The `full` PHI policy: everything mapped.
    pub fn full(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}
