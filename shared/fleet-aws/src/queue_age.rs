//! The age of a queue's oldest message as CloudWatch reports it (`AWS/SQS`
//! `ApproximateAgeOfOldestMessage`), for the fleet's status page and `fleet status`. SQS itself
//! has no attribute for it; CloudWatch publishes the metric every minute for active queues and
//! not at all elsewhere (moto, LocalStack, a queue idle for hours), so "no datapoint" is an
//! answer (`None`), not an error. One GetMetricStatistics call, read-only.

use aws_sdk_cloudwatch::types::{Dimension, Statistic};
use aws_smithy_types::DateTime;
use fleet_core::PortError;

use crate::error::classify;
use crate::inspect::Inspector;

/// How far back a datapoint may be and still count as the current age.
const LOOKBACK_SECS: i64 = 10 * 60;

impl Inspector {
    /// Seconds, the newest one-minute maximum of `ApproximateAgeOfOldestMessage` for the queue
    /// named `queue_name` within the last ten minutes; `None` when CloudWatch has none.
    pub async fn oldest_message_age_secs(
        &self,
        queue_name: &str,
        now_unix_secs: i64,
    ) -> Result<Option<f64>, PortError> {
        const OP: &str = "cloudwatch.GetMetricStatistics";
        let answer = self
            .cloudwatch
            .get_metric_statistics()
            .namespace("AWS/SQS")
            .metric_name("ApproximateAgeOfOldestMessage")
            .dimensions(
                Dimension::builder()
                    .name("QueueName")
                    .value(queue_name)
                    .build(),
            )
            .start_time(DateTime::from_secs(now_unix_secs - LOOKBACK_SECS))
            .end_time(DateTime::from_secs(now_unix_secs))
            .period(60)
            .statistics(Statistic::Maximum)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(answer
            .datapoints()
            .iter()
            .filter_map(|d| Some((d.timestamp()?.secs(), d.maximum()?)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, age)| age))
    }
}
