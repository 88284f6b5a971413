//! A separate idempotency store for handlers whose primary write cannot be conditional.
//! Prefer a conditional primary write (one request); this costs one more request per message.
//!
//! Layout: one record per key, `pk = "idem#<key>"`, `sk = "idem"`, `data.state` is
//! `in_progress` or `completed`, and `order` holds the record's expiry in epoch milliseconds so
//! that taking over an expired claim is a single conditional write (`OrderBelow(now + 1)`).
//! `expires_at` (epoch seconds) lets the table's TTL remove old records; expiry is checked here
//! too because TTL deletion is lazy.

use std::sync::Arc;
use std::time::Duration;

use fleet_core::{Condition, ConditionalPut, PortError, PutOutcome, Record, RecordStore};

/// Where a key stands when a handler begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// This caller owns the key until `complete`, `abandon` or the in-progress expiry.
    Started,
    /// Another delivery is working on it: retry later.
    InProgress,
    /// Done before: skip the side effects.
    Completed,
}

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";

pub struct IdempotencyStore {
    records: Arc<dyn RecordStore>,
}

impl std::fmt::Debug for IdempotencyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyStore")
            .field("table", &self.records.id())
            .finish()
    }
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl IdempotencyStore {
    pub fn new(records: Arc<dyn RecordStore>) -> Self {
        Self { records }
    }

    fn record(key: &str, state: &str, until_ms: i64) -> Record {
        Record {
            pk: format!("idem#{key}"),
            sk: "idem".into(),
            order: until_ms,
            expires_at: Some(until_ms.div_euclid(1000) + 1),
            data: serde_json::json!({ "state": state }),
        }
    }

    /// Claim `key` for `in_progress_ttl` (set it above the handler's longest run).
    pub async fn begin(&self, key: &str, in_progress_ttl: Duration) -> Result<Begin, PortError> {
        let now = now_ms();
        let claim = Self::record(key, IN_PROGRESS, now.saturating_add(ms(in_progress_ttl)));
        let first = ConditionalPut {
            record: claim.clone(),
            condition: Condition::NotExists,
        };
        if self.records.put(first).await? == PutOutcome::Written {
            return Ok(Begin::Started);
        }
        // Take over a claim (or a completion) whose expiry has passed.
        let takeover = ConditionalPut {
            record: claim,
            condition: Condition::OrderBelow(now.saturating_add(1)),
        };
        if self.records.put(takeover).await? == PutOutcome::Written {
            return Ok(Begin::Started);
        }
        let existing = self.records.get(&format!("idem#{key}"), "idem").await?;
        Ok(match existing {
            Some(r) if r.data.get("state").and_then(|s| s.as_str()) == Some(COMPLETED) => {
                Begin::Completed
            }
            // Removed between our writes and the read: the next delivery will start it.
            _ => Begin::InProgress,
        })
    }

    /// Mark `key` done; repeats within `ttl` see [`Begin::Completed`].
    pub async fn complete(&self, key: &str, ttl: Duration) -> Result<(), PortError> {
        let record = Self::record(key, COMPLETED, now_ms().saturating_add(ms(ttl)));
        self.records
            .put(ConditionalPut {
                record,
                condition: Condition::None,
            })
            .await
            .map(|_| ())
    }

    /// Give up a claim after a failure so the next delivery may start at once.
    pub async fn abandon(&self, key: &str) -> Result<(), PortError> {
        let record = Self::record(key, IN_PROGRESS, 0);
        self.records
            .put(ConditionalPut {
                record,
                condition: Condition::None,
            })
            .await
            .map(|_| ())
    }
}
