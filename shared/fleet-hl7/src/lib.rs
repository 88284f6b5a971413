//! HL7 v2 ADT ingestion core: a guard layer that turns raw feed bytes (MLLP frames, BOMs, any
//! line ending, batch files, declared character sets) into validated segments, and a mapping
//! from those segments to a typed [`AdtMessage`] carrying a [`PatientEventKind`].
//!
//! `hl7-parser` 0.3.0 (the card's choice) has defects that make it unsafe as the first thing
//! to see a message, and it costs ~200 µs for a 4.5 KB message; so the guard owns framing,
//! charset, segment structure, MSH delimiters and escape decoding, reads only the segments the
//! mapping needs, and reads timestamps with a hand-written copy of hl7-parser's grammar
//! (hl7-parser itself is now only a dev-dependency: the defect tests and the grammar's
//! reference). DESIGN.md lists every defect and the test that reproduces it.

mod dtm;
mod error;
mod escape;
mod event;
mod guard;
pub mod idtypes;
mod inspect;
pub mod key;
mod map;
mod model;
mod seg;
mod split;
mod text;

use std::collections::BTreeMap;

pub use dtm::Timestamp;
pub use error::Hl7Error;
pub use event::{PatientEventKind, TriggerRule, rule as trigger_rule};
pub use guard::charset_supported;
pub use idtypes::IdentifierTypes;
pub use inspect::inspect;
pub use map::parse_adt;
pub use model::{
    Address, AdtMessage, Location, Merge, Patient, PatientId, PersonName, Provider, Visit,
};
pub use split::split_messages;
pub use text::Text;

/// Mapping settings.
#[derive(Debug, Clone)]
pub struct MapConfig {
    /// Zone for MSH-7 and other timestamps sent without an offset, for every sending facility
    /// not in `facility_timezones`.
    pub timezone: chrono_tz::Tz,
    /// Zones by sending facility: MSH-4.1 (the namespace id), decoded and trimmed, matched
    /// exactly. A message from a facility listed here has its times without an offset read
    /// in that zone instead of `timezone`.
    pub facility_timezones: BTreeMap<String, chrono_tz::Tz>,
    /// Largest message accepted, in bytes, before any parsing.
    pub max_message_bytes: usize,
}

impl MapConfig {
    /// The zone for times without an offset in a message from `sending_facility` (MSH-4.1).
    pub fn timezone_for(&self, sending_facility: &str) -> chrono_tz::Tz {
        self.facility_timezones
            .get(sending_facility)
            .copied()
            .unwrap_or(self.timezone)
    }
}

impl Default for MapConfig {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::Tz::UTC,
            facility_timezones: BTreeMap::new(),
            max_message_bytes: 1024 * 1024,
        }
    }
}
