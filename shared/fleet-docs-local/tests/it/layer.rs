//! Issue 19: a PDF whose bytes name no font (nor an object stream, a cross-reference stream or
//! an annotation list) is a scan: no `pdftotext` run for it, its pages go straight to
//! `pdftoppm` and Tesseract. A PDF with a text layer is still read through it. Every tool is a
//! spy (`item3::Tools`) running the real one, so the tests see which ran.

use fleet_docs::schema::OcrResult;
use fleet_docs::{Document, MediaType, Ocr, OcrStart};
use fleet_docs_local::ocr::TesseractOcr;
use fleet_docs_local::render;

use crate::item3::Tools;

/// Made up: a line of the kind the pipeline reads.
const LINE: &str = "MEDICATIONS: Metformin 500 mg by mouth twice daily; lisinopril 10 mg daily.";

async fn read(ocr: &TesseractOcr, bytes: Vec<u8>) -> OcrResult {
    let document = Document {
        media_type: MediaType::Pdf,
        bytes,
        location: None,
    };
    match ocr.start(&document, "t").await.unwrap() {
        OcrStart::Done(result) => result,
        other => panic!("{other:?}"),
    }
}

fn sorted(mut ran: Vec<String>) -> Vec<String> {
    ran.sort();
    ran
}

#[tokio::test]
async fn issue19_a_scanned_pdf_never_runs_pdftotext_and_is_still_read() {
    let tools = Tools::new();
    let ocr = TesseractOcr::new(tools.config());
    // Two pages: the line, then as many blank lines as fill the page, then the line again.
    let text = format!("{LINE}{}{LINE}", "\n".repeat(render::LINES_PER_PAGE));
    let scan = render::text_to_scanned_pdf(&text, 150).await.unwrap();
    let result = read(&ocr, scan).await;
    assert_eq!(result.pages.len(), 2);
    assert!(result.text().contains("Metformin"), "{}", result.text());
    assert_eq!(
        sorted(tools.ran()),
        ["pdfinfo", "pdftoppm", "pdftoppm", "tesseract", "tesseract"],
        "a scan is counted, rasterised and OCR'd, never given to pdftotext"
    );
}

#[tokio::test]
async fn issue19_a_text_layer_pdf_is_still_read_through_its_layer() {
    let tools = Tools::new();
    let ocr = TesseractOcr::new(tools.config());
    let result = read(&ocr, render::text_to_pdf(LINE)).await;
    // Word for word (the line is wrapped to the page).
    let words = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert_eq!(words(&result.text()), words(LINE));
    assert_eq!(tools.ran(), ["pdfinfo", "pdftotext"]);
}

#[tokio::test]
async fn issue19_a_scan_naming_a_font_is_given_to_pdftotext_and_its_pages_still_ocrd() {
    let tools = Tools::new();
    let ocr = TesseractOcr::new(tools.config());
    let mut scan = render::text_to_scanned_pdf(LINE, 150).await.unwrap();
    // An unreferenced font object, as an incremental update would leave it: the bytes name a
    // font, so the layer is read (and found empty), then the page is OCR'd as before.
    scan.extend_from_slice(
        b"\n99 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>\nendobj\n",
    );
    let result = read(&ocr, scan).await;
    assert!(result.text().contains("Metformin"), "{}", result.text());
    assert_eq!(
        tools.ran(),
        ["pdfinfo", "pdftotext", "pdftoppm", "tesseract"]
    );
}
