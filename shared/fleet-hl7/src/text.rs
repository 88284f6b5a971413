//! [`Text`]: the string type of `AdtMessage`'s values. Almost every mapped value (codes,
//! identifiers, names, places) is short, and allocating ~35 `String`s per message was about a
//! fifth of `parse_adt`; a `Text` of up to [`INLINE`] bytes lives inside the value itself, a
//! longer one in one heap allocation. It reads as a `&str` (`Deref`), compares with strings and
//! serialises as a plain JSON string, so the event JSON is what `String` gave.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// Longest text kept without a heap allocation (the value stays as large as a `String`).
pub const INLINE: usize = 22;

/// An immutable string: inline up to [`INLINE`] bytes, boxed beyond.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    /// The empty text.
    pub const fn new() -> Self {
        Text(Repr::Inline {
            len: 0,
            bytes: [0; INLINE],
        })
    }

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Only ever filled from whole `&str`s (below), so always valid UTF-8.
            Repr::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Repr::Heap(s) => s,
        }
    }

    /// `parts` joined with `separator` (the parts as given, empty ones included).
    pub fn join(parts: &[&str], separator: &str) -> Self {
        let len = parts.iter().map(|p| p.len()).sum::<usize>()
            + separator.len() * parts.len().saturating_sub(1);
        let pieces = parts
            .iter()
            .enumerate()
            .flat_map(|(i, p)| [if i > 0 { separator } else { "" }, p]);
        if len <= INLINE {
            let mut bytes = [0; INLINE];
            let mut at = 0;
            for p in pieces {
                bytes[at..at + p.len()].copy_from_slice(p.as_bytes());
                at += p.len();
            }
            Text(Repr::Inline {
                len: u8::try_from(len).unwrap_or(0),
                bytes,
            })
        } else {
            let mut out = String::with_capacity(len);
            out.extend(pieces);
            Text(Repr::Heap(out.into_boxed_str()))
        }
    }

    /// `s` with ASCII letters upper-cased.
    pub fn ascii_uppercase(s: &str) -> Self {
        let mut t = Text::from(s);
        match &mut t.0 {
            Repr::Inline { len, bytes } => bytes[..usize::from(*len)].make_ascii_uppercase(),
            Repr::Heap(b) => b.make_ascii_uppercase(),
        }
        t
    }
}

impl Default for Text {
    fn default() -> Self {
        Text::new()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Text(Repr::Inline {
                len: u8::try_from(s.len()).unwrap_or(0),
                bytes,
            })
        } else {
            Text(Repr::Heap(s.into()))
        }
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        if s.len() <= INLINE {
            Text::from(s.as_str())
        } else {
            Text(Repr::Heap(s.into_boxed_str()))
        }
    }
}

impl From<std::borrow::Cow<'_, str>> for Text {
    fn from(s: std::borrow::Cow<'_, str>) -> Self {
        match s {
            std::borrow::Cow::Borrowed(b) => Text::from(b),
            std::borrow::Cow::Owned(o) => Text::from(o),
        }
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        match t.0 {
            Repr::Heap(b) => b.into_string(),
            Repr::Inline { .. } => t.as_str().to_owned(),
        }
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

/// As a `String`'s `Debug` (quoted, escaped).
impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for Text {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length on both sides of the inline limit, multi-byte characters included, reads
    /// back, compares, formats and serialises as the `String` it was made from.
    #[test]
    fn behaves_as_the_string_it_holds() {
        for n in 0..=INLINE + 3 {
            for unit in ["a", "é", "€"] {
                let s: String = unit.repeat(n);
                let forms = [Text::from(s.as_str()), Text::from(s.clone())];
                for t in forms {
                    assert_eq!(t.as_str(), s);
                    assert_eq!(&*t, s.as_str());
                    assert!(t == s.as_str() && t == s && s.as_str() == t);
                    assert_eq!(t.len(), s.len());
                    assert_eq!(format!("{t}"), s);
                    assert_eq!(format!("{t:?}"), format!("{s:?}"));
                    assert_eq!(
                        serde_json::to_string(&t).unwrap(),
                        serde_json::to_string(&s).unwrap()
                    );
                    assert_eq!(String::from(t.clone()), s);
                    let inline = matches!(t.0, Repr::Inline { .. });
                    assert_eq!(inline, s.len() <= INLINE, "{n} x {unit}");
                }
            }
        }
        assert_eq!(Text::default(), "");
        assert_eq!(Text::new(), Text::from(String::new()));
        assert_ne!(Text::from("a"), Text::from("b"));
        let (a, b) = (Text::from("a"), Text::from("b"));
        assert!(a < b);
    }

    #[test]
    fn join_and_uppercase() {
        assert_eq!(Text::join(&["ADT", "A01"], "^"), "ADT^A01");
        assert_eq!(Text::join(&["a", "", "c"], "/"), "a//c");
        assert_eq!(Text::join(&[], "/"), "");
        let long = ["x".repeat(15), "y".repeat(15)];
        let joined = Text::join(&[&long[0], &long[1]], "/");
        assert_eq!(joined, format!("{}/{}", long[0], long[1]));
        assert!(matches!(joined.0, Repr::Heap(_)));
        assert_eq!(Text::ascii_uppercase("a01é"), "A01é");
        assert_eq!(
            Text::ascii_uppercase(&"ab".repeat(20)),
            "AB".repeat(20).as_str()
        );
    }
}
