//! `doc-pipeline extract FILE...`: the configured OCR and extractor on local files, one JSON
//! line per file on stdout, no store touched. The printed text is the engineer's own document
//! on their own terminal; nothing of it goes to the log.

use std::io::Write;
use std::path::Path;

use fleet_core::ErrorCode;
use fleet_docs::schema::{Entity, EntityAttribute, OcrResult, Trait};
use fleet_docs::{DocError, Document, EntityExtractor, MediaType, Ocr, OcrStart};
use serde_json::{Value, json};

/// Extract every file, printing one line each. `Ok(true)` when every file was processed.
pub async fn extract(
    files: &[impl AsRef<Path>],
    ocr: &dyn Ocr,
    extractor: &dyn EntityExtractor,
    out: &mut (impl Write + Send),
) -> anyhow::Result<bool> {
    let mut all_ok = true;
    for file in files {
        let file = file.as_ref();
        let line = match extract_one(file, ocr, extractor).await {
            Ok(v) => v,
            Err((code, detail)) => {
                all_ok = false;
                json!({
                    "file": file.display().to_string(),
                    "status": "error",
                    "code": code,
                    "detail": detail,
                })
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(all_ok)
}

async fn extract_one(
    file: &Path,
    ocr: &dyn Ocr,
    extractor: &dyn EntityExtractor,
) -> Result<Value, (String, String)> {
    let fail = |code: ErrorCode, detail: String| (code.as_str().to_string(), detail);
    let doc_err = |e: DocError| match e {
        DocError::Permanent { code, detail } => (code.as_str().to_string(), detail),
        DocError::Retryable { reason, detail, .. } => {
            (format!("RETRYABLE_{}", reason.to_uppercase()), detail)
        }
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(ErrorCode::DocumentNotFound, "no such file".into()));
        }
        Err(e) => return Err(("FILE_UNREADABLE".into(), e.to_string())),
    };
    if bytes.is_empty() {
        return Err(fail(
            ErrorCode::DocumentEmpty,
            "the file has zero bytes".into(),
        ));
    }
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let media_type = MediaType::sniff(&bytes, name, None).ok_or_else(|| {
        fail(
            ErrorCode::DocumentUnsupportedType,
            "content is not PDF, PNG, JPEG, TIFF or UTF-8 text (.txt)".into(),
        )
    })?;
    let (result, engine) = if media_type == MediaType::Text {
        let text = String::from_utf8(bytes)
            .map_err(|_| fail(ErrorCode::DocumentCorrupt, "text is not UTF-8".into()))?;
        (OcrResult::from_plain_text(&text), "none")
    } else {
        let doc = Document {
            media_type,
            bytes,
            location: None,
        };
        match ocr
            .start(&doc, "doc-pipeline-extract")
            .await
            .map_err(doc_err)?
        {
            OcrStart::Done(r) => (r, ocr.name()),
            OcrStart::Started { .. } => {
                return Err(fail(
                    ErrorCode::OcrFailed,
                    "the OCR engine started an asynchronous job, which extract cannot wait for"
                        .into(),
                ));
            }
        }
    };
    let text = result.text();
    let entities = extractor.detect(&text).await.map_err(doc_err)?;
    Ok(json!({
        "file": file.display().to_string(),
        "status": "ok",
        "media_type": media_type.mime(),
        "ocr_engine": engine,
        "extractor": extractor.name(),
        "pages": result.pages.len(),
        "warnings": result.warnings,
        "text": text,
        "entities": entities.iter().map(entity_json).collect::<Vec<_>>(),
    }))
}

fn traits_json(traits: &[Trait]) -> Value {
    traits
        .iter()
        .map(|t| json!({"name": t.name, "score": t.score}))
        .collect()
}

fn attribute_json(a: &EntityAttribute) -> Value {
    json!({
        "type": a.attribute_type,
        "text": a.text,
        "begin_offset": a.begin_offset,
        "end_offset": a.end_offset,
        "score": a.score,
        "relationship_type": a.relationship_type,
        "relationship_score": a.relationship_score,
        "traits": traits_json(&a.traits),
    })
}

/// An entity as `extract` prints it: Comprehend Medical's field meanings, snake_case names.
pub fn entity_json(e: &Entity) -> Value {
    json!({
        "id": e.id,
        "category": e.category,
        "type": e.entity_type,
        "text": e.text,
        "score": e.score,
        "begin_offset": e.begin_offset,
        "end_offset": e.end_offset,
        "traits": traits_json(&e.traits),
        "attributes": e.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
    })
}
