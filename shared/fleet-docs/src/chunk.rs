//! Splits document text into pieces small enough for Comprehend Medical DetectEntitiesV2, and
//! maps the entity offsets it returns for a piece back onto the whole document. Pieces are
//! slices of the input that concatenate back to it exactly, so the mapping is an addition.
//!
//! A cut inside a sentence can hide an entity or its negation ("no chest pain") from the
//! service, so cuts prefer, in order: a paragraph break, a line end, a sentence end
//! (". ", "? ", "! "), any whitespace. A preferred cut is taken only in the second half of
//! the window, so every piece but the last is at least about half the limit; that bounds the
//! number of requests at roughly twice the minimum. Without such a cut the piece is cut at
//! the limit, on a character boundary.

/// The size limit of DetectEntitiesV2's `Text`. The API reference (Amazon Comprehend Medical,
/// DetectEntitiesV2, request parameter `Text`) says "A UTF-8 string ... Each string must
/// contain fewer than 20,000 bytes of characters", with "Maximum length of 20000"; the unit is
/// bytes of UTF-8, and "fewer than" makes 19,999 the largest size to send.
pub const DETECT_ENTITIES_V2_MAX_TEXT_BYTES: usize = 20_000 - 1;

/// One piece of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// A slice of the input.
    pub text: &'a str,
    /// Where `text` starts in the input, in bytes.
    pub byte_start: usize,
    /// Where `text` starts in the input, in characters (Unicode scalar values, which is what
    /// Comprehend Medical's offsets count).
    pub char_start: usize,
}

/// Splits `text` into pieces of at most `max_bytes` UTF-8 bytes each, in order, none empty.
/// The only piece that can exceed `max_bytes` is a single character longer than it (when
/// `max_bytes` is below 4): characters are never split.
pub fn chunks(text: &str, max_bytes: usize) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut byte_start = 0;
    let mut char_start = 0;
    while !rest.is_empty() {
        let cut = cut_point(rest, max_bytes);
        // `cut` is always a char boundary in (0, rest.len()]; the fallback keeps that
        // invariant's failure from becoming a panic or an endless loop.
        let (head, tail) = rest.split_at_checked(cut).unwrap_or((rest, ""));
        out.push(Chunk {
            text: head,
            byte_start,
            char_start,
        });
        byte_start += head.len();
        char_start += head.chars().count();
        rest = tail;
    }
    out
}

/// Maps an entity's character offsets within `chunk` (as DetectEntitiesV2 returns them for the
/// chunk's text) to character offsets in the whole document. Offsets are not checked against
/// the chunk's length: an adapter that needs that checks the service's answer itself.
pub fn to_document_offsets(chunk: &Chunk<'_>, begin: usize, end: usize) -> (usize, usize) {
    (
        chunk.char_start.saturating_add(begin),
        chunk.char_start.saturating_add(end),
    )
}

/// Length in bytes of the next piece of `rest`.
fn cut_point(rest: &str, max: usize) -> usize {
    if rest.len() <= max {
        return rest.len();
    }
    let end = floor_char_boundary(rest, max);
    if end == 0 {
        return rest.chars().next().map_or(rest.len(), char::len_utf8);
    }
    let Some(window) = rest.get(..end) else {
        return end;
    };
    let least = (end / 2).max(1);
    let finders: [fn(&str) -> Option<usize>; 4] = [
        after_paragraph,
        after_line,
        after_sentence,
        after_whitespace,
    ];
    finders
        .iter()
        .filter_map(|find| find(window))
        .find(|&cut| cut >= least)
        .unwrap_or(end)
}

/// The largest char boundary not after `index`.
fn floor_char_boundary(s: &str, index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    let mut i = index;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

// Each finder returns the cut just after the last separator of its kind in the window; the
// last one is the only candidate worth checking against the half-window minimum.

fn after_paragraph(window: &str) -> Option<usize> {
    let lf = window.rfind("\n\n").map(|i| i + 2);
    let crlf = window.rfind("\n\r\n").map(|i| i + 3);
    lf.max(crlf)
}

fn after_line(window: &str) -> Option<usize> {
    window.rfind('\n').map(|i| i + 1)
}

fn after_sentence(window: &str) -> Option<usize> {
    [". ", "? ", "! "]
        .iter()
        .filter_map(|end| window.rfind(end).map(|i| i + 2))
        .max()
}

fn after_whitespace(window: &str) -> Option<usize> {
    window
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map(|(i, c)| i + c.len_utf8())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(text: &str, max_bytes: usize, expected: &[&str]) {
        let pieces: Vec<&str> = chunks(text, max_bytes).iter().map(|c| c.text).collect();
        assert_eq!(pieces, expected, "text {text:?}, max {max_bytes}");
    }

    #[test]
    fn cut_preferences() {
        // Fits.
        check("", 10, &[]);
        check("short", 10, &["short"]);
        check("abcde", 5, &["abcde"]);
        // A paragraph break beats a later line end.
        check("aaaa\n\nbbb\ncc dddd", 12, &["aaaa\n\n", "bbb\ncc dddd"]);
        check(
            "aaaa\r\n\r\nbbbb\r\ncc",
            14,
            &["aaaa\r\n\r\n", "bbbb\r\ncc"],
        );
        // A paragraph break in the first half of the window is too early; the line end wins.
        check("a\n\nbbbbbb\ncccccc", 12, &["a\n\nbbbbbb\n", "cccccc"]);
        // A sentence end beats a later space.
        check("aaaa bbb. cc dd ee", 14, &["aaaa bbb. ", "cc dd ee"]);
        check("aaaa bbb? cc dd ee", 14, &["aaaa bbb? ", "cc dd ee"]);
        check("aaaa bbb! cc dd ee", 14, &["aaaa bbb! ", "cc dd ee"]);
        // A full stop without a space is no sentence end.
        check("aaaa bbb.cc dd ee", 14, &["aaaa bbb.cc ", "dd ee"]);
        // Whitespace, ASCII or not.
        check("aaaa bbbb cccc", 12, &["aaaa bbbb ", "cccc"]);
        check("aaaa\u{3000}bbbbbbb", 10, &["aaaa\u{3000}", "bbbbbbb"]);
        // Nothing usable in the second half: cut at the limit.
        check("abcdefghij", 4, &["abcd", "efgh", "ij"]);
        check("a bcdefghijk", 8, &["a bcdefg", "hijk"]);
    }

    #[test]
    fn never_splits_a_character() {
        check("ééééé", 5, &["éé", "éé", "é"]);
        check("检查检查", 7, &["检查", "检查"]);
        check("🩺🩺", 7, &["🩺", "🩺"]);
        // A character longer than the limit goes alone rather than being split or looping.
        check("🩺a", 2, &["🩺", "a"]);
        check("ab", 0, &["a", "b"]);
    }

    #[test]
    fn offsets_and_starts() {
        let text = "µg é.\n\n检查 🩺 ok";
        let got = chunks(text, 9);
        let starts: Vec<(&str, usize, usize)> = got
            .iter()
            .map(|c| (c.text, c.byte_start, c.char_start))
            .collect();
        assert_eq!(
            starts,
            vec![("µg é.\n\n", 0, 0), ("检查 ", 9, 7), ("🩺 ok", 16, 10)]
        );
        let last = got.last().unwrap();
        assert_eq!(to_document_offsets(last, 2, 4), (12, 14));
        assert_eq!(text.chars().skip(12).take(2).collect::<String>(), "ok");
        assert_eq!(
            to_document_offsets(last, usize::MAX, usize::MAX),
            (usize::MAX, usize::MAX)
        );
    }

    /// Deterministic clinical-looking text with multibyte characters everywhere, paragraphs
    /// every few hundred bytes and `marker` at a known character offset near the end.
    fn sample_document(chars: usize, marker: &str, marker_at: usize) -> (String, usize) {
        const WORDS: &[&str] = &[
            "patient", "reports", "mild", "é", "µg", "检查", "🩺", "dose", "daily", "pain", "no",
            "fever", "café", "血压", "normal", "👍", "mg", "left", "knee", "x-ray",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).unwrap() % n
        };
        let mut text = String::new();
        let mut count = 0;
        let mut marker_offset = None;
        while count < chars {
            for _line in 0..3 + next(3) {
                for _sentence in 0..1 + next(2) {
                    let words = 5 + next(8);
                    for w in 0..words {
                        if marker_offset.is_none() && count >= marker_at {
                            marker_offset = Some(count);
                            text.push_str(marker);
                            text.push(' ');
                            count += marker.chars().count() + 1;
                        }
                        let word = WORDS[next(WORDS.len())];
                        text.push_str(word);
                        count += word.chars().count();
                        let sep = if w + 1 == words { ". " } else { " " };
                        text.push_str(sep);
                        count += sep.len();
                    }
                }
                text.push('\n');
                count += 1;
            }
            text.push('\n');
            count += 1;
        }
        let text: String = text.chars().take(chars).collect();
        (text, marker_offset.unwrap())
    }

    #[test]
    fn sixty_thousand_character_document() {
        let marker = "Lévothyroxine";
        let (text, marker_at) = sample_document(60_000, marker, 59_000);
        assert_eq!(text.chars().count(), 60_000);
        assert!(text.len() > 60_000, "the sample must be multibyte");
        assert_eq!(text.matches(marker).count(), 1);

        let max = DETECT_ENTITIES_V2_MAX_TEXT_BYTES;
        let got = chunks(&text, max);
        assert_eq!(got.iter().map(|c| c.text).collect::<String>(), text);
        assert!(got.iter().all(|c| c.text.len() <= max));
        let least = text.len().div_ceil(max);
        let most = text.len() / ((max - 4) / 2) + 1;
        assert!(
            (least..=most).contains(&got.len()),
            "{} chunks for {} bytes",
            got.len(),
            text.len()
        );
        // Paragraphs come every few hundred bytes, so every cut lands on one.
        for c in &got[..got.len() - 1] {
            assert!(
                c.text.ends_with("\n\n"),
                "chunk at {} ends mid-paragraph",
                c.byte_start
            );
        }

        // What an adapter does with a DetectEntitiesV2 answer for the chunk holding the marker.
        let holding: Vec<&Chunk<'_>> = got.iter().filter(|c| c.text.contains(marker)).collect();
        assert_eq!(holding.len(), 1, "the marker must not be split");
        let chunk = holding[0];
        let local_byte = chunk.text.find(marker).unwrap();
        let begin = chunk.text[..local_byte].chars().count();
        let end = begin + marker.chars().count();
        let (doc_begin, doc_end) = to_document_offsets(chunk, begin, end);
        assert_eq!((doc_begin, doc_end), (marker_at, marker_at + 13));
        let found: String = text
            .chars()
            .skip(doc_begin)
            .take(doc_end - doc_begin)
            .collect();
        assert_eq!(found, marker);
    }

    /// Text built from the pieces the cutter cares about, multibyte ones included.
    fn arb_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("word"),
            Just("a"),
            Just("é"),
            Just("µg"),
            Just("检查"),
            Just("🩺"),
            Just(" "),
            Just("\u{3000}"),
            Just("\n"),
            Just("\n\n"),
            Just("\r\n"),
            Just(". "),
            Just("? "),
            Just("! "),
            Just("."),
        ];
        prop_oneof![
            proptest::collection::vec(piece, 0..200).prop_map(|v| v.concat()),
            any::<String>(),
        ]
    }

    proptest! {
        #[test]
        fn pieces_rebuild_the_input_within_the_bound(text in arb_text(), max in 0usize..64) {
            let got = chunks(&text, max);
            prop_assert_eq!(got.iter().map(|c| c.text).collect::<String>(), text.clone());
            for (i, c) in got.iter().enumerate() {
                prop_assert!(!c.text.is_empty());
                prop_assert!(c.text.len() <= max || c.text.chars().count() == 1);
                prop_assert!(text.is_char_boundary(c.byte_start));
                prop_assert_eq!(text.get(c.byte_start..c.byte_start + c.text.len()), Some(c.text));
                prop_assert_eq!(c.char_start, text[..c.byte_start].chars().count());
                if i + 1 < got.len() {
                    prop_assert!(2 * c.text.len() + 4 >= max, "piece {} too short", i);
                }
            }
        }

        #[test]
        fn mapped_offsets_agree_with_slicing(
            text in arb_text(),
            max in 4usize..64,
            pick in any::<proptest::sample::Index>(),
            a in any::<proptest::sample::Index>(),
            b in any::<proptest::sample::Index>(),
        ) {
            let got = chunks(&text, max);
            prop_assume!(!got.is_empty());
            let chunk = got[pick.index(got.len())];
            let len = chunk.text.chars().count();
            let (x, y) = (a.index(len + 1), b.index(len + 1));
            let (begin, end) = (x.min(y), x.max(y));
            let in_chunk: String = chunk.text.chars().skip(begin).take(end - begin).collect();
            let (doc_begin, doc_end) = to_document_offsets(&chunk, begin, end);
            let in_doc: String = text.chars().skip(doc_begin).take(doc_end - doc_begin).collect();
            prop_assert_eq!(in_doc, in_chunk);
        }
    }
}
