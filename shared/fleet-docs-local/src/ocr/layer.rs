//! Whether a PDF can have a text layer at all, from its bytes, so that a scan (images only)
//! is not given to `pdftotext` (issue 19: one process per scanned document, for nothing).
//!
//! poppler extracts text only from glyphs shown with a font, and a font is always reached
//! through a `/Font` name: the `Font` entry of a resource dictionary, a font's `/Type /Font`
//! (Type 3 fonts included). What the scan below cannot see is what is compressed: an object
//! inside an object stream (`/Type /ObjStm`, listed by a cross-reference stream,
//! `/Type /XRef`), and the appearance poppler makes up, with a font of its own, for an
//! annotation or a form field that has none (listed in a page's `/Annots`). A PDF naming any
//! of `Font`, `ObjStm`, `XRef` or `Annots` anywhere in its bytes, stream data included, is read
//! with `pdftotext` as before; only one naming none of them skips it.
//!
//! A name may spell any character as `#` and two hex digits (`/F#6Fnt` is `/Font`); the
//! patterns match every such spelling. Matching is byte-wise over the whole file, compressed
//! streams included: a stray match in image data only costs the `pdftotext` run it would
//! have cost anyway. A wrong "no text" could only come from a file that breaks the format
//! (text shown with no font), and then its pages are still read, by Tesseract.

use std::sync::LazyLock;

use regex::bytes::Regex;

/// The names that mean a PDF may have text to extract.
const NAMES: [&str; 4] = ["Font", "ObjStm", "XRef", "Annots"];

/// `/` and `name`, each character either itself or `#` and its two hex digits (either case).
fn name_pattern(name: &str) -> String {
    let mut pattern = String::from("/");
    for byte in name.bytes() {
        let hex = |nibble: u8| {
            let digit = char::from_digit(u32::from(nibble), 16).expect("a nibble");
            format!(
                "[{}{}]",
                digit.to_ascii_lowercase(),
                digit.to_ascii_uppercase()
            )
        };
        pattern.push_str(&format!(
            "(?:{}|#{}{})",
            regex::escape(&char::from(byte).to_string()),
            hex(byte >> 4),
            hex(byte & 0x0F)
        ));
    }
    pattern
}

static TEXT_MARKERS: LazyLock<Regex> = LazyLock::new(|| {
    let alternatives: Vec<String> = NAMES.iter().map(|n| name_pattern(n)).collect();
    Regex::new(&format!("(?-u){}", alternatives.join("|"))).expect("text marker pattern")
});

/// False only when `pdf` names no font, object stream, cross-reference stream or annotation
/// list: no page of it can have text for `pdftotext` to read.
pub(super) fn may_have_text(pdf: &[u8]) -> bool {
    TEXT_MARKERS.is_match(pdf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{self, GrayImage};

    fn scan() -> Vec<u8> {
        let page = GrayImage {
            width: 40,
            height: 50,
            pixels: vec![255; 40 * 50],
        };
        render::gray_pages_to_pdf(&[page.clone(), page], 100)
    }

    #[test]
    fn an_image_only_pdf_cannot_have_text_and_a_text_pdf_can() {
        assert!(!may_have_text(&scan()));
        assert!(may_have_text(&render::text_to_pdf("Metformin 500 mg")));
    }

    #[test]
    fn every_spelling_of_the_names_counts() {
        for name in [
            "/Font",
            "/F#6Fnt",
            "/F#6fnt",
            "/#46#6F#6E#74",
            "/ObjStm",
            "/Obj#53tm",
            "/XRef",
            "/#58Ref",
            "/Annots",
            "/Ann#6fts",
        ] {
            let mut pdf = scan();
            // Appended as an incremental update would put it: after everything else.
            pdf.extend_from_slice(format!("\n9 0 obj\n<< {name} 1 0 R >>\nendobj\n").as_bytes());
            assert!(may_have_text(&pdf), "{name}");
        }
        for other in ["/Fon", "/F#6Gnt", "/XObject", "/Type /Page", "Font"] {
            let mut pdf = scan();
            pdf.extend_from_slice(format!("\n9 0 obj\n<< {other} >>\nendobj\n").as_bytes());
            assert!(!may_have_text(&pdf), "{other}");
        }
    }
}
