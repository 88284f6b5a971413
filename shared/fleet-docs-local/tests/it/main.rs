//! The one integration-test binary of `fleet-docs-local`: `ocr` runs `TesseractOcr` against the
//! real Tesseract and poppler (`scripts/ocr-tools`), `rules` the rules extractor.

mod ocr;
mod rules;
