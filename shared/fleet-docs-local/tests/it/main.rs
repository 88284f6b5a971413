//! The one integration-test binary of `fleet-docs-local`: `ocr` runs `TesseractOcr` against the
//! real Tesseract and poppler (`scripts/ocr-tools`), `rules` the rules extractor, `item3`
//! the limits against decompression bombs and runaway tools (issue 16 item 3).

mod item3;
mod ocr;
mod rules;
