//! The guard: everything between raw bytes and trustworthy segments. It closes the holes
//! hl7-parser 0.3.0 leaves open (see DESIGN.md): it checks that every byte belongs to a
//! well-formed segment instead of accepting a parsed prefix, reads MSH-2 of four or five
//! characters, and decodes the character set named in MSH-18 before any text is looked at.

use crate::MapConfig;
use crate::error::{Hl7Error, err, shown_charset};
use crate::seg::{Seg, Separators};
use crate::split;
use fleet_core::ErrorCode;
use std::borrow::Cow;

/// A message that passed the guard: its separators, and the first segment with each id the
/// mapping reads (the segments are validated and then not kept: no allocation per message).
#[derive(Debug)]
pub struct Guarded<'a> {
    pub seps: Separators,
    /// The first segment (MSH: the guard refuses anything else first).
    pub first: Option<Seg<'a>>,
    /// The first segment with each id of [`MAPPED`], in that order.
    mapped: [Option<Seg<'a>>; MAPPED.len()],
}

/// The segments the mapping reads besides MSH.
const MAPPED: [&str; 4] = ["EVN", "PID", "PV1", "MRG"];

impl<'a> Guarded<'a> {
    /// The first segment with this id; `None` also for an id the mapping does not read.
    pub fn find(&self, id: &str) -> Option<Seg<'a>> {
        MAPPED
            .iter()
            .position(|m| *m == id)
            .and_then(|i| self.mapped[i])
    }
}

/// Strips what surrounds a message on the wire: UTF-8 BOM, MLLP start/end bytes, blank space.
pub fn trim_envelope(mut b: &[u8]) -> &[u8] {
    loop {
        let before = b.len();
        b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
        while let [first, rest @ ..] = b {
            if *first == 0x0B || first.is_ascii_whitespace() {
                b = rest;
            } else {
                break;
            }
        }
        while let [rest @ .., last] = b {
            if *last == 0x1C || last.is_ascii_whitespace() {
                b = rest;
            } else {
                break;
            }
        }
        if b.len() == before {
            return b;
        }
    }
}

/// Byte-level step: size, framing, MSH presence, encoding characters, charset decoding.
/// Returns decoded text and the separators.
pub fn decode_message<'a>(
    raw: &'a [u8],
    cfg: &MapConfig,
) -> Result<(Cow<'a, str>, Separators), Hl7Error> {
    if raw.len() > cfg.max_message_bytes {
        return err(
            ErrorCode::BodyTooLarge,
            format!(
                "message is {} bytes, limit {}",
                raw.len(),
                cfg.max_message_bytes
            ),
        );
    }
    let b = trim_envelope(raw);
    if b.is_empty() {
        return err(
            ErrorCode::Hl7Empty,
            "no content after removing framing and whitespace",
        );
    }
    if !b.starts_with(b"MSH") {
        return err(
            ErrorCode::Hl7NoMsh,
            "input does not start with an MSH segment",
        );
    }
    let seps = separators(b)?;
    let text = decode_charset(b, &seps)?;
    Ok((text, seps))
}

/// MSH-1 and MSH-2. hl7-parser 0.3.0 takes exactly five characters here, so a v2.7 MSH-2 with
/// the truncation character (`^~\&#`) shifts every MSH field by one; we accept four or five.
pub fn separators(b: &[u8]) -> Result<Separators, Hl7Error> {
    let is_delim = |c: u8| c.is_ascii_graphic() && !c.is_ascii_alphanumeric();
    let Some(&field) = b.get(3) else {
        return err(ErrorCode::Hl7BadEncodingChars, "MSH has no field separator");
    };
    if !is_delim(field) {
        return err(
            ErrorCode::Hl7BadEncodingChars,
            "MSH-1 is not a delimiter character",
        );
    }
    let rest = &b[4..];
    let end = rest
        .iter()
        .position(|&c| c == field || c == b'\r' || c == b'\n')
        .unwrap_or(rest.len());
    let enc = &rest[..end];
    if enc.len() != 4 && enc.len() != 5 {
        return err(
            ErrorCode::Hl7BadEncodingChars,
            format!("MSH-2 has {} characters, expected 4 or 5", enc.len()),
        );
    }
    for (i, &c) in enc.iter().enumerate() {
        if !is_delim(c) || c == field || enc[..i].contains(&c) {
            return err(
                ErrorCode::Hl7BadEncodingChars,
                "MSH-2 holds a repeated or non-delimiter character",
            );
        }
    }
    let ch = |i: usize| char::from(enc[i]);
    Ok(Separators {
        field: char::from(field),
        component: ch(0),
        repetition: ch(1),
        escape: ch(2),
        subcomponent: ch(3),
        truncation: enc.get(4).map(|&c| char::from(c)),
    })
}

/// MSH-18 names the character set; it is read from the raw bytes (the delimiters are ASCII in
/// every supported set) and the whole message is decoded before anything else reads it.
/// Without MSH-18 the text is taken as UTF-8 when valid and as ISO 8859-1 otherwise: feeds
/// that leave MSH-18 empty send one of those two in practice, and 8859-1 cannot fail.
pub fn decode_charset<'a>(b: &'a [u8], seps: &Separators) -> Result<Cow<'a, str>, Hl7Error> {
    let msh_end = memchr::memchr2(b'\r', b'\n', b).unwrap_or(b.len());
    let field = seps.field as u8;
    let msh18 = b[..msh_end].split(|&c| c == field).nth(17).unwrap_or(b"");
    let first_rep = msh18
        .split(|&c| c == seps.repetition as u8)
        .next()
        .unwrap_or(b"");
    // Upper-cased on the stack: every name below is short ASCII (no allocation per message).
    let lossy = String::from_utf8_lossy(first_rep);
    let trimmed = lossy.trim();
    let mut upper = [0u8; 16];
    let name: Cow<'_, str> = match upper.get_mut(..trimmed.len()) {
        Some(buf) if trimmed.is_ascii() => {
            buf.copy_from_slice(trimmed.as_bytes());
            buf.make_ascii_uppercase();
            Cow::Borrowed(std::str::from_utf8(buf).unwrap_or_default())
        }
        _ => Cow::Owned(trimmed.to_ascii_uppercase()),
    };
    let bad = |what: &str| {
        err(
            ErrorCode::Hl7BadCharset,
            format!("message bytes are not valid {what} (MSH-18)"),
        )
    };
    match name.as_ref() {
        "" => Ok(match std::str::from_utf8(b) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(latin1(b)),
        }),
        "ASCII" | "US-ASCII" => match std::str::from_utf8(b) {
            Ok(s) if b.is_ascii() => Ok(Cow::Borrowed(s)),
            _ => bad("ASCII"),
        },
        "UNICODE UTF-8" | "UTF-8" | "UTF8" => match std::str::from_utf8(b) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(_) => bad("UTF-8"),
        },
        "8859/1" | "ISO-8859-1" | "ISO8859-1" => Ok(match std::str::from_utf8(b) {
            Ok(s) if b.is_ascii() => Cow::Borrowed(s),
            _ => Cow::Owned(latin1(b)),
        }),
        other => {
            let enc = match other {
                "8859/2" => encoding_rs::ISO_8859_2,
                "8859/3" => encoding_rs::ISO_8859_3,
                "8859/4" => encoding_rs::ISO_8859_4,
                "8859/5" => encoding_rs::ISO_8859_5,
                "8859/6" => encoding_rs::ISO_8859_6,
                "8859/7" => encoding_rs::ISO_8859_7,
                "8859/8" => encoding_rs::ISO_8859_8,
                "8859/15" => encoding_rs::ISO_8859_15,
                _ => {
                    let shown = shown_charset(other);
                    return err(
                        ErrorCode::Hl7BadCharset,
                        format!("MSH-18 character set {shown} is not supported"),
                    );
                }
            };
            match enc.decode_without_bom_handling_and_without_replacement(b) {
                Some(s) => Ok(Cow::Owned(s.into_owned())),
                None => bad(enc.name()),
            }
        }
    }
}

/// The MSH-18 names (first repetition, trimmed, upper-cased) [`decode_charset`] reads; empty
/// means "UTF-8 when valid, else ISO 8859-1". The MLLP gateway refuses others before queueing.
const DECODABLE_CHARSETS: &[&str] = &[
    "",
    "ASCII",
    "US-ASCII",
    "UNICODE UTF-8",
    "UTF-8",
    "UTF8",
    "8859/1",
    "ISO-8859-1",
    "ISO8859-1",
    "8859/2",
    "8859/3",
    "8859/4",
    "8859/5",
    "8859/6",
    "8859/7",
    "8859/8",
    "8859/15",
];

/// Whether hl7-ingest can read a message whose MSH-18 (first repetition) is `name`.
pub fn charset_supported(name: &[u8]) -> bool {
    let name = String::from_utf8_lossy(name).trim().to_ascii_uppercase();
    DECODABLE_CHARSETS.contains(&name.as_str())
}

/// ISO 8859-1 maps every byte to the code point of the same value.
fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// Text-level step: splits segments on any line ending, drops blank lines, and validates each
/// segment so that nothing is silently skipped; `visit` sees each valid one in order.
fn each_segment<'a>(
    text: &'a str,
    seps: &Separators,
    mut visit: impl FnMut(Seg<'a>),
) -> Result<(), Hl7Error> {
    let mut count = 0;
    let bytes = text.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        // CR and LF are ASCII, so these offsets are always char boundaries.
        let end = memchr::memchr2(b'\r', b'\n', &bytes[start..]).map_or(bytes.len(), |p| start + p);
        let line = &text[start..end];
        start = end + 1;
        if line.bytes().all(|c| c.is_ascii_whitespace()) {
            continue;
        }
        let n = count + 1;
        let bytes = line.as_bytes();
        let id_ok = bytes.len() >= 3
            && bytes[0].is_ascii_uppercase()
            && bytes[1..3]
                .iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !id_ok {
            return err(
                ErrorCode::Hl7BadSegment,
                format!("segment {n} does not start with a three-character segment id"),
            );
        }
        match line[3..].chars().next() {
            Some(c) if c == seps.field => {}
            Some(c) if c.is_ascii_alphanumeric() => {
                return err(
                    ErrorCode::Hl7BadSegment,
                    format!("segment {n} has an id longer than three characters"),
                );
            }
            _ => {
                return err(
                    ErrorCode::Hl7BadSegment,
                    format!("segment {n} has no field separator"),
                );
            }
        }
        let seg = Seg::new(line);
        if seg.is_msh && n > 1 {
            return err(
                ErrorCode::Hl7BadBatch,
                format!("segment {n} starts a second message; split the input first"),
            );
        }
        if n > 1 && split::is_envelope(line.as_bytes()) {
            return err(
                ErrorCode::Hl7BadBatch,
                format!("segment {n} is a batch envelope segment inside a message"),
            );
        }
        visit(seg);
        count = n;
    }
    Ok(())
}

/// Every segment, validated as [`guard`] does (tests count them).
#[cfg(test)]
pub fn segments<'a>(text: &'a str, seps: &Separators) -> Result<Vec<Seg<'a>>, Hl7Error> {
    let mut out = Vec::new();
    each_segment(text, seps, |seg| out.push(seg))?;
    Ok(out)
}

/// Runs the whole guard on one message.
pub fn guard<'a>(text: &'a str, seps: Separators) -> Result<Guarded<'a>, Hl7Error> {
    let mut first = None;
    let mut mapped = [None; MAPPED.len()];
    each_segment(text, &seps, |seg| {
        first.get_or_insert(seg);
        if let Some(i) = MAPPED.iter().position(|m| *m == seg.id) {
            mapped[i].get_or_insert(seg);
        }
    })?;
    Ok(Guarded {
        seps,
        first,
        mapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "MSH|^~\\&|APP|FAC|RAPP|RFAC|20240102030405||ADT^A01|CTRL1|P|2.5\rEVN|A01|20240102030405\rPID|1||MRN1^^^HOSP^MR||DOE^JANE\rPV1|1|I";

    fn guard_str(s: &str) -> Result<usize, Hl7Error> {
        let cfg = MapConfig::default();
        let (text, seps) = decode_message(s.as_bytes(), &cfg)?;
        segments(&text, &seps).map(|v| v.len())
    }

    fn upstream_strict_segments(s: &str) -> Option<usize> {
        hl7_parser::Message::parse(s).ok().map(|m| m.segments.len())
    }

    fn upstream_lenient_segments(s: &str) -> Option<usize> {
        hl7_parser::Message::parse_with_lenient_newlines(s, true)
            .ok()
            .map(|m| m.segments.len())
    }

    /// The guard keeps no list of segments: it hands the mapping the first of each segment it
    /// reads (a second PID, as in A17, is validated and then not mapped), and still refuses a
    /// bad segment after them.
    #[test]
    fn guard_keeps_the_first_of_each_mapped_segment() {
        let two = format!("{GOOD}\rPID|2||MRN2\rPV1|2|O\rZZZ|x\rMRG|OLD1");
        let cfg = MapConfig::default();
        let (text, seps) = decode_message(two.as_bytes(), &cfg).unwrap();
        let g = guard(&text, seps).unwrap();
        assert_eq!(g.first.map(|s| s.id), Some("MSH"));
        assert_eq!(
            g.find("EVN").map(|s| s.text),
            Some("EVN|A01|20240102030405")
        );
        assert_eq!(
            g.find("PID").map(|s| s.text),
            Some("PID|1||MRN1^^^HOSP^MR||DOE^JANE")
        );
        assert_eq!(g.find("PV1").map(|s| s.text), Some("PV1|1|I"));
        assert_eq!(g.find("MRG").map(|s| s.text), Some("MRG|OLD1"));
        assert!(g.find("ZZZ").is_none() && g.find("MSH").is_none());
        assert_eq!(segments(&text, &seps).map(|v| v.len()), Ok(8));

        let without = GOOD.replace("\rPV1|1|I", "");
        let (text, seps) = decode_message(without.as_bytes(), &cfg).unwrap();
        assert!(guard(&text, seps).unwrap().find("PV1").is_none());

        let bad = format!("{two}\rZZ");
        let (text, seps) = decode_message(bad.as_bytes(), &cfg).unwrap();
        assert_eq!(
            guard(&text, seps).unwrap_err().code,
            ErrorCode::Hl7BadSegment
        );
    }

    /// Defect: strict mode with LF endings returns Ok holding only MSH.
    #[test]
    fn defect_lf_endings_strict_parse_returns_prefix() {
        let lf = GOOD.replace('\r', "\n");
        assert_eq!(upstream_strict_segments(&lf), Some(1));
        assert_eq!(guard_str(&lf), Ok(4));
    }

    /// Defect: a blank line ends the parse early but still returns Ok.
    #[test]
    fn defect_blank_line_returns_prefix() {
        let blank = GOOD.replace("\rPID", "\r\rPID");
        assert_eq!(upstream_strict_segments(&blank), Some(2));
        assert_eq!(
            upstream_lenient_segments(&blank.replace('\r', "\n")),
            Some(2)
        );
        assert_eq!(guard_str(&blank), Ok(4));
    }

    /// Defect: a segment without a field separator stops the parse, Ok with a prefix.
    #[test]
    fn defect_segment_without_field_separator_returns_prefix() {
        let bad = GOOD.replace("\rPV1|1|I", "\rZZZ\rPV1|1|I");
        assert_eq!(upstream_strict_segments(&bad), Some(3));
        let e = guard_str(&bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::Hl7BadSegment);
        assert_eq!(e.detail, "segment 4 has no field separator");
    }

    /// Defect: a four-letter segment id stops the parse, Ok with a prefix.
    #[test]
    fn defect_four_letter_segment_id_returns_prefix() {
        let bad = GOOD.replace("\rPID|", "\rPIDX|");
        assert_eq!(upstream_strict_segments(&bad), Some(2));
        let e = guard_str(&bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::Hl7BadSegment);
        assert_eq!(e.detail, "segment 3 has an id longer than three characters");
    }

    /// Defect: MSH-2 is taken as exactly five characters after "MSH", so with the v2.7
    /// truncation character (`^~\&#`) the `#` becomes MSH-3 and every MSH field shifts by one.
    #[test]
    fn defect_msh2_truncation_character_shifts_fields() {
        let v27 = GOOD.replacen("^~\\&", "^~\\&#", 1);
        let m = hl7_parser::Message::parse(&v27).unwrap();
        let msh = m.segment("MSH").unwrap();
        assert_eq!(msh.field(3).map(|f| f.raw_value()), Some("#"));
        assert_eq!(msh.field(10).map(|f| f.raw_value()), Some("ADT^A01"));

        let seps = separators(v27.as_bytes()).unwrap();
        assert_eq!(seps.truncation, Some('#'));
        let seg = Seg::new(v27.split('\r').next().unwrap());
        assert_eq!(seg.field(2, &seps), "^~\\&#");
        assert_eq!(seg.field(3, &seps), "APP");
        assert_eq!(seg.field(9, &seps), "ADT^A01");

        // Four characters (v2.3-v2.6) work the same through the guard.
        let seps = separators(GOOD.as_bytes()).unwrap();
        assert_eq!(seps.truncation, None);
        let seg = Seg::new(GOOD.split('\r').next().unwrap());
        assert_eq!(seg.field(1, &seps), "|");
        assert_eq!(seg.field(3, &seps), "APP");
    }

    #[test]
    fn encoding_characters_are_checked() {
        for (input, detail) in [
            ("MSH", "MSH has no field separator"),
            ("MSHA^~\\&|", "MSH-1 is not a delimiter character"),
            ("MSH|^~\\|X", "MSH-2 has 3 characters, expected 4 or 5"),
            ("MSH|^~\\&#$|X", "MSH-2 has 6 characters, expected 4 or 5"),
            (
                "MSH|^^\\&|X",
                "MSH-2 holds a repeated or non-delimiter character",
            ),
            (
                "MSH|^~a&|X",
                "MSH-2 holds a repeated or non-delimiter character",
            ),
        ] {
            let e = separators(input.as_bytes()).unwrap_err();
            assert_eq!(
                (e.code, e.detail.as_str()),
                (ErrorCode::Hl7BadEncodingChars, detail)
            );
        }
    }

    #[test]
    fn envelope_is_trimmed() {
        assert_eq!(trim_envelope(b"\xEF\xBB\xBF\x0BMSH|x\x1C\r\n"), b"MSH|x");
        assert_eq!(trim_envelope(b" \x0B\x1C\r "), b"");
        let framed = format!("\x0b{GOOD}\x1c\r");
        assert_eq!(guard_str(&framed), Ok(4));
        let bom = format!("\u{feff}{}", GOOD.replace('\r', "\r\n"));
        assert_eq!(guard_str(&bom), Ok(4));
    }

    #[test]
    fn charsets() {
        let with = |cs: &str, body: &[u8]| {
            let mut m = format!("MSH|^~\\&|A|F|||20240101||ADT^A01|1|P|2.5||||||{cs}\rPID|1||")
                .into_bytes();
            m.extend_from_slice(body);
            let cfg = MapConfig::default();
            decode_message(&m, &cfg).map(|(t, _)| t.rsplit("||").next().unwrap_or("").to_string())
        };
        assert_eq!(with("8859/1", b"M\xFCller").unwrap(), "Müller");
        assert_eq!(with("", b"M\xFCller").unwrap(), "Müller");
        assert_eq!(
            with("UNICODE UTF-8", "Müller".as_bytes()).unwrap(),
            "Müller"
        );
        assert_eq!(with("", "Müller".as_bytes()).unwrap(), "Müller");
        assert_eq!(with("8859/5", b"\xB1").unwrap(), "Б");
        assert_eq!(with("ASCII", b"plain").unwrap(), "plain");
        let e = with("ASCII", b"M\xFCller").unwrap_err();
        assert_eq!(e.code, ErrorCode::Hl7BadCharset);
        let e = with("UNICODE UTF-8", b"M\xFCller").unwrap_err();
        assert_eq!(e.code, ErrorCode::Hl7BadCharset);
        let e = with("ISO IR87", b"x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "HL7_BAD_CHARSET: MSH-18 character set ISO IR87 is not supported"
        );
    }

    #[test]
    fn structural_refusals() {
        for (input, code) in [
            ("", ErrorCode::Hl7Empty),
            ("\x0b\x1c\r", ErrorCode::Hl7Empty),
            ("PID|1||X", ErrorCode::Hl7NoMsh),
            ("msh|^~\\&|", ErrorCode::Hl7NoMsh),
            ("MSH|^~\\&|A\rpid|1", ErrorCode::Hl7BadSegment),
            ("MSH|^~\\&|A\r|1", ErrorCode::Hl7BadSegment),
            ("MSH|^~\\&|A\rMSH|^~\\&|B", ErrorCode::Hl7BadBatch),
            ("MSH|^~\\&|A\rBTS|1", ErrorCode::Hl7BadBatch),
        ] {
            assert_eq!(
                guard_str(input).map_err(|e| e.code),
                Err(code),
                "input {input:?}"
            );
        }
        let cfg = MapConfig {
            max_message_bytes: 10,
            ..MapConfig::default()
        };
        let e = decode_message(GOOD.as_bytes(), &cfg).unwrap_err();
        assert_eq!(e.code, ErrorCode::BodyTooLarge);
    }
}

#[cfg(test)]
mod charset_list_tests {
    use super::*;

    fn msh(charset: &str) -> Vec<u8> {
        format!("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||| {charset}\rPID|1").into_bytes()
    }

    /// The list the gateway checks and the names decode_charset reads are the same set.
    #[test]
    fn charset_supported_agrees_with_decode_charset() {
        let seps = separators(b"MSH|^~\\&").unwrap();
        for name in DECODABLE_CHARSETS {
            assert!(decode_charset(&msh(name), &seps).is_ok(), "{name}");
            assert!(charset_supported(name.to_lowercase().as_bytes()), "{name}");
        }
        for name in ["UNICODE UTF-16", "8859/9", "BIG-5", "EBCDIC"] {
            assert!(decode_charset(&msh(name), &seps).is_err(), "{name}");
            assert!(!charset_supported(name.as_bytes()), "{name}");
        }
    }
}
