//! Document pipeline domain (issue #4): what the document worker needs that is neither AWS
//! nor a backend. [`s3event`] turns a queue body (S3, S3 via SNS, S3 via EventBridge) into the
//! objects to process; [`schema`] is the OCR and medical-entity result format every adapter
//! fills and the results JSON is written in; [`chunk`] cuts document text to Comprehend
//! Medical's request limit and maps entity offsets back onto the document.

pub mod chunk;
pub mod completion;
pub mod ports;
pub mod s3event;
pub mod schema;

pub use ports::{
    DocError, Document, EntityExtractor, MediaType, OCR_TIMEOUT, ObjectLocation, Ocr, OcrJob,
    OcrStart,
};
