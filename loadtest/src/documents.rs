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

/// What a note draws besides its length: everything but the filler paragraphs.
struct Parts {
    head: String,
    tail: String,
    medications: Vec<String>,
    conditions: Vec<String>,
    negated: Vec<String>,
}

/// One filler paragraph (wraps to three lines).
const FILLER: &str = "Reviewed interval history, vital signs and outside records with the patient. \
                      Adherence and tolerance were discussed and questions were answered.\n";

fn parts(rng: &mut StdRng, index: usize) -> Parts {
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
    let head = t;
    let mut t = String::new();
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
    Parts {
        head,
        tail: t,
        medications: meds.iter().map(|&i| MEDICATIONS[i].0.to_string()).collect(),
        conditions: conds.iter().map(|&i| CONDITIONS[i].to_string()).collect(),
        negated: negated.iter().map(|&i| NEGATABLE[i].to_string()).collect(),
    }
}

fn compose(p: Parts, filler: usize) -> Note {
    let mut text = p.head;
    for _ in 0..filler {
        text.push_str(FILLER);
    }
    text.push_str(&p.tail);
    Note {
        text,
        medications: p.medications,
        conditions: p.conditions,
        negated: p.negated,
    }
}

/// One note. Lengths vary from under a page to several (`filler` paragraphs).
pub fn note(rng: &mut StdRng, index: usize) -> Note {
    let p = parts(rng, index);
    let filler = rng.random_range(0..=40);
    compose(p, filler)
}

/// One note of `pages` pages as `text_to_pdf` lays it out (at least the pages its
/// medications and plan need, which is one).
pub fn note_of_pages(rng: &mut StdRng, index: usize, pages: usize) -> Note {
    let p = parts(rng, index);
    let mut text = p.head.clone();
    let mut filler = 0;
    // Each paragraph adds three of a page's 49 lines: no page count is skipped.
    while filler < 10_000 {
        let mut candidate = text.clone();
        candidate.push_str(&p.tail);
        if page_count(&candidate) >= pages {
            break;
        }
        text.push_str(FILLER);
        filler += 1;
    }
    compose(p, filler)
}

/// Pages `text_to_pdf` makes of `text`.
pub fn page_count(text: &str) -> usize {
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

/// What one upload of a document load run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A PDF with a text layer: `pdftotext` reads it, no Tesseract.
    TextPdf,
    /// An image-only PDF (a scan): every page rasterised by `pdftoppm` and read by Tesseract.
    ScannedPdf,
    /// A one-page PNG scan: Tesseract reads it.
    Png,
    /// Poison: `%PDF-` and noise; `pdfinfo` refuses it (`DOCUMENT_CORRUPT`).
    CorruptPdf,
    /// Poison: a Word file (`DOCUMENT_UNSUPPORTED_TYPE`).
    Word,
    /// Poison: a PNG whose header declares 30,000 × 30,000 pixels (`DOCUMENT_TOO_LARGE`,
    /// refused before anything decodes it).
    TooLargeImage,
}

impl Kind {
    /// The dead-letter code a poison upload must end with; `None` for a good document.
    pub fn poison_code(self) -> Option<fleet_core::ErrorCode> {
        use fleet_core::ErrorCode;
        match self {
            Kind::TextPdf | Kind::ScannedPdf | Kind::Png => None,
            Kind::CorruptPdf => Some(ErrorCode::DocumentCorrupt),
            Kind::Word => Some(ErrorCode::DocumentUnsupportedType),
            Kind::TooLargeImage => Some(ErrorCode::DocumentTooLarge),
        }
    }

    /// Pages Tesseract reads for a document of this kind with `pages` pages.
    pub fn ocr_pages(self, pages: usize) -> usize {
        match self {
            Kind::ScannedPdf | Kind::Png => pages,
            _ => 0,
        }
    }
}

/// How many uploads of each kind a run makes, and how.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mix {
    pub seed: u64,
    pub text_pdfs: usize,
    pub scanned_pdfs: usize,
    pub pngs: usize,
    /// PDFs have 1..=max_pages pages, in turn (1, 2, ..., max_pages, 1, ...).
    pub max_pages: usize,
    /// Resolution of the scans in the image-only PDFs.
    pub scan_dpi: u32,
    /// Resolution of the PNG scans.
    pub png_dpi: u32,
    pub corrupt_pdfs: usize,
    pub word_files: usize,
    pub too_large_images: usize,
}

/// One upload of a document load run. `key` is made up (`notes/…`), as is every note.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub kind: Kind,
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    /// Pages of the document (0 for poison).
    pub pages: usize,
    /// Generic names planted in the note's medication list (none for poison).
    pub medications: Vec<String>,
}

fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(b"IHDR");
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&[8, 0, 0, 0, 0]);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0x5A; 64]);
    out
}

/// The uploads of `mix`, good ones first in kind order, then the poison; the same mix gives
/// the same bytes. Scans are rasterised with `pdftoppm` (poppler).
pub async fn uploads(mix: &Mix) -> anyhow::Result<Vec<Upload>> {
    anyhow::ensure!(mix.max_pages >= 1, "max_pages must be at least 1");
    let mut rng = StdRng::seed_from_u64(mix.seed);
    let mut out = Vec::new();
    let mut index = 0;
    let kinds = [
        (Kind::TextPdf, mix.text_pdfs),
        (Kind::ScannedPdf, mix.scanned_pdfs),
        (Kind::Png, mix.pngs),
    ];
    for (kind, count) in kinds {
        for i in 0..count {
            let pages = match kind {
                Kind::Png => 1,
                _ => 1 + i % mix.max_pages,
            };
            let n = note_of_pages(&mut rng, index, pages);
            let pdf = fleet_docs_local::render::text_to_pdf(&n.text);
            let (ext, bytes, content_type) = match kind {
                Kind::TextPdf => ("pdf", pdf, "application/pdf"),
                Kind::ScannedPdf => (
                    "pdf",
                    fleet_docs_local::render::text_to_scanned_pdf(&n.text, mix.scan_dpi)
                        .await
                        .context("rendering a scanned PDF (pdftoppm)")?,
                    "application/pdf",
                ),
                _ => (
                    "png",
                    fleet_docs_local::render::pdf_to_png_pages(&pdf, mix.png_dpi)
                        .await
                        .context("rendering a PNG scan (pdftoppm)")?
                        .swap_remove(0),
                    "image/png",
                ),
            };
            out.push(Upload {
                key: format!("notes/note-{index:05}.{ext}"),
                kind,
                bytes,
                content_type,
                pages: page_count(&n.text),
                medications: n.medications,
            });
            index += 1;
        }
    }
    let poison = [
        (Kind::CorruptPdf, mix.corrupt_pdfs),
        (Kind::Word, mix.word_files),
        (Kind::TooLargeImage, mix.too_large_images),
    ];
    for (kind, count) in poison {
        for _ in 0..count {
            let (ext, bytes, content_type) = match kind {
                Kind::CorruptPdf => {
                    let mut b = b"%PDF-1.7\n".to_vec();
                    b.extend((0..2000).map(|_| rng.random::<u8>()));
                    ("pdf", b, "application/pdf")
                }
                Kind::Word => {
                    let mut b = b"PK\x03\x04".to_vec();
                    b.extend((0..2000).map(|_| rng.random::<u8>()));
                    (
                        "docx",
                        b,
                        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    )
                }
                _ => ("png", png_declaring(30_000, 30_000), "image/png"),
            };
            out.push(Upload {
                key: format!("notes/poison-{index:05}.{ext}"),
                kind,
                bytes,
                content_type,
                pages: 0,
                medications: Vec::new(),
            });
            index += 1;
        }
    }
    Ok(out)
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

    #[test]
    fn notes_of_a_given_page_count_have_it() {
        let mut rng = StdRng::seed_from_u64(3);
        for pages in 1..=5 {
            let n = note_of_pages(&mut rng, pages, pages);
            assert_eq!(page_count(&n.text), pages);
        }
    }

    #[tokio::test]
    async fn a_mix_has_each_kind_its_page_counts_and_the_same_bytes_again() {
        let mix = Mix {
            seed: 4,
            text_pdfs: 3,
            scanned_pdfs: 3,
            pngs: 1,
            max_pages: 3,
            scan_dpi: 50,
            png_dpi: 50,
            corrupt_pdfs: 1,
            word_files: 1,
            too_large_images: 1,
        };
        let a = uploads(&mix).await.unwrap();
        let kinds: Vec<Kind> = a.iter().map(|u| u.kind).collect();
        use Kind::*;
        assert_eq!(
            kinds,
            [
                TextPdf,
                TextPdf,
                TextPdf,
                ScannedPdf,
                ScannedPdf,
                ScannedPdf,
                Png,
                CorruptPdf,
                Word,
                TooLargeImage
            ]
        );
        let pages: Vec<usize> = a.iter().map(|u| u.pages).collect();
        assert_eq!(pages, [1, 2, 3, 1, 2, 3, 1, 0, 0, 0]);
        // The scans have no text layer: one image per page, no font.
        for u in &a[3..6] {
            assert!(u.bytes.starts_with(b"%PDF-"));
            assert_eq!(count(&u.bytes, b"/Subtype /Image"), u.pages, "{}", u.key);
            assert_eq!(count(&u.bytes, b"/Type /Font"), 0, "{}", u.key);
        }
        assert_eq!(count(&a[0].bytes, b"/Type /Font"), 1);
        assert!(a[6].bytes.starts_with(b"\x89PNG"));
        assert_eq!(a.iter().filter_map(|u| u.kind.poison_code()).count(), 3);
        let b = uploads(&mix).await.unwrap();
        assert!(
            a.iter()
                .zip(&b)
                .all(|(x, y)| x.bytes == y.bytes && x.key == y.key)
        );
    }

    fn count(hay: &[u8], needle: &[u8]) -> usize {
        hay.windows(needle.len()).filter(|w| *w == needle).count()
    }
}
