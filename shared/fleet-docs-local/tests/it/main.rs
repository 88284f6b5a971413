//! The one integration-test binary of `fleet-docs-local`: `ocr` runs `TesseractOcr` against the
//! real Tesseract and poppler (`scripts/ocr-tools`), `rules` the rules extractor, `item3`
//! the limits against decompression bombs and runaway tools (issue 16 item 3), `parallel`
//! the pages OCR'd at once up to the bound and returned in order (issue 19), `layer` no
//! `pdftotext` run for a scanned PDF (issue 19).

mod item3;
mod layer;
mod ocr;
mod parallel;
mod rules;
