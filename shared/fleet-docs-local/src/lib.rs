//! Local document adapters for the embedded backend: [`ocr`] reads PDFs (text layer, else
//! rasterised) and images with Tesseract; [`rules`] finds medications, conditions, tests,
//! procedures and anatomy with a shipped vocabulary and rules, negation included;
//! [`render`] turns text into PDFs and page images for the demo, tests and quality script.

pub mod ocr;
pub mod render;
pub mod rules;
