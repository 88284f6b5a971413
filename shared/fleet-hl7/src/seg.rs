//! Zero-copy field access over one segment. The guard has already checked the segment shape,
//! so these helpers only split; they never allocate and never fail (absent means "").

/// The delimiters declared in MSH-1/MSH-2. `truncation` is the v2.7 fifth encoding character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Separators {
    pub field: char,
    pub component: char,
    pub repetition: char,
    pub escape: char,
    pub subcomponent: char,
    pub truncation: Option<char>,
}

/// One segment as the guard sees it: its id and whole text. Cheap to make for every line.
#[derive(Debug, Clone, Copy)]
pub struct Seg<'a> {
    pub id: &'a str,
    pub text: &'a str,
    pub is_msh: bool,
}

impl<'a> Seg<'a> {
    pub fn new(text: &'a str) -> Self {
        let id = text.get(..3).unwrap_or(text);
        Seg {
            id,
            text,
            is_msh: id == "MSH",
        }
    }

    /// Splits the fields once, for segments the mapping reads many fields of. The first
    /// [`STORED_FIELDS`] are kept on the stack (no allocation per segment); fields past them
    /// are found by scanning on demand.
    pub fn fields(&self, seps: &Separators) -> Fields<'a> {
        let mut f = [""; STORED_FIELDS];
        let bytes = self.text.as_bytes();
        // The field separator is ASCII (the guard checks MSH-1), so these are char boundaries.
        let mut start = 0;
        let mut n = 0;
        for i in memchr::memchr_iter(seps.field as u8, bytes) {
            {
                f[n] = &self.text[start..i];
                start = i + 1;
                n += 1;
                if n == STORED_FIELDS {
                    break;
                }
            }
        }
        let rest = if n < STORED_FIELDS {
            f[n] = &self.text[start..];
            None
        } else {
            Some(&self.text[start..])
        };
        Fields {
            id: self.id,
            f,
            rest,
            sep: seps.field,
            is_msh: self.is_msh,
            field_sep: self.text.get(3..4).unwrap_or(""),
        }
    }

    /// Field `n` (tests read single fields this way).
    #[cfg(test)]
    pub fn field(&self, n: usize, seps: &Separators) -> &'a str {
        self.fields(seps).field(n)
    }
}

/// A segment split into fields. Field numbers are HL7's: for MSH, MSH-1 is the field
/// separator itself and MSH-2 the encoding characters, so the split index shifts by one.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    pub id: &'a str,
    /// Split pieces 0..STORED_FIELDS (piece 0 is the segment id); "" past the last one.
    f: [&'a str; STORED_FIELDS],
    /// The text after piece STORED_FIELDS − 1 when the segment has more pieces.
    rest: Option<&'a str>,
    sep: char,
    is_msh: bool,
    field_sep: &'a str,
}

/// Pieces of a segment split up front: PV1, the widest segment the mapping reads, has 52 fields.
const STORED_FIELDS: usize = 64;

impl<'a> Fields<'a> {
    pub fn field(&self, n: usize) -> &'a str {
        let idx = match (self.is_msh, n) {
            (_, 0) => return self.id,
            (true, 1) => return self.field_sep,
            (true, n) => n - 1,
            (false, n) => n,
        };
        match (self.f.get(idx), self.rest) {
            (Some(piece), _) => piece,
            (None, Some(rest)) => nth(rest, self.sep, idx - STORED_FIELDS),
            (None, None) => "",
        }
    }

    /// Component `c` (1-based) of repetition `r` (0-based) of field `n`.
    pub fn comp(&self, n: usize, r: usize, c: usize, seps: &Separators) -> &'a str {
        comp_of_rep(self.field(n), seps, r, c)
    }

    /// The first `N` components of repetition `r` of field `n`, split in one pass (for composites
    /// the mapping reads several parts of: names, addresses, locations).
    pub fn comps<const N: usize>(&self, n: usize, r: usize, seps: &Separators) -> [&'a str; N] {
        let mut out = [""; N];
        let rep = nth(self.field(n), seps.repetition, r);
        for (slot, part) in out.iter_mut().zip(rep.split(seps.component)) {
            *slot = part;
        }
        out
    }

    /// The repetitions of field `n` (an empty field yields nothing).
    pub fn reps(&self, n: usize, seps: &Separators) -> impl Iterator<Item = &'a str> + use<'a> {
        let f = self.field(n);
        f.split(seps.repetition).filter(move |_| !f.is_empty())
    }
}

/// The `idx`-th (0-based) piece of `s` split on `sep`, or "". Delimiters are ASCII (the guard
/// checks MSH-2), so byte offsets next to them are char boundaries. A byte loop beats
/// `str::split` here: the pieces are short and `split` pays a memchr setup per piece.
pub fn nth(s: &str, sep: char, idx: usize) -> &str {
    let Ok(sep) = u8::try_from(sep) else {
        return if idx == 0 { s } else { "" };
    };
    let bytes = s.as_bytes();
    let mut seen = 0;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == sep {
            if seen == idx {
                return &s[start..i];
            }
            seen += 1;
            start = i + 1;
        }
    }
    if seen == idx { &s[start..] } else { "" }
}

/// Component `c` (1-based) of repetition `r` (0-based) in one pass that stops at the end of
/// the wanted component; two `nth` calls would scan the whole repetition first.
pub fn comp_of_rep<'s>(field: &'s str, seps: &Separators, r: usize, c: usize) -> &'s str {
    let (Ok(rs), Ok(cs)) = (u8::try_from(seps.repetition), u8::try_from(seps.component)) else {
        return "";
    };
    let c = c.max(1);
    let (mut rep, mut comp, mut start) = (0usize, 1usize, 0usize);
    for (i, &b) in field.as_bytes().iter().enumerate() {
        if b == rs {
            if rep == r {
                return if comp == c { &field[start..i] } else { "" };
            }
            rep += 1;
            comp = 1;
            start = i + 1;
        } else if b == cs && rep == r {
            if comp == c {
                return &field[start..i];
            }
            comp += 1;
            start = i + 1;
        }
    }
    if rep == r && comp == c {
        &field[start..]
    } else {
        ""
    }
}

/// Component `c` (1-based) of a repetition / composite value.
pub fn comp<'s>(s: &'s str, seps: &Separators, c: usize) -> &'s str {
    nth(s, seps.component, c.saturating_sub(1))
}

/// The first subcomponent of a component (HD/CWE inside CX use `&`).
pub fn first_sub<'s>(s: &'s str, seps: &Separators) -> &'s str {
    nth(s, seps.subcomponent, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_access_matches_naive_split() {
        let seps = Separators {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
            truncation: None,
        };
        let fields = ["", "a", "a^b^c", "a^b~c^d^e~~f", "^^x~", "~^y", "a&b^c&d"];
        for f in fields {
            for r in 0..4 {
                for c in 1..5 {
                    let naive = f
                        .split('~')
                        .nth(r)
                        .and_then(|rep| rep.split('^').nth(c - 1))
                        .unwrap_or("");
                    assert_eq!(comp_of_rep(f, &seps, r, c), naive, "{f:?} r{r} c{c}");
                }
            }
        }
        assert_eq!(nth("a|b||d", '|', 3), "d");
        assert_eq!(nth("a|b", '|', 2), "");
        let seg = Seg::new("MSH|^~\\&|APP|FAC");
        assert_eq!(seg.field(1, &seps), "|");
        assert_eq!(seg.field(2, &seps), "^~\\&");
        assert_eq!(seg.field(4, &seps), "FAC");
        assert_eq!(seg.field(5, &seps), "");
        assert_eq!(Seg::new("PID|1|2").field(2, &seps), "2");
    }

    /// Fields past the ones split up front are still found, and nothing past the last one is.
    #[test]
    fn fields_past_the_stored_ones_are_read_from_the_rest() {
        let seps = Separators {
            field: '|',
            component: '^',
            repetition: '~',
            escape: '\\',
            subcomponent: '&',
            truncation: None,
        };
        for n in [0, 1, 62, 63, 64, 65, 100] {
            let text = (1..=n).fold("ZZZ".to_string(), |t, i| format!("{t}|f{i}"));
            let fields = Seg::new(&text).fields(&seps);
            for i in 1..=n {
                assert_eq!(fields.field(i), format!("f{i}"), "{n} fields, field {i}");
            }
            assert_eq!(fields.field(n + 1), "", "{n} fields");
            assert_eq!(fields.field(n + 7), "", "{n} fields");
            let msh = (3..=n).fold("MSH|^~\\&".to_string(), |t, i| format!("{t}|m{i}"));
            let fields = Seg::new(&msh).fields(&seps);
            if n >= 3 {
                assert_eq!(fields.field(n), format!("m{n}"), "MSH with {n} fields");
            }
            assert_eq!(fields.field(1), "|");
        }
    }
}
