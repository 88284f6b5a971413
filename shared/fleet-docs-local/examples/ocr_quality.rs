//! OCR word accuracy on real clinical notes, end to end through the local engine.
//!
//! Each note of `$FLEET_CORPUS_DIR/notes/ctakes-examples` (default `../shared/corpus` beside
//! the repository) taken — every `synthetic-*` then every `curated-*`, each in sorted order,
//! the first `--limit` (20) — is set in Courier with `render::text_to_pdf`, rasterised at
//! 300 dpi with `render::pdf_to_png_pages` (no text layer), and each page image is read by
//! `TesseractOcr`. The OCR'd words are compared with the note's words (whitespace-split):
//! accuracy = 1 − word-level Levenshtein distance / number of source words, overall summed
//! over all notes; "exact" compares tokens as they are, "normalised" lower-cases them and
//! drops punctuation (tokens left empty are dropped on both sides). As a control, the PDF's
//! own text layer is read back through the same engine and scored the same way.
//!
//! Prints a table of file names and figures (never note text), writes `--json PATH` when
//! given, and exits 1 when overall exact accuracy is below `--target` (0.97).
//!
//! Known systematic losses, counted per note: words with characters outside WinAnsi are
//! rendered with `?` in their place (`render` module notes), and words longer than a line
//! (70 characters) are cut across lines; both count as errors against the source.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fleet_docs::{Document, MediaType, Ocr, OcrStart};
use fleet_docs_local::ocr::TesseractOcr;
use fleet_docs_local::render;

struct Args {
    limit: usize,
    json: Option<PathBuf>,
    target: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        limit: 20,
        json: None,
        target: 0.97,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--limit" => {
                args.limit = value("--limit")?
                    .parse()
                    .map_err(|e| format!("--limit: {e}"))?;
            }
            "--json" => args.json = Some(value("--json")?.into()),
            "--target" => {
                args.target = value("--target")?
                    .parse()
                    .map_err(|e| format!("--target: {e}"))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: ocr_quality [--limit N (20)] [--json PATH] [--target F (0.97)]".into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if args.limit == 0 {
        return Err("--limit must be at least 1".into());
    }
    Ok(args)
}

fn corpus_dir() -> PathBuf {
    fleet_core::env::corpus_dir()
}

/// `synthetic-*` then `curated-*`, each sorted by name, at most `limit`.
fn pick_notes(dir: &Path, limit: usize) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    let mut picked: Vec<PathBuf> = ["synthetic-", "curated-"]
        .iter()
        .flat_map(|prefix| names.iter().filter(move |n| n.starts_with(prefix)))
        .map(|n| dir.join(n))
        .collect();
    picked.truncate(limit);
    Ok(picked)
}

fn normalise(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Word-level Levenshtein distance.
fn distance(a: &[String], b: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(x != y);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[derive(Default, Clone, Copy)]
struct Score {
    source_words: usize,
    distance: usize,
}

impl Score {
    fn of(source: &[String], read: &[String]) -> Self {
        Self {
            source_words: source.len(),
            distance: distance(source, read),
        }
    }
    fn add(&mut self, other: Self) {
        self.source_words += other.source_words;
        self.distance += other.distance;
    }
    fn accuracy(self) -> f64 {
        if self.source_words == 0 {
            return 1.0;
        }
        1.0 - self.distance as f64 / self.source_words as f64
    }
}

struct NoteResult {
    name: String,
    pages: usize,
    exact: Score,
    normalised: Score,
    layer: Score,
    non_win_ansi_words: usize,
    cut_words: usize,
    seconds: f64,
}

fn tokens(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn normalised_tokens(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(normalise)
        .filter(|w| !w.is_empty())
        .collect()
}

async fn read(ocr: &TesseractOcr, media_type: MediaType, bytes: Vec<u8>) -> Result<String, String> {
    let document = Document {
        media_type,
        bytes,
        location: None,
    };
    match ocr.start(&document, "ocr-quality").await {
        Ok(OcrStart::Done(result)) => {
            if !result.warnings.is_empty() {
                return Err(format!("pages not read: {:?}", result.warnings));
            }
            Ok(result.text())
        }
        Ok(OcrStart::Started { .. }) => Err("unexpected asynchronous job".into()),
        Err(e) => Err(e.to_string()),
    }
}

async fn score_note(ocr: &TesseractOcr, path: &Path) -> Result<NoteResult, String> {
    let started = std::time::Instant::now();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let bytes = std::fs::read(path).map_err(|e| format!("reading: {}", e.kind()))?;
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let pdf = render::text_to_pdf(&text);
    let pngs = render::pdf_to_png_pages(&pdf, 300)
        .await
        .map_err(|e| e.to_string())?;
    let pages = pngs.len();

    // Pages in parallel; the engine's semaphore bounds the Tesseract processes.
    let mut set = tokio::task::JoinSet::new();
    for (i, png) in pngs.into_iter().enumerate() {
        let ocr = ocr.clone();
        set.spawn(async move { (i, read(&ocr, MediaType::Png, png).await) });
    }
    let mut texts = vec![String::new(); pages];
    while let Some(joined) = set.join_next().await {
        let (i, text) = joined.map_err(|e| e.to_string())?;
        texts[i] = text?;
    }
    let ocr_text = texts.join("\n\n");
    let layer_text = read(ocr, MediaType::Pdf, pdf).await?;

    let source = tokens(&text);
    Ok(NoteResult {
        name,
        pages,
        exact: Score::of(&source, &tokens(&ocr_text)),
        normalised: Score::of(&normalised_tokens(&text), &normalised_tokens(&ocr_text)),
        layer: Score::of(&source, &tokens(&layer_text)),
        non_win_ansi_words: source
            .iter()
            .filter(|w| w.chars().any(|c| render::win_ansi(c) == b'?' && c != '?'))
            .count(),
        cut_words: source
            .iter()
            .filter(|w| w.chars().count() > render::COLUMNS)
            .count(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ocr_quality: {e}");
            return ExitCode::from(2);
        }
    };
    let notes_dir = corpus_dir().join("notes/ctakes-examples");
    let notes = match pick_notes(&notes_dir, args.limit) {
        Ok(n) if !n.is_empty() => n,
        Ok(_) => {
            eprintln!("ocr_quality: no notes in {}", notes_dir.display());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("ocr_quality: {e} (set FLEET_CORPUS_DIR)");
            return ExitCode::from(2);
        }
    };
    let ocr = TesseractOcr::default();
    match ocr.check().await {
        Ok(versions) => eprintln!("ocr_quality: {versions}"),
        Err(e) => {
            eprintln!("ocr_quality: {e}");
            return ExitCode::from(2);
        }
    }

    println!(
        "{:<52} {:>5} {:>6} {:>8} {:>8} {:>8} {:>7} {:>5} {:>6}",
        "note", "pages", "words", "exact", "normal", "layer", "!ansi", "cut", "secs"
    );
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for path in &notes {
        match score_note(&ocr, path).await {
            Ok(r) => {
                println!(
                    "{:<52} {:>5} {:>6} {:>8.4} {:>8.4} {:>8.4} {:>7} {:>5} {:>6.1}",
                    r.name,
                    r.pages,
                    r.exact.source_words,
                    r.exact.accuracy(),
                    r.normalised.accuracy(),
                    r.layer.accuracy(),
                    r.non_win_ansi_words,
                    r.cut_words,
                    r.seconds
                );
                results.push(r);
            }
            Err(e) => {
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                eprintln!("ocr_quality: {name}: {e}");
                failures.push(name.into_owned());
            }
        }
    }
    let mut exact = Score::default();
    let mut normalised = Score::default();
    let mut layer = Score::default();
    for r in &results {
        exact.add(r.exact);
        normalised.add(r.normalised);
        layer.add(r.layer);
    }
    let pages: usize = results.iter().map(|r| r.pages).sum();
    let non_win_ansi: usize = results.iter().map(|r| r.non_win_ansi_words).sum();
    let cut: usize = results.iter().map(|r| r.cut_words).sum();
    println!(
        "{:<52} {:>5} {:>6} {:>8.4} {:>8.4} {:>8.4} {:>7} {:>5}",
        format!("OVERALL ({} notes)", results.len()),
        pages,
        exact.source_words,
        exact.accuracy(),
        normalised.accuracy(),
        layer.accuracy(),
        non_win_ansi,
        cut
    );
    println!(
        "exact: tokens as they are; normal: lower-cased, punctuation dropped; layer: the \
         PDF's text layer (control); !ansi: source words with characters outside WinAnsi \
         (rendered '?'); cut: words longer than a line"
    );

    let pass = failures.is_empty() && exact.accuracy() >= args.target;
    if let Some(path) = &args.json {
        let notes: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "note": r.name,
                    "pages": r.pages,
                    "source_words": r.exact.source_words,
                    "exact_distance": r.exact.distance,
                    "exact_accuracy": r.exact.accuracy(),
                    "normalised_source_words": r.normalised.source_words,
                    "normalised_distance": r.normalised.distance,
                    "normalised_accuracy": r.normalised.accuracy(),
                    "text_layer_accuracy": r.layer.accuracy(),
                    "non_win_ansi_words": r.non_win_ansi_words,
                    "cut_words": r.cut_words,
                    "seconds": r.seconds,
                })
            })
            .collect();
        let report = serde_json::json!({
            "engine": "tesseract",
            "dpi": 300,
            "corpus": "notes/ctakes-examples",
            "selection": "synthetic-* then curated-*, sorted",
            "limit": args.limit,
            "target": args.target,
            "pass": pass,
            "overall": {
                "notes": results.len(),
                "pages": pages,
                "source_words": exact.source_words,
                "exact_distance": exact.distance,
                "exact_accuracy": exact.accuracy(),
                "normalised_source_words": normalised.source_words,
                "normalised_distance": normalised.distance,
                "normalised_accuracy": normalised.accuracy(),
                "text_layer_accuracy": layer.accuracy(),
                "non_win_ansi_words": non_win_ansi,
                "cut_words": cut,
            },
            "failed_notes": failures,
            "notes": notes,
        });
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|b| std::fs::write(path, b).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("ocr_quality: writing {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if !failures.is_empty() {
        eprintln!("ocr_quality: {} notes could not be read", failures.len());
    }
    if pass {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "ocr_quality: overall exact accuracy {:.4} below the target {}",
            exact.accuracy(),
            args.target
        );
        ExitCode::from(1)
    }
}
