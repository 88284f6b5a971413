//! The document pipeline under load (issue 19): seeded synthetic notes (text-layer PDFs,
//! image-only PDFs, PNG scans, of 1..=N pages) and poison uploads (a corrupt PDF, a Word
//! file, an image too large to decode) put in the local stack's `uploads` bucket, their S3
//! events queued, and the real `doc-pipeline` binary (`--backend local`, Tesseract, the rules
//! extractor) processing them; then the OCR floor, the same pages through `pdftoppm` and
//! `tesseract` run directly by this tool with the same parallelism, in the same run, one
//! after the other.
//!
//! - `run`: the pipeline run and its accounting (every good document has its
//!   DocumentProcessed event and its record, every poison one is in the DLQ with its code);
//! - `floor`: the tools alone.
//!
//! The report carries counts, codes, timings and the made-up object keys, never document text.

mod floor;
mod run;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::documents::Mix;
use crate::report::Target;

pub use run::{DocOptions, run};

/// A document scenario file (`loadtest/scenarios/documents/*.toml`, apart from the HL7
/// scenarios, whose format is another).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocScenario {
    pub name: String,
    /// What is uploaded.
    pub mix: Mix,
    /// doc-pipeline's documents at once (`FLEET_CONCURRENCY`; its default is 2).
    #[serde(default = "default_concurrency")]
    pub worker_concurrency: usize,
    /// Give up when no document has had an outcome for this long.
    #[serde(default = "default_idle")]
    pub idle_timeout_s: u64,
    /// The upload queue's visibility timeout (a document is redelivered after it).
    #[serde(default = "default_visibility")]
    pub visibility_timeout_s: u64,
    /// Rounds of the pipeline and the floor, each on a fresh stack, in turn pipeline first and
    /// floor first; the walls are summed (2: a load drifting during the run weighs on both).
    #[serde(default = "default_rounds")]
    pub rounds: usize,
    /// The target for the pipeline's wall time over the floor's, percent.
    #[serde(default = "default_overhead")]
    pub target_overhead_pct: f64,
}

fn default_concurrency() -> usize {
    2
}
fn default_idle() -> u64 {
    300
}
fn default_visibility() -> u64 {
    600
}
fn default_rounds() -> usize {
    1
}
fn default_overhead() -> f64 {
    5.0
}

impl DocScenario {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let s: Self =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        anyhow::ensure!(s.worker_concurrency >= 1, "worker_concurrency must be >= 1");
        anyhow::ensure!(s.mix.max_pages >= 1, "mix.max_pages must be >= 1");
        anyhow::ensure!(
            s.mix.text_pdfs + s.mix.scanned_pdfs + s.mix.pngs > 0,
            "the mix has no good document"
        );
        Ok(s)
    }
}

/// The machine and its load when the run started and ended.
#[derive(Debug, Clone, Serialize)]
pub struct DocMachine {
    pub nproc: usize,
    pub uname: String,
    /// `/proc/loadavg` before the run, after the (last) pipeline phase, at the end.
    pub loadavg_before: String,
    pub loadavg_after_pipeline: String,
    pub loadavg_after_floor: String,
    /// `tesseract --version`'s first line and `pdftoppm -v`'s.
    pub tools: String,
}

/// Documents and pages of one kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KindCount {
    pub documents: usize,
    pub pages: usize,
}

/// What was uploaded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Uploaded {
    pub good: usize,
    pub poison: usize,
    /// Pages of the good documents.
    pub pages: usize,
    /// Of those, pages Tesseract reads (scans); the others are read from the text layer.
    pub ocr_pages: usize,
    pub by_kind: BTreeMap<String, KindCount>,
    pub bytes: usize,
}

/// The pipeline run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PipelineRun {
    /// From the first S3 event queued (the worker ready and idle) to the last outcome seen
    /// (polled every 50 ms).
    pub wall_s: f64,
    pub pages_per_s: f64,
    pub s_per_page: f64,
    /// The worker process's own CPU (user + system).
    pub worker_cpu_s: f64,
    /// CPU of the tools it ran (its reaped children: pdfinfo, pdftotext, pdftoppm, tesseract).
    pub tools_cpu_s: f64,
    pub processed: usize,
    pub dead_lettered: usize,
    /// DocumentProcessed events beyond the first for a document.
    pub duplicate_events: usize,
    /// Good documents whose event reports another page count than the document has.
    pub page_count_mismatches: usize,
    /// Medications planted in the good notes, and how many the results list (the rules
    /// extractor on the OCR text).
    pub medications_planted: usize,
    pub medications_found: usize,
    /// The worker's final `run finished` counts and requests by API.
    pub worker_received: u64,
    pub worker_succeeded: u64,
    pub worker_dead_lettered: u64,
    pub requests: BTreeMap<String, u64>,
    pub worker_exit: String,
}

/// The floor run: the tools alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloorRun {
    pub wall_s: f64,
    pub pages_per_s: f64,
    pub s_per_page: f64,
    /// CPU of the tool processes (this tool's reaped children during the floor).
    pub tools_cpu_s: f64,
    /// Tool processes at once (the pipeline's `parallel_pages`: the machine's cores).
    pub parallelism: usize,
    /// pdftotext runs (text-layer PDFs), pdftoppm runs (scanned pages), tesseract runs.
    pub pdftotext_runs: usize,
    pub pdftoppm_runs: usize,
    pub tesseract_runs: usize,
    /// Runs that failed (none expected).
    pub failed_runs: usize,
}

/// One round's walls.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Which ran first.
    pub order: &'static str,
    pub pipeline_wall_s: f64,
    pub floor_wall_s: f64,
}

/// A poison upload that did not end in the DLQ with its code.
#[derive(Debug, Clone, Serialize)]
pub struct WrongOutcome {
    pub key: String,
    pub kind: String,
    pub expected: String,
    /// The code it was dead-lettered with, `processed`, or `none`.
    pub got: String,
}

/// One document run's report (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct DocReport {
    pub scenario: String,
    pub command: String,
    pub machine: DocMachine,
    pub git_commit: Option<String>,
    pub started_at_unix_ms: i64,
    pub worker_concurrency: usize,
    /// What one round uploads (each round uploads the same).
    pub uploaded: Uploaded,
    /// Each round's walls; the pipeline and floor figures below are over all rounds.
    pub rounds: Vec<Round>,
    pub pipeline: PipelineRun,
    pub floor: FloorRun,
    /// `(pipeline wall / floor wall - 1) × 100`.
    pub overhead_pct: f64,
    /// Good documents without their event and record, plus poison ones not dead-lettered.
    pub lost: usize,
    /// Poison dead-lettered with another code, or processed.
    pub wrong_outcomes: Vec<WrongOutcome>,
    pub targets: Vec<Target>,
}

impl DocReport {
    /// Nothing lost, every poison upload with its code, no duplicate, every page counted.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.wrong_outcomes.is_empty()
            && self.pipeline.duplicate_events == 0
            && self.pipeline.page_count_mismatches == 0
            && self.floor.failed_runs == 0
    }
}

fn targets(r: &DocReport, target_overhead_pct: f64) -> Vec<Target> {
    vec![
        Target {
            what: "documents lost",
            target: "0".into(),
            measured: r.lost.to_string(),
            met: Some(r.lost == 0),
        },
        Target {
            what: "pipeline wall time over the OCR floor",
            target: format!("<= {target_overhead_pct} %"),
            measured: format!("{:+.1} %", r.overhead_pct),
            met: Some(r.overhead_pct <= target_overhead_pct),
        },
    ]
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().unwrap_or(f64::NAN)
}

fn text(v: &serde_json::Value, path: &[&str]) -> String {
    let mut v = v;
    for p in path {
        v = &v[*p];
    }
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// The first field of a `/proc/loadavg` line (the 1-minute load average).
fn load1(s: &str) -> String {
    s.split_whitespace().next().unwrap_or("-").to_string()
}

/// The markdown table of document runs' `report.json` files, one row each.
pub fn table(reports: &[serde_json::Value]) -> String {
    let mut out = String::from(
        "| run | documents (good + poison) | pages (OCR'd) | pipeline | pages/s | s/page | \
         floor (pdftoppm + tesseract) | floor pages/s | overhead | lost | DLQ codes right | \
         medications found | worker CPU / tools CPU (floor tools CPU) | load 1 min before / after | commit |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in reports {
        let poison = num(r, &["uploaded", "poison"]);
        let rounds = r["rounds"].as_array().map_or(1, Vec::len).max(1);
        let times = if rounds > 1 {
            format!(" (× {rounds} rounds)")
        } else {
            String::new()
        };
        let wrong = r["wrong_outcomes"].as_array().map_or(0, Vec::len);
        out.push_str(&format!(
            "| {} | {} + {}{} | {} ({}) | {:.1} s | {:.2} | {:.2} | {:.1} s | {:.2} | **{:+.1} %** | **{}** | {}/{} | {}/{} | {:.1} s / {:.1} s ({:.1} s) | {} / {} | {} |\n",
            text(r, &["scenario"]),
            num(r, &["uploaded", "good"]),
            poison,
            times,
            num(r, &["uploaded", "pages"]),
            num(r, &["uploaded", "ocr_pages"]),
            num(r, &["pipeline", "wall_s"]),
            num(r, &["pipeline", "pages_per_s"]),
            num(r, &["pipeline", "s_per_page"]),
            num(r, &["floor", "wall_s"]),
            num(r, &["floor", "pages_per_s"]),
            num(r, &["overhead_pct"]),
            num(r, &["lost"]),
            (poison as usize * rounds).saturating_sub(wrong),
            poison as usize * rounds,
            num(r, &["pipeline", "medications_found"]),
            num(r, &["pipeline", "medications_planted"]),
            num(r, &["pipeline", "worker_cpu_s"]),
            num(r, &["pipeline", "tools_cpu_s"]),
            num(r, &["floor", "tools_cpu_s"]),
            load1(&text(r, &["machine", "loadavg_before"])),
            load1(&text(r, &["machine", "loadavg_after_floor"])),
            text(r, &["git_commit"]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DocReport {
        DocReport {
            scenario: "documents-local".into(),
            command: "loadtest doc-run x".into(),
            machine: DocMachine {
                nproc: 2,
                uname: "Linux".into(),
                loadavg_before: "0.50 0.40 0.30 1/100 42".into(),
                loadavg_after_pipeline: "2.00 1.00 0.50 1/100 43".into(),
                loadavg_after_floor: "2.10 1.20 0.60 1/100 44".into(),
                tools: "tesseract 5.3.0".into(),
            },
            git_commit: Some("abc1234".into()),
            started_at_unix_ms: 0,
            worker_concurrency: 2,
            rounds: vec![Round {
                order: "pipeline, floor",
                pipeline_wall_s: 63.0,
                floor_wall_s: 60.0,
            }],
            uploaded: Uploaded {
                good: 20,
                poison: 3,
                pages: 40,
                ocr_pages: 30,
                ..Uploaded::default()
            },
            pipeline: PipelineRun {
                wall_s: 63.0,
                pages_per_s: 40.0 / 63.0,
                s_per_page: 63.0 / 40.0,
                worker_cpu_s: 0.8,
                tools_cpu_s: 120.0,
                medications_planted: 90,
                medications_found: 88,
                ..PipelineRun::default()
            },
            floor: FloorRun {
                wall_s: 60.0,
                pages_per_s: 40.0 / 60.0,
                s_per_page: 1.5,
                tools_cpu_s: 118.0,
                parallelism: 2,
                ..FloorRun::default()
            },
            overhead_pct: 5.0,
            lost: 0,
            wrong_outcomes: vec![WrongOutcome {
                key: "notes/poison-00021.docx".into(),
                kind: "word".into(),
                expected: "DOCUMENT_UNSUPPORTED_TYPE".into(),
                got: "none".into(),
            }],
            targets: Vec::new(),
        }
    }

    #[test]
    fn the_table_has_a_row_per_report_with_its_figures() {
        let mut r = sample();
        r.targets = targets(&r, 5.0);
        assert_eq!(r.targets[1].met, Some(true));
        assert!(!r.passed(), "a wrong outcome fails the run");
        let v = serde_json::to_value(&r).unwrap();
        let t = table(&[v.clone(), v]);
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(rows.len(), 4);
        let row = rows[2];
        for want in [
            "| documents-local |",
            "| 20 + 3 |",
            "| 40 (30) |",
            "| 63.0 s |",
            "| 0.63 |",
            "| 1.57 |",
            "| 60.0 s |",
            "**+5.0 %**",
            "| **0** |",
            "| 2/3 |",
            "| 88/90 |",
            "| 0.8 s / 120.0 s (118.0 s) |",
            "| 0.50 / 2.10 |",
            "| abc1234 |",
        ] {
            assert!(row.contains(want), "{want} not in {row}");
        }
        assert_eq!(rows[0].matches('|').count(), rows[1].matches('|').count());
        assert_eq!(rows[0].matches('|').count(), row.matches('|').count());
    }

    #[test]
    fn rounds_multiply_the_poison_and_say_so() {
        let mut r = sample();
        r.rounds.push(r.rounds[0].clone());
        let row = table(&[serde_json::to_value(&r).unwrap()]);
        let row = row.lines().nth(2).unwrap();
        assert!(row.contains("| 20 + 3 (× 2 rounds) |"), "{row}");
        assert!(row.contains("| 5/6 |"), "{row}");
    }

    #[test]
    fn overhead_above_the_target_is_not_met() {
        let mut r = sample();
        r.overhead_pct = 7.5;
        r.wrong_outcomes.clear();
        assert!(r.passed());
        let t = targets(&r, 5.0);
        assert_eq!(t[1].met, Some(false));
        assert_eq!(t[1].measured, "+7.5 %");
    }

    #[test]
    fn the_committed_scenario_parses() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/documents/documents-local.toml");
        let s = DocScenario::load(&path).unwrap();
        assert!(s.mix.scanned_pdfs > 0 && s.mix.pngs > 0 && s.mix.text_pdfs > 0);
        assert!(s.mix.corrupt_pdfs + s.mix.word_files + s.mix.too_large_images >= 3);
        assert!(s.mix.max_pages > 1);
    }
}
