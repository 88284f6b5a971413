//! The two document ports: OCR and medical-entity extraction. Each has an AWS adapter
//! (Textract, Comprehend Medical DetectEntitiesV2, in `fleet-aws`) and a local one (Tesseract
//! with poppler, the rules extractor, in `fleet-docs-local`); the worker sees only these traits.
//!
//! Errors are classified once, at the adapter, as the fleet's [`fleet_core::Failure`]:
//! `Permanent` carries a code from the closed list and goes to the DLQ; `Retryable` is retried
//! with backoff. Details are the adapter's own words and service error codes, never document
//! text or object keys.

use async_trait::async_trait;
use fleet_core::phi::Phi;

use crate::schema::{Entity, OcrResult};

/// What a document is, judged by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    /// UTF-8 plain text: no OCR, the text is the document.
    Text,
}

impl MediaType {
    /// The type of `bytes` by its magic number; plain text only when the bytes are valid
    /// UTF-8 without NULs *and* the name or content type says text (so a random binary that
    /// happens to be UTF-8 is not taken for a letter). `None`: unsupported.
    pub fn sniff(bytes: &[u8], name: &str, content_type: Option<&str>) -> Option<Self> {
        if bytes.starts_with(b"%PDF-") {
            return Some(Self::Pdf);
        }
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Some(Self::Png);
        }
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Some(Self::Jpeg);
        }
        if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
            return Some(Self::Tiff);
        }
        let says_text = content_type.is_some_and(|c| c.trim().starts_with("text/plain"))
            || name
                .rsplit_once('.')
                .is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("txt"));
        if says_text && !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok() {
            return Some(Self::Text);
        }
        None
    }

    /// The MIME type, for results and logs.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Tiff => "image/tiff",
            Self::Text => "text/plain",
        }
    }

    /// Whether OCR may have several pages to read (Textract then needs its asynchronous API).
    pub fn multi_page(self) -> bool {
        matches!(self, Self::Pdf | Self::Tiff)
    }
}

/// Where a document lives in the object store, when it does (Textract reads it from there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectLocation {
    pub bucket: String,
    pub key: Phi<String>,
    pub version_id: Option<String>,
}

/// One document to read.
#[derive(Debug, Clone)]
pub struct Document {
    pub media_type: MediaType,
    /// The whole content. Adapters that read from the object store may ignore it.
    pub bytes: Vec<u8>,
    pub location: Option<ObjectLocation>,
}

/// A failure of an OCR or extraction adapter: the fleet's one failure type, under the name
/// the document ports have always used for it (so adapters read as before).
pub type DocError = fleet_core::Failure;

/// The retry reason of an OCR tool process killed on its wall-clock timeout. The worker
/// retries it once: on a later attempt it is the permanent `OCR_FAILED`.
pub const OCR_TIMEOUT: &str = "ocr_timeout";

/// What starting OCR gave.
#[derive(Debug, Clone, PartialEq)]
pub enum OcrStart {
    /// The text, read synchronously (Tesseract; Textract DetectDocumentText).
    Done(OcrResult),
    /// An asynchronous job was started (Textract StartDocumentTextDetection); its completion
    /// arrives on the completion channel, tagged with the token passed to [`Ocr::start`].
    Started { job_id: String },
}

/// The state of an asynchronous OCR job.
#[derive(Debug, Clone, PartialEq)]
pub enum OcrJob {
    InProgress,
    /// SUCCEEDED or PARTIAL_SUCCESS (then `result.warnings` names the pages that failed).
    Done(OcrResult),
}

/// OCR: document in, pages of lines and words out (reading order).
#[async_trait]
pub trait Ocr: Send + Sync {
    /// A fixed name for results and logs ("textract", "tesseract").
    fn name(&self) -> &'static str;

    /// Whether [`Ocr::start`] answers documents of this type with an asynchronous job, so the
    /// caller must record the document under its token first (the completion may arrive
    /// before `start` returns).
    fn starts_job(&self, media_type: MediaType) -> bool {
        let _ = media_type;
        false
    }

    /// Read `document`, or start reading it. `token` is deterministic per document version
    /// (at most 64 characters of `[A-Za-z0-9_-]`): starting twice with the same token starts
    /// one job, and the completion notification carries it back as the job tag.
    async fn start(&self, document: &Document, token: &str) -> Result<OcrStart, DocError>;

    /// Collect an asynchronous job, all of its result pages. Engines that never start jobs
    /// answer with a permanent `OCR_COMPLETION_INVALID`.
    async fn collect(&self, job_id: &str) -> Result<OcrJob, DocError>;
}

/// Medical entities in text, with character offsets into that text.
#[async_trait]
pub trait EntityExtractor: Send + Sync {
    /// A fixed name for results and logs ("comprehend-medical", "rules").
    fn name(&self) -> &'static str;

    /// Entities of the whole `text` (adapters with a request limit chunk it themselves, see
    /// [`crate::chunk`]), ids unique within the result, offsets in characters of `text`.
    async fn detect(&self, text: &str) -> Result<Vec<Entity>, DocError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_not_name() {
        assert_eq!(
            MediaType::sniff(b"%PDF-1.7\n...", "scan.png", Some("image/png")),
            Some(MediaType::Pdf)
        );
        assert_eq!(
            MediaType::sniff(b"\x89PNG\r\n\x1a\n\0\0", "a.pdf", None),
            Some(MediaType::Png)
        );
        assert_eq!(
            MediaType::sniff(&[0xFF, 0xD8, 0xFF, 0xE0], "x", None),
            Some(MediaType::Jpeg)
        );
        assert_eq!(
            MediaType::sniff(b"II*\0\x08", "x", None),
            Some(MediaType::Tiff)
        );
        assert_eq!(
            MediaType::sniff(b"MM\0*\0", "x", None),
            Some(MediaType::Tiff)
        );
        assert_eq!(
            MediaType::sniff(b"Aspirin 81 mg", "note.TXT", None),
            Some(MediaType::Text)
        );
        assert_eq!(
            MediaType::sniff(b"Aspirin 81 mg", "note", Some("text/plain; charset=utf-8")),
            Some(MediaType::Text)
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        // Text without a text name or type, text with NULs, Latin-1 bytes, a Word file.
        assert_eq!(MediaType::sniff(b"hello", "note.docx", None), None);
        assert_eq!(MediaType::sniff(b"he\0llo", "a.txt", None), None);
        assert_eq!(MediaType::sniff(b"caf\xe9", "a.txt", None), None);
        assert_eq!(
            MediaType::sniff(b"PK\x03\x04", "letter.docx", Some("application/zip")),
            None
        );
        assert_eq!(MediaType::sniff(b"", "a.pdf", None), None);
    }

    #[test]
    fn only_pdf_and_tiff_may_have_pages() {
        assert!(MediaType::Pdf.multi_page() && MediaType::Tiff.multi_page());
        assert!(!MediaType::Png.multi_page() && !MediaType::Jpeg.multi_page());
        assert_eq!(MediaType::Jpeg.mime(), "image/jpeg");
    }
}
