//! Issue 19: the pages of one document are OCR'd at once, up to `parallel_pages` Tesseract
//! processes across every document the engine reads, and the result lists them in the
//! document's order whatever order they finish in.
//!
//! Tesseract is replaced by a script that keeps a tally in a state directory: each run marks
//! itself running, waits (at most 10 s) until `bound` runs have started, records how many are
//! running, sleeps longer the earlier its page (so later pages finish first), and prints a
//! one-word TSV page naming its page number. Run one after another, the first page would wait
//! out its 10 s alone and say so; run beyond the bound, more than `bound` would be counted.
//! poppler (pdfinfo, pdftotext, pdftoppm) is the real one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fleet_docs::schema::OcrResult;
use fleet_docs::{Document, MediaType, Ocr, OcrStart};
use fleet_docs_local::ocr::{LocalOcrConfig, TesseractOcr};
use fleet_docs_local::render::{self, GrayImage};

struct FakeTesseract {
    dir: tempfile::TempDir,
}

impl FakeTesseract {
    /// A fake whose runs wait until `bound` have started (or `pages`, when fewer).
    fn new(bound: usize, pages: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let wait_for = bound.min(pages);
        let script = format!(
            r#"#!/bin/sh
S='{state}'
case "$*" in
  *tessedit_page_number=*)
    n=$(echo "$*" | sed 's/.*tessedit_page_number=\([0-9]*\).*/\1/'); n=$((n + 1)) ;;
  *) n=$(basename "$1" .png | sed 's/^page-//') ;;
esac
mkdir "$S/running-$$"
touch "$S/started-$$"
i=0
while [ "$(ls "$S" | grep -c '^started-')" -lt {wait_for} ]; do
  i=$((i + 1))
  if [ $i -gt 200 ]; then echo "$n" >> "$S/alone"; break; fi
  sleep 0.05
done
ls "$S" | grep -c '^running-' >> "$S/counts"
sleep 0.$((9 - n % 9))
rmdir "$S/running-$$"
printf 'level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n'
printf '1\t1\t0\t0\t0\t0\t0\t0\t100\t100\t-1\t\n'
printf '4\t1\t1\t1\t1\t0\t10\t10\t50\t10\t-1\t\n'
printf '5\t1\t1\t1\t1\t1\t10\t10\t50\t10\t95\tPAGE%s\n' "$n"
"#,
            state = state.display()
        );
        let path = dir.path().join("tesseract");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("tesseract")
    }

    fn state(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("state").join(name)).unwrap_or_default()
    }

    /// How many runs were running, as each run counted them.
    fn counts(&self) -> Vec<usize> {
        self.state("counts")
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect()
    }

    /// Pages whose run waited out the barrier alone.
    fn alone(&self) -> String {
        self.state("alone")
    }

    fn engine(&self, bound: usize, temp_root: &Path) -> TesseractOcr {
        TesseractOcr::new(LocalOcrConfig {
            tesseract: self.path(),
            parallel_pages: bound,
            dpi: 50,
            temp_root: temp_root.to_path_buf(),
            ..LocalOcrConfig::default()
        })
    }
}

fn blank_pages(n: usize) -> Vec<GrayImage> {
    (0..n)
        .map(|_| GrayImage {
            width: 40,
            height: 50,
            pixels: vec![255; 40 * 50],
        })
        .collect()
}

async fn read(ocr: &TesseractOcr, media_type: MediaType, bytes: Vec<u8>) -> OcrResult {
    let document = Document {
        media_type,
        bytes,
        location: None,
    };
    match ocr.start(&document, "t").await.unwrap() {
        OcrStart::Done(result) => result,
        other => panic!("{other:?}"),
    }
}

/// Each page's number and the word the fake read on it.
fn pages_read(result: &OcrResult) -> Vec<(u32, String)> {
    result
        .pages
        .iter()
        .map(|p| (p.number, p.text().to_string()))
        .collect()
}

fn expected(pages: u32) -> Vec<(u32, String)> {
    (1..=pages).map(|n| (n, format!("PAGE{n}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_a_scanned_pdf_run_at_once_up_to_the_bound_and_come_back_in_order() {
    let (bound, pages) = (3, 7);
    let fake = FakeTesseract::new(bound, pages);
    let tmp = tempfile::tempdir().unwrap();
    let ocr = fake.engine(bound, tmp.path());
    let pdf = render::gray_pages_to_pdf(&blank_pages(pages), 50);
    let result = read(&ocr, MediaType::Pdf, pdf).await;

    assert!(result.warnings.is_empty(), "{:?}", result.warnings);
    assert_eq!(pages_read(&result), expected(pages as u32));
    assert_eq!(fake.alone(), "", "a page waited for the others alone");
    let counts = fake.counts();
    assert_eq!(counts.len(), pages, "one Tesseract run per page");
    assert_eq!(counts.iter().max(), Some(&bound), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_holds_across_documents_read_together() {
    let (bound, pages) = (3, 4);
    let fake = FakeTesseract::new(bound, 2 * pages);
    let tmp = tempfile::tempdir().unwrap();
    let ocr = fake.engine(bound, tmp.path());
    let tiff = render::gray_pages_to_tiff(&blank_pages(pages), 50);
    let (a, b) = tokio::join!(
        read(&ocr, MediaType::Tiff, tiff.clone()),
        read(&ocr, MediaType::Tiff, tiff)
    );
    for result in [a, b] {
        assert_eq!(pages_read(&result), expected(pages as u32));
    }
    assert_eq!(fake.alone(), "");
    let counts = fake.counts();
    assert_eq!(counts.len(), 2 * pages);
    assert_eq!(counts.iter().max(), Some(&bound), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_bound_is_the_number_of_cores() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(LocalOcrConfig::default().parallel_pages, cores);
}
