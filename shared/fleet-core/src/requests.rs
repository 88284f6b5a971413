//! Counts of backend requests by API ("sqs.ReceiveMessage", "dynamodb.TransactWriteItems", ...),
//! process-wide. The AWS adapter counts every request it sends (through an SDK interceptor);
//! the local adapter counts its operations under the same names so a run on either backend
//! reports comparable figures. Exported by the runtime's metrics endpoint and final report.

use std::collections::BTreeMap;
use std::sync::Mutex;

static COUNTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Count one request to `api`.
pub fn count(api: &str) {
    let mut m = COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    match m.get_mut(api) {
        Some(n) => *n += 1,
        None => {
            m.insert(api.to_string(), 1);
        }
    }
}

/// A snapshot of all counts.
pub fn snapshot() -> BTreeMap<String, u64> {
    COUNTS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Total over all APIs.
pub fn total() -> u64 {
    snapshot().values().sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_accumulate_per_api() {
        let before = super::snapshot().get("test.Op").copied().unwrap_or(0);
        super::count("test.Op");
        super::count("test.Op");
        assert_eq!(super::snapshot()["test.Op"], before + 2);
        assert!(super::total() >= 2);
    }
}
