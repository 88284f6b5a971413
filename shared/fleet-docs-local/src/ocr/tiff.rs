//! A TIFF's page count, from its IFD chain.

/// The number of pages (IFDs) of a TIFF, `None` when its structure is broken.
pub fn tiff_page_count(bytes: &[u8]) -> Option<u32> {
    tiff_page_sizes(bytes).map(|pages| pages.len() as u32)
}

/// Each page's (width, height) as its IFD declares them (`ImageWidth`, `ImageLength`; `None`
/// for a page without them), `None` when the IFD chain is broken. Read from the header only,
/// before any pixel is decoded.
pub fn tiff_page_sizes(bytes: &[u8]) -> Option<Vec<Option<(u32, u32)>>> {
    let le = match bytes.get(..4)? {
        b"II*\0" => true,
        b"MM\0*" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let mut offset = u32_at(4)? as usize;
    let mut pages = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while offset != 0 {
        if !seen.insert(offset) || pages.len() >= 100_000 {
            return None; // a loop in the IFD chain
        }
        let entries = u16_at(offset)? as usize;
        let (mut width, mut height) = (None, None);
        for i in 0..entries {
            let at = offset + 2 + 12 * i;
            let tag = u16_at(at)?;
            if tag != 256 && tag != 257 {
                continue;
            }
            // SHORT (3) or LONG (4), one value, held in the entry itself.
            let value = match u16_at(at + 2)? {
                3 => u32::from(u16_at(at + 8)?),
                4 => u32_at(at + 8)?,
                _ => return None,
            };
            if tag == 256 {
                width = Some(value);
            } else {
                height = Some(value);
            }
        }
        pages.push(width.zip(height));
        let next_at = offset + 2 + 12 * entries;
        offset = u32_at(next_at)? as usize;
    }
    Some(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_tiff_pages_and_refuses_broken_chains() {
        let image = crate::render::GrayImage {
            width: 2,
            height: 1,
            pixels: vec![0, 255],
        };
        let tiff = crate::render::gray_pages_to_tiff(&[image.clone(), image.clone(), image], 72);
        assert_eq!(tiff_page_count(&tiff), Some(3));
        assert_eq!(tiff_page_sizes(&tiff), Some(vec![Some((2, 1)); 3]));
        assert_eq!(tiff_page_count(&tiff[..40]), None);
        let mut looped = b"II*\0\x08\0\0\0\0\0".to_vec();
        looped.extend_from_slice(&8u32.to_le_bytes());
        assert_eq!(tiff_page_count(&looped), None);
        assert_eq!(tiff_page_count(b"GIF89a"), None);
    }
}
