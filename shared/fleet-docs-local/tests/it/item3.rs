//! Issue 16 item 3: decompression bombs, runaway tools and temporary files, against the real
//! Tesseract and poppler. Each tool is run through a spy script that records its name and then
//! runs the real tool, so a test can show which tools ran; a bomb must be refused before the
//! tool that would decode it starts.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fleet_core::{ErrorCode, env};
use fleet_docs::{DocError, Document, MediaType, OCR_TIMEOUT, Ocr, OcrStart};
use fleet_docs_local::ocr::{LocalOcrConfig, TEMP_DIR_PREFIX, TesseractOcr};
use fleet_docs_local::render;

/// Made up: what must never reach a log line or an error detail.
const PATIENT: &str = "Marbeck";

/// A test's tools and its temporary root (also used by `layer`).
pub(crate) struct Tools {
    dir: tempfile::TempDir,
}

impl Tools {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A script named `name` running `body` (`$@` are the tool's arguments).
    pub(crate) fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A spy for `tool`: records its name in `ran.log`, then runs the real one (with at most
    /// 2 GB of address space, so that even code without the limits cannot exhaust the machine).
    pub(crate) fn spy(&self, tool: &str) -> PathBuf {
        let log = self.path("ran.log");
        self.script(
            tool,
            &format!(
                "echo {tool} >> '{}'\nulimit -v 2000000\nexec {tool} \"$@\"",
                log.display()
            ),
        )
    }

    /// The tools that ran, in order.
    pub(crate) fn ran(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("ran.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub(crate) fn temp_root(&self) -> PathBuf {
        let root = self.path("tmp");
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    /// Every tool a spy, temporary directories under our own root.
    pub(crate) fn config(&self) -> LocalOcrConfig {
        LocalOcrConfig {
            tesseract: self.spy("tesseract"),
            pdftoppm: self.spy("pdftoppm"),
            pdftotext: self.spy("pdftotext"),
            pdfinfo: self.spy("pdfinfo"),
            temp_root: self.temp_root(),
            ..LocalOcrConfig::default()
        }
    }

    /// What is left under the temporary root.
    pub(crate) fn left_behind(&self) -> Vec<String> {
        std::fs::read_dir(self.temp_root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// Log lines written while a test runs (the current-thread runtime keeps every task on this
/// thread, so a thread-local subscriber sees them all).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn read(ocr: &TesseractOcr, media_type: MediaType, bytes: Vec<u8>) -> DocError {
    let document = Document {
        media_type,
        bytes,
        location: None,
    };
    match ocr.start(&document, "test-token").await {
        Err(e) => e,
        Ok(OcrStart::Done(result)) => {
            panic!("{media_type:?} was read: {} pages", result.pages.len())
        }
        Ok(other) => panic!("{other:?}"),
    }
}

fn too_large(e: &DocError) -> &str {
    match e {
        DocError::Permanent {
            code: ErrorCode::DocumentTooLarge,
            detail,
        } => detail,
        other => panic!("expected DOCUMENT_TOO_LARGE, got {other:?}"),
    }
}

/// A PDF of `pages`, each `width` × `height` points, with a few words in Helvetica on the
/// first (too few for a text layer, so it would be rasterised), its cross-reference table
/// exact (poppler reports no syntax error).
fn pdf(pages: usize, width: u32, height: u32, words: &str) -> Vec<u8> {
    let content = format!("BT /F1 24 Tf 72 72 Td ({words}) Tj ET");
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", i + 5)).collect();
    let mut objects = vec![
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        format!(
            "<< /Type /Pages /Kids [{}] /Count {pages} /MediaBox [0 0 {width} {height}] \
             /Resources << /Font << /F1 3 0 R >> >> >>",
            kids.join(" ")
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
    ];
    objects.push("<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>".to_string());
    for _ in 1..pages {
        objects.push("<< /Type /Page /Parent 2 0 R >>".to_string());
    }
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A PNG whose header declares `width` × `height` (8-bit gray) with one tiny compressed row.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &miniz_oxide::deflate::compress_to_vec_zlib(&[0; 64], 6),
    );
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A little-endian TIFF of `pages` IFDs, each declaring `width` × `height`.
fn tiff_declaring(pages: u32, width: u32, height: u32) -> Vec<u8> {
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    for i in 0..pages {
        let at = t.len() as u32;
        t.extend_from_slice(&2u16.to_le_bytes());
        for (tag, value) in [(256u16, width), (257, height)] {
            t.extend_from_slice(&tag.to_le_bytes());
            t.extend_from_slice(&4u16.to_le_bytes()); // LONG
            t.extend_from_slice(&1u32.to_le_bytes());
            t.extend_from_slice(&value.to_le_bytes());
        }
        let next = if i + 1 == pages { 0 } else { at + 2 + 24 + 4 };
        t.extend_from_slice(&next.to_le_bytes());
    }
    t
}

/// A baseline JPEG's first bytes: SOI, then a frame header declaring `width` × `height`.
fn jpeg_declaring(width: u16, height: u16) -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8];
    j.extend_from_slice(&height.to_be_bytes());
    j.extend_from_slice(&width.to_be_bytes());
    j.extend_from_slice(&[1, 1, 0x11, 0, 0xFF, 0xD9]);
    j
}

/// Whether process `pid` is gone: no such process, or a zombie waiting to be reaped.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[tokio::test]
async fn item3_image_headers_declaring_gigapixels_are_refused_before_tesseract_runs() {
    let tools = Tools::new();
    let ocr = TesseractOcr::new(tools.config());
    let cases = [
        (
            MediaType::Png,
            png_declaring(100_000, 100_000),
            "100000x100000",
        ),
        (
            MediaType::Jpeg,
            jpeg_declaring(65_535, 65_535),
            "65535x65535",
        ),
        (
            MediaType::Tiff,
            tiff_declaring(1, 100_000, 100_000),
            "100000x100000",
        ),
    ];
    for (media_type, bytes, size) in cases {
        let e = read(&ocr, media_type, bytes).await;
        let detail = too_large(&e);
        assert!(
            detail.contains(size)
                && detail.contains("pixels")
                && detail.contains(env::DOC_MAX_PIXELS_PER_PAGE),
            "{media_type:?}: {detail}"
        );
    }
    // Refused from the header: no tool ran, nothing was written.
    assert_eq!(tools.ran(), Vec::<String>::new());
    assert_eq!(tools.left_behind(), Vec::<String>::new());
    // A TIFF whose second page is the bomb: refused before its first page is read.
    let mut small_then_huge = tiff_declaring(2, 100_000, 100_000);
    small_then_huge[8 + 2 + 8..8 + 2 + 12].copy_from_slice(&10u32.to_le_bytes());
    small_then_huge[8 + 2 + 20..8 + 2 + 24].copy_from_slice(&10u32.to_le_bytes());
    let detail = too_large(&read(&ocr, MediaType::Tiff, small_then_huge).await).to_string();
    assert!(detail.starts_with("page 2 is 100000x100000"), "{detail}");
    assert_eq!(tools.ran(), Vec::<String>::new());
}

#[tokio::test]
async fn item3_a_pdf_page_with_a_huge_mediabox_is_refused_before_pdftoppm_runs() {
    let tools = Tools::new();
    let logs = Captured::default();
    let _guard = logs.install();
    let ocr = TesseractOcr::new(tools.config());
    // 200 × 200 inches: 60000 × 60000 pixels at 300 dpi (3.6 gigapixels, 3.6 GB in gray).
    let bomb = pdf(1, 14_400, 14_400, &format!("{PATIENT} 1961"));
    let e = read(&ocr, MediaType::Pdf, bomb).await;
    let detail = too_large(&e);
    assert!(
        detail.contains("page 1 is 60000x60000 pixels at 300 dpi")
            && detail.contains(env::DOC_MAX_PIXELS_PER_PAGE),
        "{detail}"
    );
    // Measured by pdfinfo; nothing rasterised, read or OCR'd.
    assert_eq!(tools.ran(), ["pdfinfo"]);
    assert_eq!(tools.left_behind(), Vec::<String>::new());
    let logged = logs.text();
    assert!(
        !logged.contains(PATIENT) && !detail.contains(PATIENT),
        "{logged}"
    );

    // The same page at a size within the limit is read as before.
    let ocr = TesseractOcr::new(LocalOcrConfig {
        max_pixels_per_page: 60_000 * 60_000,
        dpi: 10,
        ..tools.config()
    });
    let fine = pdf(1, 14_400, 14_400, "HELLO");
    let document = Document {
        media_type: MediaType::Pdf,
        bytes: fine,
        location: None,
    };
    let started = ocr.start(&document, "t").await;
    assert!(matches!(started, Ok(OcrStart::Done(_))), "{started:?}");
    assert!(tools.ran().contains(&"pdftoppm".to_string()));
}

#[tokio::test]
async fn item3_documents_declaring_thousands_of_pages_are_refused_before_any_page_is_read() {
    let tools = Tools::new();
    let ocr = TesseractOcr::new(tools.config());
    let many = pdf(5_000, 612, 792, "A");
    let detail = too_large(&read(&ocr, MediaType::Pdf, many).await).to_string();
    assert!(
        detail.contains("5000 pages")
            && detail.contains("limit of 200 pages")
            && detail.contains(env::DOC_MAX_PAGES),
        "{detail}"
    );
    assert_eq!(
        tools.ran(),
        ["pdfinfo"],
        "no text layer read, no page rasterised"
    );
    let detail =
        too_large(&read(&ocr, MediaType::Tiff, tiff_declaring(3_000, 10, 10)).await).to_string();
    assert!(
        detail.contains("3000 pages") && detail.contains(env::DOC_MAX_PAGES),
        "{detail}"
    );
    assert_eq!(tools.ran(), ["pdfinfo"]);
    assert_eq!(tools.left_behind(), Vec::<String>::new());
}

#[tokio::test]
async fn item3_a_tool_past_its_timeout_is_killed_with_every_process_it_started() {
    let png = render::pdf_to_png_pages(&render::text_to_pdf("HELLO"), 100)
        .await
        .unwrap()
        .remove(0);
    let scan = render::text_to_scanned_pdf("HELLO", 100).await.unwrap();
    for (tool, media_type, bytes) in [
        ("tesseract", MediaType::Png, png),
        ("pdftoppm", MediaType::Pdf, scan),
    ] {
        let tools = Tools::new();
        let pids = tools.path("pids");
        // The tool starts a child and waits for it: both must be gone after the timeout.
        let stuck = tools.script(
            &format!("stuck-{tool}"),
            &format!("sleep 300 &\necho $$ $! > '{}'\nwait", pids.display()),
        );
        let mut config = LocalOcrConfig {
            page_timeout: Duration::from_secs(1),
            ..tools.config()
        };
        if tool == "tesseract" {
            config.tesseract = stuck;
        } else {
            config.pdftoppm = stuck;
        }
        let ocr = TesseractOcr::new(config);
        let e = read(&ocr, media_type, bytes).await;
        let started: Vec<u32> = std::fs::read_to_string(&pids)
            .unwrap()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(started.len(), 2);
        // SIGKILL is immediate; reaping by the parent may take a moment.
        for _ in 0..100 {
            if started.iter().all(|&p| gone(p)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for pid in started {
            assert!(gone(pid), "{tool}: process {pid} outlived the timeout");
        }
        match e {
            DocError::Retryable { reason, detail, .. } => {
                assert_eq!(reason, OCR_TIMEOUT, "{tool}");
                assert!(
                    detail.contains(tool) && detail.contains("killed"),
                    "{detail}"
                );
            }
            other => panic!("{tool}: {other:?}"),
        }
        assert_eq!(tools.left_behind(), Vec::<String>::new(), "{tool}");
    }
}

#[tokio::test]
async fn item3_temporary_files_are_private_under_a_permissive_umask() {
    rustix::process::umask(rustix::fs::Mode::empty());
    let tools = Tools::new();
    let modes = tools.path("modes");
    // Records the mode of the document's directory and of the document, then OCRs it.
    let tesseract = tools.script(
        "modes-tesseract",
        &format!(
            "d=$(dirname \"$1\")\necho $(basename \"$d\") $(stat -c %a \"$d\") $(stat -c %a \"$1\") > '{}'\nexec tesseract \"$@\"",
            modes.display()
        ),
    );
    let ocr = TesseractOcr::new(LocalOcrConfig {
        tesseract,
        ..tools.config()
    });
    let png = render::pdf_to_png_pages(&render::text_to_pdf("HELLO WORLD"), 100)
        .await
        .unwrap()
        .remove(0);
    let document = Document {
        media_type: MediaType::Png,
        bytes: png,
        location: None,
    };
    assert!(matches!(
        ocr.start(&document, "t").await,
        Ok(OcrStart::Done(_))
    ));
    let seen = std::fs::read_to_string(&modes).unwrap();
    let fields: Vec<&str> = seen.split_whitespace().collect();
    let own = format!("{TEMP_DIR_PREFIX}{}.", std::process::id());
    assert!(fields[0].starts_with(&own), "{seen}");
    assert_eq!(fields[1..], ["700", "600"], "directory and document modes");
    assert_eq!(tools.left_behind(), Vec::<String>::new());
}

#[tokio::test]
async fn item3_stale_temporary_directories_of_gone_processes_are_removed_at_start() {
    let tools = Tools::new();
    let root = tools.temp_root();
    // A process that has ended: its pid is free.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let own = std::process::id();
    let make = |name: &str| {
        let dir = root.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("page-1.png"), PATIENT).unwrap();
        dir
    };
    let killed_worker = make(&format!("{TEMP_DIR_PREFIX}{dead}.1a2b-AbC123"));
    let earlier_same_pid = make(&format!("{TEMP_DIR_PREFIX}{own}.0-XyZ789"));
    let live_worker = make(&format!("{TEMP_DIR_PREFIX}1.5-Live01"));
    let unrelated = make("someone-elses");
    let ocr = TesseractOcr::new(tools.config());
    assert_eq!(ocr.remove_stale_dirs().unwrap(), 2);
    assert!(!killed_worker.exists() && !earlier_same_pid.exists());
    assert!(live_worker.exists() && unrelated.exists());
    // This process's own directories are kept while it runs.
    let png = render::pdf_to_png_pages(&render::text_to_pdf("HELLO"), 100)
        .await
        .unwrap()
        .remove(0);
    let document = Document {
        media_type: MediaType::Png,
        bytes: png,
        location: None,
    };
    ocr.start(&document, "t").await.unwrap();
    assert_eq!(ocr.remove_stale_dirs().unwrap(), 0);
}
