//! [`Text`]: the string type of `AdtMessage`'s values. Almost every mapped value (codes,
//! identifiers, names, places) is short, and allocating ~35 `String`s per message was about a
//! fifth of `parse_adt`; so values are compact_str's `CompactString`, which keeps up to 24 bytes
//! inside the value itself (the size of a `String`) and longer ones on the heap. It reads as a
//! `&str`, compares with strings and serialises as a plain JSON string, so the event JSON is what
//! `String` gave.

/// An AdtMessage value: compact_str's [`CompactString`](compact_str::CompactString).
pub type Text = compact_str::CompactString;

#[cfg(test)]
mod tests {
    use super::*;

    /// What callers rely on: on both sides of the inline limit, multi-byte characters included,
    /// a `Text` formats and serialises exactly as the `String` it was made from (the event JSON
    /// and the logs' `Debug` output must not change with the type).
    #[test]
    fn formats_and_serialises_as_the_string_it_holds() {
        for n in [0, 1, 22, 23, 24, 25, 40] {
            for unit in ["a", "é", "€", "\"\\\n"] {
                let s: String = unit.repeat(n);
                let t = Text::from(s.as_str());
                assert!(t == s.as_str() && t == s && s.as_str() == t);
                assert_eq!(format!("{t}"), s);
                assert_eq!(format!("{t:?}"), format!("{s:?}"));
                assert_eq!(
                    serde_json::to_string(&t).unwrap(),
                    serde_json::to_string(&s).unwrap()
                );
                assert_eq!(String::from(t), s);
            }
        }
    }
}
