//! Single-page images: one synchronous `DetectDocumentText` call.

use aws_sdk_textract::primitives::Blob;
use aws_sdk_textract::types::Document as TextractDocument;
use fleet_docs::schema::OcrResult;
use fleet_docs::{DocError, Document};

use super::blocks::ocr_result;
use super::errors::{classify_sdk, detect_code};
use super::{OP_DETECT, TextractOcr, no_sdk_retries, s3_object};

impl TextractOcr {
    pub(super) async fn detect(&self, document: &Document) -> Result<OcrResult, DocError> {
        let doc = match &document.location {
            Some(loc) => TextractDocument::builder()
                .s3_object(s3_object(loc))
                .build(),
            None => TextractDocument::builder()
                .bytes(Blob::new(document.bytes.clone()))
                .build(),
        };
        let out = self
            .retry
            .run(|| async {
                self.client
                    .detect_document_text()
                    .document(doc.clone())
                    .customize()
                    .config_override(no_sdk_retries())
                    .send()
                    .await
                    .map_err(|e| classify_sdk(OP_DETECT, &e, detect_code))
            })
            .await?;
        let pages = out.document_metadata().and_then(|m| m.pages());
        Ok(ocr_result(out.blocks(), pages, &[]))
    }
}
