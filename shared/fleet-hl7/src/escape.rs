//! HL7 escape decoding, written here because hl7-parser 0.3.0's decoder slices by character
//! index (panicking on non-ASCII text before an escape) and passes `\Xhh\` through undecoded.

use crate::seg::Separators;
use std::borrow::Cow;

/// Decodes one leaf value (a component or subcomponent). Unknown or unterminated escapes are
/// kept literally: losing text is worse than showing an odd sequence.
pub fn decode<'a>(value: &'a str, seps: &Separators) -> Cow<'a, str> {
    let esc = seps.escape;
    if !value.contains(esc) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find(esc) {
        out.push_str(&rest[..start]);
        let after = &rest[start + esc.len_utf8()..];
        let Some(end) = after.find(esc) else {
            // Unterminated: keep the remainder as is.
            out.push_str(&rest[start..]);
            return Cow::Owned(out);
        };
        let seq = &after[..end];
        if !expand(seq, seps, &mut out) {
            out.push(esc);
            out.push_str(seq);
            out.push(esc);
        }
        rest = &after[end + esc.len_utf8()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Appends the expansion of one escape sequence body; false if it is not a known sequence.
fn expand(seq: &str, seps: &Separators, out: &mut String) -> bool {
    match seq {
        "F" => out.push(seps.field),
        "S" => out.push(seps.component),
        "T" => out.push(seps.subcomponent),
        "R" => out.push(seps.repetition),
        "E" => out.push(seps.escape),
        "P" => match seps.truncation {
            Some(t) => out.push(t),
            None => return false,
        },
        ".br" | ".sp" => out.push('\n'),
        // Formatting hints (highlight, fill, indent, centre) and charset switches carry no text.
        "H" | "N" | ".fi" | ".nf" | ".ce" => {}
        _ if seq.starts_with(".in") || seq.starts_with(".ti") || seq.starts_with(".sk") => {}
        _ if seq.starts_with('C') || seq.starts_with('M') || seq.starts_with('Z') => {}
        _ if seq.starts_with('X') => return hex(&seq[1..], out),
        _ => return false,
    }
    true
}

/// `\Xhhhh..\`: bytes in hex. They are UTF-8 when they form valid UTF-8, otherwise each byte
/// is taken as ISO 8859-1 (the usual meaning in single-byte feeds).
fn hex(digits: &str, out: &mut String) -> bool {
    if digits.is_empty()
        || !digits.len().is_multiple_of(2)
        || !digits.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return false;
    }
    let bytes: Vec<u8> = digits
        .as_bytes()
        .chunks(2)
        .filter_map(|p| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    match std::str::from_utf8(&bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(bytes.iter().map(|&b| char::from(b))),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seps() -> Separators {
        Separators {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
            truncation: Some('#'),
        }
    }

    #[test]
    fn decodes_every_standard_escape() {
        let cases = [
            (r"a\F\b", "a|b"),
            (r"a\S\b", "a^b"),
            (r"a\T\b", "a&b"),
            (r"a\R\b", "a~b"),
            (r"a\E\b", "a\\b"),
            (r"a\P\b", "a#b"),
            (r"line1\.br\line2", "line1\nline2"),
            (r"\H\bold\N\", "bold"),
            (r"\X41\\X42\", "AB"),
            (r"\X0D0A\", "\r\n"),
            (r"caf\XC3A9\", "café"),
            (r"caf\XE9\", "café"),
            (r"\Zcustom\x", "x"),
            ("plain", "plain"),
        ];
        for (input, expected) in cases {
            assert_eq!(decode(input, &seps()), expected, "input {input:?}");
        }
    }

    #[test]
    fn keeps_unknown_and_unterminated_escapes() {
        assert_eq!(decode(r"a\Q\b", &seps()), r"a\Q\b");
        assert_eq!(decode(r"a\Xzz\b", &seps()), r"a\Xzz\b");
        assert_eq!(decode(r"a\F", &seps()), r"a\F");
    }

    /// Defect: hl7-parser 0.3.0 slices by char index and panics on non-ASCII before an escape.
    #[test]
    fn defect_non_ascii_before_escape_panics_in_hl7_parser() {
        let input = r"ÄÖÜ\S\Jr";
        let hl7p = hl7_parser::message::Separators::default();
        let upstream = std::panic::catch_unwind(|| hl7p.decode(input).to_string());
        assert!(
            upstream.is_err(),
            "hl7-parser 0.3.0 was expected to panic here"
        );
        assert_eq!(decode(input, &seps()), "ÄÖÜ^Jr");
    }

    /// Defect: hl7-parser 0.3.0 passes `\X41\` through as "X41" instead of decoding it.
    #[test]
    fn defect_hex_escape_mishandled_in_hl7_parser() {
        let hl7p = hl7_parser::message::Separators::default();
        assert_eq!(hl7p.decode(r"\X41\").to_string(), "X41");
        assert_eq!(decode(r"\X41\", &seps()), "A");
    }
}
