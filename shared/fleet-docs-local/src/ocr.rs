//! OCR for the local backend: Tesseract, and poppler for PDFs (Debian `tesseract-ocr` and
//! `poppler-utils`; `scripts/ocr-tools` installs them).
//!
//! - **PDF**: `pdfinfo` counts the pages (a failure, a `Syntax Error` or no pages is
//!   `DOCUMENT_CORRUPT`; more than [`LocalOcrConfig::max_pages`] is `DOCUMENT_TOO_LARGE`).
//!   `pdftotext -bbox-layout` reads the text layer; a page whose layer has at least
//!   [`LocalOcrConfig::text_layer_min_chars`] letters or digits is taken from it (words and
//!   lines with their geometry, confidence 100, no pixel size); every other page is
//!   rasterised with `pdftoppm` at [`LocalOcrConfig::dpi`] and read by Tesseract.
//! - **PNG, JPEG**: Tesseract reads the image. **TIFF**: each page (counted from the file's
//!   IFD chain) is read by its own Tesseract run (`tessedit_page_number`).
//! - **Text**: the UTF-8 text is the document ([`OcrResult::from_plain_text`]).
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
//! The document is written to a private temporary directory (mode 0700) removed afterwards.
//! Nothing here logs document text or file contents; error details carry at most 200
//! characters of a tool's stderr (these tools never print document text there), with
//! temporary paths removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_core::ErrorCode;
use fleet_core::phi::Phi;
use fleet_docs::schema::{BoundingBox, Line, OcrResult, OcrWarning, Page, Word};
use fleet_docs::{DocError, Document, MediaType, Ocr, OcrJob, OcrStart};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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
    /// Documents with more pages are `DOCUMENT_TOO_LARGE`.
    pub max_pages: u32,
    /// Tesseract processes at once (each single-threaded), across all documents.
    pub parallel_pages: usize,
    /// For one tool run on one page (pdfinfo and pdftotext get it per page of the document).
    pub page_timeout: Duration,
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
            parallel_pages: std::thread::available_parallelism().map_or(1, |n| n.get()),
            page_timeout: Duration::from_secs(120),
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

/// How a tool run ended when it ran at all.
struct Ran {
    success: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
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
        let dir = tempfile::Builder::new()
            .prefix("fleet-ocr-")
            .tempdir()
            .map_err(|e| io_error("temporary directory", &e))?;
        let result = self.read_in(document, dir.path()).await;
        // Removing a directory of page images is blocking work.
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
        result
    }

    async fn read_in(&self, document: &Document, dir: &Path) -> Result<OcrResult, DocError> {
        let ext = match document.media_type {
            MediaType::Pdf => "pdf",
            MediaType::Png => "png",
            MediaType::Jpeg => "jpg",
            MediaType::Tiff => "tif",
            MediaType::Text => "txt",
        };
        let input = dir.join(format!("document.{ext}"));
        tokio::fs::write(&input, &document.bytes)
            .await
            .map_err(|e| io_error("writing the document", &e))?;
        match document.media_type {
            MediaType::Pdf => self.read_pdf(&input, dir).await,
            MediaType::Tiff => {
                let count = tiff_page_count(&document.bytes).ok_or_else(|| {
                    DocError::permanent(ErrorCode::DocumentCorrupt, "unreadable TIFF structure")
                })?;
                self.check_pages(count)?;
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
                    "{count} pages, above the limit of {}",
                    self.config.max_pages
                ),
            ));
        }
        Ok(())
    }

    async fn read_pdf(&self, input: &Path, dir: &Path) -> Result<OcrResult, DocError> {
        let c = &self.config;
        let info = run(&c.pdfinfo, [input.as_os_str()], c.page_timeout, dir).await?;
        let stderr = String::from_utf8_lossy(&info.stderr);
        if !info.success || stderr.contains("Syntax Error") {
            return Err(DocError::permanent(
                ErrorCode::DocumentCorrupt,
                format!("pdfinfo: {}", summarise(&info.stderr, dir)),
            ));
        }
        let count = String::from_utf8_lossy(&info.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0);
        self.check_pages(count)?;

        // The text layer, all pages at once. Failing that, every page is rasterised.
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
        let from_layer = layer.len();
        let jobs: Vec<PageJob> = (1..=count)
            .filter(|n| !layer.contains_key(n))
            .map(|number| PageJob::PdfPage {
                pdf: input.to_path_buf(),
                number,
            })
            .collect();
        tracing::debug!(pages = count, from_layer, ocr = jobs.len(), "reading PDF");
        self.ocr_pages(jobs, layer.into_values().collect(), dir)
            .await
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

/// One page to OCR.
enum PageJob {
    /// A PNG, JPEG or TIFF file; for a TIFF, the 0-based page.
    Image {
        path: PathBuf,
        tiff_index: Option<u32>,
        number: u32,
    },
    /// A page of a PDF to rasterise first.
    PdfPage { pdf: PathBuf, number: u32 },
}

impl PageJob {
    fn number(&self) -> u32 {
        match self {
            Self::Image { number, .. } | Self::PdfPage { number, .. } => *number,
        }
    }
}

enum PageError {
    /// The tool ran and refused the page: a warning, or corrupt when every page is.
    Refused(String),
    /// Ends the whole document (a missing tool, a timeout).
    Doc(DocError),
}

impl From<DocError> for PageError {
    fn from(e: DocError) -> Self {
        Self::Doc(e)
    }
}

async fn ocr_page(config: &LocalOcrConfig, job: PageJob, dir: &Path) -> Result<Page, PageError> {
    let number = job.number();
    let (image, tiff_index, dpi) = match job {
        PageJob::Image {
            path, tiff_index, ..
        } => (path, tiff_index, None),
        PageJob::PdfPage { pdf, number } => {
            let base = dir.join(format!("page-{number}"));
            let n = number.to_string();
            let r = config.dpi.to_string();
            let args: [&std::ffi::OsStr; 11] = [
                "-r".as_ref(),
                r.as_ref(),
                "-gray".as_ref(),
                "-png".as_ref(),
                "-singlefile".as_ref(),
                "-f".as_ref(),
                n.as_ref(),
                "-l".as_ref(),
                n.as_ref(),
                pdf.as_os_str(),
                base.as_os_str(),
            ];
            let ran = run(&config.pdftoppm, args, config.page_timeout, dir).await?;
            let png = base.with_extension("png");
            if !ran.success || !png.exists() {
                return Err(PageError::Refused(format!(
                    "pdftoppm: {}",
                    summarise(&ran.stderr, dir)
                )));
            }
            (png, None, Some(config.dpi))
        }
    };
    let mut args: Vec<std::ffi::OsString> = vec![
        image.clone().into(),
        "stdout".into(),
        "-l".into(),
        config.language.clone().into(),
    ];
    if let Some(dpi) = dpi {
        args.extend(["--dpi".into(), dpi.to_string().into()]);
    }
    if let Some(index) = tiff_index {
        args.extend(["-c".into(), format!("tessedit_page_number={index}").into()]);
    }
    args.push("tsv".into());
    let ran = run(&config.tesseract, &args, config.page_timeout, dir).await?;
    if dpi.is_some() {
        // The page image is no longer needed; free the space early on long documents.
        let _ = tokio::fs::remove_file(&image).await;
    }
    let stderr = String::from_utf8_lossy(&ran.stderr);
    if stderr.contains("load any languages") || stderr.contains("Error opening data file") {
        return Err(PageError::Doc(DocError::retryable(
            "ocr_unavailable",
            format!(
                "tesseract has no {:?} language data: {}",
                config.language,
                summarise(&ran.stderr, dir)
            ),
        )));
    }
    if !ran.success {
        return Err(PageError::Refused(format!(
            "tesseract: {}",
            summarise(&ran.stderr, dir)
        )));
    }
    let tsv = String::from_utf8_lossy(&ran.stdout);
    parse_tsv(&tsv, number).ok_or_else(|| PageError::Refused("tesseract read no page".into()))
}

/// Runs `program` with `args` in `dir`, no stdin, output captured, killed after `timeout`.
async fn run<I, S>(program: &Path, args: I, timeout: Duration, dir: &Path) -> Result<Ran, DocError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let name = program
        .file_name()
        .map_or_else(|| "tool".into(), |n| n.to_string_lossy().into_owned());
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            let package = if name.contains("tesseract") {
                "tesseract-ocr"
            } else {
                "poppler-utils"
            };
            DocError::retryable(
                "ocr_unavailable",
                format!(
                    "cannot run {name} ({:?}); is {package} installed?",
                    e.kind()
                ),
            )
        })?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(DocError::retryable(
            "timeout",
            format!("{name} took longer than {}s", timeout.as_secs()),
        )),
        Ok(Err(e)) => Err(DocError::retryable(
            "ocr_unavailable",
            format!("waiting for {name}: {:?}", e.kind()),
        )),
        Ok(Ok(out)) => Ok(Ran {
            success: out.status.success(),
            stdout: out.stdout,
            stderr: out.stderr,
        }),
    }
}

fn detail_of(e: &DocError) -> String {
    match e {
        DocError::Permanent { detail, .. } | DocError::Retryable { detail, .. } => detail.clone(),
    }
}

fn io_error(what: &str, e: &std::io::Error) -> DocError {
    DocError::retryable("transient", format!("{what}: {:?}", e.kind()))
}

/// A tool's stderr for an error detail: temporary paths removed, whitespace collapsed, at
/// most 200 characters.
fn summarise(stderr: &[u8], dir: &Path) -> String {
    let text = String::from_utf8_lossy(stderr).replace(&*dir.to_string_lossy(), "<tmp>");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = text.chars().take(200).collect();
    if out.is_empty() {
        out.push_str("no message");
    }
    out
}

fn meaningful(page: &Page, min_chars: usize) -> bool {
    let chars = page
        .lines
        .iter()
        .flat_map(|l| l.text.expose().chars())
        .filter(|c| c.is_alphanumeric())
        .count();
    chars >= min_chars.max(1)
}

fn clamp01(v: f32) -> f32 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn fraction_box(left: f32, top: f32, width: f32, height: f32, pw: f32, ph: f32) -> BoundingBox {
    if pw <= 0.0 || ph <= 0.0 {
        return BoundingBox::default();
    }
    let l = clamp01(left / pw);
    let t = clamp01(top / ph);
    BoundingBox {
        left: l,
        top: t,
        width: clamp01(width / pw).min(1.0 - l),
        height: clamp01(height / ph).min(1.0 - t),
    }
}

/// (block, paragraph, line) numbers of a Tesseract line.
type LineKey = (u32, u32, u32);

/// Tesseract's TSV for one page: `level page_num block_num par_num line_num word_num left
/// top width height conf text`. `None` when there is no page row.
pub fn parse_tsv(tsv: &str, number: u32) -> Option<Page> {
    let mut size: Option<(u32, u32)> = None;
    // Lines in output order, which is reading order (block, paragraph, line).
    let mut lines: Vec<(LineKey, BoundingBox, Vec<Word>)> = Vec::new();
    for row in tsv.lines().skip(1) {
        let f: Vec<&str> = row.splitn(12, '\t').collect();
        if f.len() < 11 {
            continue;
        }
        let int = |i: usize| f[i].trim().parse::<i64>().unwrap_or(0).max(0) as u32;
        let level = int(0);
        if level == 1 {
            if size.is_none() {
                size = Some((int(8), int(9)));
            }
            continue;
        }
        let Some((pw, ph)) = size else { continue };
        let bbox = fraction_box(
            int(6) as f32,
            int(7) as f32,
            int(8) as f32,
            int(9) as f32,
            pw as f32,
            ph as f32,
        );
        let key = (int(2), int(3), int(4));
        match level {
            4 => lines.push((key, bbox, Vec::new())),
            5 => {
                let text = f.get(11).map_or("", |t| t.trim());
                if text.is_empty() {
                    continue;
                }
                let conf = f[10].trim().parse::<f32>().unwrap_or(0.0);
                let word = Word {
                    text: Phi(text.to_string()),
                    confidence: if conf.is_finite() {
                        conf.clamp(0.0, 100.0)
                    } else {
                        0.0
                    },
                    bbox,
                };
                match lines.last_mut() {
                    Some((k, _, words)) if *k == key => words.push(word),
                    _ => lines.push((key, bbox, vec![word])),
                }
            }
            _ => {}
        }
    }
    let (width, height) = size?;
    let lines = lines
        .into_iter()
        .filter(|(_, _, words)| !words.is_empty())
        .map(|(_, bbox, words)| make_line(words, bbox))
        .collect();
    Some(Page {
        number,
        width: Some(width),
        height: Some(height),
        lines,
    })
}

fn make_line(words: Vec<Word>, bbox: BoundingBox) -> Line {
    let text = words
        .iter()
        .map(|w| w.text.expose().as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let confidence = words.iter().map(|w| w.confidence).sum::<f32>() / words.len() as f32;
    Line {
        text: Phi(text),
        confidence,
        bbox,
        words,
    }
}

/// `pdftotext -bbox-layout` output: `doc > page(width, height) > flow > block > line >
/// word(xMin, yMin, xMax, yMax)`, in points, in reading order. Pages are numbered in order.
pub fn parse_bbox_layout(xml: &str) -> Option<Vec<Page>> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(xml, opts).ok()?;
    let attr = |n: roxmltree::Node, name: &str| -> f32 {
        n.attribute(name)
            .and_then(|v| v.parse::<f32>().ok())
            .unwrap_or(0.0)
    };
    let named = |name: &'static str| move |n: &roxmltree::Node| n.tag_name().name() == name;
    let mut pages = Vec::new();
    for (i, page) in doc.descendants().filter(named("page")).enumerate() {
        let (pw, ph) = (attr(page, "width"), attr(page, "height"));
        let geometry = |n: roxmltree::Node| {
            let (x0, y0) = (attr(n, "xMin"), attr(n, "yMin"));
            fraction_box(x0, y0, attr(n, "xMax") - x0, attr(n, "yMax") - y0, pw, ph)
        };
        let mut lines = Vec::new();
        for line in page.descendants().filter(named("line")) {
            let words: Vec<Word> = line
                .children()
                .filter(named("word"))
                .filter_map(|w| {
                    let text = w.text().unwrap_or("").trim();
                    (!text.is_empty()).then(|| Word {
                        text: Phi(text.to_string()),
                        confidence: 100.0,
                        bbox: geometry(w),
                    })
                })
                .collect();
            if !words.is_empty() {
                lines.push(make_line(words, geometry(line)));
            }
        }
        pages.push(Page {
            number: i as u32 + 1,
            width: None,
            height: None,
            lines,
        });
    }
    Some(pages)
}

/// The number of pages (IFDs) of a TIFF, `None` when its structure is broken.
pub fn tiff_page_count(bytes: &[u8]) -> Option<u32> {
    let le = match bytes.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let mut offset = u32_at(4)? as usize;
    let mut count = 0u32;
    let mut seen = std::collections::HashSet::new();
    while offset != 0 {
        if !seen.insert(offset) || count >= 100_000 {
            return None; // a loop in the IFD chain
        }
        let entries = u16_at(offset)? as usize;
        let next_at = offset + 2 + 12 * entries;
        offset = u32_at(next_at)? as usize;
        count += 1;
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
        1\t1\t0\t0\t0\t0\t0\t0\t1000\t2000\t-1\t\n\
        2\t1\t1\t0\t0\t0\t100\t200\t500\t100\t-1\t\n\
        3\t1\t1\t1\t0\t0\t100\t200\t500\t100\t-1\t\n\
        4\t1\t1\t1\t1\t0\t100\t200\t500\t40\t-1\t\n\
        5\t1\t1\t1\t1\t1\t100\t200\t200\t40\t90.5\tAspirin\n\
        5\t1\t1\t1\t1\t2\t350\t200\t100\t40\t80.5\t81\n\
        4\t1\t1\t1\t2\t0\t100\t260\t300\t40\t-1\t\n\
        5\t1\t1\t1\t2\t1\t100\t260\t300\t40\t-1\t \n\
        2\t1\t2\t0\t0\t0\t100\t400\t900\t50\t-1\t\n\
        3\t1\t2\t1\t0\t0\t100\t400\t900\t50\t-1\t\n\
        4\t1\t2\t1\t1\t0\t100\t400\t1200\t50\t-1\t\n\
        5\t1\t2\t1\t1\t1\t100\t400\t1200\t50\t99\tdaily\n";

    #[test]
    fn tsv_gives_lines_in_order_with_mean_confidence_and_fractions() {
        let page = parse_tsv(TSV, 3).unwrap();
        assert_eq!(
            (page.number, page.width, page.height),
            (3, Some(1000), Some(2000))
        );
        assert_eq!(page.text(), "Aspirin 81\ndaily");
        let first = &page.lines[0];
        assert_eq!(first.confidence, 85.5);
        assert_eq!(
            first.bbox,
            BoundingBox {
                left: 0.1,
                top: 0.1,
                width: 0.5,
                height: 0.02
            }
        );
        assert_eq!(first.words[1].bbox.left, 0.35);
        // A box past the page edge is cut at the edge.
        assert!((page.lines[1].bbox.width - 0.9).abs() < 1e-6);
        assert!(parse_tsv("level\tpage_num\n", 1).is_none());
    }

    #[test]
    fn bbox_layout_gives_pages_lines_and_words() {
        let xml = r#"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd"><html xmlns="http://www.w3.org/1999/xhtml">
<head></head><body><doc>
  <page width="600.000000" height="800.000000"><flow><block xMin="60" yMin="80" xMax="300" yMax="100">
    <line xMin="60" yMin="80" xMax="300" yMax="100">
      <word xMin="60" yMin="80" xMax="120" yMax="100">Tom&amp;Jerry</word>
      <word xMin="180" yMin="80" xMax="300" yMax="100">&lt;5mg&gt;</word>
    </line></block></flow></page>
  <page width="600.000000" height="800.000000">
  </page>
</doc></body></html>"#;
        let pages = parse_bbox_layout(xml).unwrap();
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0].text(), "Tom&Jerry <5mg>");
        let w = &pages[0].lines[0].words[1];
        assert_eq!(
            w.bbox,
            BoundingBox {
                left: 0.3,
                top: 0.1,
                width: 0.2,
                height: 0.025
            }
        );
        assert_eq!(w.confidence, 100.0);
        assert_eq!((pages[1].number, pages[1].lines.len()), (2, 0));
        assert!(!meaningful(&pages[0], 12) && meaningful(&pages[0], 11));
        assert!(parse_bbox_layout("<doc><page>").is_none());
    }

    #[test]
    fn counts_tiff_pages_and_refuses_broken_chains() {
        let image = crate::render::GrayImage {
            width: 2,
            height: 1,
            pixels: vec![0, 255],
        };
        let tiff = crate::render::gray_pages_to_tiff(&[image.clone(), image.clone(), image], 72);
        assert_eq!(tiff_page_count(&tiff), Some(3));
        assert_eq!(tiff_page_count(&tiff[..40]), None);
        let mut looped = b"II*\0\x08\0\0\0\0\0".to_vec();
        looped.extend_from_slice(&8u32.to_le_bytes());
        assert_eq!(tiff_page_count(&looped), None);
        assert_eq!(tiff_page_count(b"GIF89a"), None);
    }

    #[test]
    fn stderr_is_bounded_and_loses_temporary_paths() {
        let dir = Path::new("/tmp/fleet-ocr-abc");
        let long = format!(
            "Error in /tmp/fleet-ocr-abc/page-1.png:\n {}",
            "x".repeat(500)
        );
        let s = summarise(long.as_bytes(), dir);
        assert!(s.starts_with("Error in <tmp>/page-1.png: xxx"), "{s}");
        assert_eq!(s.chars().count(), 200);
        assert_eq!(summarise(b"", dir), "no message");
    }
}
