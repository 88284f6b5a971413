//! Seeded synthetic clinical documents for the document pipeline: notes with a medication list,
//! assessment and plan, rendered as text-layer PDFs (`fleet_docs_local::render`), with a
//! manifest of what each one contains so a run can check what the pipeline found.
//!
//! Every name, date and identifier is made up here; nothing comes from a corpus. The same seed
//! gives the same bytes.

use std::path::Path;

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

/// One generated document as the manifest lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DocumentEntry {
    pub file: String,
    pub bytes: usize,
    /// Pages of the PDF (the renderer wraps long notes onto more pages).
    pub pages: usize,
    /// Generic names planted in the medication list, in order.
    pub medications: Vec<String>,
    /// Conditions planted in the assessment (asserted, not negated).
    pub conditions: Vec<String>,
    /// Conditions planted only as negated findings ("denies ...").
    pub negated: Vec<String>,
}

/// A note's text and what was planted in it.
#[derive(Debug, Clone)]
pub struct Note {
    pub text: String,
    pub medications: Vec<String>,
    pub conditions: Vec<String>,
    pub negated: Vec<String>,
}

const MEDICATIONS: &[(&str, &[&str])] = &[
    ("metformin", &["500 mg", "850 mg", "1000 mg"]),
    ("lisinopril", &["5 mg", "10 mg", "20 mg"]),
    ("atorvastatin", &["10 mg", "20 mg", "40 mg"]),
    ("amlodipine", &["2.5 mg", "5 mg", "10 mg"]),
    ("metoprolol", &["25 mg", "50 mg"]),
    ("omeprazole", &["20 mg", "40 mg"]),
    ("levothyroxine", &["50 mcg", "75 mcg", "100 mcg"]),
    ("furosemide", &["20 mg", "40 mg"]),
    ("warfarin", &["2 mg", "5 mg"]),
    ("apixaban", &["2.5 mg", "5 mg"]),
    ("sertraline", &["50 mg", "100 mg"]),
    ("gabapentin", &["100 mg", "300 mg"]),
    ("prednisone", &["5 mg", "10 mg", "20 mg"]),
    ("albuterol", &["90 mcg"]),
    ("insulin glargine", &["10 units", "20 units"]),
    ("aspirin", &["81 mg", "325 mg"]),
    ("clopidogrel", &["75 mg"]),
    ("hydrochlorothiazide", &["12.5 mg", "25 mg"]),
    ("amoxicillin", &["500 mg", "875 mg"]),
    ("acetaminophen", &["500 mg", "650 mg"]),
];

const ROUTES: &[&str] = &["by mouth", "PO", "orally"];
const FREQUENCIES: &[&str] = &["daily", "twice daily", "every 8 hours", "at bedtime", "BID"];

const CONDITIONS: &[&str] = &[
    "hypertension",
    "type 2 diabetes mellitus",
    "hyperlipidemia",
    "atrial fibrillation",
    "congestive heart failure",
    "chronic kidney disease",
    "hypothyroidism",
    "asthma",
    "pneumonia",
    "osteoarthritis",
    "depression",
    "gastroesophageal reflux disease",
];

const NEGATABLE: &[&str] = &[
    "chest pain",
    "fever",
    "shortness of breath",
    "nausea",
    "headache",
];

const GIVEN: &[&str] = &[
    "Alex", "Jordan", "Casey", "Morgan", "Riley", "Quinn", "Avery",
];
const FAMILY: &[&str] = &[
    "Testperson",
    "Sampleton",
    "Fictional",
    "Examplar",
    "Placeholder",
];

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Distinct indices into a list of `len`, `n` of them, in draw order.
fn distinct(rng: &mut StdRng, len: usize, n: usize) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(n);
    while out.len() < n.min(len) {
        let i = rng.random_range(0..len);
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// One note. Lengths vary from under a page to several (`filler` paragraphs).
pub fn note(rng: &mut StdRng, index: usize) -> Note {
    let name = format!("{} {}", pick(rng, GIVEN), pick(rng, FAMILY));
    let mrn = format!("SYN{:07}", rng.random_range(0..10_000_000u32));
    let age = rng.random_range(19..95u32);
    let meds: Vec<usize> = {
        let n = rng.random_range(2..=7);
        distinct(rng, MEDICATIONS.len(), n)
    };
    let conds: Vec<usize> = {
        let n = rng.random_range(1..=4);
        distinct(rng, CONDITIONS.len(), n)
    };
    let negated: Vec<usize> = {
        let n = rng.random_range(0..=2);
        distinct(rng, NEGATABLE.len(), n)
    };
    let mut t = String::new();
    t.push_str("PROGRESS NOTE\n\n");
    t.push_str(&format!("Patient: {name}    MRN: {mrn}    Note {index}\n"));
    t.push_str(&format!(
        "Date of service: 2026-{:02}-{:02}\n\n",
        rng.random_range(1..=12u32),
        rng.random_range(1..=28u32)
    ));
    t.push_str("HISTORY OF PRESENT ILLNESS:\n");
    t.push_str(&format!(
        "The patient is a {age}-year-old seen in follow-up for {}.",
        conds
            .iter()
            .map(|&i| CONDITIONS[i])
            .collect::<Vec<_>>()
            .join(" and ")
    ));
    for &i in &negated {
        t.push_str(&format!(" The patient denies {}.", NEGATABLE[i]));
    }
    t.push_str("\n\n");
    let filler = rng.random_range(0..=40);
    for _ in 0..filler {
        t.push_str(
            "Reviewed interval history, vital signs and outside records with the patient. \
             Adherence and tolerance were discussed and questions were answered.\n",
        );
    }
    t.push_str("\nMEDICATIONS:\n");
    for (n, &i) in meds.iter().enumerate() {
        let (drug, strengths) = MEDICATIONS[i];
        t.push_str(&format!(
            "{}. {drug} {} {} {}\n",
            n + 1,
            pick(rng, strengths),
            pick(rng, ROUTES),
            pick(rng, FREQUENCIES)
        ));
    }
    t.push_str("\nASSESSMENT AND PLAN:\n");
    for &i in &conds {
        t.push_str(&format!(
            "- {}: stable, continue current management.\n",
            CONDITIONS[i]
        ));
    }
    t.push_str("Return to clinic in 3 months.\n");
    Note {
        text: t,
        medications: meds.iter().map(|&i| MEDICATIONS[i].0.to_string()).collect(),
        conditions: conds.iter().map(|&i| CONDITIONS[i].to_string()).collect(),
        negated: negated.iter().map(|&i| NEGATABLE[i].to_string()).collect(),
    }
}

/// Pages `text_to_pdf` makes of `text`.
fn page_count(text: &str) -> usize {
    fleet_docs_local::render::wrap(text)
        .len()
        .div_ceil(fleet_docs_local::render::LINES_PER_PAGE)
        .max(1)
}

/// `count` documents as (file name, PDF bytes, manifest entry), from `seed`.
pub fn generate(seed: u64, count: usize) -> Vec<(String, Vec<u8>, DocumentEntry)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let n = note(&mut rng, i);
            let pdf = fleet_docs_local::render::text_to_pdf(&n.text);
            let file = format!("note-{i:05}.pdf");
            let entry = DocumentEntry {
                file: file.clone(),
                bytes: pdf.len(),
                pages: page_count(&n.text),
                medications: n.medications,
                conditions: n.conditions,
                negated: n.negated,
            };
            (file, pdf, entry)
        })
        .collect()
}

/// Write the documents and `manifest.json` into `dir`; returns the manifest.
pub fn write(dir: &Path, seed: u64, count: usize) -> anyhow::Result<Vec<DocumentEntry>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut manifest = Vec::with_capacity(count);
    for (file, pdf, entry) in generate(seed, count) {
        let path = dir.join(&file);
        std::fs::write(&path, pdf).with_context(|| format!("writing {}", path.display()))?;
        manifest.push(entry);
    }
    let path = dir.join("manifest.json");
    let body = serde_json::json!({ "seed": seed, "documents": manifest });
    std::fs::write(&path, serde_json::to_vec_pretty(&body)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_documents_and_another_does_not() {
        let a = generate(11, 20);
        let b = generate(11, 20);
        let c = generate(12, 20);
        assert_eq!(a.len(), 20);
        assert!(a.iter().zip(&b).all(|(x, y)| x.1 == y.1 && x.2 == y.2));
        assert!(a.iter().zip(&c).any(|(x, y)| x.1 != y.1));
        for (file, pdf, entry) in &a {
            assert!(pdf.starts_with(b"%PDF-"), "{file}");
            assert_eq!(entry.bytes, pdf.len());
            assert!((2..=7).contains(&entry.medications.len()));
        }
    }

    #[test]
    fn long_notes_span_several_pages() {
        let docs = generate(5, 60);
        let pages: Vec<usize> = docs.iter().map(|d| d.2.pages).collect();
        assert!(pages.contains(&1), "{pages:?}");
        assert!(pages.iter().any(|&p| p > 1), "{pages:?}");
    }

    /// The notes are written so that the pipeline's own extractor can read them: every planted
    /// medication and condition is found, and the negated findings carry NEGATION.
    #[test]
    fn the_rules_extractor_finds_what_was_planted() {
        use fleet_docs::schema::{Category, TraitName};
        let ex = fleet_docs_local::rules::RulesExtractor::new();
        let mut rng = StdRng::seed_from_u64(99);
        for i in 0..40 {
            let n = note(&mut rng, i);
            let found = ex.extract(&n.text);
            let named = |cat: Category| -> Vec<String> {
                found
                    .iter()
                    .filter(|e| e.category == cat)
                    .map(|e| e.text.expose().to_lowercase())
                    .collect()
            };
            let meds = named(Category::Medication);
            for m in &n.medications {
                assert!(meds.contains(m), "note {i}: {m} not in {meds:?}");
            }
            let conds = named(Category::MedicalCondition);
            for c in n.conditions.iter().chain(&n.negated) {
                assert!(
                    conds.iter().any(|x| x == c),
                    "note {i}: {c} not in {conds:?}"
                );
            }
            for c in &n.negated {
                let e = found
                    .iter()
                    .find(|e| e.text.expose().eq_ignore_ascii_case(c))
                    .unwrap();
                assert!(
                    e.traits.iter().any(|t| t.name == TraitName::Negation),
                    "note {i}: {c} should be negated: {:?}",
                    e.traits
                );
            }
        }
    }
}
