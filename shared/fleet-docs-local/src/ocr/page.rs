//! One page: a PDF page rasterised with `pdftoppm`, then one Tesseract run giving TSV.

use std::path::{Path, PathBuf};

use fleet_docs::DocError;
use fleet_docs::schema::Page;

use super::LocalOcrConfig;
use super::parse::parse_tsv;
use super::process::{run, summarise};

/// One page to OCR.
pub(super) enum PageJob {
    /// A PNG, JPEG or TIFF file; for a TIFF, the 0-based page.
    Image {
        path: PathBuf,
        tiff_index: Option<u32>,
        number: u32,
    },
    /// A page of a PDF to rasterise first, with its size in pixels as `pdfinfo` gave it
    /// (checked against the limit): the rendering is cropped to it.
    PdfPage {
        pdf: PathBuf,
        number: u32,
        pixels: (u32, u32),
    },
}

impl PageJob {
    pub(super) fn number(&self) -> u32 {
        match self {
            Self::Image { number, .. } | Self::PdfPage { number, .. } => *number,
        }
    }
}

pub(super) enum PageError {
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

pub(super) async fn ocr_page(
    config: &LocalOcrConfig,
    job: PageJob,
    dir: &Path,
) -> Result<Page, PageError> {
    let number = job.number();
    let (image, tiff_index, dpi) = match job {
        PageJob::Image {
            path, tiff_index, ..
        } => (path, tiff_index, None),
        PageJob::PdfPage {
            pdf,
            number,
            pixels: (width, height),
        } => {
            let base = dir.join(format!("page-{number}"));
            let n = number.to_string();
            let r = config.dpi.to_string();
            // A crop box of the measured size (pdftoppm clips it to the page): the image is
            // never larger than the limit allowed, whatever the page turns out to be.
            let (w, h) = (
                width.saturating_add(1).to_string(),
                height.saturating_add(1).to_string(),
            );
            let args: [&std::ffi::OsStr; 19] = [
                "-r".as_ref(),
                r.as_ref(),
                "-x".as_ref(),
                "0".as_ref(),
                "-y".as_ref(),
                "0".as_ref(),
                "-W".as_ref(),
                w.as_ref(),
                "-H".as_ref(),
                h.as_ref(),
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
