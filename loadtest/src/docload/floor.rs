//! The OCR floor: the good documents' pages through the tools alone, with what doc-pipeline
//! gives them and nothing else, at the pipeline's parallelism.
//!
//! - a text-layer PDF: one `pdftotext -bbox-layout -enc UTF-8` run;
//! - each page of an image-only PDF: `pdftoppm -r 300 -gray -png -singlefile -f N -l N`, then
//!   `tesseract PAGE.png stdout -l eng --dpi 300 tsv`;
//! - a PNG: `tesseract FILE stdout -l eng tsv`.
//!
//! Every run is one job; `parallelism` jobs run at once (a semaphore over all documents'
//! jobs, as doc-pipeline's page semaphore), each process with `OMP_THREAD_LIMIT=1` as the
//! pipeline runs them. What the pipeline does besides (pdfinfo, pdftotext on scans, writing
//! the document to its private directory, the queue, the store, the extractor, the results
//! object, the event) is what the floor leaves out: the overhead measured.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use fleet_docs_local::ocr::LocalOcrConfig;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::FloorRun;
use crate::documents::{Kind, Upload};

enum Job {
    Layer { pdf: PathBuf },
    PdfPage { pdf: PathBuf, page: usize },
    Image { path: PathBuf },
}

/// The jobs of `uploads` (poison left out), their files written into `dir`.
async fn jobs(uploads: &[Upload], dir: &Path) -> anyhow::Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (i, u) in uploads.iter().enumerate() {
        let ext = match u.kind {
            Kind::TextPdf | Kind::ScannedPdf => "pdf",
            Kind::Png => "png",
            _ => continue,
        };
        let path = dir.join(format!("doc-{i}.{ext}"));
        tokio::fs::write(&path, &u.bytes)
            .await
            .with_context(|| format!("writing {}", path.display()))?;
        match u.kind {
            Kind::TextPdf => jobs.push(Job::Layer { pdf: path }),
            Kind::ScannedPdf => jobs.extend((1..=u.pages).map(|page| Job::PdfPage {
                pdf: path.clone(),
                page,
            })),
            _ => jobs.push(Job::Image { path }),
        }
    }
    Ok(jobs)
}

/// Runs `program` with `args`; whether it succeeded.
async fn tool(program: &Path, args: &[&std::ffi::OsStr], dir: &Path) -> bool {
    tokio::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .is_ok_and(|o| o.status.success())
}

/// Runs per job: (pdftotext, pdftoppm, tesseract, failed).
async fn one(job: Job, c: &LocalOcrConfig, dir: &Path, n: usize) -> [usize; 4] {
    match job {
        Job::Layer { pdf } => {
            let out = dir.join(format!("layout-{n}.html"));
            let ok = tool(
                &c.pdftotext,
                &[
                    "-bbox-layout".as_ref(),
                    "-enc".as_ref(),
                    "UTF-8".as_ref(),
                    pdf.as_os_str(),
                    out.as_os_str(),
                ],
                dir,
            )
            .await;
            [1, 0, 0, usize::from(!ok)]
        }
        Job::PdfPage { pdf, page } => {
            let base = dir.join(format!("page-{n}"));
            let (r, p) = (c.dpi.to_string(), page.to_string());
            let ok = tool(
                &c.pdftoppm,
                &[
                    "-r".as_ref(),
                    r.as_ref(),
                    "-gray".as_ref(),
                    "-png".as_ref(),
                    "-singlefile".as_ref(),
                    "-f".as_ref(),
                    p.as_ref(),
                    "-l".as_ref(),
                    p.as_ref(),
                    pdf.as_os_str(),
                    base.as_os_str(),
                ],
                dir,
            )
            .await;
            if !ok {
                return [0, 1, 0, 1];
            }
            let png = base.with_extension("png");
            let ok = tool(
                &c.tesseract,
                &[
                    png.as_os_str(),
                    "stdout".as_ref(),
                    "-l".as_ref(),
                    c.language.as_ref(),
                    "--dpi".as_ref(),
                    r.as_ref(),
                    "tsv".as_ref(),
                ],
                dir,
            )
            .await;
            let _ = tokio::fs::remove_file(&png).await;
            [0, 1, 1, usize::from(!ok)]
        }
        Job::Image { path } => {
            let ok = tool(
                &c.tesseract,
                &[
                    path.as_os_str(),
                    "stdout".as_ref(),
                    "-l".as_ref(),
                    c.language.as_ref(),
                    "tsv".as_ref(),
                ],
                dir,
            )
            .await;
            [0, 0, 1, usize::from(!ok)]
        }
    }
}

/// The floor of `uploads` in `dir` with `parallelism` jobs at once. The rates per page are
/// left for the caller (it knows the pages).
pub(super) async fn run(
    uploads: &[Upload],
    dir: &Path,
    parallelism: usize,
) -> anyhow::Result<FloorRun> {
    let config = Arc::new(LocalOcrConfig::default());
    let jobs = jobs(uploads, dir).await?;
    let (_, before) = super::run::cpu_of("self").await?;
    let permits = Arc::new(Semaphore::new(parallelism.max(1)));
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for (n, job) in jobs.into_iter().enumerate() {
        let (config, permits, dir) = (config.clone(), permits.clone(), dir.to_path_buf());
        set.spawn(async move {
            let _permit = permits.acquire_owned().await;
            one(job, &config, &dir, n).await
        });
    }
    let mut runs = [0usize; 4];
    while let Some(done) = set.join_next().await {
        for (total, r) in runs.iter_mut().zip(done?) {
            *total += r;
        }
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let (_, after) = super::run::cpu_of("self").await?;
    Ok(FloorRun {
        wall_s,
        tools_cpu_s: after - before,
        parallelism,
        pdftotext_runs: runs[0],
        pdftoppm_runs: runs[1],
        tesseract_runs: runs[2],
        failed_runs: runs[3],
        ..FloorRun::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor reads a scan page by page, a PNG once and a text-layer PDF once, and no
    /// poison; every run succeeds.
    #[tokio::test]
    async fn each_page_is_one_job_and_poison_is_left_out() {
        let mix = crate::documents::Mix {
            seed: 1,
            text_pdfs: 1,
            scanned_pdfs: 2,
            pngs: 1,
            max_pages: 2,
            scan_dpi: 50,
            png_dpi: 50,
            corrupt_pdfs: 1,
            word_files: 1,
            too_large_images: 1,
        };
        let uploads = crate::documents::uploads(&mix).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let f = run(&uploads, dir.path(), 2).await.unwrap();
        assert_eq!(f.failed_runs, 0, "{f:?}");
        assert_eq!(
            (f.pdftotext_runs, f.pdftoppm_runs, f.tesseract_runs),
            (1, 3, 4)
        );
        assert_eq!(f.parallelism, 2);
        assert!(f.wall_s > 0.0);
    }
}
