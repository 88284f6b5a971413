//! Synthetic data the project invents: patients, HL7 ADT messages (well-formed and malformed,
//! each with the code the worker must give it) and short clinical letters. The demo seeds them,
//! the load tool generates its stream from them, and the tests scan every log for their names,
//! birth dates and MRNs. No deployable worker links this crate (`tests/it/arch.rs` checks it):
//! it is here, not in the test kit, because `fleet demo` ships with the launcher.

pub mod docs;
pub mod hl7;
