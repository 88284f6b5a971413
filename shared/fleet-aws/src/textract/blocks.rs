//! Textract blocks (of a synchronous result or of every result page of a job) mapped onto the
//! OCR result schema.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_textract::types::{Block, BlockType, RelationshipType, Warning};
use fleet_core::phi::Phi;
use fleet_docs::schema::{BoundingBox, Line, OcrResult, OcrWarning, Page, Word};

use crate::error::sanitize_code;

/// Textract's page limit for asynchronous PDF/TIFF jobs: gaps between page numbers are filled
/// with empty pages up to this number, never beyond (a bogus `Page` cannot allocate millions).
const MAX_PAGES: u32 = 3000;

/// Pages of lines and words from Textract blocks (sync or all result pages of a job).
///
/// PAGE blocks and the `Page` field of each block give the page numbers (a synchronous result
/// has no `Page` field: page 1); LINE blocks keep the order Textract returns them in, which is
/// reading order; each line's words are its CHILD relationships, in order. Pages between the
/// first and the last (or `DocumentMetadata.Pages`) that have no block still appear, empty.
pub(super) fn ocr_result(
    blocks: &[Block],
    metadata_pages: Option<i32>,
    warnings: &[Warning],
) -> OcrResult {
    let page_of = |b: &Block| -> u32 {
        b.page()
            .and_then(|p| u32::try_from(p).ok())
            .filter(|&p| p >= 1)
            .unwrap_or(1)
    };
    let words: HashMap<&str, &Block> = blocks
        .iter()
        .filter(|b| b.block_type() == Some(&BlockType::Word))
        .filter_map(|b| b.id().map(|id| (id, b)))
        .collect();
    let mut pages: BTreeMap<u32, Page> = BTreeMap::new();
    for block in blocks {
        match block.block_type() {
            Some(BlockType::Page) => {
                page(&mut pages, page_of(block));
            }
            Some(BlockType::Line) => {
                let line_words = block
                    .relationships()
                    .iter()
                    .filter(|r| r.r#type() == Some(&RelationshipType::Child))
                    .flat_map(|r| r.ids())
                    .filter_map(|id| words.get(id.as_str()))
                    .map(|w| Word {
                        text: Phi(w.text().unwrap_or_default().to_string()),
                        confidence: w.confidence().unwrap_or(0.0),
                        bbox: bbox(w),
                    })
                    .collect();
                page(&mut pages, page_of(block)).lines.push(Line {
                    text: Phi(block.text().unwrap_or_default().to_string()),
                    confidence: block.confidence().unwrap_or(0.0),
                    bbox: bbox(block),
                    words: line_words,
                });
            }
            _ => {}
        }
    }
    let last = pages
        .keys()
        .next_back()
        .copied()
        .unwrap_or(0)
        .max(
            metadata_pages
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0),
        )
        .min(MAX_PAGES);
    for n in 1..=last {
        page(&mut pages, n);
    }
    OcrResult {
        pages: pages.into_values().collect(),
        warnings: warnings
            .iter()
            .map(|w| OcrWarning {
                code: sanitize_code(w.error_code().unwrap_or("UNKNOWN")),
                pages: w
                    .pages()
                    .iter()
                    .filter_map(|&p| u32::try_from(p).ok())
                    .collect(),
            })
            .collect(),
    }
}

fn page(pages: &mut BTreeMap<u32, Page>, n: u32) -> &mut Page {
    pages.entry(n).or_insert_with(|| Page {
        number: n,
        width: None,
        height: None,
        lines: Vec::new(),
    })
}

fn bbox(block: &Block) -> BoundingBox {
    block
        .geometry()
        .and_then(|g| g.bounding_box())
        .map(|b| BoundingBox {
            left: b.left(),
            top: b.top(),
            width: b.width(),
            height: b.height(),
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_textract::types::{BoundingBox as TBox, Geometry, Relationship};

    fn block(kind: BlockType, id: &str, page: Option<i32>, text: Option<&str>) -> Block {
        Block::builder()
            .block_type(kind)
            .id(id)
            .set_page(page)
            .set_text(text.map(str::to_string))
            .confidence(90.0)
            .geometry(
                Geometry::builder()
                    .bounding_box(
                        TBox::builder()
                            .left(0.1)
                            .top(0.2)
                            .width(0.3)
                            .height(0.05)
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    #[test]
    fn gaps_are_filled_and_words_found_across_result_pages() {
        let line = Block::builder()
            .block_type(BlockType::Line)
            .id("l1")
            .page(3)
            .text("Zz Yy")
            .relationships(
                Relationship::builder()
                    .r#type(RelationshipType::Child)
                    .ids("w2")
                    .ids("w1")
                    .build(),
            )
            .build();
        let blocks = vec![
            block(BlockType::Page, "p1", Some(1), None),
            line,
            block(BlockType::Word, "w1", Some(3), Some("Yy")),
            block(BlockType::Word, "w2", Some(3), Some("Zz")),
        ];
        let r = ocr_result(&blocks, Some(4), &[]);
        let numbers: Vec<u32> = r.pages.iter().map(|p| p.number).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4]);
        let words: Vec<&str> = r.pages[2].lines[0]
            .words
            .iter()
            .map(|w| w.text.expose().as_str())
            .collect();
        assert_eq!(words, vec!["Zz", "Yy"]);
        assert_eq!(r.text(), "\n\n\n\nZz Yy\n\n");
    }

    #[test]
    fn a_bogus_page_number_does_not_allocate_millions() {
        let blocks = vec![block(BlockType::Line, "l", Some(2_000_000), Some("x"))];
        let r = ocr_result(&blocks, None, &[]);
        assert_eq!(r.pages.len(), MAX_PAGES as usize + 1);
    }
}
