//! A separate idempotency store for handlers whose primary write cannot be conditional.
//! Prefer a conditional primary write (one request); this costs one more request per message.
//!
//! Layout: one record per key, `pk = "idem#<key>"`, `sk = "idem"`, `data.state` is
//! `in_progress`, `completed` or `abandoned`, and `order` holds the record's expiry in epoch
//! milliseconds, so that claiming a key that is free or whose record has expired is a single
//! conditional write (`OrderBelow(now + 1)`). `expires_at`, the table's TTL attribute, holds the
//! same expiry rounded up to the second: both record stores read a record past it as absent, and
//! DynamoDB's TTL deletes it.
//!
//! **Ownership.** A claim's `order` is also its owner token. A claim is taken over only when the
//! stored expiry is at or before the taker's clock, and the taker writes its clock plus at least
//! 1 ms, so the new token is always later than the one it replaces (a fencing token).
//! [`IdempotencyStore::complete`] and [`IdempotencyStore::abandon`] write only while the record
//! still holds the caller's token (`OrderEquals`); a worker whose claim expired and was taken
//! over changes nothing and hears [`Settled::NotOwner`].

use std::sync::Arc;
use std::time::Duration;

use fleet_core::{Condition, ConditionalPut, PortError, PutOutcome, Record, RecordStore};

/// Where a key stands when a handler begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// This caller owns the key until `complete`, `abandon` or the claim's expiry; the
    /// [`Claim`] is what `complete` and `abandon` ask for.
    Started(Claim),
    /// Another delivery is working on it: retry later.
    InProgress,
    /// Done before: skip the side effects.
    Completed,
}

/// A claim on a key: the key and the owner token (`order` as written by this claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    key: String,
    token: i64,
}

impl Claim {
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// What `complete` or `abandon` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Written: the caller still owned the claim.
    Recorded,
    /// Nothing written: the claim expired and was taken over (or lapsed); its record belongs to
    /// whoever holds it now.
    NotOwner,
}

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";
const ABANDONED: &str = "abandoned";

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

    /// The record of `key` in `state` until `until_ms`: `order` is that expiry, the TTL
    /// attribute the same rounded up to the second.
    fn record(key: &str, state: &str, until_ms: i64) -> Record {
        let rounded_up = until_ms.div_euclid(1000) + i64::from(until_ms.rem_euclid(1000) > 0);
        Record {
            pk: format!("idem#{key}"),
            sk: "idem".into(),
            order: until_ms,
            expires_at: Some(rounded_up),
            data: serde_json::json!({ "state": state }),
        }
    }

    /// Claim `key` for `in_progress_ttl` (set it above the handler's longest run). A key that
    /// is free, abandoned, or whose claim or completion has expired is claimed.
    pub async fn begin(&self, key: &str, in_progress_ttl: Duration) -> Result<Begin, PortError> {
        let now = now_ms();
        // At least 1 ms, so the token is later than the expiry it replaces.
        let token = now.saturating_add(ms(in_progress_ttl).max(1));
        let claim = ConditionalPut {
            record: Self::record(key, IN_PROGRESS, token),
            // Absent (or past its TTL), or its expiry has passed.
            condition: Condition::OrderBelow(now.saturating_add(1)),
        };
        if self.records.put(claim).await? == PutOutcome::Written {
            return Ok(Begin::Started(Claim {
                key: key.to_owned(),
                token,
            }));
        }
        let existing = self.records.get(&format!("idem#{key}"), "idem").await?;
        Ok(match existing {
            Some(r) if r.data.get("state").and_then(|s| s.as_str()) == Some(COMPLETED) => {
                Begin::Completed
            }
            // Expired between our write and the read: the next delivery will start it.
            _ => Begin::InProgress,
        })
    }

    /// Mark the claimed key done; repeats within `ttl` see [`Begin::Completed`]. Written only
    /// while the caller still owns the claim.
    pub async fn complete(&self, claim: &Claim, ttl: Duration) -> Result<Settled, PortError> {
        let record = Self::record(&claim.key, COMPLETED, now_ms().saturating_add(ms(ttl)));
        self.settle(claim, record).await
    }

    /// Give up a claim after a failure so the next delivery may start at once. Written only
    /// while the caller still owns the claim.
    pub async fn abandon(&self, claim: &Claim) -> Result<Settled, PortError> {
        let record = Self::record(&claim.key, ABANDONED, now_ms());
        self.settle(claim, record).await
    }

    async fn settle(&self, claim: &Claim, record: Record) -> Result<Settled, PortError> {
        let put = ConditionalPut {
            record,
            condition: Condition::OrderEquals(claim.token),
        };
        Ok(match self.records.put(put).await? {
            PutOutcome::Written => Settled::Recorded,
            PutOutcome::ConditionFailed => Settled::NotOwner,
        })
    }
}
