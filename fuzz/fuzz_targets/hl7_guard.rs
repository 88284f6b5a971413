//! Fuzz target: no byte string may panic the HL7 guard, the ADT mapping or `inspect`.
#![no_main]

use fleet_hl7::{MapConfig, inspect, parse_adt, split_messages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = MapConfig::default();
    for part in split_messages(data).into_iter().flatten() {
        let _ = parse_adt(&part, &cfg);
    }
    let _ = parse_adt(data, &cfg);
    let _ = inspect(data, &cfg);
});
