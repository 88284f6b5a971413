//! OCR for the local backend: Tesseract, and poppler for PDFs (Debian `tesseract-ocr` and
//! `poppler-utils`; `scripts/ocr-tools` installs them).
//!
//! - **PDF**: `pdfinfo -f 1 -l max_pages` counts the pages and gives each one's size and
//!   rotation (a failure, a `Syntax Error` or no pages is `DOCUMENT_CORRUPT`).
//!   `pdftotext -bbox-layout` reads the text layer, unless the PDF's bytes name no font,
//!   object stream, cross-reference stream or annotation list (a scan: `layer`, issue 19);
//!   a page whose layer has at least [`LocalOcrConfig::text_layer_min_chars`] letters or
//!   digits is taken from it (words and lines with their geometry, confidence 100, no pixel
//!   size); every other page is rasterised with `pdftoppm` at [`LocalOcrConfig::dpi`],
//!   cropped to the size `pdfinfo` gave (so a page that renders larger than it said still
//!   stays within the limit), and read by Tesseract.
//! - **PNG, JPEG**: Tesseract reads the image. **TIFF**: each page (counted from the file's
//!   IFD chain) is read by its own Tesseract run (`tessedit_page_number`).
//! - **Text**: the UTF-8 text is the document ([`OcrResult::from_plain_text`]).
//!
//! Decompression bombs are refused before any tool decodes a pixel, as `DOCUMENT_TOO_LARGE`
//! with the limit named: more than [`LocalOcrConfig::max_pages`] pages (PDF by `pdfinfo`, TIFF
//! by its IFD chain), or a page of more than [`LocalOcrConfig::max_pixels_per_page`] pixels
//! (PNG `IHDR`, JPEG frame header, each TIFF IFD's width and length, a PDF page's size at the
//! rasterising resolution). Every tool process runs in its own process group with a
//! wall-clock timeout ([`LocalOcrConfig::page_timeout`]); on expiry the whole group is killed
//! and the read fails retryable with the reason [`fleet_docs::OCR_TIMEOUT`] (the worker
//! retries it once, then dead-letters it as `OCR_FAILED`).
//!
//! Each page is one Tesseract process with `OMP_THREAD_LIMIT=1`; pages run in parallel up to
//! [`LocalOcrConfig::parallel_pages`] across all documents this engine reads at once (one
//! semaphore per [`TesseractOcr`]). Tesseract's TSV output gives lines in reading order
//! (block, paragraph, line), a line's confidence being the mean of its words'.
//!
//! A page that the tools refuse while others are read gives an empty [`Page`] in its place and
//! its number in a `PAGE_OCR_FAILED` warning; when no page can be read the document is
//! `DOCUMENT_CORRUPT`. A missing tool, a failed spawn or a timeout is retryable
//! (`ocr_unavailable`, `timeout`), since another attempt or another machine may succeed.
//!
//! The document is written (0600) to a private temporary directory (0700, whatever the umask)
//! under [`LocalOcrConfig::temp_root`], named for this process and removed afterwards; at
//! start, [`TesseractOcr::remove_stale_dirs`] removes those left by a process that is gone.
//! Nothing here logs document text or file contents; error details carry at most 200
//! characters of a tool's stderr (these tools never print document text there), with
//! temporary paths removed.
//!
//! Layout: this file reads a document (tool check, page count, text layer, scheduling pages);
//! `page` reads one page (pdftoppm rasterising, a Tesseract run); `process` runs a tool with a
//! timeout and bounds its stderr; `parse` turns Tesseract TSV and pdftotext's bbox layout into
//! the result schema; `layer` tells from a PDF's bytes whether it can have text; `tiff` reads
//! a TIFF's pages and their sizes; `limits` the sizes of PNG, JPEG and PDF pages; `workdir`
//! the private temporary directories.

mod layer;
mod limits;
mod page;
mod parse;
mod process;
mod tiff;
mod workdir;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::{ErrorCode, env};
use fleet_docs::schema::{OcrResult, OcrWarning, Page};
use fleet_docs::{DocError, Document, MediaType, Ocr, OcrJob, OcrStart};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use page::{PageError, PageJob, ocr_page};
use parse::meaningful;
pub use parse::{parse_bbox_layout, parse_tsv};
use process::{detail_of, io_error, run, summarise};
pub use tiff::{tiff_page_count, tiff_page_sizes};
pub use workdir::PREFIX as TEMP_DIR_PREFIX;

/// The warning code for a page Tesseract or pdftoppm could not read.
pub const PAGE_OCR_FAILED: &str = "PAGE_OCR_FAILED";

/// Where the tools are and how to run them.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOcrConfig {
    pub tesseract: PathBuf,
    pub pdftoppm: PathBuf,
    pub pdftotext: PathBuf,
    pub pdfinfo: PathBuf,
    /// Tesseract language(s), `+`-separated ("eng", "eng+deu").
    pub language: String,
    /// Resolution PDF pages are rasterised at.
    pub dpi: u32,
    /// Documents with more pages are `DOCUMENT_TOO_LARGE`, before any page is read.
    pub max_pages: u32,
    /// A page (an image, a TIFF page, a PDF page at [`Self::dpi`]) of more pixels is
    /// `DOCUMENT_TOO_LARGE`, before anything decodes or rasterises it.
    pub max_pixels_per_page: u64,
    /// Tesseract processes at once (each single-threaded), across all documents.
    pub parallel_pages: usize,
    /// Wall-clock limit of one tool process (pdfinfo, pdftoppm, tesseract; pdftotext, which
    /// reads every page in one run, gets it per page); on expiry its process group is killed.
    pub page_timeout: Duration,
    /// Where the per-document private directories are made (default: the system's
    /// temporary directory, `TMPDIR`).
    pub temp_root: PathBuf,
    /// A PDF page's text layer is used when it has at least this many letters or digits;
    /// below that (a scan, a scan with only a stamp or page number) the page is OCR'd.
    pub text_layer_min_chars: usize,
}

impl Default for LocalOcrConfig {
    fn default() -> Self {
        Self {
            tesseract: "tesseract".into(),
            pdftoppm: "pdftoppm".into(),
            pdftotext: "pdftotext".into(),
            pdfinfo: "pdfinfo".into(),
            language: "eng".into(),
            dpi: 300,
            max_pages: 200,
            max_pixels_per_page: 50_000_000,
            parallel_pages: std::thread::available_parallelism().map_or(1, |n| n.get()),
            page_timeout: Duration::from_secs(120),
            temp_root: std::env::temp_dir(),
            text_layer_min_chars: 16,
        }
    }
}

/// Why the OCR tools cannot be used on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "local OCR unavailable: {0}. Install the Debian packages tesseract-ocr (with \
     tesseract-ocr-eng or the configured language) and poppler-utils, e.g. scripts/ocr-tools"
)]
pub struct CheckError(pub String);

/// Tesseract and poppler behind [`fleet_docs::Ocr`] (name `"tesseract"`).
#[derive(Debug, Clone)]
pub struct TesseractOcr {
    config: Arc<LocalOcrConfig>,
    pages: Arc<Semaphore>,
}

impl Default for TesseractOcr {
    fn default() -> Self {
        Self::new(LocalOcrConfig::default())
    }
}

impl TesseractOcr {
    pub fn new(config: LocalOcrConfig) -> Self {
        let permits = config.parallel_pages.max(1);
        Self {
            config: Arc::new(config),
            pages: Arc::new(Semaphore::new(permits)),
        }
    }

    pub fn config(&self) -> &LocalOcrConfig {
        &self.config
    }

    /// Checks that every tool runs and that Tesseract has the configured languages, so a
    /// worker can refuse to start with a clear message. Returns the tool versions.
    pub async fn check(&self) -> Result<String, CheckError> {
        let c = &self.config;
        let mut versions = Vec::new();
        let timeout = Duration::from_secs(30);
        for (program, arg) in [
            (&c.tesseract, "--version"),
            (&c.pdftoppm, "-v"),
            (&c.pdftotext, "-v"),
            (&c.pdfinfo, "-v"),
        ] {
            let ran = run(program, [arg], timeout, Path::new("/"))
                .await
                .map_err(|e| CheckError(format!("{}: {}", program.display(), detail_of(&e))))?;
            let out = [ran.stdout.as_slice(), ran.stderr.as_slice()].concat();
            let first = String::from_utf8_lossy(&out)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if !ran.success {
                return Err(CheckError(format!(
                    "{} {arg} failed: {first}",
                    program.display()
                )));
            }
            versions.push(first);
        }
        let ran = run(&c.tesseract, ["--list-langs"], timeout, Path::new("/"))
            .await
            .map_err(|e| CheckError(format!("tesseract --list-langs: {}", detail_of(&e))))?;
        let listed = String::from_utf8_lossy(&ran.stdout).into_owned();
        let have: Vec<&str> = listed.lines().skip(1).map(str::trim).collect();
        for lang in c.language.split('+') {
            if !have.contains(&lang) {
                return Err(CheckError(format!(
                    "tesseract has no language data for {lang:?} (has {})",
                    have.join(", ")
                )));
            }
        }
        Ok(versions.join("; "))
    }

    /// Removes the temporary directories under [`LocalOcrConfig::temp_root`] that a process
    /// which is gone left behind (a worker killed mid-document); a worker calls it at start.
    /// Returns how many it removed.
    pub fn remove_stale_dirs(&self) -> std::io::Result<usize> {
        workdir::remove_stale(&self.config.temp_root)
    }

    async fn read(&self, document: &Document) -> Result<OcrResult, DocError> {
        if document.bytes.is_empty() {
            return Err(DocError::permanent(
                ErrorCode::DocumentEmpty,
                "zero-byte document",
            ));
        }
        if document.media_type == MediaType::Text {
            return match std::str::from_utf8(&document.bytes) {
                Ok(text) => Ok(OcrResult::from_plain_text(text)),
                Err(e) => Err(DocError::permanent(
                    ErrorCode::DocumentCorrupt,
                    format!("text is not UTF-8 (at byte {})", e.valid_up_to()),
                )),
            };
        }
        // Images are measured before anything is written or run.
        let sizes = self.image_sizes(document)?;
        let dir = workdir::create(&self.config.temp_root)
            .map_err(|e| io_error("temporary directory", &e))?;
        let result = self.read_in(document, sizes, dir.path()).await;
        // Removing a directory of page images is blocking work.
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
        result
    }

    /// The pixel sizes of an image's pages, each within the limits (PDF pages are measured
    /// by `pdfinfo`); `DOCUMENT_CORRUPT` when the header gives none.
    fn image_sizes(&self, document: &Document) -> Result<Vec<(u32, u32)>, DocError> {
        let corrupt = |what: &str| DocError::permanent(ErrorCode::DocumentCorrupt, what);
        let sizes = match document.media_type {
            MediaType::Pdf | MediaType::Text => return Ok(Vec::new()),
            MediaType::Png => vec![
                limits::png_size(&document.bytes)
                    .ok_or_else(|| corrupt("unreadable PNG header"))?,
            ],
            MediaType::Jpeg => vec![
                limits::jpeg_size(&document.bytes)
                    .ok_or_else(|| corrupt("unreadable JPEG header"))?,
            ],
            MediaType::Tiff => {
                let pages = tiff_page_sizes(&document.bytes)
                    .ok_or_else(|| corrupt("unreadable TIFF structure"))?;
                self.check_pages(pages.len() as u32)?;
                pages
                    .into_iter()
                    .enumerate()
                    .map(|(i, size)| {
                        size.ok_or_else(|| {
                            corrupt(&format!("TIFF page {} has no width or length", i + 1))
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        for (i, &(w, h)) in sizes.iter().enumerate() {
            self.check_pixels(i as u32 + 1, u64::from(w), u64::from(h), None)?;
        }
        Ok(sizes)
    }

    /// `DOCUMENT_TOO_LARGE` when page `number`, `width` × `height` pixels (at `dpi` for a
    /// PDF page), is above the limit.
    fn check_pixels(
        &self,
        number: u32,
        width: u64,
        height: u64,
        dpi: Option<u32>,
    ) -> Result<(), DocError> {
        let max = self.config.max_pixels_per_page;
        if width.saturating_mul(height) <= max {
            return Ok(());
        }
        let at = dpi.map_or(String::new(), |d| format!(" at {d} dpi"));
        Err(DocError::permanent(
            ErrorCode::DocumentTooLarge,
            format!(
                "page {number} is {width}x{height} pixels{at}, above the limit of {max} pixels \
                 per page ({}); nothing was rasterised",
                env::DOC_MAX_PIXELS_PER_PAGE
            ),
        ))
    }

    async fn read_in(
        &self,
        document: &Document,
        sizes: Vec<(u32, u32)>,
        dir: &Path,
    ) -> Result<OcrResult, DocError> {
        let ext = match document.media_type {
            MediaType::Pdf => "pdf",
            MediaType::Png => "png",
            MediaType::Jpeg => "jpg",
            MediaType::Tiff => "tif",
            MediaType::Text => "txt",
        };
        let input = dir.join(format!("document.{ext}"));
        workdir::write_private(&input, &document.bytes)
            .await
            .map_err(|e| io_error("writing the document", &e))?;
        match document.media_type {
            MediaType::Pdf => {
                let text = layer::may_have_text(&document.bytes);
                self.read_pdf(&input, text, dir).await
            }
            MediaType::Tiff => {
                // Counted and measured by `image_sizes`.
                let count = sizes.len() as u32;
                let jobs = (1..=count).map(|n| PageJob::Image {
                    path: input.clone(),
                    tiff_index: Some(n - 1),
                    number: n,
                });
                self.ocr_pages(jobs.collect(), Vec::new(), dir).await
            }
            MediaType::Png | MediaType::Jpeg => {
                let job = PageJob::Image {
                    path: input,
                    tiff_index: None,
                    number: 1,
                };
                self.ocr_pages(vec![job], Vec::new(), dir).await
            }
            MediaType::Text => unreachable!("text is read without a temporary file"),
        }
    }

    fn check_pages(&self, count: u32) -> Result<(), DocError> {
        if count == 0 {
            return Err(DocError::permanent(
                ErrorCode::DocumentCorrupt,
                "the document has no pages",
            ));
        }
        if count > self.config.max_pages {
            return Err(DocError::permanent(
                ErrorCode::DocumentTooLarge,
                format!(
                    "{count} pages, above the limit of {} pages per document ({}); no page was read",
                    self.config.max_pages,
                    env::DOC_MAX_PAGES
                ),
            ));
        }
        Ok(())
    }

    /// A PDF: its pages counted and measured by `pdfinfo`, its text layer read by `pdftotext`
    /// when `may_have_text` (see [`layer`]), the other pages OCR'd.
    async fn read_pdf(
        &self,
        input: &Path,
        may_have_text: bool,
        dir: &Path,
    ) -> Result<OcrResult, DocError> {
        let c = &self.config;
        // Every page's size, up to the page limit: more pages are refused anyway.
        let last = c.max_pages.max(1).to_string();
        let args: [&std::ffi::OsStr; 5] = [
            "-f".as_ref(),
            "1".as_ref(),
            "-l".as_ref(),
            last.as_ref(),
            input.as_os_str(),
        ];
        let info = run(&c.pdfinfo, args, c.page_timeout, dir).await?;
        let stderr = String::from_utf8_lossy(&info.stderr);
        if !info.success || stderr.contains("Syntax Error") {
            return Err(DocError::permanent(
                ErrorCode::DocumentCorrupt,
                format!("pdfinfo: {}", summarise(&info.stderr, dir)),
            ));
        }
        let (count, boxes) = limits::parse_pdfinfo(&String::from_utf8_lossy(&info.stdout));
        self.check_pages(count)?;
        // Each page's pixels at the rasterising resolution, before anything renders it.
        let mut pixels = HashMap::new();
        for number in 1..=count {
            let page = boxes.get(&number).ok_or_else(|| {
                DocError::permanent(
                    ErrorCode::DocumentCorrupt,
                    format!("pdfinfo gave no size for page {number}"),
                )
            })?;
            let (w, h) = page.pixels(c.dpi);
            self.check_pixels(number, w, h, Some(c.dpi))?;
            let side = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
            pixels.insert(number, (side(w), side(h)));
        }

        // The text layer, all pages at once. Failing that, or when the PDF cannot have one (a
        // scan), every page is rasterised.
        let layer = if may_have_text {
            self.text_layer(input, count, dir).await?
        } else {
            HashMap::new()
        };
        let from_layer = layer.len();
        let jobs: Vec<PageJob> = (1..=count)
            .filter(|n| !layer.contains_key(n))
            .map(|number| PageJob::PdfPage {
                pdf: input.to_path_buf(),
                number,
                pixels: pixels[&number],
            })
            .collect();
        tracing::debug!(pages = count, from_layer, ocr = jobs.len(), "reading PDF");
        self.ocr_pages(jobs, layer.into_values().collect(), dir)
            .await
    }

    /// The pages of `input` (of `count` pages) whose text layer is meaningful, read by one
    /// `pdftotext -bbox-layout` run; none when it fails.
    async fn text_layer(
        &self,
        input: &Path,
        count: u32,
        dir: &Path,
    ) -> Result<HashMap<u32, Page>, DocError> {
        let c = &self.config;
        let layout = dir.join("layout.html");
        let timeout = c.page_timeout.saturating_mul(count);
        let args: [&std::ffi::OsStr; 5] = [
            "-bbox-layout".as_ref(),
            "-enc".as_ref(),
            "UTF-8".as_ref(),
            input.as_os_str(),
            layout.as_os_str(),
        ];
        let ran = run(&c.pdftotext, args, timeout, dir).await?;
        let mut layer: HashMap<u32, Page> = HashMap::new();
        if ran.success {
            match tokio::fs::read_to_string(&layout).await {
                Ok(xml) => match parse_bbox_layout(&xml) {
                    Some(pages) => {
                        for page in pages {
                            if page.number <= count && meaningful(&page, c.text_layer_min_chars) {
                                layer.insert(page.number, page);
                            }
                        }
                    }
                    None => tracing::warn!("pdftotext -bbox-layout output not understood"),
                },
                Err(e) => tracing::warn!(error = %e.kind(), "pdftotext output unreadable"),
            }
        } else {
            tracing::warn!(
                detail = %summarise(&ran.stderr, dir),
                "pdftotext failed; rasterising every page"
            );
        }
        Ok(layer)
    }

    /// OCRs `jobs` in parallel and merges them with the pages already read, in page order.
    async fn ocr_pages(
        &self,
        jobs: Vec<PageJob>,
        mut pages: Vec<Page>,
        dir: &Path,
    ) -> Result<OcrResult, DocError> {
        let mut set = JoinSet::new();
        for job in jobs {
            let config = Arc::clone(&self.config);
            let permits = Arc::clone(&self.pages);
            let dir = dir.to_path_buf();
            set.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let number = job.number();
                (number, ocr_page(&config, job, &dir).await)
            });
        }
        let mut failed = Vec::new();
        let mut details = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (number, outcome) = joined
                .map_err(|e| DocError::retryable("transient", format!("an OCR task ended: {e}")))?;
            match outcome {
                Ok(page) => pages.push(page),
                Err(PageError::Refused(detail)) => {
                    tracing::debug!(page = number, "page could not be read");
                    failed.push(number);
                    details.push(detail);
                }
                // Dropping the set kills the other pages' processes (kill_on_drop).
                Err(PageError::Doc(e)) => return Err(e),
            }
        }
        if pages.is_empty() {
            let detail = details.into_iter().next().unwrap_or_default();
            return Err(DocError::permanent(
                ErrorCode::DocumentCorrupt,
                format!("no page could be read: {detail}"),
            ));
        }
        failed.sort_unstable();
        let mut warnings = Vec::new();
        if !failed.is_empty() {
            tracing::warn!(pages = ?failed, "pages OCR could not read");
            for &number in &failed {
                pages.push(Page {
                    number,
                    ..Page::default()
                });
            }
            warnings.push(OcrWarning {
                code: PAGE_OCR_FAILED.into(),
                pages: failed,
            });
        }
        pages.sort_by_key(|p| p.number);
        Ok(OcrResult { pages, warnings })
    }
}

#[async_trait]
impl Ocr for TesseractOcr {
    fn name(&self) -> &'static str {
        "tesseract"
    }

    async fn start(&self, document: &Document, _token: &str) -> Result<OcrStart, DocError> {
        self.read(document).await.map(OcrStart::Done)
    }

    async fn collect(&self, _job_id: &str) -> Result<OcrJob, DocError> {
        Err(DocError::permanent(
            ErrorCode::OcrCompletionInvalid,
            "the local OCR engine does not start asynchronous jobs",
        ))
    }
}
