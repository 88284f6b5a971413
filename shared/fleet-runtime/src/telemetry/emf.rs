//! CloudWatch Embedded Metric Format: one JSON object per line, built from the same series as
//! `/metrics` (read back through [`Series`]). EMF has no histogram type, so a line carries the
//! interval's counter deltas and the interval's mean handler time and queue lag.

use std::io::Write;

use serde_json::{Map, Value, json};

use super::Telemetry;
use super::metrics::{Count, Hist, Series};

/// The CloudWatch namespace of every EMF line.
pub const NAMESPACE: &str = "Fleet";

/// What the previous EMF line of a run reported, for deltas. The default starts from the
/// run's start.
#[derive(Debug, Clone, Default)]
pub struct EmfState {
    last: Option<Series>,
}

impl Telemetry {
    /// One EMF line (without the newline) with what the run's series gained since the previous
    /// line, `worker` and `queue` as dimensions.
    pub fn emf_line(&self, prev: &mut EmfState, timestamp_ms: i64) -> String {
        let now = Series::read(&self.worker, &self.queue);
        let since = prev
            .last
            .replace(now.clone())
            .unwrap_or_else(|| self.start.clone());
        emf_object(&self.worker, &self.queue, &now.since(&since), timestamp_ms).to_string()
    }
}

fn emf_object(worker: &str, queue: &str, delta: &Series, timestamp_ms: i64) -> Value {
    let mut root = Map::new();
    let mut metrics = Vec::new();
    root.insert("worker".into(), worker.into());
    root.insert("queue".into(), queue.into());
    for c in Count::ALL {
        let (_, name, _) = c.names();
        root.insert(name.into(), delta.count(c).into());
        metrics.push(json!({"Name": name, "Unit": "Count"}));
    }
    for h in Hist::ALL {
        let (_, name, _) = h.names();
        let (count, sum_secs) = delta.hist(h);
        if count > 0 {
            // Milliseconds, rounded to the microsecond: the sum went through a decimal rendering.
            let mean_ms = (sum_secs / count as f64 * 1e6).round() / 1e3;
            root.insert(name.into(), mean_ms.into());
            metrics.push(json!({"Name": name, "Unit": "Milliseconds"}));
        }
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["worker", "queue"]],
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root)
}

/// Writes `line` and its newline in one call, so a line is never split by another writer of
/// the same stream.
pub(super) fn write_line(out: &mut dyn Write, line: &str) {
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    if let Err(e) = out.write_all(buf.as_bytes()).and_then(|()| out.flush()) {
        tracing::warn!(error = %e, "cannot write an EMF line");
    }
}

/// Milliseconds since the Unix epoch.
pub(super) fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}
