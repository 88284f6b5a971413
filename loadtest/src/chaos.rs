//! What a run does to the worker (kills and SIGTERMs at seeded moments) and the check of the
//! worker's records afterwards: one event record per well-formed message, carrying the id of
//! the event that was published, and none for a poison message.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use fleet_core::ports::RecordStore;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::generate::Message;
use crate::scenario::Faults;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DisruptionKind {
    /// SIGKILL: nothing is flushed; held messages come back after the visibility timeout.
    Kill,
    /// SIGTERM: the worker drains, flushes its deletes, hands back what it did not start.
    Term,
}

/// The disruptions of a run: (seconds after the worker first reported ready, kind), in time
/// order. The same faults and seed give the same plan.
pub fn plan(f: &Faults, seed: u64) -> Vec<(f64, DisruptionKind)> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x6b69_6c6c);
    let mut kinds: Vec<DisruptionKind> =
        std::iter::repeat_n(DisruptionKind::Kill, f.kills as usize)
            .chain(std::iter::repeat_n(
                DisruptionKind::Term,
                f.sigterms as usize,
            ))
            .collect();
    kinds.shuffle(&mut rng);
    let [from, to] = f.window_s;
    let mut times: Vec<f64> = kinds
        .iter()
        .map(|_| {
            if to > from {
                rng.random_range(from..to)
            } else {
                from
            }
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times.into_iter().zip(kinds).collect()
}

/// One disruption as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Disruption {
    pub kind: DisruptionKind,
    /// Seconds after the run's start.
    pub at_s: f64,
    /// Messages with an outcome when it happened.
    pub accounted_before: usize,
    /// SIGTERM: seconds from the signal to the exit, whether the exit status was success, and
    /// the source queue's in-flight count straight after (must be 0: nothing left invisible).
    pub exit_s: Option<f64>,
    pub exit_ok: Option<bool>,
    pub in_flight_after_exit: Option<u64>,
    /// Seconds from the disruption until the restarted worker reported ready.
    pub ready_s: Option<f64>,
    /// Seconds from the disruption until the first outcome produced after the restart.
    pub recovery_s: Option<f64>,
}

/// The records check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecordCheck {
    /// Well-formed messages whose event record was looked up.
    pub checked: u64,
    /// Well-formed messages without an event record.
    pub missing: u64,
    /// Event records whose event id is not the one published for that message (a second
    /// write that replaced the first, or an event published under another id).
    pub conflicting: u64,
    /// Poison messages that have an event record (must be none).
    pub for_poison: u64,
}

impl RecordCheck {
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.conflicting == 0 && self.for_poison == 0
    }
}

/// MSH-4's first component (the sending facility) of a body, if it has an MSH.
fn sending_facility(body: &str) -> Option<&str> {
    let msh = body.split(['\r', '\n']).next()?;
    if !msh.starts_with("MSH") || msh.len() < 4 {
        return None;
    }
    let sep = msh[3..].chars().next()?;
    let field = msh.split(sep).nth(3)?;
    Some(field.split('^').next().unwrap_or(field))
}

/// Look up every message's event record. `ids_by_control`: the event ids seen on the tap for
/// each control id.
pub async fn check_records(
    records: Arc<dyn RecordStore>,
    messages: &[Message],
    ids_by_control: &HashMap<String, HashSet<String>>,
) -> anyhow::Result<RecordCheck> {
    let lookups: Vec<(usize, String, &'static str)> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.control_id.is_empty())
        .filter_map(|(i, m)| {
            let facility = sending_facility(&m.body)?;
            let (pk, sk) = hl7_ingest::handler::event_record_key(facility, &m.control_id);
            Some((i, pk, sk))
        })
        .collect();
    let found: Vec<anyhow::Result<(usize, Option<String>)>> = futures::stream::iter(lookups)
        .map(|(i, pk, sk)| {
            let records = records.clone();
            async move {
                let rec = records.get(&pk, sk).await?;
                let id = rec.map(|r| r.data["event_id"].as_str().unwrap_or("").to_string());
                Ok((i, id))
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut check = RecordCheck::default();
    let mut with_record = HashSet::new();
    for r in found {
        let (i, id) = r?;
        let m = &messages[i];
        match (m.expected_failure, id) {
            (Some(_), Some(_)) => check.for_poison += 1,
            (Some(_), None) => {}
            (None, Some(id)) => {
                with_record.insert(i);
                let published = ids_by_control.get(&m.control_id);
                if !published.is_some_and(|ids| ids.len() == 1 && ids.contains(&id)) {
                    check.conflicting += 1;
                }
            }
            (None, None) => {}
        }
    }
    let well_formed = messages
        .iter()
        .filter(|m| m.expected_failure.is_none())
        .count() as u64;
    check.checked = well_formed;
    check.missing = well_formed - with_record.len() as u64;
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_is_seeded_sorted_and_inside_the_window() {
        let f = Faults {
            kills: 10,
            sigterms: 2,
            window_s: [2.0, 30.0],
            ..Faults::default()
        };
        let a = plan(&f, 7);
        assert_eq!(a.len(), 12);
        assert_eq!(
            a.iter().filter(|(_, k)| *k == DisruptionKind::Kill).count(),
            10
        );
        assert!(a.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(a.iter().all(|(t, _)| (2.0..30.0).contains(t)));
        let times = |p: &[(f64, DisruptionKind)]| p.iter().map(|(t, _)| *t).collect::<Vec<_>>();
        assert_eq!(times(&a), times(&plan(&f, 7)));
        assert_ne!(times(&a), times(&plan(&f, 8)));
        assert!(plan(&Faults::default(), 7).is_empty());
    }

    #[test]
    fn the_sending_facility_is_msh_4() {
        assert_eq!(
            sending_facility("MSH|^~\\&|EPICADT|GENHOSP^1.2.3^ISO|FLEET|FLEET\rPID|1"),
            Some("GENHOSP")
        );
        assert_eq!(sending_facility("PID|1||X"), None);
        assert_eq!(sending_facility("MSH"), None);
    }
}
