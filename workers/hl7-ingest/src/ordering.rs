//! Which message a patient or encounter record keeps when two messages carry the same MSH-7
//! time (second-resolution clocks make that common: an A01 and its A08 in one second).
//!
//! A message with a later time always applies and one with an earlier time never does. An equal
//! time is broken by the source queue:
//!
//! - **FIFO queue** (the delivery has a message group): arrival order is the sender's order, so
//!   the message that arrives later applies.
//! - **Standard queue**: arrival order is no evidence, so the message whose control id (MSH-10)
//!   sorts after the stored one applies, in natural order (digit runs compare as numbers, so
//!   `MSG9` < `MSG10`). Senders number messages with counters, so this is usually the later
//!   message, and whatever order the messages (and their redeliveries) arrive in, the record
//!   ends up with the same one.

use std::cmp::Ordering;

use fleet_core::ports::Condition;
use fleet_runtime::Delivery;

/// How a tie on message time is broken; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// FIFO source queue: the later arrival applies.
    Arrival,
    /// Standard source queue: the control id that sorts after applies.
    ControlId,
}

impl TieBreak {
    /// The rule for a delivery: FIFO deliveries carry a message group.
    pub fn of(delivery: &Delivery) -> Self {
        if delivery.group_id.is_some() {
            Self::Arrival
        } else {
            Self::ControlId
        }
    }

    /// The first condition of a patient/encounter put for a message at `order`: "stored state
    /// not newer" on a FIFO queue, "stored state older" on a standard one (an equal time then
    /// goes to [`control_id_after`] against the stored record).
    pub(crate) fn condition(self, order: i64) -> Condition {
        match self {
            Self::Arrival => not_newer_than(order),
            Self::ControlId => Condition::OrderBelow(order),
        }
    }
}

/// Only if no stored state is newer than `order` (an equal time applies).
pub(crate) fn not_newer_than(order: i64) -> Condition {
    Condition::OrderBelow(order.saturating_add(1))
}

/// Whether control id `a` sorts after `b` in natural order.
pub fn control_id_after(a: &str, b: &str) -> bool {
    control_id_cmp(a, b) == Ordering::Greater
}

/// Natural order of control ids: the ids are compared run by run, a run of ASCII digits as a
/// number (leading zeros ignored) and any other run as text; ids that still compare equal
/// (`007` and `7`) are ordered by their bytes, so this is a total order and only equal ids
/// compare equal.
pub fn control_id_cmp(a: &str, b: &str) -> Ordering {
    runs(a).cmp(runs(b)).then_with(|| a.cmp(b))
}

/// A run of a control id; the derived order compares numbers by significant length first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Run<'a> {
    /// Significant digits (no leading zeros): their count, then the digits.
    Number(usize, &'a str),
    Text(&'a str),
}

fn runs(s: &str) -> impl Iterator<Item = Run<'_>> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digits = first.is_ascii_digit();
        let end = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() != digits)
            .map_or(rest.len(), |(i, _)| i);
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(if digits {
            let significant = run.trim_start_matches('0');
            Run::Number(significant.len(), significant)
        } else {
            Run::Text(run)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_numbers_and_only_equal_ids_tie() {
        assert!(control_id_after("MSG10", "MSG9"));
        assert!(control_id_after("C2", "C1"));
        assert!(!control_id_after("C1", "C2"));
        assert!(control_id_after("100", "99"));
        assert!(control_id_after("MSG00010", "MSG00009"));
        assert_ne!(control_id_cmp("007", "7"), Ordering::Equal);
        assert_eq!(control_id_cmp("A7B", "A7B"), Ordering::Equal);
        assert!(control_id_after("C1", ""));
    }

    #[test]
    fn the_order_is_total_and_consistent_on_a_sample() {
        let ids = [
            "", "0", "00", "7", "007", "10", "9", "A", "A1", "A01", "A10", "A9B", "B", "é1", "1é",
            "MSG9", "MSG10", "MSG010",
        ];
        for a in ids {
            for b in ids {
                assert_eq!(
                    control_id_cmp(a, b),
                    control_id_cmp(b, a).reverse(),
                    "{a} {b}"
                );
                assert_eq!(control_id_cmp(a, b) == Ordering::Equal, a == b, "{a} {b}");
                for c in ids {
                    if control_id_cmp(a, b).is_lt() && control_id_cmp(b, c).is_lt() {
                        assert!(control_id_cmp(a, c).is_lt(), "{a} < {b} < {c}");
                    }
                }
            }
        }
    }
}
