//! Tool output into the result schema: Tesseract's TSV for one page, `pdftotext -bbox-layout`
//! for a PDF's text layer; geometry as fractions of the page.

use fleet_core::phi::Phi;
use fleet_docs::schema::{BoundingBox, Line, Page, Word};

pub(super) fn meaningful(page: &Page, min_chars: usize) -> bool {
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
}
