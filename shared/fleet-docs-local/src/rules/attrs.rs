//! Medication attributes found by regular expressions: strength and dosage, route, frequency,
//! form, duration.

use std::sync::LazyLock;

use regex::Regex;

use super::matcher::is_word_char;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum AttrKind {
    Strength,
    Dosage,
    Frequency,
    Duration,
    Route,
    Form,
}

impl AttrKind {
    /// Comprehend Medical's attribute `Type`.
    pub fn attribute_type(self) -> &'static str {
        match self {
            Self::Strength => "STRENGTH",
            Self::Dosage => "DOSAGE",
            Self::Frequency => "FREQUENCY",
            Self::Duration => "DURATION",
            Self::Route => "ROUTE_OR_MODE",
            Self::Form => "FORM",
        }
    }

    /// Comprehend Medical's `RelationshipType` from a medication to this attribute.
    pub fn relationship_type(self) -> &'static str {
        match self {
            Self::Strength => "STRENGTH",
            Self::Dosage => "WITH_DOSAGE",
            Self::Frequency => "FREQUENCY",
            Self::Duration => "DURATION",
            Self::Route => "ADMINISTERED_VIA",
            Self::Form => "FORM",
        }
    }
}

/// An attribute candidate: byte offsets into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub kind: AttrKind,
    pub start: usize,
    pub end: usize,
    /// An amount in a mass unit without a denominator (`250 mg`): a dosage that may still be
    /// the strength of a combination's ingredient.
    pub mass: bool,
}

const NUMBER: &str = r"(?:\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?|\.\d+)";

/// Mass and concentration units: an amount in one of these is a strength or a dose.
const MASS_UNITS: &str =
    r"milligrams?|micrograms?|grams?|percent|mgs?|mcg|µg|μg|ug|meq|mmol|gm|g|%";
/// Countable units: an amount in one of these is a dosage.
const COUNT_UNITS: &str = r"tablespoons?|teaspoons?|tablets?|tabs?|capsules?|caps?|pills?|puffs?|sprays?|drops?|gtts?|units?|unt|iu|tbsp|tsp|patch(?:es)?|applications?|inhalations?|actuations?|actuat|vials?|ampules?|suppositor(?:y|ies)|doses?|packets?|lozenges?|injections?|mls|ml|cc|l";
const DENOMINATORS: &str = r"5 ?ml|24 ?hr|actuation|actuat|hours?|hr|h|ml|l|doses?|sprays?|puffs?|kg|m2|tablet|tab|capsule|mg|g|day";

const ROUTES: &[&str] = &[
    "oral",
    "orally",
    "by mouth",
    "po",
    "p.o.",
    "per os",
    "intravenous",
    "intravenously",
    "iv",
    "i.v.",
    "ivpb",
    "iv push",
    "intramuscular",
    "intramuscularly",
    "im",
    "i.m.",
    "subcutaneous",
    "subcutaneously",
    "subcut",
    "subq",
    "sub-q",
    "sq",
    "sc",
    "s.c.",
    "topical",
    "topically",
    "inhaled",
    "inhalation",
    "by inhalation",
    "nebulized",
    "via nebulizer",
    "intranasal",
    "intranasally",
    "nasal",
    "nasally",
    "sublingual",
    "sublingually",
    "sl",
    "buccal",
    "rectal",
    "rectally",
    "per rectum",
    "pr",
    "vaginal",
    "vaginally",
    "per vagina",
    "transdermal",
    "ophthalmic",
    "otic",
    "intradermal",
    "intrathecal",
    "epidural",
    "intra-articular",
    "intravitreal",
    "enteral",
    "per tube",
    "via g-tube",
    "via peg",
    "via ng tube",
    "in each eye",
    "in both eyes",
    "in each nostril",
    "to affected area",
];

const FORMS: &[&str] = &[
    "tablet",
    "tablets",
    "tab",
    "tabs",
    "chewable tablet",
    "chewable tablets",
    "extended release tablet",
    "extended release tablets",
    "delayed release tablet",
    "delayed release capsule",
    "extended release capsule",
    "orally disintegrating tablet",
    "film coated tablet",
    "enteric coated tablet",
    "effervescent tablet",
    "sublingual tablet",
    "capsule",
    "capsules",
    "cap",
    "caplet",
    "softgel",
    "gelcap",
    "pill",
    "pills",
    "lozenge",
    "troche",
    "solution",
    "suspension",
    "injectable suspension",
    "injectable solution",
    "syrup",
    "elixir",
    "liquid",
    "drops",
    "eye drops",
    "ear drops",
    "cream",
    "topical cream",
    "ointment",
    "gel",
    "lotion",
    "foam",
    "shampoo",
    "paste",
    "powder",
    "granules",
    "patch",
    "transdermal patch",
    "transdermal system",
    "suppository",
    "enema",
    "inhaler",
    "metered dose inhaler",
    "dry powder inhaler",
    "inhalation powder",
    "inhalation solution",
    "inhalation suspension",
    "nebulizer solution",
    "nasal spray",
    "spray",
    "injection",
    "prefilled syringe",
    "syringe",
    "pen injector",
    "pen",
    "auto-injector",
    "autoinjector",
    "vial",
    "ampule",
    "kit",
    "pack",
    "day pack",
    "implant",
    "vaginal ring",
    "ring",
    "intrauterine device",
    "intrauterine system",
    "film",
    "wafer",
    "mouthwash",
    "rinse",
];

const FREQUENCIES: &[&str] = &[
    "daily",
    "once daily",
    "twice daily",
    "three times daily",
    "four times daily",
    "once a day",
    "twice a day",
    "three times a day",
    "four times a day",
    "once per day",
    "twice per day",
    "a day",
    "per day",
    "every day",
    "every other day",
    "every morning",
    "every evening",
    "every night",
    "every night at bedtime",
    "nightly",
    "at bedtime",
    "at night",
    "in the morning",
    "in the evening",
    "weekly",
    "once weekly",
    "twice weekly",
    "once a week",
    "twice a week",
    "every week",
    "every other week",
    "monthly",
    "once a month",
    "every month",
    "hourly",
    "as needed",
    "when needed",
    "as directed",
    "prn",
    "p.r.n.",
    "qd",
    "q.d.",
    "bid",
    "b.i.d.",
    "tid",
    "t.i.d.",
    "qid",
    "q.i.d.",
    "qhs",
    "q.h.s.",
    "qam",
    "qpm",
    "qod",
    "qday",
    "qweek",
    "with meals",
    "before meals",
    "after meals",
    "before breakfast",
    "with breakfast",
    "with food",
    "before bed",
    "once",
    "stat",
];

/// An alternation of literal phrases, longest first (so leftmost-first picks the longest).
fn alternation(words: &[&str]) -> String {
    let mut sorted: Vec<&str> = words.to_vec();
    sorted.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    sorted
        .iter()
        .map(|w| regex::escape(w).replace(' ', r"\s+"))
        .collect::<Vec<_>>()
        .join("|")
}

struct Patterns {
    amount: Regex,
    route: Regex,
    form: Regex,
    frequency: Regex,
    duration: Regex,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let range = format!(r"{NUMBER}(?:\s*(?:-|–|to)\s*{NUMBER})?");
    let amount = format!(
        r"(?i)(?P<n>{range})\s*(?:(?P<mass>{MASS_UNITS})|(?P<count>{COUNT_UNITS}))(?P<per>\s*/\s*(?:{NUMBER}\s*)?(?:{DENOMINATORS}))?"
    );
    let every = r"every\s+\d+(?:\s*(?:-|to)\s*\d+)?\s*(?:hours?|hrs?|h|minutes?|mins?|days?|weeks?|months?)|q\.?\s?\d+(?:\s*-\s*\d+)?\s?(?:hours?|hrs|hr|h)|q\.?\s?\d+(?:\s*-\s*\d+)?\s?(?:minutes|min)|\d+\s+times\s+(?:a|per)\s+(?:day|week)|\d+x\s+(?:daily|a day|per day|weekly)";
    let frequency = format!(
        r"(?i)\b(?:{every}|(?:{}))(?:\s+as\s+needed)?",
        alternation(FREQUENCIES)
    );
    let duration = format!(
        r"(?i)\b(?:for\s+(?:the\s+next\s+|another\s+|an?\s+additional\s+)?(?:{range}|one|two|three|four|five|six|seven|eight|nine|ten|fourteen|a|an)\s*(?:more\s+)?(?:days?|weeks?|wks?|months?|years?|doses?)|x\s*{NUMBER}\s*(?:days?|d|weeks?|wks?|months?|doses?)|{NUMBER}[- ]day\s+course)"
    );
    Patterns {
        amount: Regex::new(&amount).expect("amount pattern"),
        route: Regex::new(&format!(r"(?i)\b(?:{})", alternation(ROUTES))).expect("route"),
        form: Regex::new(&format!(r"(?i)\b(?:{})", alternation(FORMS))).expect("form"),
        frequency: Regex::new(&frequency).expect("frequency pattern"),
        duration: Regex::new(&duration).expect("duration pattern"),
    }
});

/// Whether the match `[start, end)` of `text` ends on a word boundary (or with a non-word
/// character such as the dot of "b.i.d.") and starts on one.
fn bounded(text: &str, start: usize, end: usize) -> bool {
    let left_ok = !text[..start].chars().next_back().is_some_and(is_word_char)
        || !text[start..].chars().next().is_some_and(is_word_char);
    let right_ok = !text[..end].chars().next_back().is_some_and(is_word_char)
        || !text[end..].chars().next().is_some_and(is_word_char);
    left_ok && right_ok
}

/// Every attribute candidate in `text`, sorted by start. Amounts are a strength when they
/// are a concentration (`0.044 mg/actuat`) or a mass directly followed by a form, maybe after
/// a route (`500 mg oral tablet`): the product's strength. Otherwise they are a dosage
/// (`40 mg` in "take 40 mg po", `2 tablets`, `10 units`), as Comprehend Medical labels them.
pub(crate) fn candidates(text: &str) -> Vec<Candidate> {
    let p = &*PATTERNS;
    let mut out = Vec::new();
    // Skips spaces, then an optional route ("oral"), and says whether a form follows.
    let form_follows = |after: usize| -> bool {
        let skip = |at: usize| {
            let rest = &text[at..];
            at + (rest.len() - rest.trim_start().len())
        };
        let starts_here = |re: &Regex, at: usize| {
            re.find_at(text, at)
                .filter(|m| m.start() == at && bounded(text, m.start(), m.end()))
                .map(|m| m.end())
        };
        let mut at = skip(after);
        if let Some(end) = starts_here(&p.route, at) {
            at = skip(end);
        }
        starts_here(&p.form, at).is_some()
    };
    for caps in p.amount.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        let Some(n) = caps.name("n") else { continue };
        let (start, end) = (n.start(), whole.end());
        if !bounded(text, start, end) {
            continue;
        }
        let kind =
            if caps.name("per").is_some() || (caps.name("mass").is_some() && form_follows(end)) {
                AttrKind::Strength
            } else {
                AttrKind::Dosage
            };
        let mass = caps.name("mass").is_some() && caps.name("per").is_none();
        out.push(Candidate {
            kind,
            start,
            end,
            mass,
        });
    }
    for (re, kind) in [
        (&p.route, AttrKind::Route),
        (&p.form, AttrKind::Form),
        (&p.frequency, AttrKind::Frequency),
        (&p.duration, AttrKind::Duration),
    ] {
        for m in re.find_iter(text) {
            if bounded(text, m.start(), m.end()) {
                out.push(Candidate {
                    kind,
                    start: m.start(),
                    end: m.end(),
                    mass: false,
                });
            }
        }
    }
    out.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(a.kind.cmp(&b.kind))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(AttrKind, &str)> {
        candidates(text)
            .into_iter()
            .map(|c| (c.kind, &text[c.start..c.end]))
            .collect()
    }

    #[test]
    fn amounts_are_strengths_or_dosages() {
        assert_eq!(
            found("0.044 mg/actuat"),
            [(AttrKind::Strength, "0.044 mg/actuat")]
        );
        assert_eq!(
            found("x 500 mg oral tablet"),
            [
                (AttrKind::Strength, "500 mg"),
                (AttrKind::Route, "oral"),
                (AttrKind::Form, "tablet")
            ]
        );
        assert_eq!(found("take 40 mg"), [(AttrKind::Dosage, "40 mg")]);
        assert_eq!(found("10 units"), [(AttrKind::Dosage, "10 units")]);
        assert_eq!(found("70 unt/ml"), [(AttrKind::Strength, "70 unt/ml")]);
        assert_eq!(found("1,000 mg"), [(AttrKind::Dosage, "1,000 mg")]);
        assert!(found("500mgx").is_empty());
        assert!(found("a500 mg").is_empty());
    }

    #[test]
    fn frequencies_routes_durations() {
        assert_eq!(found("b.i.d."), [(AttrKind::Frequency, "b.i.d.")]);
        assert_eq!(found("q6h"), [(AttrKind::Frequency, "q6h")]);
        assert_eq!(
            found("every 8 hours as needed"),
            [(AttrKind::Frequency, "every 8 hours as needed")]
        );
        assert_eq!(found("for 7 days"), [(AttrKind::Duration, "for 7 days")]);
        assert_eq!(found("by mouth"), [(AttrKind::Route, "by mouth")]);
        assert_eq!(
            found("chewable tablet"),
            [(AttrKind::Form, "chewable tablet")]
        );
        assert!(found("bidding pose").is_empty());
    }
}
