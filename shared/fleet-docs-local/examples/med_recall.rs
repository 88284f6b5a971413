//! Medication recall of the rules extractor on the synthetic notes of the test corpus.
//!
//! ```text
//! cargo run --release -p fleet-docs-local --example med_recall -- [--target 0.90] [--json PATH] [--limit N]
//! ```
//!
//! Reads `$FLEET_CORPUS_DIR/notes/ctakes-examples/synthetic-*.txt` (`FLEET_CORPUS_DIR` defaults
//! to `../shared/corpus` beside the repository). The notes are never copied anywhere.
//!
//! **What is expected.** In each note, the lines under a `# Medications` heading, up to the next
//! `#` heading, list medications separated by `;` (or say "No Active Medications."). Each `;`
//! item is split at ` / ` into its ingredients ("amoxicillin 250 mg / clavulanate 125 mg oral
//! tablet" gives two), and each ingredient is one expected medication occurrence, with its
//! character span. Its *name*, for reports, is the ingredient's words after any leading
//! quantity ("24 hr", "NDA020503 200 actuat", "1 ml") and before its first number or `[`,
//! lower-cased ("metformin hydrochloride"). Medication names are not PHI; no other note text is
//! printed.
//!
//! **What counts as recalled.** The extractor runs on the whole note text. An occurrence is
//! recalled when a MEDICATION entity overlaps the ingredient's span and lies within its `;`
//! item. A distinct (note, name) pair is recalled when at least one of its occurrences is.
//!
//! Prints the occurrence recall, the distinct-pair recall, a per-note table and the missed
//! names with counts; `--json PATH` writes the same as JSON. Exits 1 when occurrence recall is
//! below `--target` (default 0.90), 2 on a usage or input error. `--limit N` reads only the
//! first N notes (by file name).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fleet_docs::schema::Category;
use fleet_docs_local::rules::RulesExtractor;
use serde_json::json;

/// `[start, end)` offsets.
type Span = (usize, usize);

/// One expected medication: spans of the ingredient and of its `;` item.
struct Expected {
    name: String,
    span: Span,
    item: Span,
}

/// `(start, end)` byte range of `part` trimmed, where `part` starts at byte `at`.
fn trimmed(part: &str, at: usize) -> Option<Span> {
    let lead = part.len() - part.trim_start().len();
    let t = part.trim();
    (!t.is_empty()).then_some((at + lead, at + lead + t.len()))
}

/// The name of an ingredient text (see the module docs).
fn name_of(segment: &str) -> String {
    const QUANTITY_UNITS: &[&str] = &["hr", "actuat", "ml", "day", "unt", "mg", "g", "mcg"];
    let tokens: Vec<&str> = segment.split_whitespace().collect();
    let mut i = 0;
    let mut after_number = false;
    while i < tokens.len() {
        let t = tokens[i].to_ascii_lowercase();
        if t.chars().any(|c| c.is_ascii_digit()) {
            after_number = true;
        } else if !(after_number && QUANTITY_UNITS.contains(&t.as_str())) {
            break;
        }
        i += 1;
    }
    let name: Vec<&str> = tokens[i..]
        .iter()
        .take_while(|t| !t.chars().any(|c| c.is_ascii_digit()) && !t.starts_with('['))
        .copied()
        .collect();
    let name = name.join(" ").to_lowercase();
    let name = name.trim_end_matches([',', '.']).trim().to_string();
    if name.is_empty() {
        segment.trim().to_lowercase()
    } else {
        name
    }
}

/// Expected medications of a note, byte spans.
fn expected_bytes(text: &str) -> Vec<(String, Span, Span)> {
    let mut out = Vec::new();
    let mut in_meds = false;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let content = line.trim_end_matches(['\n', '\r']);
        let t = content.trim();
        if t.starts_with('#') {
            in_meds = t
                .trim_start_matches('#')
                .trim()
                .eq_ignore_ascii_case("medications");
            continue;
        }
        if !in_meds || t.is_empty() || t.eq_ignore_ascii_case("no active medications.") {
            continue;
        }
        let mut item_at = start;
        for item in content.split(';') {
            let here = item_at;
            item_at += item.len() + 1;
            let Some(item_span) = trimmed(item, here) else {
                continue;
            };
            let mut seg_at = here;
            for seg in item.split(" / ") {
                let s_here = seg_at;
                seg_at += seg.len() + 3;
                if let Some(span) = trimmed(seg, s_here) {
                    out.push((name_of(&text[span.0..span.1]), span, item_span));
                }
            }
        }
    }
    out
}

fn char_index(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

struct NoteResult {
    note: String,
    expected: usize,
    recalled: usize,
    /// name → (occurrences, recalled occurrences)
    names: BTreeMap<String, (usize, usize)>,
}

fn measure(path: &Path, extractor: &RulesExtractor) -> std::io::Result<NoteResult> {
    let text = std::fs::read_to_string(path)?;
    let expected: Vec<Expected> = expected_bytes(&text)
        .into_iter()
        .map(|(name, s, i)| Expected {
            name,
            span: (char_index(&text, s.0), char_index(&text, s.1)),
            item: (char_index(&text, i.0), char_index(&text, i.1)),
        })
        .collect();
    let meds: Vec<Span> = extractor
        .extract(&text)
        .into_iter()
        .filter(|e| e.category == Category::Medication)
        .map(|e| (e.begin_offset, e.end_offset))
        .collect();
    let mut result = NoteResult {
        note: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        expected: expected.len(),
        recalled: 0,
        names: BTreeMap::new(),
    };
    for e in &expected {
        let hit = meds
            .iter()
            .any(|&(b, en)| b < e.span.1 && en > e.span.0 && b >= e.item.0 && en <= e.item.1);
        let entry = result.names.entry(e.name.clone()).or_default();
        entry.0 += 1;
        if hit {
            entry.1 += 1;
            result.recalled += 1;
        }
    }
    Ok(result)
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

fn corpus_dir() -> PathBuf {
    fleet_core::env::corpus_dir()
}

fn main() -> ExitCode {
    let mut target = 0.90;
    let mut json_path: Option<PathBuf> = None;
    let mut limit = usize::MAX;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--target" => match args.next().and_then(|v| v.parse::<f64>().ok()) {
                Some(v) if (0.0..=1.0).contains(&v) => target = v,
                _ => {
                    eprintln!("--target needs a number from 0 to 1");
                    return ExitCode::from(2);
                }
            },
            "--json" => match args.next() {
                Some(p) => json_path = Some(PathBuf::from(p)),
                None => {
                    eprintln!("--json needs a path");
                    return ExitCode::from(2);
                }
            },
            "--limit" => match args.next().and_then(|v| v.parse::<usize>().ok()) {
                Some(v) => limit = v,
                None => {
                    eprintln!("--limit needs a count");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!(
                    "usage: med_recall [--target 0.90] [--json PATH] [--limit N]\n\
                     reads $FLEET_CORPUS_DIR/notes/ctakes-examples/synthetic-*.txt"
                );
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument {other:?} (try --help)");
                return ExitCode::from(2);
            }
        }
    }
    let dir = corpus_dir().join("notes/ctakes-examples");
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("synthetic-") && n.ends_with(".txt"))
            })
            .collect(),
        Err(e) => {
            eprintln!("cannot read {}: {e} (set FLEET_CORPUS_DIR)", dir.display());
            return ExitCode::from(2);
        }
    };
    paths.sort();
    paths.truncate(limit);
    if paths.is_empty() {
        eprintln!("no synthetic-*.txt notes in {}", dir.display());
        return ExitCode::from(2);
    }
    let extractor = RulesExtractor::new();
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    for p in &paths {
        match measure(p, &extractor) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("cannot read {}: {e}", p.display());
                return ExitCode::from(2);
            }
        }
    }
    let elapsed = started.elapsed();

    let expected: usize = results.iter().map(|r| r.expected).sum();
    let recalled: usize = results.iter().map(|r| r.recalled).sum();
    let pairs: usize = results.iter().map(|r| r.names.len()).sum();
    let pairs_recalled: usize = results
        .iter()
        .map(|r| r.names.values().filter(|(_, hit)| *hit > 0).count())
        .sum();
    let mut missed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut missed_pairs: BTreeSet<(&str, &str)> = BTreeSet::new();
    for r in &results {
        for (name, (n, hit)) in &r.names {
            if n > hit {
                *missed.entry(name).or_default() += n - hit;
            }
            if *hit == 0 {
                missed_pairs.insert((&r.note, name));
            }
        }
    }
    let occ_recall = ratio(recalled, expected);
    let pair_recall = ratio(pairs_recalled, pairs);

    println!(
        "{:<56} {:>8} {:>8} {:>7}",
        "note", "expected", "recalled", "recall"
    );
    for r in &results {
        let recall = if r.expected == 0 {
            "-".to_string()
        } else {
            format!("{:.1}%", 100.0 * ratio(r.recalled, r.expected))
        };
        println!(
            "{:<56} {:>8} {:>8} {:>7}",
            r.note, r.expected, r.recalled, recall
        );
    }
    println!();
    println!(
        "occurrences: {recalled}/{expected} recalled = {:.1}% (target {:.1}%)",
        100.0 * occ_recall,
        100.0 * target
    );
    println!(
        "distinct (note, medication) pairs: {pairs_recalled}/{pairs} recalled = {:.1}%",
        100.0 * pair_recall
    );
    println!(
        "notes: {}, extraction time: {:.1} ms",
        results.len(),
        elapsed.as_secs_f64() * 1000.0
    );
    if missed.is_empty() {
        println!("missed: none");
    } else {
        println!("missed medication names (occurrences):");
        for (name, n) in &missed {
            println!("  {n:>4}  {name}");
        }
    }

    if let Some(path) = json_path {
        let report = json!({
            "target": target,
            "occurrences": {"expected": expected, "recalled": recalled, "recall": occ_recall},
            "distinct_pairs": {"expected": pairs, "recalled": pairs_recalled, "recall": pair_recall},
            "notes": results.iter().map(|r| json!({
                "note": r.note,
                "expected": r.expected,
                "recalled": r.recalled,
                "recall": ratio(r.recalled, r.expected),
            })).collect::<Vec<_>>(),
            "missed": missed.iter().map(|(name, n)| json!({"name": name, "occurrences": n}))
                .collect::<Vec<_>>(),
            "missed_pairs": missed_pairs.iter().map(|(note, name)| json!({"note": note, "name": name}))
                .collect::<Vec<_>>(),
            "passed": occ_recall >= target,
        });
        let body = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, body + "\n") {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if occ_recall < target {
        eprintln!(
            "occurrence recall {:.1}% is below the target {:.1}%",
            100.0 * occ_recall,
            100.0 * target
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_quantities_and_numbers() {
        assert_eq!(name_of("amoxicillin 250 mg"), "amoxicillin");
        assert_eq!(
            name_of("24 hr metformin hydrochloride 500 mg extended release oral tablet"),
            "metformin hydrochloride"
        );
        assert_eq!(
            name_of("NDA020503 200 actuat albuterol 0.09 mg/actuat"),
            "albuterol"
        );
        assert_eq!(
            name_of("insulin isophane, human 70 unt/ml"),
            "insulin isophane, human"
        );
        assert_eq!(name_of("Brandname 28 day pack"), "brandname");
    }

    #[test]
    fn medication_sections_are_split_into_ingredients() {
        let text = "# Medications\nasp 1 mg; x 2 mg / y 3 mg tab\n\n# Plan\nz 1 mg\n# Medications\nNo Active Medications.\n";
        let got: Vec<(String, &str, &str)> = expected_bytes(text)
            .into_iter()
            .map(|(n, s, i)| (n, &text[s.0..s.1], &text[i.0..i.1]))
            .collect();
        assert_eq!(
            got,
            [
                ("asp".to_string(), "asp 1 mg", "asp 1 mg"),
                ("x".to_string(), "x 2 mg", "x 2 mg / y 3 mg tab"),
                ("y".to_string(), "y 3 mg tab", "x 2 mg / y 3 mg tab"),
            ]
        );
    }
}
