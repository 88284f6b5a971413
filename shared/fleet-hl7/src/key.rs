//! Keys built from HL7 values: the one place components are joined.
//!
//! A decoded HL7 value may hold any character, the separators included (`#` is a plain
//! character in a field, `|` arrives through the `\F\` escape), so joining raw values is
//! ambiguous: `A#B` + `C` and `A` + `B#C` would give one key. [`join`] percent-escapes `%` and
//! the separator in every component, so the components can always be read back and distinct
//! tuples give distinct keys. A component without `%` or the separator is written as it is:
//! keys of such values are the same as before escaping was introduced, so stored records stay
//! addressable.

use std::borrow::Cow;

/// The separator of record keys (`PATIENT#authority#id`).
pub const RECORD_SEPARATOR: char = '#';
/// The separator of event idempotency keys (`facility|control id`).
pub const IDEMPOTENCY_SEPARATOR: char = '|';

/// Join `head` and `tail` with `separator`, each component escaped: `%` → `%25` and the
/// separator → `%` + its UTF-8 bytes in upper-case hex (`#` → `%23`, `|` → `%7C`).
///
/// Injective: two distinct (`head`, `tail`) tuples never give the same key (the head makes the
/// tuple non-empty, so an empty tail and a tail of one empty component differ too).
///
/// # Panics
///
/// If `separator` is `%`, the escape character itself (a programming error).
pub fn join(separator: char, head: &str, tail: &[&str]) -> String {
    assert_ne!(
        separator, '%',
        "`%` is the escape character, not a separator"
    );
    let mut key =
        String::with_capacity(head.len() + tail.iter().map(|c| c.len() + 1).sum::<usize>());
    key.push_str(&escape(separator, head));
    for component in tail {
        key.push(separator);
        key.push_str(&escape(separator, component));
    }
    key
}

/// A record key: `head#tail…`, escaped by [`join`].
pub fn record_key(head: &str, tail: &[&str]) -> String {
    join(RECORD_SEPARATOR, head, tail)
}

/// An idempotency key: `head|tail…`, escaped by [`join`].
pub fn idempotency_key(head: &str, tail: &[&str]) -> String {
    join(IDEMPOTENCY_SEPARATOR, head, tail)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// One component with `%` and `separator` percent-escaped; borrowed when there is nothing to
/// escape.
fn escape(separator: char, component: &str) -> Cow<'_, str> {
    if !component.contains(['%', separator]) {
        return Cow::Borrowed(component);
    }
    let mut out = String::with_capacity(component.len() + 8);
    for c in component.chars() {
        if c == '%' || c == separator {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0F)]));
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Components drawn to hit the separators and the escape character often.
    fn component() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('#'),
                Just('|'),
                Just('%'),
                Just('2'),
                Just('3'),
                Just('7'),
                Just('C'),
                Just('A'),
                any::<char>(),
            ],
            0..6,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    fn tuple() -> impl Strategy<Value = (String, Vec<String>)> {
        (component(), prop::collection::vec(component(), 0..4))
    }

    fn key_of(separator: char, (head, tail): &(String, Vec<String>)) -> String {
        let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
        join(separator, head, &tail)
    }

    /// Reads a key back into its components (the inverse of `join`, for the tests only).
    fn split(separator: char, key: &str) -> (String, Vec<String>) {
        let mut parts = key.split(separator).map(unescape);
        let head = parts.next().expect("split yields at least one part");
        (head, parts.collect())
    }

    fn unescape(s: &str) -> String {
        let mut bytes = Vec::with_capacity(s.len());
        let raw = s.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' {
                let hex = std::str::from_utf8(&raw[i + 1..i + 3]).expect("hex digits");
                bytes.push(u8::from_str_radix(hex, 16).expect("hex byte"));
                i += 3;
            } else {
                bytes.push(raw[i]);
                i += 1;
            }
        }
        String::from_utf8(bytes).expect("escaped UTF-8")
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Issue 15, item 7: no two distinct component tuples map to one key.
        #[test]
        fn item7_distinct_component_tuples_never_share_a_key(a in tuple(), b in tuple()) {
            for separator in [RECORD_SEPARATOR, IDEMPOTENCY_SEPARATOR] {
                if a != b {
                    prop_assert_ne!(key_of(separator, &a), key_of(separator, &b));
                } else {
                    prop_assert_eq!(key_of(separator, &a), key_of(separator, &b));
                }
            }
        }

        /// The reason keys are distinct: every key reads back into exactly its tuple.
        #[test]
        fn item7_every_key_reads_back_into_its_components(a in tuple()) {
            for separator in [RECORD_SEPARATOR, IDEMPOTENCY_SEPARATOR] {
                prop_assert_eq!(split(separator, &key_of(separator, &a)), a.clone());
            }
        }

        /// Values without `%` or the separator keep the key they had before escaping, so stored
        /// records stay addressable.
        #[test]
        fn item7_plain_components_keep_their_unescaped_key(
            head in "[A-Za-z0-9 ^&~._-]{0,8}",
            tail in prop::collection::vec("[A-Za-z0-9 ^&~._-]{0,8}", 0..4),
        ) {
            let mut naive = head.clone();
            for c in &tail {
                naive.push('#');
                naive.push_str(c);
            }
            let tail: Vec<&str> = tail.iter().map(String::as_str).collect();
            prop_assert_eq!(record_key(&head, &tail), naive);
        }
    }

    #[test]
    fn item7_the_documented_collision_is_gone_and_prefixes_stay_readable() {
        assert_ne!(
            record_key("MSG", &["A#B", "C"]),
            record_key("MSG", &["A", "B#C"])
        );
        assert_eq!(record_key("MSG", &["A#B", "C"]), "MSG#A%23B#C");
        assert_eq!(
            record_key("PATIENT", &["GENHOSP", "MRN1"]),
            "PATIENT#GENHOSP#MRN1"
        );
        assert_eq!(record_key("X", &["5%"]), "X#5%25");
        assert_eq!(idempotency_key("GEN|X", &["1"]), "GEN%7CX|1");
        assert_eq!(idempotency_key("GEN#X", &["1"]), "GEN#X|1");
        assert_ne!(record_key("P", &[]), record_key("P", &[""]));
    }
}
