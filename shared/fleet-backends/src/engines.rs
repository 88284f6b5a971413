//! OCR and entity-extractor selection for the document worker: one clap argument group and
//! the functions that open the chosen adapters, so the worker names no adapter crate.

use std::sync::Arc;
use std::time::Duration;

use fleet_core::env;
use fleet_docs::{EntityExtractor, Ocr};

use fleet_runtime::BackendKind;

/// Which OCR engine reads documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OcrKind {
    /// Tesseract (Debian `tesseract-ocr`), PDFs by their text layer or rasterised with
    /// `pdftoppm` (`poppler-utils`). Offline; the local backend's default.
    Tesseract,
    /// Amazon Textract: DetectDocumentText for images, asynchronous StartDocumentTextDetection
    /// for PDF and TIFF. The aws backend's default.
    Textract,
}

/// Which extractor finds medical entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExtractorKind {
    /// The built-in dictionary-and-rules extractor. Offline; the local backend's default.
    Rules,
    /// Amazon Comprehend Medical DetectEntitiesV2. The aws backend's default.
    ComprehendMedical,
}

/// Engine options of the document worker.
#[derive(Debug, Clone, clap::Args)]
pub struct DocEngineArgs {
    /// OCR engine. Default: `textract` on the aws backend, `tesseract` on the local one.
    #[arg(long, env = env::DOC_OCR, value_enum)]
    pub ocr: Option<OcrKind>,
    /// Entity extractor. Default: `comprehend-medical` on aws, `rules` on local.
    #[arg(long, env = env::DOC_EXTRACTOR, value_enum)]
    pub extractor: Option<ExtractorKind>,
    /// Textract asynchronous jobs: the completion channel's SNS topic.
    #[arg(long, env = env::TEXTRACT_SNS_TOPIC_ARN)]
    pub textract_sns_topic_arn: Option<String>,
    /// Textract asynchronous jobs: the role Textract assumes to publish to that topic.
    #[arg(long, env = env::TEXTRACT_ROLE_ARN)]
    pub textract_role_arn: Option<String>,
    /// Limits of the local OCR engine (Tesseract).
    #[command(flatten)]
    pub local: LocalOcrArgs,
}

/// The local OCR engine's limits against decompression bombs and runaway tools.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalOcrArgs {
    /// Documents with more pages are refused (`DOCUMENT_TOO_LARGE`) before any page is read.
    #[arg(long, env = env::DOC_MAX_PAGES, default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_document_pages: u32,
    /// A page with more pixels (an image, a TIFF page, a PDF page at 300 dpi) is refused
    /// (`DOCUMENT_TOO_LARGE`) before it is rasterised or read.
    #[arg(long, env = env::DOC_MAX_PIXELS_PER_PAGE, default_value_t = 50_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_page_pixels: u64,
    /// Wall-clock seconds one OCR tool process (pdfinfo, pdftoppm, tesseract; pdftotext per
    /// page) may run; then its process group is killed and the document retried once, then
    /// dead-lettered as `OCR_FAILED`.
    #[arg(long, env = env::DOC_OCR_PROCESS_TIMEOUT, default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ocr_process_timeout_secs: u64,
}

impl Default for LocalOcrArgs {
    fn default() -> Self {
        let defaults = fleet_docs_local::ocr::LocalOcrConfig::default();
        Self {
            max_document_pages: defaults.max_pages,
            max_page_pixels: defaults.max_pixels_per_page,
            ocr_process_timeout_secs: defaults.page_timeout.as_secs(),
        }
    }
}

impl LocalOcrArgs {
    /// The local engine's configuration: these limits over its defaults.
    pub fn config(&self) -> fleet_docs_local::ocr::LocalOcrConfig {
        fleet_docs_local::ocr::LocalOcrConfig {
            max_pages: self.max_document_pages,
            max_pixels_per_page: self.max_page_pixels,
            page_timeout: Duration::from_secs(self.ocr_process_timeout_secs),
            ..fleet_docs_local::ocr::LocalOcrConfig::default()
        }
    }
}

impl DocEngineArgs {
    pub fn ocr_kind(&self, backend: BackendKind) -> OcrKind {
        self.ocr.unwrap_or(match backend {
            BackendKind::Aws => OcrKind::Textract,
            BackendKind::Local => OcrKind::Tesseract,
        })
    }

    pub fn extractor_kind(&self, backend: BackendKind) -> ExtractorKind {
        self.extractor.unwrap_or(match backend {
            BackendKind::Aws => ExtractorKind::ComprehendMedical,
            BackendKind::Local => ExtractorKind::Rules,
        })
    }

    /// Open the OCR engine; a local engine whose tools are missing is refused here, at start,
    /// with the packages to install, and removes the temporary directories a killed worker
    /// left behind.
    pub async fn open_ocr(&self, backend: BackendKind) -> anyhow::Result<Arc<dyn Ocr>> {
        match self.ocr_kind(backend) {
            OcrKind::Tesseract => {
                let ocr = fleet_docs_local::ocr::TesseractOcr::new(self.local.config());
                ocr.check().await?;
                match ocr.remove_stale_dirs() {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "stale OCR temporary directories removed"),
                    Err(e) => tracing::warn!(
                        error = %e.kind(),
                        "the temporary directory could not be searched for stale OCR directories"
                    ),
                }
                Ok(Arc::new(ocr))
            }
            OcrKind::Textract => Ok(Arc::new(
                fleet_aws::TextractOcr::from_env(fleet_aws::TextractConfig {
                    sns_topic_arn: self.textract_sns_topic_arn.clone(),
                    role_arn: self.textract_role_arn.clone(),
                })
                .await,
            )),
        }
    }

    pub async fn open_extractor(
        &self,
        backend: BackendKind,
    ) -> anyhow::Result<Arc<dyn EntityExtractor>> {
        match self.extractor_kind(backend) {
            ExtractorKind::Rules => Ok(Arc::new(fleet_docs_local::rules::RulesExtractor::new())),
            ExtractorKind::ComprehendMedical => Ok(Arc::new(
                fleet_aws::ComprehendMedicalExtractor::from_env().await,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        engines: DocEngineArgs,
    }

    #[test]
    fn local_ocr_limits_default_and_bind_to_flags() {
        let defaults = Cli::try_parse_from(["x"]).unwrap().engines.local;
        assert_eq!(
            defaults.config(),
            fleet_docs_local::ocr::LocalOcrConfig::default()
        );
        let set = Cli::try_parse_from([
            "x",
            "--max-document-pages",
            "3",
            "--max-page-pixels",
            "1000",
            "--ocr-process-timeout-secs",
            "7",
        ])
        .unwrap()
        .engines
        .local
        .config();
        assert_eq!(
            (set.max_pages, set.max_pixels_per_page, set.page_timeout),
            (3, 1000, Duration::from_secs(7))
        );
        assert!(Cli::try_parse_from(["x", "--ocr-process-timeout-secs", "0"]).is_err());
    }
}
