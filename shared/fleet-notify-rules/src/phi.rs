//! The PHI check: an event's PHI values, normalised, and whether a text contains one.
//!
//! Text and values are compared after the same normalisation ([`normalise`]): compatibility
//! decomposition (NFKD, so NFKC-equal strings compare equal), combining marks dropped, full
//! case folding (upper- then lower-case each character, so `ß`, `ẞ` and `SS` all become `ss`,
//! `ﬁ` and `FI` become `fi`, final sigma becomes `σ`), and everything that is not a letter or
//! a digit removed (whitespace, separators, punctuation, symbols). So `|upper`, `|title`,
//! `|list|join(" ")`, `|replace("k", "k-")`, slices put back together and collapsed or
//! re-spaced whitespace all leave a value the check still finds.
//!
//! Matching, per normalised value:
//! - 3 characters or more: anywhere in the normalised text (fail-safe: `"Ann"` is also found
//!   in `"annual"`); values of 4 or more are also looked for reversed (`|reverse`).
//! - 2 characters (a name like `Li` or `Ng`): only as a whole word of the text, or as two
//!   adjacent one-character words (`"L i"`). Anywhere would refuse most texts.
//! - 1 character (an initial): not checked; it identifies nobody and would match every `a`.
//!
//! Dates (any value that starts `YYYY-MM-DD` or `YYYYMMDD`) are also looked for in their
//! common spellings: `YYYYMMDD`, `YYYY-MM-DD`, `DD/MM/YYYY`, `MM/DD/YYYY`, `D.M.YYYY`,
//! `DD.MM.YYYY`, `March 4, 1961`, `4 March 1961`, `Mar 4 1961`, `4th March 1961`, with and
//! without leading zeros (English month names; two-digit years are not generated).
//!
//! This check sees only text. A template can still encode a value beyond recognition
//! (`|urlencode`, `|reverse` of a short name, a slice of part of it); that is why
//! [`crate::rules::Rules::render`] also refuses a rule whose allow-listed fields carry a PHI
//! value at all, before rendering.

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Normalised values this long or longer are matched anywhere in the normalised text.
pub const MIN_ANYWHERE: usize = 3;
/// Normalised values this long or longer are also matched reversed.
pub const MIN_REVERSED: usize = 4;
/// Normalised values shorter than this are not checked at all.
pub const MIN_CHECKED: usize = 2;

/// The comparison form of a text or a value (see the module documentation).
pub fn normalise(s: &str) -> String {
    let s = decode_entities(s);
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        for u in c.to_uppercase() {
            for l in u.to_lowercase() {
                match l {
                    'ß' => out.push_str("ss"),
                    'ς' => out.push('σ'),
                    l if l.is_alphanumeric() => out.push(l),
                    _ => {}
                }
            }
        }
    }
    out
}

/// `s` with HTML character references decoded (`&#x2f;`, `&#39;`, `&amp;`, ...: what
/// `|escape` writes), so the digits and letters of an entity cannot split a value.
fn decode_entities(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let decoded = rest[1..]
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| {
                let name = &rest[1..1 + end];
                let c = if let Some(hex) = name.strip_prefix("#x").or(name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok().and_then(char::from_u32)
                } else {
                    match name {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        "nbsp" => Some(' '),
                        _ => None,
                    }
                };
                c.map(|c| (c, end + 2))
            });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// The words of a text, each normalised: maximal runs of letters, digits and combining
/// marks.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || is_combining_mark(c)))
        .map(normalise)
        .filter(|w| !w.is_empty())
        .collect()
}

/// The PHI values of one event, normalised for matching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhiValues {
    /// Matched anywhere in the normalised text; longest first.
    anywhere: Vec<String>,
    /// Matched as a whole word (or adjacent one-letter words) of the text.
    whole_words: Vec<String>,
}

impl PhiValues {
    /// The normalised values of these raw values (see the module documentation).
    pub fn from_raw<'a>(raw: impl IntoIterator<Item = &'a str>) -> Self {
        let mut anywhere = Vec::new();
        let mut whole_words = Vec::new();
        for r in raw {
            let mut forms = vec![normalise(r)];
            forms.extend(date_spellings(r).iter().map(|d| normalise(d)));
            for n in forms {
                let len = n.chars().count();
                if len >= MIN_ANYWHERE {
                    if len >= MIN_REVERSED {
                        anywhere.push(n.chars().rev().collect());
                    }
                    anywhere.push(n);
                } else if len >= MIN_CHECKED {
                    whole_words.push(n.clone());
                }
            }
        }
        for v in [&mut anywhere, &mut whole_words] {
            v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
            v.dedup();
        }
        Self {
            anywhere,
            whole_words,
        }
    }

    /// Whether `normalised` (a [`normalise`]d value) is one of the values checked.
    pub fn contains(&self, normalised: &str) -> bool {
        self.anywhere.iter().any(|v| v == normalised)
            || self.whole_words.iter().any(|v| v == normalised)
    }

    pub fn is_empty(&self) -> bool {
        self.anywhere.is_empty() && self.whole_words.is_empty()
    }

    /// Whether `text` contains one of these values.
    pub fn found_in(&self, text: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        let norm = normalise(text);
        if self.anywhere.iter().any(|v| norm.contains(v.as_str())) {
            return true;
        }
        if self.whole_words.is_empty() {
            return false;
        }
        let words = words(text);
        self.whole_words.iter().any(|v| {
            (0..words.len()).any(|i| {
                let mut acc = String::new();
                for w in &words[i..] {
                    acc.push_str(w);
                    if acc.len() >= v.len() {
                        break;
                    }
                    if w.chars().count() != 1 {
                        // Only one-letter words join up: "L i" is "Li", "Lab in" is not.
                        return false;
                    }
                }
                acc == *v
            })
        })
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The calendar date a value starts with (`YYYY-MM-DD...` or `YYYYMMDD...`), if any.
fn date_of(s: &str) -> Option<(u32, u32, u32)> {
    let s = s.trim();
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let (y, m, d) = if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' {
        (digits(0..4)?, digits(5..7)?, digits(8..10)?)
    } else if b.len() >= 8 {
        (digits(0..4)?, digits(4..6)?, digits(6..8)?)
    } else {
        return None;
    };
    ((1..=12).contains(&m) && (1..=31).contains(&d) && y >= 1000).then_some((y, m, d))
}

fn ordinal(d: u32) -> &'static str {
    match (d % 10, d % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    }
}

/// The common spellings of the date a value starts with (empty when it is not a date).
pub fn date_spellings(s: &str) -> Vec<String> {
    let Some((y, m, d)) = date_of(s) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let days = [format!("{d:02}"), d.to_string()];
    let months = [format!("{m:02}"), m.to_string()];
    for dd in &days {
        for mm in &months {
            out.push(format!("{y}-{mm}-{dd}"));
            out.push(format!("{dd}/{mm}/{y}"));
            out.push(format!("{mm}/{dd}/{y}"));
            out.push(format!("{dd}.{mm}.{y}"));
        }
    }
    let month = MONTHS[(m - 1) as usize];
    for name in [month, &month[..3]] {
        for dd in [
            days[0].clone(),
            days[1].clone(),
            format!("{d}{}", ordinal(d)),
        ] {
            out.push(format!("{name} {dd}, {y}"));
            out.push(format!("{dd} {name} {y}"));
        }
    }
    out
}

/// Keys whose string values (anywhere in `detail`) are PHI: patient and provider names,
/// birth date, identifiers, address lines, contact details, document text and object keys.
const PHI_KEYS: &[&str] = &[
    "family",
    "given",
    "middle",
    "name",
    "full_name",
    "patient_name",
    "birth_date",
    "dob",
    "mrn",
    "visit_number",
    "account_number",
    "prior_account_number",
    "prior_visit_number",
    "street",
    "other",
    "city",
    "postal_code",
    "phone",
    "email",
    "ssn",
    "text",
    "key",
];
/// Objects whose every string is PHI, but for the keys in [`NOT_PHI_IN_OBJECTS`].
const PHI_OBJECTS: &[&str] = &["address"];
/// A state or country is not an identifier (HIPAA Safe Harbor keeps them), and two-letter
/// codes like `IN` or `OR` would match ordinary words.
const NOT_PHI_IN_OBJECTS: &[&str] = &["state", "country"];
/// Arrays of identifier objects whose `id` is PHI.
const ID_ARRAYS: &[&str] = &["identifiers", "prior_identifiers"];

/// The raw PHI values of an event (its `detail`), in document order.
pub fn raw_values(event: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(detail) = event.get("detail") {
        collect(detail, &mut out);
    }
    out
}

/// Every string and number under `v`.
pub fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn collect(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if PHI_OBJECTS.contains(&k.as_str()) {
                    match child {
                        Value::Object(m) => m
                            .iter()
                            .filter(|(k, _)| !NOT_PHI_IN_OBJECTS.contains(&k.as_str()))
                            .for_each(|(_, x)| strings(x, out)),
                        other => strings(other, out),
                    }
                } else if ID_ARRAYS.contains(&k.as_str()) {
                    for id in child.as_array().into_iter().flatten() {
                        if let Some(x) = id.get("id") {
                            strings(x, out);
                        }
                    }
                } else if PHI_KEYS.contains(&k.as_str()) && !child.is_object() {
                    strings(child, out);
                } else {
                    collect(child, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// The PHI values of an event, normalised.
pub fn phi_values(event: &Value) -> PhiValues {
    let raw = raw_values(event);
    PhiValues::from_raw(raw.iter().map(String::as_str))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_folds_case_width_marks_and_separators() {
        assert_eq!(normalise("Weiß"), "weiss");
        assert_eq!(normalise("WEISS"), "weiss");
        assert_eq!(normalise("ẞ"), "ss");
        assert_eq!(normalise("Ｏｋｏｎｋｗｏ"), "okonkwo");
        assert_eq!(normalise("O k-o_n.k/w o"), "okonkwo");
        assert_eq!(normalise("Müller"), normalise("MU\u{0308}LLER"));
        assert_eq!(normalise("Müller"), "muller");
        assert_eq!(normalise("ﬁnn"), normalise("FINN"));
        assert_eq!(normalise("ΟΔΥΣΣΕΥΣ"), normalise("οδυσσευς"));
        assert_eq!(normalise("İlker"), "ilker");
        assert_eq!(
            normalise("O&#x27;B&#x2f;r&amp;i&#101;n &x; &#xZZ;"),
            "obrienxxzz"
        );
    }

    #[test]
    fn dates_are_spelled_every_common_way() {
        let phi = PhiValues::from_raw(["1961-03-04"]);
        for s in [
            "19610304",
            "1961-03-04",
            "04/03/1961",
            "03/04/1961",
            "4/3/1961",
            "3/4/1961",
            "4.3.1961",
            "04.03.1961",
            "March 4, 1961",
            "4 March 1961",
            "MARCH 04 1961",
            "4th March 1961",
            "mar 4, 1961",
            "1961-3-4",
        ] {
            assert!(phi.found_in(&format!("born {s}.")), "{s}");
        }
        assert!(!phi.found_in("born 5 March 1961"));
        assert!(date_spellings("not a date").is_empty());
        assert!(date_spellings("1961-13-04").is_empty());
        assert_eq!(date_of("19610304120000"), Some((1961, 3, 4)));
    }

    #[test]
    fn two_letter_values_match_whole_words_only() {
        let phi = PhiValues::from_raw(["Li", "x"]);
        assert!(phi.found_in("Patient LI admitted"));
        assert!(phi.found_in("Patient L i admitted"));
        assert!(phi.found_in("li"));
        assert!(!phi.found_in("Admitted to the clinic"));
        assert!(!phi.found_in("Lab in ward 2"));
        // One-character values are not checked.
        assert!(!phi.found_in("x marks the spot"));
    }

    #[test]
    fn long_values_match_reversed_and_re_spaced() {
        let phi = PhiValues::from_raw(["Okonkwo", "12  Elm Street"]);
        assert!(phi.found_in("owknokO"));
        assert!(phi.found_in("12 elm\nstreet"));
        assert!(phi.found_in("O K O N K W O"));
        assert!(!phi.found_in("Admission to 4EAST"));
    }
}
