//! Arbitrary bytes as an EventBridge-style pattern and an event (split at the first newline):
//! the rules matcher used by the local bus and by notify's routing must never panic, whatever
//! the pattern's shape or the event's nesting.
#![no_main]

use fleet_pattern::Pattern;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, event) = text.split_once('\n').unwrap_or((&text, "{}"));
    let Ok(p) = Pattern::parse(pattern) else {
        return;
    };
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(event) {
        let _ = p.matches(&event);
        // An event is also a pattern-shaped value: from_value must refuse or accept, not panic.
        let _ = Pattern::from_value(&event);
    }
});
