//! The `hl7-ingest inspect` view: one JSON object per message found in a file.

use crate::error::message_type_code;
use crate::{MapConfig, guard, parse_adt, split_messages};
use serde_json::{Value, json};

/// One JSON object per message for `hl7-ingest inspect`, in file order, each with `index`
/// (0-based position among the entries `split_messages` returns). Success:
/// `{"status":"ok", ...phi_minimal fields, "patient_ids":[{"id","authority","type"}]}` — no
/// names, birth dates or addresses. Failure: `{"status":"error","code","detail"}`.
pub fn inspect(input: &[u8], cfg: &MapConfig) -> Vec<Value> {
    split_messages(input)
        .into_iter()
        .enumerate()
        .map(
            |(index, part)| match part.and_then(|m| parse_adt(&m, cfg)) {
                Ok(adt) => {
                    let patient_ids: Vec<Value> = adt
                        .patient
                        .identifiers
                        .iter()
                        .map(|p| json!({"id": p.id, "authority": p.authority, "type": p.id_type}))
                        .collect();
                    let mut v = adt.phi_minimal();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("index".into(), json!(index));
                        o.insert("status".into(), json!("ok"));
                        o.insert("patient_ids".into(), Value::Array(patient_ids));
                    }
                    v
                }
                Err(e) => {
                    let mut v = json!({
                        "index": index,
                        "status": "error",
                        "code": e.code.as_str(),
                        "detail": e.detail,
                    });
                    if let (Some(o), Some((message_type, control_id))) =
                        (v.as_object_mut(), header(&input_part(input, index), cfg))
                    {
                        o.insert("message_type".into(), json!(message_type));
                        o.insert("control_id".into(), json!(control_id));
                    }
                    v
                }
            },
        )
        .collect()
}

/// The `index`-th message of `input` again (only on the error path, so splitting twice is fine).
fn input_part(input: &[u8], index: usize) -> Vec<u8> {
    split_messages(input)
        .into_iter()
        .nth(index)
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// MSH-9 and MSH-10 of a message the mapping refused, when its header is readable, so a feed
/// engineer can find the message. Neither field carries patient data; MSH-9 is shown only
/// when it is a code of HL7 table 0076 (and its trigger one of a letter and digits).
fn header(raw: &[u8], cfg: &MapConfig) -> Option<(String, String)> {
    let (text, seps) = guard::decode_message(raw, cfg).ok()?;
    let g = guard::guard(&text, seps).ok()?;
    let msh = g.first?.fields(&g.seps);
    let code = msh.comp(9, 0, 1, &g.seps).trim();
    let trigger = msh.comp(9, 0, 2, &g.seps).trim();
    let message_type = message_type_code(code, trigger)?;
    Some((message_type, msh.field(10).trim().to_string()))
}
