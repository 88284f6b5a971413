//! HL7 DTM/TS values to instants. The syntax is hl7-parser 0.3.0's `parse_timestamp` grammar,
//! written out by hand over bytes (its nom grammar and chrono's RFC 3339 formatting were ~10 % of
//! `parse_adt`); `tests::reference` keeps the hl7-parser version and a proptest checks that both
//! accept the same inputs with the same result. The guard adds what real feeds need:
//! milliseconds without a dot (`20110613122406637`), the sign of offsets under one hour
//! (`-0030`, which hl7-parser reads as +00:30), calendar validation, and the facility time zone
//! when no offset is given.

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone,
};
use chrono_tz::Tz;

use crate::text::Text;

/// An instant with the offset it was sent in (or the facility zone's offset when it had none).
/// Kept as a number; the RFC 3339 text (`2011-06-13T08:36:17-04:00`, fractions as chrono's
/// `SecondsFormat::AutoSi`) is made only when displayed or serialised, where it is a string.
#[derive(Clone, Copy)]
pub struct Timestamp(DateTime<FixedOffset>);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn epoch_ms(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The instant with its offset.
    pub fn datetime(&self) -> DateTime<FixedOffset> {
        self.0
    }

    /// RFC 3339 with the offset, e.g. `1989-08-18T11:26:00+02:15`.
    pub fn to_rfc3339(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }
}

/// Equal when the instant and the offset are (as the RFC 3339 texts would be).
impl PartialEq for Timestamp {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 && self.0.offset() == other.0.offset()
    }
}

impl Eq for Timestamp {}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Shown as the quoted RFC 3339 text, as the `String` it replaces was.
impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_rfc3339(), f)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

/// What the grammar reads: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]`, each part optional
/// once the one before it is missing, as in hl7-parser 0.3.0 (which also takes a fraction after
/// any precision and an unsigned offset after a fraction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    year: u16,
    month: Option<u8>,
    day: Option<u8>,
    hour: Option<u8>,
    minute: Option<u8>,
    second: Option<u8>,
    microsecond: Option<u32>,
    /// Negative, hours, minutes: only when both offset hours and minutes are present.
    offset: Option<(bool, u8, u8)>,
}

/// hl7-parser 0.3.0's `parse_timestamp` over bytes. Only ASCII digits, `.`, `+` and `-` are
/// read, so a byte view of UTF-8 text accepts exactly what a char view does. `lenient` ignores
/// whatever follows the grammar (hl7-parser's `lenient_trailing_chars`).
fn grammar(s: &[u8], lenient: bool) -> Option<Parts> {
    let digit = |i: usize| s.get(i).filter(|b| b.is_ascii_digit()).map(|b| b - b'0');
    let mut pos = 0;
    let mut two = || {
        let v = digit(pos)? * 10 + digit(pos + 1)?;
        pos += 2;
        Some(v)
    };
    let year = {
        let hi = two()?;
        let lo = two()?;
        u16::from(hi) * 100 + u16::from(lo)
    };
    let month = two();
    let day = two();
    let hour = two();
    let minute = two();
    let second = two();
    let microsecond = if s.get(pos) == Some(&b'.') && digit(pos + 1).is_some() {
        pos += 1;
        let mut v = 0u32;
        let mut n = 0;
        while n < 4
            && let Some(d) = digit(pos)
        {
            v = v * 10 + u32::from(d);
            pos += 1;
            n += 1;
        }
        Some(v * [100_000, 10_000, 1_000, 100][n - 1])
    } else {
        None
    };
    let negative = match s.get(pos) {
        Some(b'+') => {
            pos += 1;
            false
        }
        Some(b'-') => {
            pos += 1;
            true
        }
        _ => false,
    };
    let mut two = || {
        let v = digit(pos)? * 10 + digit(pos + 1)?;
        pos += 2;
        Some(v)
    };
    let offset_hours = two();
    let offset_minutes = two();
    if !lenient && pos != s.len() {
        return None;
    }
    Some(Parts {
        year,
        month,
        day,
        hour,
        minute,
        second,
        microsecond,
        offset: offset_hours
            .zip(offset_minutes)
            .map(|(h, m)| (negative, h, m)),
    })
}

/// Longest TS the strict grammar accepts: `YYYYMMDDHHMMSS.SSSS+ZZZZ`.
const MAX_TS: usize = 24;

/// Parses a TS/DTM to at least day precision. `None` means invalid (the caller names the field).
pub fn parse_instant(raw: &str, tz: Tz) -> Option<Timestamp> {
    let b = raw.trim().as_bytes();
    if b.len() > MAX_TS {
        // Too long for the grammar, also after a dot is put in below.
        return None;
    }
    // Milliseconds sent without a dot: `YYYYMMDDHHMMSS` followed by more digits.
    let mut fixed = [0u8; MAX_TS + 1];
    let text = if b.len() > 14 && b[..15].iter().all(u8::is_ascii_digit) {
        fixed[..14].copy_from_slice(&b[..14]);
        fixed[14] = b'.';
        fixed[15..=b.len()].copy_from_slice(&b[14..]);
        &fixed[..=b.len()]
    } else {
        b
    };
    let ts = grammar(text, false)?;
    let date =
        NaiveDate::from_ymd_opt(i32::from(ts.year), u32::from(ts.month?), u32::from(ts.day?))?;
    let naive = date.and_hms_micro_opt(
        u32::from(ts.hour.unwrap_or(0)),
        u32::from(ts.minute.unwrap_or(0)),
        u32::from(ts.second.unwrap_or(0)),
        ts.microsecond.unwrap_or(0),
    )?;
    let dt: DateTime<FixedOffset> = match ts.offset {
        Some((negative, hours, minutes)) => {
            if minutes >= 60 {
                return None;
            }
            let secs = i32::from(hours) * 3600 + i32::from(minutes) * 60;
            let offset = FixedOffset::east_opt(if negative { -secs } else { secs })?;
            offset.from_local_datetime(&naive).single()?
        }
        None => local(naive, tz)?,
    };
    Some(Timestamp(dt))
}

/// Local wall time in the facility zone. In the autumn overlap the earlier instant is taken;
/// in the spring gap the time does not exist, so it is read one hour later (what the clock
/// on the ward showed moments after the change).
fn local(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<FixedOffset>> {
    let resolved = match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(a, _) => a,
        LocalResult::None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()?,
    };
    Some(resolved.fixed_offset())
}

/// A date (birth date) to `YYYY-MM-DD`, `YYYY-MM` or `YYYY`, keeping the precision sent.
/// Whatever follows the date is ignored (the lenient grammar).
pub fn parse_date(raw: &str) -> Option<Text> {
    let ts = grammar(raw.trim().as_bytes(), true)?;
    let mut out = [b'-'; 10];
    let put2 = |out: &mut [u8; 10], at: usize, v: u16| {
        // Every part is below 100 (two digits each; the year is written as two halves).
        out[at] = b'0' + (v / 10 % 10) as u8;
        out[at + 1] = b'0' + (v % 10) as u8;
    };
    put2(&mut out, 0, ts.year / 100);
    put2(&mut out, 2, ts.year % 100);
    let len = match (ts.month, ts.day) {
        (Some(m), Some(d)) => {
            NaiveDate::from_ymd_opt(i32::from(ts.year), u32::from(m), u32::from(d))?;
            put2(&mut out, 5, u16::from(m));
            put2(&mut out, 8, u16::from(d));
            10
        }
        (Some(m), None) if (1..=12).contains(&m) => {
            put2(&mut out, 5, u16::from(m));
            7
        }
        (None, _) => 4,
        _ => return None,
    };
    std::str::from_utf8(&out[..len]).ok().map(Text::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The implementation this module had until issue 19: hl7-parser's grammar, chrono's
    /// formatting. The hand-written grammar must give the same answer for every input.
    mod reference {
        use super::super::local;
        use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, TimeZone};
        use chrono_tz::Tz;

        pub fn parse_instant(raw: &str, tz: Tz) -> Option<(String, i64)> {
            let raw = raw.trim();
            let fixed;
            let b = raw.as_bytes();
            let text = if b.len() > 14 && b[..15].iter().all(u8::is_ascii_digit) {
                fixed = format!("{}.{}", &raw[..14], &raw[14..]);
                fixed.as_str()
            } else {
                raw
            };
            let ts = hl7_parser::datetime::parse_timestamp(text, false).ok()?;
            let date = NaiveDate::from_ymd_opt(
                i32::from(ts.year),
                u32::from(ts.month?),
                u32::from(ts.day?),
            )?;
            let naive = date.and_hms_micro_opt(
                u32::from(ts.hour.unwrap_or(0)),
                u32::from(ts.minute.unwrap_or(0)),
                u32::from(ts.second.unwrap_or(0)),
                ts.microsecond.unwrap_or(0),
            )?;
            let dt: DateTime<FixedOffset> = match ts.offset {
                Some(off) => {
                    let negative = text.contains('-');
                    let secs =
                        i32::from(off.hours.unsigned_abs()) * 3600 + i32::from(off.minutes) * 60;
                    if off.minutes >= 60 {
                        return None;
                    }
                    let offset = FixedOffset::east_opt(if negative { -secs } else { secs })?;
                    offset.from_local_datetime(&naive).single()?
                }
                None => local(naive, tz)?,
            };
            Some((
                dt.to_rfc3339_opts(SecondsFormat::AutoSi, false),
                dt.timestamp_millis(),
            ))
        }

        pub fn parse_date(raw: &str) -> Option<String> {
            let raw = raw.trim();
            let ts = hl7_parser::datetime::parse_timestamp(raw, true).ok()?;
            match (ts.month, ts.day) {
                (Some(m), Some(d)) => {
                    NaiveDate::from_ymd_opt(i32::from(ts.year), u32::from(m), u32::from(d))?;
                    Some(format!("{:04}-{:02}-{:02}", ts.year, m, d))
                }
                (Some(m), None) if (1..=12).contains(&m) => {
                    Some(format!("{:04}-{:02}", ts.year, m))
                }
                (None, _) => Some(format!("{:04}", ts.year)),
                _ => None,
            }
        }
    }

    fn zones() -> [Tz; 4] {
        [
            Tz::UTC,
            "America/New_York".parse().unwrap(),
            "Australia/Lord_Howe".parse().unwrap(),
            "Asia/Kathmandu".parse().unwrap(),
        ]
    }

    fn same_as_reference(raw: &str) -> Result<(), TestCaseError> {
        for tz in zones() {
            let got = parse_instant(raw, tz).map(|t| (t.to_rfc3339(), t.epoch_ms()));
            prop_assert_eq!(
                got,
                reference::parse_instant(raw, tz),
                "{:?} in {}",
                raw,
                tz
            );
        }
        prop_assert_eq!(
            parse_date(raw).map(String::from),
            reference::parse_date(raw),
            "date {:?}",
            raw
        );
        Ok(())
    }

    /// Plausible timestamps cut at any length, with fractions and offsets of any length.
    fn shaped() -> impl Strategy<Value = String> {
        (
            (1800u16..2200, 0u8..14, 0u8..33, 0u8..25, 0u8..61, 0u8..61),
            0usize..15,
            prop::option::of("[0-9]{0,6}"),
            prop::option::of(("[+\\- ]?", "[0-9]{0,5}")),
            "[ a.]{0,1}",
        )
            .prop_map(|((y, mo, d, h, mi, s), cut, frac, off, tail)| {
                let full = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}");
                let mut t = full[..cut.min(14)].to_string();
                if let Some(f) = frac {
                    t.push('.');
                    t.push_str(&f);
                }
                if let Some((sign, digits)) = off {
                    t.push_str(&sign);
                    t.push_str(&digits);
                }
                t.push_str(&tail);
                t
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        /// The hand-written grammar accepts what hl7-parser's accepted, with the same instant,
        /// offset and text, for shaped timestamps.
        #[test]
        fn shaped_timestamps_match_hl7_parser(raw in shaped()) {
            same_as_reference(&raw)?;
        }

        /// The same for digit runs of any length (milliseconds without a dot, unsigned offsets
        /// after a fraction, too long for the grammar).
        #[test]
        fn digit_runs_match_hl7_parser(raw in "[0-9]{0,27}") {
            same_as_reference(&raw)?;
        }

        /// The same for arbitrary text over the grammar's bytes, spaces, letters and non-ASCII.
        #[test]
        fn arbitrary_text_matches_hl7_parser(raw in "[0-9.+\\- aZé]{0,28}") {
            same_as_reference(&raw)?;
        }
    }

    /// Edges of the grammar that the hand-written parser has to copy from hl7-parser.
    #[test]
    fn grammar_edges() {
        let cases: &[(&str, Option<&str>)] = &[
            // A fraction after day precision is read (as midnight plus the fraction).
            ("20050110.5", Some("2005-01-10T00:00:00.500+00:00")),
            // Four fraction digits: microseconds, shown with six digits.
            (
                "20050110120000.1234",
                Some("2005-01-10T12:00:00.123400+00:00"),
            ),
            // Five fraction digits after a dot: the fifth is left over, refused.
            ("20050110120000.12345", None),
            // An offset without its minutes, or a bare sign, is ignored: local time.
            ("20050110120000+05", Some("2005-01-10T12:00:00+00:00")),
            ("20050110120000+", Some("2005-01-10T12:00:00+00:00")),
            // Digits after a four-digit fraction are an unsigned offset.
            (
                "20050110120000.12340530",
                Some("2005-01-10T12:00:00.123400+05:30"),
            ),
            // Twenty digits: 14 + a fraction of 4 + offset hours without minutes (ignored).
            (
                "20050110120000123456",
                Some("2005-01-10T12:00:00.123400+00:00"),
            ),
            // An odd digit left over, a dot without digits, a 24-hour offset: refused.
            ("200501101", None),
            ("20050110.", None),
            ("20050110+2400", None),
            ("20050110+2359", Some("2005-01-10T00:00:00+23:59")),
            // Longer than the grammar's 24 characters.
            (
                "20050110120000.1234+0530 ",
                Some("2005-01-10T12:00:00.123400+05:30"),
            ),
            ("20050110120000.1234+05300", None),
        ];
        for (raw, expected) in cases {
            let got = parse_instant(raw, Tz::UTC).map(|t| t.to_rfc3339());
            assert_eq!(got.as_deref(), *expected, "input {raw:?}");
            assert_eq!(
                got,
                reference::parse_instant(raw, Tz::UTC).map(|r| r.0),
                "reference, input {raw:?}"
            );
        }
        // The lenient date grammar ignores what follows.
        assert_eq!(parse_date("1985-01-01").as_deref(), Some("1985"));
        assert_eq!(parse_date("198513").as_deref(), None);
        assert_eq!(parse_date("19850101xyz").as_deref(), Some("1985-01-01"));
        assert_eq!(parse_date("0000").as_deref(), Some("0000"));
    }

    /// The text and the serialised form are what `to_rfc3339_opts(AutoSi, false)` gave, and
    /// equality also compares the offset.
    #[test]
    fn timestamp_text_and_equality() {
        let a = parse_instant("20110613122406637", Tz::UTC).unwrap();
        assert_eq!(a.to_string(), "2011-06-13T12:24:06.637+00:00");
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            "\"2011-06-13T12:24:06.637+00:00\""
        );
        assert_eq!(format!("{a:?}"), "\"2011-06-13T12:24:06.637+00:00\"");
        assert_eq!(a.epoch_ms(), 1_307_967_846_637);
        let b = parse_instant("20110613142406.637+0200", Tz::UTC).unwrap();
        assert_eq!(a.epoch_ms(), b.epoch_ms());
        assert_ne!(a, b);
        assert_eq!(
            a,
            parse_instant("20110613122406.637+0000", Tz::UTC).unwrap()
        );
    }

    #[test]
    fn instants() {
        let ny: Tz = "America/New_York".parse().unwrap();
        let cases: &[(&str, Tz, Option<&str>)] = &[
            ("20110613083617", Tz::UTC, Some("2011-06-13T08:36:17+00:00")),
            ("20110613083617", ny, Some("2011-06-13T08:36:17-04:00")),
            (
                "198908181126+0215",
                Tz::UTC,
                Some("1989-08-18T11:26:00+02:15"),
            ),
            (
                "20160223062705-0500",
                Tz::UTC,
                Some("2016-02-23T06:27:05-05:00"),
            ),
            (
                "20200101120000-0030",
                Tz::UTC,
                Some("2020-01-01T12:00:00-00:30"),
            ),
            (
                "20110613122406637",
                Tz::UTC,
                Some("2011-06-13T12:24:06.637+00:00"),
            ),
            (
                "20110613122406.5",
                Tz::UTC,
                Some("2011-06-13T12:24:06.500+00:00"),
            ),
            ("20050110", Tz::UTC, Some("2005-01-10T00:00:00+00:00")),
            // Spring-forward gap in New York: 02:30 does not exist.
            ("20240310023000", ny, Some("2024-03-10T03:30:00-04:00")),
            ("2005", Tz::UTC, None),
            ("20050230", Tz::UTC, None),
            ("20051301", Tz::UTC, None),
            ("2005011025", Tz::UTC, None),
            ("yesterday", Tz::UTC, None),
            ("", Tz::UTC, None),
            ("20050110+0099", Tz::UTC, None),
        ];
        for (raw, tz, expected) in cases {
            let got = parse_instant(raw, *tz).map(|i| i.to_rfc3339());
            assert_eq!(got.as_deref(), *expected, "input {raw:?}");
        }
        let i = parse_instant("19700101000001", Tz::UTC).unwrap();
        assert_eq!(i.epoch_ms(), 1000);
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("19281118").as_deref(), Some("1928-11-18"));
        assert_eq!(
            parse_date("19850101000000+0700").as_deref(),
            Some("1985-01-01")
        );
        assert_eq!(parse_date("198501").as_deref(), Some("1985-01"));
        assert_eq!(parse_date("1985").as_deref(), Some("1985"));
        assert_eq!(parse_date("19850230"), None);
        assert_eq!(parse_date("abc"), None);
    }
}
