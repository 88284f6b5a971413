//! Receipt handles: `local-<seq>-<issued ms>-<uuid>`. The sequence number finds the message by
//! its rowid (no index on receipts); the issue time bounds visibility changes to 12 hours after
//! the receive; the random part makes every receive's handle new, so an older one never matches
//! the message's current `receipt` column.

const PREFIX: &str = "local-";

/// What a receipt handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Receipt {
    pub seq: i64,
    pub issued_ms: i64,
}

impl Receipt {
    /// A new handle for the receive of message `seq` at `issued_ms`.
    pub(super) fn issue(seq: i64, issued_ms: i64) -> String {
        format!(
            "{PREFIX}{seq}-{issued_ms}-{}",
            uuid::Uuid::new_v4().simple()
        )
    }

    /// The message and time a handle names; `None` for anything this backend did not issue
    /// (a caller's typo, another backend's handle, or a handle from before this format), which
    /// the callers treat as a receipt of no message.
    pub(super) fn parse(handle: &str) -> Option<Self> {
        let mut parts = handle.strip_prefix(PREFIX)?.splitn(3, '-');
        let seq = parts.next()?.parse().ok()?;
        let issued_ms = parts.next()?.parse().ok()?;
        let random = parts.next()?;
        (random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(Self { seq, issued_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_handle_names_its_message_and_time_and_is_new_each_time() {
        let a = Receipt::issue(42, 1_700_000_000_123);
        let b = Receipt::issue(42, 1_700_000_000_123);
        assert_ne!(a, b);
        assert_eq!(
            Receipt::parse(&a),
            Some(Receipt {
                seq: 42,
                issued_ms: 1_700_000_000_123
            })
        );
    }

    #[test]
    fn handles_this_backend_did_not_issue_name_nothing() {
        for h in [
            "",
            "bogus",
            "local-",
            "local-12",
            "local-12-34",
            "local-x-34-0123456789abcdef0123456789abcdef",
            "local-12-34-not-hex",
            "local-0123456789abcdef0123456789abcdef",
            "AQEB-12-34-0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(Receipt::parse(h), None, "{h:?}");
        }
    }
}
