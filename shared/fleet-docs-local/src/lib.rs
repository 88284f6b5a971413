//! Local document adapters for the embedded backend: [`ocr`] reads PDFs (text layer, else
//! rasterised) and images with Tesseract; [`rules`] finds medications, conditions, tests,
//! procedures and anatomy with a shipped vocabulary and rules, negation included.

pub mod ocr;
pub mod rules;
