//! `TesseractOcr` against the real Tesseract and poppler (`scripts/ocr-tools` installs them):
//! documents made with `render`, read back, compared word by word.

use std::time::Duration;

use fleet_core::ErrorCode;
use fleet_docs::schema::{OcrResult, Page};
use fleet_docs::{DocError, Document, MediaType, Ocr, OcrStart};
use fleet_docs_local::ocr::{LocalOcrConfig, PAGE_OCR_FAILED, TesseractOcr};
use fleet_docs_local::render::{self, GrayImage, RasterFormat};

/// Made up for these tests; the kind of text the pipeline reads.
const NOTE: &str = "HISTORY OF PRESENT ILLNESS: The patient is a 67-year-old man with \
type 2 diabetes mellitus and hypertension who presents with three days of productive cough, \
fever to 38.9 C and shortness of breath on exertion. He denies chest pain.\n\
\n\
MEDICATIONS: Metformin 500 mg by mouth twice daily; lisinopril 10 mg daily; aspirin 81 mg \
daily.\n\
\n\
ASSESSMENT AND PLAN: Community-acquired pneumonia of the right lower lobe. Start \
azithromycin 500 mg on day one, then 250 mg daily for four days. Chest x-ray in six weeks.\n";

fn doc(media_type: MediaType, bytes: Vec<u8>) -> Document {
    Document {
        media_type,
        bytes,
        location: None,
    }
}

async fn read(ocr: &TesseractOcr, document: Document) -> Result<OcrResult, DocError> {
    match ocr.start(&document, "test-token").await? {
        OcrStart::Done(result) => Ok(result),
        other => panic!("the local engine finished synchronously, got {other:?}"),
    }
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The share of `expected` words found, in order (longest common subsequence).
fn recall(expected: &[String], got: &[String]) -> f64 {
    let mut row = vec![0usize; got.len() + 1];
    for e in expected {
        let mut prev = 0;
        for (j, g) in got.iter().enumerate() {
            let keep = row[j + 1];
            row[j + 1] = if e == g {
                prev + 1
            } else {
                row[j + 1].max(row[j])
            };
            prev = keep;
        }
    }
    row[got.len()] as f64 / expected.len() as f64
}

fn permanent_code(e: &DocError) -> ErrorCode {
    match e {
        DocError::Permanent { code, .. } => *code,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// Every box inside the page, every confidence a percentage.
fn assert_geometry(page: &Page) {
    for line in &page.lines {
        let boxes = std::iter::once(&line.bbox).chain(line.words.iter().map(|w| &w.bbox));
        for b in boxes {
            assert!(b.left >= 0.0 && b.top >= 0.0, "{b:?}");
            assert!(b.width > 0.0 && b.height > 0.0, "{b:?}");
            assert!(b.left + b.width <= 1.0 && b.top + b.height <= 1.0, "{b:?}");
        }
        assert!((0.0..=100.0).contains(&line.confidence));
        assert!(
            line.words
                .iter()
                .all(|w| (0.0..=100.0).contains(&w.confidence))
        );
    }
}

/// A text of `pages` pages, each starting with its own marker line and otherwise short, so
/// page breaks fall where expected and OCR stays quick.
fn paged_text(markers: &[&str]) -> String {
    let mut text = String::new();
    for marker in markers {
        let mut page = format!("SECTION {marker}\nMetformin 500 mg twice daily.\n");
        for _ in 2..render::LINES_PER_PAGE {
            page.push('\n');
        }
        text.push_str(&page);
    }
    text
}

fn marker_of(page: &Page) -> String {
    page.lines
        .first()
        .map(|l| l.text.expose().clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn png_page_is_read_with_words_geometry_and_confidence() {
    let pngs = render::pdf_to_png_pages(&render::text_to_pdf(NOTE), 300)
        .await
        .unwrap();
    assert_eq!(pngs.len(), 1);
    let result = read(
        &TesseractOcr::default(),
        doc(MediaType::Png, pngs[0].clone()),
    )
    .await
    .unwrap();
    assert!(result.warnings.is_empty());
    let page = &result.pages[0];
    // US Letter at 300 dpi.
    assert_eq!(
        (page.number, page.width, page.height),
        (1, Some(2550), Some(3300))
    );
    let r = recall(&words(NOTE), &words(&result.text()));
    assert!(r >= 0.95, "word recall {r}");
    assert_geometry(page);
    // The first line starts at the one-inch margin, near the top.
    let first = &page.lines[0];
    assert!(
        (first.bbox.left - 72.0 / 612.0).abs() < 0.01,
        "{:?}",
        first.bbox
    );
    assert!(
        first.bbox.top > 0.08 && first.bbox.top < 0.12,
        "{:?}",
        first.bbox
    );
    let mean = first.words.iter().map(|w| w.confidence).sum::<f32>() / first.words.len() as f32;
    assert!((first.confidence - mean).abs() < 1e-3);
    let all: Vec<f32> = page.lines.iter().map(|l| l.confidence).collect();
    let overall = all.iter().sum::<f32>() / all.len() as f32;
    assert!(overall > 80.0, "mean line confidence {overall}");
}

#[tokio::test]
async fn jpeg_page_is_read() {
    let jpegs = render::rasterise(&render::text_to_pdf(NOTE), 300, RasterFormat::Jpeg)
        .await
        .unwrap();
    assert!(jpegs[0].starts_with(&[0xFF, 0xD8, 0xFF]));
    let result = read(
        &TesseractOcr::default(),
        doc(MediaType::Jpeg, jpegs[0].clone()),
    )
    .await
    .unwrap();
    let r = recall(&words(NOTE), &words(&result.text()));
    assert!(r >= 0.95, "word recall {r}");
    assert_geometry(&result.pages[0]);
}

#[tokio::test]
async fn text_layer_pdf_gives_the_text_back_word_for_word() {
    // Three pages, WinAnsi punctuation and XML specials included.
    let text = format!("{NOTE}Tom & Jerry <b> “quoted” café – 5 µg\n").repeat(9);
    let pdf = render::text_to_pdf(&text);
    let result = read(&TesseractOcr::default(), doc(MediaType::Pdf, pdf))
        .await
        .unwrap();
    let expected_pages = render::wrap(&text).len().div_ceil(render::LINES_PER_PAGE);
    assert!(expected_pages >= 3, "{expected_pages}");
    assert_eq!(result.pages.len(), expected_pages);
    assert_eq!(words(&result.text()), words(&text));
    for (i, page) in result.pages.iter().enumerate() {
        assert_eq!(page.number, i as u32 + 1);
        // Taken from the text layer: no image, full confidence.
        assert_eq!((page.width, page.height), (None, None));
        assert!(page.lines.iter().all(|l| l.confidence == 100.0));
        assert_geometry(page);
    }
    let first = &result.pages[0].lines[0].words[0];
    assert!(
        (first.bbox.left - 72.0 / 612.0).abs() < 1e-4,
        "{:?}",
        first.bbox
    );
}

#[tokio::test]
async fn scanned_pdf_pages_are_rasterised_and_kept_in_order_in_parallel() {
    let markers = ["ALPHA", "BRAVO", "CHARLIE", "DELTA"];
    let pdf = render::text_to_scanned_pdf(&paged_text(&markers), 150)
        .await
        .unwrap();
    let ocr = TesseractOcr::new(LocalOcrConfig {
        parallel_pages: 4,
        ..LocalOcrConfig::default()
    });
    let result = read(&ocr, doc(MediaType::Pdf, pdf)).await.unwrap();
    assert!(result.warnings.is_empty());
    let numbers: Vec<u32> = result.pages.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let got: Vec<String> = result.pages.iter().map(marker_of).collect();
    let want: Vec<String> = markers.iter().map(|m| format!("SECTION {m}")).collect();
    assert_eq!(got, want);
    for page in &result.pages {
        // OCR'd at the configured 300 dpi, whatever the scan's own resolution.
        assert_eq!((page.width, page.height), (Some(2550), Some(3300)));
        assert!(page.lines.iter().any(|l| l.confidence < 100.0));
        assert_geometry(page);
    }
}

fn pgm_pages(bytes: &[Vec<u8>]) -> Vec<GrayImage> {
    bytes
        .iter()
        .map(|p| GrayImage::from_pgm(p).unwrap())
        .collect()
}

#[tokio::test]
async fn multi_page_tiff_reads_each_page() {
    let markers = ["ALPHA", "BRAVO", "CHARLIE"];
    let pgms = render::rasterise(
        &render::text_to_pdf(&paged_text(&markers)),
        200,
        RasterFormat::Pgm,
    )
    .await
    .unwrap();
    let tiff = render::gray_pages_to_tiff(&pgm_pages(&pgms), 200);
    let result = read(&TesseractOcr::default(), doc(MediaType::Tiff, tiff))
        .await
        .unwrap();
    let got: Vec<String> = result.pages.iter().map(marker_of).collect();
    assert_eq!(got, ["SECTION ALPHA", "SECTION BRAVO", "SECTION CHARLIE"]);
    assert_eq!(result.pages[2].number, 3);
    assert_eq!(result.pages[0].width, Some(1700));
}

#[tokio::test]
async fn a_page_that_cannot_be_read_is_a_warning() {
    let markers = ["ALPHA", "BRAVO", "CHARLIE"];
    let pgms = render::rasterise(
        &render::text_to_pdf(&paged_text(&markers)),
        150,
        RasterFormat::Pgm,
    )
    .await
    .unwrap();
    let pages = pgm_pages(&pgms);
    let mut tiff = render::gray_pages_to_tiff(&pages, 150);
    // Page 2's Compression entry (the fourth of its IFD) made an unknown scheme.
    let ifd2 = u32::from_le_bytes(
        tiff[8 + 2 + 11 * 12..8 + 2 + 11 * 12 + 4]
            .try_into()
            .unwrap(),
    );
    let compression_value = ifd2 as usize + 2 + 3 * 12 + 8;
    tiff[compression_value..compression_value + 2].copy_from_slice(&999u16.to_le_bytes());
    let result = read(&TesseractOcr::default(), doc(MediaType::Tiff, tiff))
        .await
        .unwrap();
    assert_eq!(result.warnings.len(), 1);
    assert_eq!(result.warnings[0].code, PAGE_OCR_FAILED);
    assert_eq!(result.warnings[0].pages, [2]);
    // The failed page keeps its place, empty.
    assert_eq!(result.pages.len(), 3);
    assert!(result.pages[1].lines.is_empty());
    assert_eq!(marker_of(&result.pages[0]), "SECTION ALPHA");
    assert_eq!(marker_of(&result.pages[2]), "SECTION CHARLIE");
}

#[tokio::test]
async fn corrupt_pdfs_are_document_corrupt() {
    let ocr = TesseractOcr::default();
    let pdf = render::text_to_pdf(NOTE);
    let truncated = pdf[..pdf.len() / 2].to_vec();
    let mut garbage = b"%PDF-1.7\n".to_vec();
    garbage.extend((0..2000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    for bytes in [truncated, garbage, b"%PDF-".to_vec()] {
        let e = read(&ocr, doc(MediaType::Pdf, bytes)).await.unwrap_err();
        assert_eq!(permanent_code(&e), ErrorCode::DocumentCorrupt, "{e}");
        // The detail names the tool, not where the file was.
        assert!(e.to_string().contains("pdfinfo"), "{e}");
        assert!(!e.to_string().contains("/tmp"), "{e}");
    }
}

#[tokio::test]
async fn unreadable_images_are_document_corrupt() {
    let ocr = TesseractOcr::default();
    let png = render::pdf_to_png_pages(&render::text_to_pdf("x"), 50)
        .await
        .unwrap()
        .remove(0);
    let mut garbage_png = b"\x89PNG\r\n\x1a\n".to_vec();
    garbage_png.extend_from_slice(&[0x5A; 500]);
    let cases = [
        (MediaType::Png, garbage_png),
        (MediaType::Png, png[..png.len() / 2].to_vec()),
        (MediaType::Jpeg, vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4]),
        (MediaType::Tiff, b"II*\0\xff\xff\0\0".to_vec()),
    ];
    for (media_type, bytes) in cases {
        let e = read(&ocr, doc(media_type, bytes)).await.unwrap_err();
        assert_eq!(
            permanent_code(&e),
            ErrorCode::DocumentCorrupt,
            "{media_type:?}: {e}"
        );
    }
    let e = read(&ocr, doc(MediaType::Png, Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(permanent_code(&e), ErrorCode::DocumentEmpty);
}

#[tokio::test]
async fn page_limit_is_document_too_large() {
    let ocr = TesseractOcr::new(LocalOcrConfig {
        max_pages: 2,
        ..LocalOcrConfig::default()
    });
    let pdf = render::text_to_pdf(&paged_text(&["A", "B", "C"]));
    let e = read(&ocr, doc(MediaType::Pdf, pdf)).await.unwrap_err();
    assert_eq!(permanent_code(&e), ErrorCode::DocumentTooLarge);
    assert!(e.to_string().contains("3 pages"), "{e}");
    let image = GrayImage {
        width: 8,
        height: 8,
        pixels: vec![255; 64],
    };
    let tiff = render::gray_pages_to_tiff(&[image.clone(), image.clone(), image], 72);
    let e = read(&ocr, doc(MediaType::Tiff, tiff)).await.unwrap_err();
    assert_eq!(permanent_code(&e), ErrorCode::DocumentTooLarge);
    // Two pages are within the limit.
    let pdf = render::text_to_pdf(&paged_text(&["ALPHA", "BRAVO"]));
    assert_eq!(
        read(&ocr, doc(MediaType::Pdf, pdf))
            .await
            .unwrap()
            .pages
            .len(),
        2
    );
}

#[tokio::test]
async fn plain_text_is_the_document() {
    let ocr = TesseractOcr::default();
    let result = read(
        &ocr,
        doc(MediaType::Text, b"Aspirin 81 mg\r\ndaily\n".to_vec()),
    )
    .await
    .unwrap();
    assert_eq!(result.text(), "Aspirin 81 mg\ndaily\n");
    assert_eq!(result.pages.len(), 1);
    let e = read(&ocr, doc(MediaType::Text, b"caf\xe9".to_vec()))
        .await
        .unwrap_err();
    assert_eq!(permanent_code(&e), ErrorCode::DocumentCorrupt);
}

#[tokio::test]
async fn collect_is_refused_and_the_name_is_fixed() {
    let ocr = TesseractOcr::default();
    assert_eq!(ocr.name(), "tesseract");
    let e = ocr.collect("job-1").await.unwrap_err();
    assert_eq!(permanent_code(&e), ErrorCode::OcrCompletionInvalid);
}

#[tokio::test]
async fn check_passes_here_and_names_the_packages_when_a_tool_is_missing() {
    let versions = TesseractOcr::default().check().await.unwrap();
    assert!(versions.starts_with("tesseract 5"), "{versions}");
    assert!(versions.contains("pdftoppm version"), "{versions}");
    let missing = TesseractOcr::new(LocalOcrConfig {
        pdftotext: "/nonexistent/pdftotext".into(),
        ..LocalOcrConfig::default()
    });
    let e = missing.check().await.unwrap_err().to_string();
    assert!(e.contains("/nonexistent/pdftotext"), "{e}");
    assert!(
        e.contains("tesseract-ocr") && e.contains("poppler-utils"),
        "{e}"
    );
    let no_language = TesseractOcr::new(LocalOcrConfig {
        language: "xyz".into(),
        ..LocalOcrConfig::default()
    });
    let e = no_language.check().await.unwrap_err().to_string();
    assert!(e.contains("\"xyz\""), "{e}");
}

#[tokio::test]
async fn missing_tools_and_timeouts_are_retryable() {
    let png = render::pdf_to_png_pages(&render::text_to_pdf(NOTE), 300)
        .await
        .unwrap()
        .remove(0);
    let missing = TesseractOcr::new(LocalOcrConfig {
        tesseract: "/nonexistent/tesseract".into(),
        ..LocalOcrConfig::default()
    });
    match read(&missing, doc(MediaType::Png, png.clone()))
        .await
        .unwrap_err()
    {
        DocError::Retryable { reason, detail, .. } => {
            assert_eq!(reason, "ocr_unavailable");
            assert!(detail.contains("tesseract-ocr"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let no_pdfinfo = TesseractOcr::new(LocalOcrConfig {
        pdfinfo: "/nonexistent/pdfinfo".into(),
        ..LocalOcrConfig::default()
    });
    let e = read(&no_pdfinfo, doc(MediaType::Pdf, render::text_to_pdf(NOTE)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            DocError::Retryable {
                reason: "ocr_unavailable",
                ..
            }
        ),
        "{e:?}"
    );
    let hasty = TesseractOcr::new(LocalOcrConfig {
        page_timeout: Duration::from_millis(50),
        ..LocalOcrConfig::default()
    });
    let e = read(&hasty, doc(MediaType::Png, png)).await.unwrap_err();
    assert!(
        matches!(
            e,
            DocError::Retryable {
                reason: fleet_docs::OCR_TIMEOUT,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn rendered_pdf_reads_back_exactly_through_its_layer_and_nearly_through_ocr() {
    let pdf = render::text_to_pdf(NOTE);
    let ocr = TesseractOcr::default();
    let layer = read(&ocr, doc(MediaType::Pdf, pdf.clone())).await.unwrap();
    assert_eq!(words(&layer.text()), words(NOTE));
    let png = render::pdf_to_png_pages(&pdf, 300).await.unwrap().remove(0);
    let ocred = read(&ocr, doc(MediaType::Png, png)).await.unwrap();
    let r = recall(&words(NOTE), &words(&ocred.text()));
    assert!(r >= 0.95, "word recall {r}");
}
