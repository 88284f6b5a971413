//! OCR and entity-extractor selection for the document worker: one clap argument group and
//! the functions that open the chosen adapters, so the worker names no adapter crate.

use std::sync::Arc;

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
    /// with the packages to install.
    pub async fn open_ocr(&self, backend: BackendKind) -> anyhow::Result<Arc<dyn Ocr>> {
        match self.ocr_kind(backend) {
            OcrKind::Tesseract => {
                let ocr = fleet_docs_local::ocr::TesseractOcr::new(
                    fleet_docs_local::ocr::LocalOcrConfig::default(),
                );
                ocr.check().await?;
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
