//! Sentence/clause segments and the NegEx-style context triggers (negation, past history,
//! family, hypothetical).

use std::sync::LazyLock;

use super::matcher::{Found, PhraseMatcher, is_word_char};

/// Byte offsets where segments end: after each `\n` and `;`, and after a `.`, `!` or `?`
/// followed by whitespace (or the end) unless the next non-space character is a lower-case
/// letter (so `p.o. daily` and `2.5 mg` stay in one sentence). Sorted; the text's length last.
pub(crate) fn segment_ends(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut ends = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' | b';' => ends.push(i + 1),
            b'.' | b'!' | b'?' => {
                let rest = &text[i + 1..];
                let Some(first) = rest.chars().next() else {
                    continue;
                };
                if !first.is_whitespace() {
                    continue;
                }
                let next = rest.trim_start().chars().next();
                if next.is_some_and(char::is_lowercase) {
                    continue;
                }
                ends.push(i + 1);
            }
            _ => {}
        }
    }
    if ends.last() != Some(&text.len()) {
        ends.push(text.len());
    }
    ends
}

/// The segment holding byte `pos`: `(index, start, end)`.
pub(crate) fn segment_of(ends: &[usize], pos: usize) -> (usize, usize, usize) {
    let i = ends
        .partition_point(|&e| e <= pos)
        .min(ends.len().saturating_sub(1));
    let start = if i == 0 { 0 } else { ends[i - 1] };
    (i, start, ends.get(i).copied().unwrap_or(pos))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Negates what follows in the clause.
    NegationBefore,
    /// Negates what shortly precedes it.
    NegationAfter,
    PastHistoryBefore,
    FamilyBefore,
    HypotheticalBefore,
    /// Looks like a trigger but is none ("no change", "gram negative"): matched so that the
    /// shorter trigger inside it is not.
    Pseudo,
    /// Ends every trigger's scope ("but", "however", ...).
    Terminator,
}

const NEGATION_BEFORE: &[&str] = &[
    "no",
    "not",
    "denies",
    "denied",
    "deny",
    "denying",
    "without",
    "negative for",
    "no evidence of",
    "no sign of",
    "no signs of",
    "no symptoms of",
    "no history of",
    "no complaints of",
    "no family history of",
    "free of",
    "ruled out",
    "rules out",
    "absence of",
    "never",
    "never had",
    "neither",
    "nor",
    "did not have",
    "does not have",
    "fails to reveal",
    "failed to reveal",
    "declined",
    "declines",
    "refused",
    "refuses",
    "not on",
];

const NEGATION_AFTER: &[&str] = &[
    "was ruled out",
    "were ruled out",
    "is ruled out",
    "has been ruled out",
    "have been ruled out",
    "ruled out",
    "is negative",
    "was negative",
    "were negative",
    "are negative",
    "negative",
    "unlikely",
    "is unlikely",
    "not seen",
    "not present",
    "absent",
    "is absent",
    "was absent",
    "-free",
];

const PSEUDO: &[&str] = &[
    "no increase",
    "no change",
    "no significant change",
    "no interval change",
    "no definite change",
    "not only",
    "not necessarily",
    "not certain",
    "not extend",
    "not cause",
    "without difficulty",
    "gram negative",
    "gram-negative",
    "not ruled out",
    "not been ruled out",
    "not rule out",
    "cannot be ruled out",
    "could not be ruled out",
    "can not be ruled out",
    "prior to",
    "no known allergies",
];

const PAST_HISTORY_BEFORE: &[&str] = &[
    "history of",
    "hx of",
    "h/o",
    "past history of",
    "past medical history",
    "past medical history of",
    "pmh",
    "past surgical history",
    "status post",
    "s/p",
    "previous",
    "previously",
    "prior",
    "in the past",
];

const FAMILY_BEFORE: &[&str] = &[
    "family history of",
    "family history",
    "family hx",
    "fhx",
    "mother",
    "mother's",
    "father",
    "father's",
    "mom",
    "dad",
    "brother",
    "sister",
    "sibling",
    "siblings",
    "grandmother",
    "grandfather",
    "grandparent",
    "grandparents",
    "aunt",
    "uncle",
    "cousin",
    "parents",
    "maternal",
    "paternal",
];

const HYPOTHETICAL_BEFORE: &[&str] = &[
    "if",
    "in case of",
    "in the event of",
    "should",
    "rule out",
    "r/o",
    "to rule out",
    "cannot rule out",
    "evaluate for",
    "at risk for",
    "risk of",
    "watch for",
    "monitor for",
    "return if",
];

const TERMINATORS: &[&str] = &[
    "but",
    "however",
    "although",
    "though",
    "except",
    "except for",
    "apart from",
    "aside from",
    "yet",
    "nevertheless",
    "still",
    "whereas",
    "reports",
    "endorses",
    "complains of",
    "presents with",
    "presenting with",
    "admits to",
    "secondary to",
    "due to",
];

pub(crate) struct Triggers {
    matcher: PhraseMatcher,
    kinds: Vec<Trigger>,
}

impl Triggers {
    fn build() -> Self {
        let mut patterns = Vec::new();
        let mut kinds = Vec::new();
        for (list, kind) in [
            (PSEUDO, Trigger::Pseudo),
            (TERMINATORS, Trigger::Terminator),
            (FAMILY_BEFORE, Trigger::FamilyBefore),
            (NEGATION_AFTER, Trigger::NegationAfter),
            (NEGATION_BEFORE, Trigger::NegationBefore),
            (PAST_HISTORY_BEFORE, Trigger::PastHistoryBefore),
            (HYPOTHETICAL_BEFORE, Trigger::HypotheticalBefore),
        ] {
            for p in list {
                if !patterns.contains(p) {
                    patterns.push(*p);
                    kinds.push(kind);
                }
            }
        }
        Self {
            matcher: PhraseMatcher::new(&patterns),
            kinds,
        }
    }

    pub fn find(&self, text: &str) -> Vec<(Found, Trigger)> {
        self.matcher
            .find(text)
            .into_iter()
            .map(|f| (f, self.kinds[f.pattern]))
            .collect()
    }
}

pub(crate) static TRIGGERS: LazyLock<Triggers> = LazyLock::new(Triggers::build);

/// Whether `gap` (text between an entity and a following trigger) holds at most `max` words,
/// looking at no more than a bounded prefix of it.
pub(crate) fn at_most_words(gap: &str, max: usize) -> bool {
    let mut words = 0;
    let mut in_word = false;
    for (n, c) in gap.chars().enumerate() {
        if n > 64 {
            return false;
        }
        if is_word_char(c) {
            if !in_word {
                words += 1;
                if words > max {
                    return false;
                }
            }
            in_word = true;
        } else {
            in_word = false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(text: &str) -> Vec<&str> {
        let ends = segment_ends(text);
        let mut out = Vec::new();
        let mut start = 0;
        for e in ends {
            out.push(&text[start..e]);
            start = e;
        }
        out
    }

    #[test]
    fn segments_split_sentences_lines_and_semicolons() {
        assert_eq!(
            segments("Aspirin 81 mg p.o. daily. No fever; cough\nok"),
            ["Aspirin 81 mg p.o. daily.", " No fever;", " cough\n", "ok"]
        );
        assert_eq!(segments("Take 2.5 mg."), ["Take 2.5 mg."]);
        assert_eq!(segments(""), [""]);
    }

    #[test]
    fn segment_lookup() {
        let ends = segment_ends("ab; cd");
        assert_eq!(segment_of(&ends, 0), (0, 0, 3));
        assert_eq!(segment_of(&ends, 4), (1, 3, 6));
        assert_eq!(segment_of(&ends, 6), (1, 3, 6));
    }

    #[test]
    fn triggers_prefer_longest_and_pseudo() {
        let t = TRIGGERS.find("no change but no evidence of gram negative; was ruled out");
        let kinds: Vec<Trigger> = t.iter().map(|(_, k)| *k).collect();
        assert_eq!(
            kinds,
            [
                Trigger::Pseudo,
                Trigger::Terminator,
                Trigger::NegationBefore,
                Trigger::Pseudo,
                Trigger::NegationAfter
            ]
        );
    }

    #[test]
    fn word_budget() {
        assert!(at_most_words(" was ", 4));
        assert!(at_most_words(" a b c d ", 4));
        assert!(!at_most_words(" a b c d e ", 4));
    }
}
