//! Arbitrary text as a failure detail and as the `fleet.failure` attribute a dead letter
//! carries (dlq-replay reads it back from messages anyone could have sent to the DLQ).
//! Properties: nothing panics; a sanitised detail is bounded and has no control characters;
//! an attribute that parses round-trips unchanged.
#![no_main]

use fleet_core::failure::{FAILURE_ATTRIBUTE, FailureMetadata, MAX_DETAIL_BYTES};
use fleet_core::ports::{AttributeValue, Attributes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let detail = FailureMetadata::sanitise_detail(&text);
    assert!(detail.len() <= MAX_DETAIL_BYTES);
    assert!(!detail.chars().any(char::is_control));

    let mut attrs = Attributes::new();
    attrs.insert(
        FAILURE_ATTRIBUTE.into(),
        AttributeValue {
            data_type: "String.json".into(),
            string_value: Some(text.into_owned()),
            binary_value: None,
        },
    );
    if let Some(m) = FailureMetadata::from_attributes(&attrs) {
        let mut again = Attributes::new();
        again.insert(FAILURE_ATTRIBUTE.into(), m.to_attribute());
        assert_eq!(FailureMetadata::from_attributes(&again), Some(m));
    }
});
