use std::collections::VecDeque;

use fleet_core::ReceivedMessage;

use super::outgoing;
use super::send::take_batch;
use crate::message::Dead;

fn dead(id: &str, group: Option<&str>) -> Dead {
    Dead::new(ReceivedMessage {
        message_id: id.into(),
        receipt: format!("r-{id}"),
        body: "b".into(),
        attributes: [("a".to_string(), fleet_core::AttributeValue::string("v"))].into(),
        receive_count: 1,
        sent_timestamp_ms: 0,
        group_id: group.map(str::to_string),
        dedup_id: None,
        sequence_number: None,
        trace_header: None,
    })
}

fn ids(batch: &[(Option<String>, Dead)]) -> Vec<&str> {
    batch.iter().map(|(_, d)| d.id()).collect()
}

#[test]
fn standard_batches_gather_one_destination_up_to_ten() {
    let mut pending: VecDeque<(Option<String>, Dead)> = (0..25)
        .map(|i| {
            let dest = if i % 3 == 0 { "b" } else { "a" };
            (Some(dest.to_string()), dead(&format!("m{i}"), None))
        })
        .collect();
    // The first pending message's destination: "b" has m0, m3, ..., m24.
    let first = take_batch(&mut pending, false, 10);
    assert_eq!(
        ids(&first),
        ["m0", "m3", "m6", "m9", "m12", "m15", "m18", "m21", "m24"]
    );
    let second = take_batch(&mut pending, false, 10);
    assert_eq!(second.len(), 10);
    assert!(second.iter().all(|(d, _)| d.as_deref() == Some("a")));
    assert_eq!(ids(&second)[..3], ["m1", "m2", "m4"]);
    assert_eq!(pending.len(), 25 - 9 - 10);
    // A rate below 10 per second caps the batch.
    assert_eq!(ids(&take_batch(&mut pending, false, 2)), ["m16", "m17"]);
}

#[test]
fn fifo_batches_are_consecutive_with_one_message_per_group() {
    let groups = ["g1", "g2", "g1", "g3"];
    let mut pending: VecDeque<(Option<String>, Dead)> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (Some("q.fifo".to_string()), dead(&format!("m{i}"), Some(g))))
        .collect();
    assert_eq!(ids(&take_batch(&mut pending, true, 10)), ["m0", "m1"]);
    assert_eq!(ids(&take_batch(&mut pending, true, 10)), ["m2", "m3"]);
    assert!(take_batch(&mut pending, true, 10).is_empty());
}

#[test]
fn outgoing_keeps_body_attributes_and_group_with_a_stable_new_dedup_id() {
    let d = dead("dlq-7", Some("patient-1"));
    let fifo = outgoing(&d, true);
    assert_eq!(fifo.body, "b");
    assert_eq!(fifo.attributes, d.msg.attributes);
    assert_eq!(fifo.group_id.as_deref(), Some("patient-1"));
    let dedup = fifo.dedup_id.clone().unwrap();
    assert!(
        dedup.starts_with("replay-") && dedup.len() <= 128,
        "{dedup}"
    );
    assert_eq!(outgoing(&d, true).dedup_id, Some(dedup.clone()));
    assert_ne!(
        outgoing(&dead("dlq-8", Some("patient-1")), true).dedup_id,
        Some(dedup)
    );
    let standard = outgoing(&d, false);
    assert_eq!((standard.group_id, standard.dedup_id), (None, None));
}
