//! Decompression bombs: a page's size in pixels, read from the file's header (PNG `IHDR`,
//! JPEG `SOFn`, TIFF IFDs) or from `pdfinfo` (points at the rasterising resolution), so that a
//! page too large is refused before anything decodes or rasterises it.

/// A PNG's (width, height) from its `IHDR`, which must be the first chunk.
pub(super) fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
    };
    Some((be(16)?, be(20)?))
}

/// A JPEG's (width, height) from its first frame header (`SOF0`..`SOF15` but `DHT`, `JPG`,
/// `DAC`), walking the marker segments; `None` when there is none before the scan.
pub(super) fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        // Fill bytes before a marker.
        while *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        let marker = *bytes.get(at + 1)?;
        at += 2;
        // Markers without a length: TEM, RSTn (SOI and EOI cannot come before a frame).
        if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
            continue;
        }
        let len = usize::from(u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        if len < 2 {
            return None;
        }
        let sof = (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker);
        if sof {
            // length(2) precision(1) height(2) width(2)
            let u16_at = |i: usize| -> Option<u32> {
                Some(u32::from(u16::from_be_bytes(
                    bytes.get(i..i + 2)?.try_into().ok()?,
                )))
            };
            return Some((u16_at(at + 5)?, u16_at(at + 3)?));
        }
        if marker == 0xDA {
            return None; // the scan, and no frame header before it
        }
        at += len;
    }
}

/// A PDF page as `pdfinfo -f 1 -l N` describes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct PdfPageBox {
    /// Width and height in points (1/72 inch), unrotated.
    pub(super) width_pts: f64,
    pub(super) height_pts: f64,
    /// Rotation in degrees (0, 90, 180, 270).
    pub(super) rotation: u32,
}

impl PdfPageBox {
    /// The (width, height) in pixels `pdftoppm -r dpi` renders it at: rounded up, rotation
    /// applied.
    pub(super) fn pixels(&self, dpi: u32) -> (u64, u64) {
        let px = |pts: f64| {
            let v = (pts.abs() * f64::from(dpi) / 72.0).ceil();
            if v.is_finite() {
                v.min(u64::MAX as f64) as u64
            } else {
                u64::MAX
            }
        };
        let (w, h) = (px(self.width_pts), px(self.height_pts));
        if self.rotation % 180 == 90 {
            (h, w)
        } else {
            (w, h)
        }
    }
}

/// `pdfinfo -f 1 -l N` output: the document's page count (`Pages:`) and, for the pages it
/// printed, each page's box (`Page    3 size:  612 x 792 pts (letter)`, `Page    3 rot:  90`).
pub(super) fn parse_pdfinfo(out: &str) -> (u32, std::collections::HashMap<u32, PdfPageBox>) {
    let mut pages = 0;
    let mut boxes = std::collections::HashMap::new();
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("Pages:") {
            pages = n.trim().parse().unwrap_or(0);
            continue;
        }
        let Some(rest) = line.strip_prefix("Page ") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some((number, rest)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(number) = number.parse::<u32>() else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(size) = rest.strip_prefix("size:") {
            let mut it = size.split_whitespace();
            let w = it.next().and_then(|v| v.parse::<f64>().ok());
            let x = it.next();
            let h = it.next().and_then(|v| v.parse::<f64>().ok());
            if let (Some(w), Some("x"), Some(h)) = (w, x, h) {
                let entry = boxes.entry(number).or_insert(PdfPageBox {
                    width_pts: 0.0,
                    height_pts: 0.0,
                    rotation: 0,
                });
                entry.width_pts = w;
                entry.height_pts = h;
            }
        } else if let Some(rot) = rest.strip_prefix("rot:")
            && let Ok(rot) = rot.trim().parse::<i64>()
            && let Some(entry) = boxes.get_mut(&number)
        {
            entry.rotation = rot.rem_euclid(360) as u32;
        }
    }
    (pages, boxes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_and_jpeg_sizes_come_from_their_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&70_000u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((100_000, 70_000)));
        assert_eq!(png_size(&png[..20]), None);
        assert_eq!(
            png_size(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIDAT\0\0\0\0\0\0\0\0"),
            None
        );
        // SOI, APP0 (length 4), fill byte, SOF2 (progressive): height 60000, width 50000.
        let jpeg = [
            0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 1, 2, 0xFF, 0xFF, 0xC2, 0, 11, 8, 0xEA, 0x60, 0xC3, 0x50,
            1, 1, 0x11, 0,
        ];
        assert_eq!(jpeg_size(&jpeg), Some((50_000, 60_000)));
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]), None);
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4]), None);
    }

    #[test]
    fn pdfinfo_pages_and_boxes() {
        let out = "Producer:        x\nPages:           3\nPage    1 size:  612 x 792 pts (letter)\n\
                   Page    1 rot:   0\nPage    2 size:  300 x 792 pts\nPage    2 rot:   90\n";
        let (pages, boxes) = parse_pdfinfo(out);
        assert_eq!(pages, 3);
        assert_eq!(boxes.len(), 2);
        assert_eq!(boxes[&1].pixels(300), (2550, 3300));
        assert_eq!(boxes[&2].pixels(300), (3300, 1250));
        assert_eq!(boxes[&2].rotation, 90);
    }
}
