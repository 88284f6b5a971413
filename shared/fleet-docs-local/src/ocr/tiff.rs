//! A TIFF's page count, from its IFD chain.

/// The number of pages (IFDs) of a TIFF, `None` when its structure is broken.
pub fn tiff_page_count(bytes: &[u8]) -> Option<u32> {
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
    let mut count = 0u32;
    let mut seen = std::collections::HashSet::new();
    while offset != 0 {
        if !seen.insert(offset) || count >= 100_000 {
            return None; // a loop in the IFD chain
        }
        let entries = u16_at(offset)? as usize;
        let next_at = offset + 2 + 12 * entries;
        offset = u32_at(next_at)? as usize;
        count += 1;
    }
    Some(count)
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
        assert_eq!(tiff_page_count(&tiff[..40]), None);
        let mut looped = b"II*\0\x08\0\0\0\0\0".to_vec();
        looped.extend_from_slice(&8u32.to_le_bytes());
        assert_eq!(tiff_page_count(&looped), None);
        assert_eq!(tiff_page_count(b"GIF89a"), None);
    }
}
