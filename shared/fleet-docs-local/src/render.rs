//! Text to documents, for the demo, the tests and the OCR quality script: a PDF with a real
//! text layer ([`text_to_pdf`]), its pages rasterised ([`pdf_to_png_pages`], [`rasterise`],
//! which have no text layer, so OCR really runs on them), an image-only "scanned" PDF
//! ([`gray_pages_to_pdf`], [`text_to_scanned_pdf`]) and a multi-page TIFF
//! ([`gray_pages_to_tiff`]).
//!
//! The text is set in the base-14 Courier at [`FONT_SIZE`] pt on US Letter with one-inch
//! margins. Courier is monospaced, so wrapping is exact: [`COLUMNS`] characters to a line,
//! [`LINES_PER_PAGE`] lines to a page. Each source line is wrapped at word boundaries (runs
//! of whitespace become one space, tabs included); a word longer than a whole line is cut
//! into line-long pieces. Blank source lines are kept.
//!
//! The font uses `WinAnsiEncoding`: ASCII, Latin-1 and the typographic marks of
//! Windows-1252 (curly quotes, dashes, bullet, euro, ...). **Any other character is written
//! as `'?'`**, and control characters too, so text with Greek letters, arrows, CJK or emoji
//! does not come back from the PDF as it went in.

use std::path::Path;
use std::process::Stdio;

use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str};

/// US Letter, in points.
pub const PAGE_WIDTH: f32 = 612.0;
pub const PAGE_HEIGHT: f32 = 792.0;
/// One inch on every side.
pub const MARGIN: f32 = 72.0;
pub const FONT_SIZE: f32 = 11.0;
/// Baseline to baseline.
pub const LEADING: f32 = 13.0;
/// Courier glyphs are 600/1000 em wide: 6.6 pt at 11 pt, 70 of them in 468 pt.
pub const COLUMNS: usize = 70;
/// 648 pt of text height at 13 pt a line.
pub const LINES_PER_PAGE: usize = 49;

/// A failure to rasterise or build a document.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot run {program}: {source} (Debian package poppler-utils)")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} failed: {detail}")]
    Tool {
        program: &'static str,
        detail: String,
    },
    #[error("temporary files: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a binary PGM image")]
    BadPgm,
}

/// `text` as lines of at most [`COLUMNS`] WinAnsi bytes, wrapped at word boundaries.
pub fn wrap(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for source_line in text.split('\n') {
        let mut line: Vec<u8> = Vec::new();
        let mut any = false;
        for word in source_line
            .split(char::is_whitespace)
            .filter(|w| !w.is_empty())
        {
            any = true;
            let mut bytes: Vec<u8> = word.chars().map(win_ansi).collect();
            while bytes.len() > COLUMNS {
                if !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                }
                let rest = bytes.split_off(COLUMNS);
                out.push(bytes);
                bytes = rest;
            }
            if bytes.is_empty() {
                continue;
            }
            if !line.is_empty() && line.len() + 1 + bytes.len() > COLUMNS {
                out.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(b' ');
            }
            line.extend_from_slice(&bytes);
        }
        if !line.is_empty() || !any {
            out.push(line);
        }
    }
    // A trailing newline does not make a blank line of its own.
    if text.ends_with('\n') {
        out.pop();
    }
    out
}

/// The WinAnsi (Windows-1252) byte for `c`, or `b'?'`.
pub fn win_ansi(c: char) -> u8 {
    let code = c as u32;
    match code {
        0x20..=0x7E | 0xA0..=0xFF => code as u8,
        _ => match c {
            '€' => 0x80,
            '‚' => 0x82,
            'ƒ' => 0x83,
            '„' => 0x84,
            '…' => 0x85,
            '†' => 0x86,
            '‡' => 0x87,
            'ˆ' => 0x88,
            '‰' => 0x89,
            'Š' => 0x8A,
            '‹' => 0x8B,
            'Œ' => 0x8C,
            'Ž' => 0x8E,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '˜' => 0x98,
            '™' => 0x99,
            'š' => 0x9A,
            '›' => 0x9B,
            'œ' => 0x9C,
            'ž' => 0x9E,
            'Ÿ' => 0x9F,
            _ => b'?',
        },
    }
}

/// A PDF of `text` with a text layer: Courier 11 pt on US Letter, wrapped to fit, as many
/// pages as it takes (one blank page for empty text). See the module notes on wrapping and
/// on characters outside WinAnsi.
pub fn text_to_pdf(text: &str) -> Vec<u8> {
    let lines = wrap(text);
    let pages: Vec<&[Vec<u8>]> = if lines.is_empty() {
        vec![&[]]
    } else {
        lines.chunks(LINES_PER_PAGE).collect()
    };

    let mut pdf = Pdf::new();
    let catalog_id = Ref::new(1);
    let tree_id = Ref::new(2);
    let font_id = Ref::new(3);
    let font_name = Name(b"F1");
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(4 + 2 * i as i32))
        .collect();

    pdf.catalog(catalog_id).pages(tree_id);
    pdf.pages(tree_id)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    pdf.type1_font(font_id)
        .base_font(Name(b"Courier"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));

    for (page_lines, &page_id) in pages.iter().zip(&page_ids) {
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT));
        page.parent(tree_id);
        page.contents(content_id);
        page.resources().fonts().pair(font_name, font_id);
        page.finish();

        let mut content = Content::new();
        content.begin_text();
        content.set_font(font_name, FONT_SIZE);
        content.set_leading(LEADING);
        // The first baseline one line below the top margin's edge (less the descent).
        content.next_line(MARGIN, PAGE_HEIGHT - MARGIN - FONT_SIZE);
        for (i, line) in page_lines.iter().enumerate() {
            if i > 0 {
                content.next_line_using_leading();
            }
            if !line.is_empty() {
                content.show(Str(line));
            }
        }
        content.end_text();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

/// Raster formats `pdftoppm` writes (all in 8-bit gray).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RasterFormat {
    Png,
    Jpeg,
    /// One single-page TIFF per page (see [`gray_pages_to_tiff`] for a multi-page one).
    Tiff,
    /// Binary PGM (`P5`), for [`GrayImage::from_pgm`].
    Pgm,
}

impl RasterFormat {
    fn flag(self) -> Option<&'static str> {
        match self {
            Self::Png => Some("-png"),
            Self::Jpeg => Some("-jpeg"),
            Self::Tiff => Some("-tiff"),
            Self::Pgm => None,
        }
    }
}

/// Every page of `pdf` as a gray PNG at `dpi`, in page order, with `pdftoppm` from `PATH`.
pub async fn pdf_to_png_pages(pdf: &[u8], dpi: u32) -> Result<Vec<Vec<u8>>, RenderError> {
    rasterise(pdf, dpi, RasterFormat::Png).await
}

/// Every page of `pdf` as a gray image file in `format` at `dpi`, in page order.
pub async fn rasterise(
    pdf: &[u8],
    dpi: u32,
    format: RasterFormat,
) -> Result<Vec<Vec<u8>>, RenderError> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in.pdf");
    tokio::fs::write(&input, pdf).await?;
    let out_dir = dir.path().join("out");
    tokio::fs::create_dir(&out_dir).await?;

    let mut cmd = tokio::process::Command::new("pdftoppm");
    cmd.arg("-r").arg(dpi.to_string()).arg("-gray");
    if let Some(flag) = format.flag() {
        cmd.arg(flag);
    }
    cmd.arg(&input)
        .arg(out_dir.join("p"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = cmd.output().await.map_err(|source| RenderError::Spawn {
        program: "pdftoppm",
        source,
    })?;
    if !output.status.success() {
        return Err(RenderError::Tool {
            program: "pdftoppm",
            detail: short(&output.stderr, dir.path()),
        });
    }
    // pdftoppm names pages p-1.png, p-01.png, ... padded to the page count's width.
    let mut pages = Vec::new();
    let mut entries = tokio::fs::read_dir(&out_dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let number = name
            .strip_prefix("p-")
            .and_then(|rest| rest.split('.').next())
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(number) = number {
            pages.push((number, entry.path()));
        }
    }
    pages.sort();
    let mut out = Vec::with_capacity(pages.len());
    for (_, path) in pages {
        out.push(tokio::fs::read(path).await?);
    }
    if out.is_empty() {
        return Err(RenderError::Tool {
            program: "pdftoppm",
            detail: "wrote no pages".into(),
        });
    }
    Ok(out)
}

fn short(stderr: &[u8], tmp: &Path) -> String {
    let text = String::from_utf8_lossy(stderr).replace(&*tmp.to_string_lossy(), "<tmp>");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(200).collect()
}

/// An 8-bit gray image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrayImage {
    pub width: u32,
    pub height: u32,
    /// Row-major, `width * height` bytes, 0 black.
    pub pixels: Vec<u8>,
}

impl GrayImage {
    /// Reads a binary PGM (`P5`, maxval 255), as `pdftoppm -gray` writes.
    pub fn from_pgm(bytes: &[u8]) -> Result<Self, RenderError> {
        let mut fields = Vec::with_capacity(4);
        let mut pos = 0;
        while fields.len() < 4 {
            while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if pos < bytes.len() && bytes[pos] == b'#' {
                while pos < bytes.len() && bytes[pos] != b'\n' {
                    pos += 1;
                }
                continue;
            }
            let start = pos;
            while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if start == pos {
                return Err(RenderError::BadPgm);
            }
            fields.push(&bytes[start..pos]);
        }
        pos += 1; // the single whitespace byte before the raster
        let number = |f: &[u8]| {
            std::str::from_utf8(f)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or(RenderError::BadPgm)
        };
        if fields[0] != b"P5" || number(fields[3])? != 255 {
            return Err(RenderError::BadPgm);
        }
        let (width, height) = (number(fields[1])?, number(fields[2])?);
        let size = width as usize * height as usize;
        let pixels = bytes
            .get(pos..pos + size)
            .ok_or(RenderError::BadPgm)?
            .to_vec();
        Ok(Self {
            width,
            height,
            pixels,
        })
    }
}

/// An image-only PDF, one image per page, each page sized for the image at `dpi` (no text
/// layer: what a scanner makes).
pub fn gray_pages_to_pdf(pages: &[GrayImage], dpi: u32) -> Vec<u8> {
    let mut pdf = Pdf::new();
    let catalog_id = Ref::new(1);
    let tree_id = Ref::new(2);
    let page_ids: Vec<Ref> = (0..pages.len())
        .map(|i| Ref::new(3 + 3 * i as i32))
        .collect();
    pdf.catalog(catalog_id).pages(tree_id);
    pdf.pages(tree_id)
        .kids(page_ids.iter().copied())
        .count(pages.len() as i32);
    let image_name = Name(b"Im1");
    for (image, &page_id) in pages.iter().zip(&page_ids) {
        let image_id = Ref::new(page_id.get() + 1);
        let content_id = Ref::new(page_id.get() + 2);
        let w = image.width as f32 * 72.0 / dpi as f32;
        let h = image.height as f32 * 72.0 / dpi as f32;
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, w, h));
        page.parent(tree_id);
        page.contents(content_id);
        page.resources().x_objects().pair(image_name, image_id);
        page.finish();

        let encoded = miniz_oxide::deflate::compress_to_vec_zlib(&image.pixels, 6);
        let mut xobject = pdf.image_xobject(image_id, &encoded);
        xobject.filter(Filter::FlateDecode);
        xobject.width(image.width as i32);
        xobject.height(image.height as i32);
        xobject.color_space().device_gray();
        xobject.bits_per_component(8);
        xobject.finish();

        let mut content = Content::new();
        content.save_state();
        content.transform([w, 0.0, 0.0, h, 0.0, 0.0]);
        content.x_object(image_name);
        content.restore_state();
        pdf.stream(content_id, &content.finish());
    }
    pdf.finish()
}

/// [`text_to_pdf`], rasterised at `dpi` and put back together as an image-only PDF.
pub async fn text_to_scanned_pdf(text: &str, dpi: u32) -> Result<Vec<u8>, RenderError> {
    let pgms = rasterise(&text_to_pdf(text), dpi, RasterFormat::Pgm).await?;
    let pages = pgms
        .iter()
        .map(|p| GrayImage::from_pgm(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(gray_pages_to_pdf(&pages, dpi))
}

/// A multi-page TIFF (little-endian, uncompressed 8-bit gray, one strip a page, resolution
/// `dpi`).
pub fn gray_pages_to_tiff(pages: &[GrayImage], dpi: u32) -> Vec<u8> {
    const ENTRIES: u16 = 11;
    let mut out: Vec<u8> = b"II*\0".to_vec();
    out.extend_from_slice(&8u32.to_le_bytes());
    for (i, image) in pages.iter().enumerate() {
        let ifd_at = out.len() as u32;
        let ifd_len = 2 + 12 * ENTRIES as u32 + 4;
        let resolution_at = ifd_at + ifd_len;
        let pixels_at = resolution_at + 8;
        let next = if i + 1 == pages.len() {
            0
        } else {
            pixels_at + image.pixels.len() as u32
        };
        let entry = |out: &mut Vec<u8>, tag: u16, kind: u16, value: u32| {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&kind.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
            if kind == 3 {
                out.extend_from_slice(&(value as u16).to_le_bytes());
                out.extend_from_slice(&[0, 0]);
            } else {
                out.extend_from_slice(&value.to_le_bytes());
            }
        };
        // (SHORT = 3, LONG = 4, RATIONAL = 5), tags in ascending order.
        out.extend_from_slice(&ENTRIES.to_le_bytes());
        entry(&mut out, 256, 4, image.width);
        entry(&mut out, 257, 4, image.height);
        entry(&mut out, 258, 3, 8);
        entry(&mut out, 259, 3, 1);
        entry(&mut out, 262, 3, 1);
        entry(&mut out, 273, 4, pixels_at);
        entry(&mut out, 277, 3, 1);
        entry(&mut out, 278, 4, image.height);
        entry(&mut out, 279, 4, image.pixels.len() as u32);
        entry(&mut out, 282, 5, resolution_at);
        entry(&mut out, 283, 5, resolution_at);
        out.extend_from_slice(&next.to_le_bytes());
        out.extend_from_slice(&dpi.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&image.pixels);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_word_boundaries_within_the_columns() {
        let text = "word ".repeat(40);
        let lines = wrap(&text);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() <= COLUMNS));
        assert_eq!(lines[0].len(), 69); // 14 words of 4 and 13 spaces
        let back: Vec<String> = lines
            .iter()
            .map(|l| String::from_utf8(l.clone()).unwrap())
            .collect();
        assert_eq!(back.join(" ").split(' ').count(), 40);
    }

    #[test]
    fn keeps_blank_lines_and_cuts_overlong_words() {
        let long = "x".repeat(150);
        let lines = wrap(&format!("a\n\n\tb  c\n{long}\n"));
        let lens: Vec<usize> = lines.iter().map(Vec::len).collect();
        assert_eq!(lens, [1, 0, 3, 70, 70, 10]);
        assert_eq!(lines[2], b"b c");
    }

    #[test]
    fn maps_win_ansi_and_replaces_the_rest() {
        let line = &wrap("café – “µg” • €5 α→β 🩺")[0];
        assert_eq!(
            line,
            b"caf\xe9 \x96 \x93\xb5g\x94 \x95 \x805 ??? ?".as_slice()
        );
    }

    #[test]
    fn pdf_has_one_page_per_49_lines() {
        let text = (0..100).map(|i| format!("line {i}\n")).collect::<String>();
        let pdf = text_to_pdf(&text);
        assert!(pdf.starts_with(b"%PDF-"));
        let shown = String::from_utf8_lossy(&pdf).into_owned();
        assert!(shown.contains("/Count 3"), "three pages for 100 lines");
        assert!(shown.contains("/BaseFont /Courier"));
        assert!(shown.contains("/Encoding /WinAnsiEncoding"));
        assert!(String::from_utf8_lossy(&text_to_pdf("")).contains("/Count 1"));
    }

    #[test]
    fn reads_pgm_and_refuses_other_things() {
        let img = GrayImage::from_pgm(b"P5\n# c\n2 2\n255\n\x00\x10\x20\x30").unwrap();
        assert_eq!((img.width, img.height), (2, 2));
        assert_eq!(img.pixels, [0, 16, 32, 48]);
        assert!(GrayImage::from_pgm(b"P5\n2 2\n255\n\x00").is_err());
        assert!(GrayImage::from_pgm(b"P6\n1 1\n255\n\x00\x00\x00").is_err());
    }
}
