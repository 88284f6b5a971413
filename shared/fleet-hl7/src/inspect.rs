//! The `hl7-ingest inspect` view: one JSON object per message found in a file.

use crate::{MapConfig, parse_adt, split_messages};
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
                Err(e) => json!({
                    "index": index,
                    "status": "error",
                    "code": e.code.as_str(),
                    "detail": e.detail,
                }),
            },
        )
        .collect()
}
