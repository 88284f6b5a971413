//! Whole-word, case-insensitive, longest-match phrase search over a fixed list, shared by the
//! vocabulary and the context triggers.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// A phrase found in the text: byte offsets (always on char boundaries) and its pattern index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    pub pattern: usize,
}

/// Word characters for the boundary test: Unicode letters and digits, and `_` (as `\w`).
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A phrase list compiled once. Patterns are ASCII (lower case); the text may be anything.
pub(crate) struct PhraseMatcher {
    ac: AhoCorasick,
    /// Per pattern: does it begin / end with a word character (then a word boundary is needed
    /// there, as `\b` would).
    edges: Vec<(bool, bool)>,
}

impl PhraseMatcher {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Self {
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(patterns.iter().map(|p| p.as_ref().as_bytes()))
            .expect("the phrase lists are small and valid");
        let edges = patterns
            .iter()
            .map(|p| {
                let p = p.as_ref();
                (
                    p.chars().next().is_some_and(is_word_char),
                    p.chars().next_back().is_some_and(is_word_char),
                )
            })
            .collect();
        Self { ac, edges }
    }

    /// Non-overlapping whole-word matches, leftmost first and, at one start, longest first.
    /// `text` is matched with ASCII tabs, CR and LF read as spaces, so a phrase may wrap a line.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let hay: Vec<u8> = text
            .bytes()
            .map(|b| {
                if matches!(b, b'\t' | b'\r' | b'\n') {
                    b' '
                } else {
                    b
                }
            })
            .collect();
        let mut all: Vec<Found> = Vec::new();
        for m in self.ac.find_overlapping_iter(&hay) {
            let (start, end) = (m.start(), m.end());
            // Patterns are ASCII, so both ends are char boundaries of `text`.
            if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                continue;
            }
            let (need_left, need_right) = self.edges[m.pattern().as_usize()];
            if need_left && text[..start].chars().next_back().is_some_and(is_word_char) {
                continue;
            }
            if need_right && text[end..].chars().next().is_some_and(is_word_char) {
                continue;
            }
            all.push(Found {
                start,
                end,
                pattern: m.pattern().as_usize(),
            });
        }
        all.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut chosen: Vec<Found> = Vec::with_capacity(all.len());
        let mut last_end = 0;
        for f in all {
            if f.start >= last_end {
                last_end = f.end;
                chosen.push(f);
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_whole_word_match_wins() {
        let m = PhraseMatcher::new(&["pain", "chest pain", "chest", "in"]);
        let text = "Chest  pain; CHEST PAIN and painful chest";
        let found: Vec<&str> = m.find(text).iter().map(|f| &text[f.start..f.end]).collect();
        assert_eq!(found, ["Chest", "pain", "CHEST PAIN", "chest"]);
    }

    #[test]
    fn a_longer_match_failing_the_boundary_leaves_the_shorter() {
        let m = PhraseMatcher::new(&["insulin", "insulin glarg"]);
        let text = "insulin glargine";
        let found: Vec<&str> = m.find(text).iter().map(|f| &text[f.start..f.end]).collect();
        assert_eq!(found, ["insulin"]);
    }

    #[test]
    fn boundaries_are_unicode_aware() {
        let m = PhraseMatcher::new(&["ibuprofen", "-free"]);
        assert!(m.find("éibuprofen").is_empty());
        assert!(m.find("ibuprofenä").is_empty());
        assert_eq!(m.find("«ibuprofen»").len(), 1);
        assert_eq!(m.find("pain-free").len(), 1);
        assert_eq!(m.find("acute\nibuprofen").len(), 1);
    }
}
