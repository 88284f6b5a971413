//! HL7 DTM/TS values to instants. Syntax comes from hl7-parser's `parse_timestamp`; the guard
//! adds what real feeds need: milliseconds without a dot (`20110613122406637`), the sign of
//! offsets under one hour (`-0030`, which hl7-parser reads as +00:30), calendar validation, and
//! the facility time zone when no offset is given.

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone,
};
use chrono_tz::Tz;

/// An instant as RFC 3339 text with its offset, plus epoch milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instant {
    pub rfc3339: String,
    pub epoch_ms: i64,
}

/// Parses a TS/DTM to at least day precision. `None` means invalid (the caller names the field).
pub fn parse_instant(raw: &str, tz: Tz) -> Option<Instant> {
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
    let date =
        NaiveDate::from_ymd_opt(i32::from(ts.year), u32::from(ts.month?), u32::from(ts.day?))?;
    let naive = date.and_hms_micro_opt(
        u32::from(ts.hour.unwrap_or(0)),
        u32::from(ts.minute.unwrap_or(0)),
        u32::from(ts.second.unwrap_or(0)),
        ts.microsecond.unwrap_or(0),
    )?;
    let dt: DateTime<FixedOffset> = match ts.offset {
        Some(off) => {
            let negative = text.contains('-');
            let secs = i32::from(off.hours.unsigned_abs()) * 3600 + i32::from(off.minutes) * 60;
            if off.minutes >= 60 {
                return None;
            }
            let offset = FixedOffset::east_opt(if negative { -secs } else { secs })?;
            offset.from_local_datetime(&naive).single()?
        }
        None => local(naive, tz)?,
    };
    Some(Instant {
        rfc3339: dt.to_rfc3339_opts(SecondsFormat::AutoSi, false),
        epoch_ms: dt.timestamp_millis(),
    })
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
pub fn parse_date(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let ts = hl7_parser::datetime::parse_timestamp(raw, true).ok()?;
    match (ts.month, ts.day) {
        (Some(m), Some(d)) => {
            NaiveDate::from_ymd_opt(i32::from(ts.year), u32::from(m), u32::from(d))?;
            Some(format!("{:04}-{:02}-{:02}", ts.year, m, d))
        }
        (Some(m), None) if (1..=12).contains(&m) => Some(format!("{:04}-{:02}", ts.year, m)),
        (None, _) => Some(format!("{:04}", ts.year)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let got = parse_instant(raw, *tz).map(|i| i.rfc3339);
            assert_eq!(got.as_deref(), *expected, "input {raw:?}");
        }
        let i = parse_instant("19700101000001", Tz::UTC).unwrap();
        assert_eq!(i.epoch_ms, 1000);
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
