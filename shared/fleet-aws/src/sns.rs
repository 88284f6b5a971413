//! [`Notifier`] on SNS Publish: a topic ARN or a direct SMS number, with string message
//! attributes (and a deduplication id and group on FIFO topics).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use fleet_core::{Destination, ErrorKind, Notification, Notifier, PortError};

use crate::error::classify;

/// The SNS publisher; one client for every destination.
#[derive(Debug, Clone)]
pub struct SnsNotifier {
    client: Client,
}

impl SnsNotifier {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Notifier for SnsNotifier {
    async fn publish(
        &self,
        destination: &Destination,
        n: &Notification,
    ) -> Result<String, PortError> {
        const OP: &str = "sns.Publish";
        let mut req = self.client.publish().message(&n.body);
        req = match destination {
            Destination::Topic(arn) => {
                if !arn.starts_with("arn:") {
                    return Err(PortError::invalid(OP, "an SNS topic is named by its ARN"));
                }
                let fifo = arn.ends_with(".fifo");
                req.topic_arn(arn)
                    .set_message_deduplication_id(n.dedup_id.clone().filter(|_| fifo))
                    .set_message_group_id(n.group_id.clone().filter(|_| fifo))
            }
            Destination::Sms(number) => req.phone_number(number),
        };
        if let Some(subject) = &n.subject {
            req = req.subject(subject);
        }
        for (k, v) in &n.attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|_| PortError::invalid(OP, "incomplete message attribute"))?;
            req = req.message_attributes(k, value);
        }
        let out = req.send().await.map_err(|e| {
            let mut err = classify(OP, &e);
            // SNS's own codes: NotFound for a missing topic, "Throttled" for rate limits.
            if err.message.starts_with("Throttled") || err.message.starts_with("KMSThrottling") {
                err.kind = ErrorKind::Throttled;
            }
            err
        })?;
        out.message_id()
            .map(str::to_string)
            .ok_or_else(|| PortError::transient(OP, "response without a message id"))
    }
}
