//! [`MessageQueue`] on SQS.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, Message, MessageAttributeValue, MessageSystemAttributeName,
    MessageSystemAttributeNameForSends, MessageSystemAttributeValue, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use fleet_core::{
    AttributeValue, Attributes, BatchResult, EntryFailure, MessageQueue, OutgoingMessage,
    PortError, QueueAttributes, ReceivedMessage, RedrivePolicy,
};

use crate::error::{classify, sanitize_code};

/// SQS caps visibility timeouts at 12 hours.
const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;
/// SQS caps batches at 10 entries.
const MAX_BATCH: usize = 10;

/// One SQS queue, addressed by URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub(crate) fn new(client: Client, url: String) -> Self {
        Self { client, url }
    }
}

fn visibility_secs(d: Duration) -> i32 {
    // Round up so a sub-second request never becomes "visible immediately" by accident,
    // except an explicit zero, which releases.
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i32::try_from(secs.min(MAX_VISIBILITY_SECS)).unwrap_or(i32::MAX)
}

fn check_batch(op: &'static str, len: usize) -> Result<(), PortError> {
    if len > MAX_BATCH {
        return Err(PortError::invalid(
            op,
            format!("batch of {len} entries exceeds {MAX_BATCH}"),
        ));
    }
    Ok(())
}

/// Entry ids are the positions in the request ("0".."9"), so a failure maps back to its index.
fn batch_result(failed: &[BatchResultErrorEntry]) -> BatchResult {
    BatchResult {
        failed: failed
            .iter()
            .filter_map(|f| {
                let index = f.id().parse::<usize>().ok()?;
                Some(EntryFailure {
                    index,
                    code: sanitize_code(f.code()),
                    sender_fault: f.sender_fault(),
                })
            })
            .collect(),
    }
}

type SdkAttributes = Option<HashMap<String, MessageAttributeValue>>;

fn to_sdk_attributes(op: &'static str, attrs: &Attributes) -> Result<SdkAttributes, PortError> {
    if attrs.is_empty() {
        return Ok(None);
    }
    let mut map = HashMap::with_capacity(attrs.len());
    for (name, v) in attrs {
        let value = MessageAttributeValue::builder()
            .data_type(&v.data_type)
            .set_string_value(v.string_value.clone())
            .set_binary_value(v.binary_value.clone().map(Blob::new))
            .build()
            .map_err(|_| PortError::invalid(op, "message attribute without a data type"))?;
        map.insert(name.clone(), value);
    }
    Ok(Some(map))
}

fn from_sdk_attributes(attrs: Option<&HashMap<String, MessageAttributeValue>>) -> Attributes {
    attrs
        .into_iter()
        .flatten()
        .map(|(name, v)| {
            (
                name.clone(),
                AttributeValue {
                    data_type: v.data_type().to_string(),
                    string_value: v.string_value().map(str::to_string),
                    binary_value: v.binary_value().map(|b| b.as_ref().to_vec()),
                },
            )
        })
        .collect()
}

fn convert(m: &Message) -> Option<ReceivedMessage> {
    let sys = m.attributes();
    let get = |k: MessageSystemAttributeName| sys.and_then(|a| a.get(&k)).cloned();
    Some(ReceivedMessage {
        message_id: m.message_id()?.to_string(),
        receipt: m.receipt_handle()?.to_string(),
        body: m.body().unwrap_or_default().to_string(),
        attributes: from_sdk_attributes(m.message_attributes()),
        receive_count: get(MessageSystemAttributeName::ApproximateReceiveCount)
            .and_then(|v| v.parse().ok())
            .unwrap_or(1),
        sent_timestamp_ms: get(MessageSystemAttributeName::SentTimestamp)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        group_id: get(MessageSystemAttributeName::MessageGroupId),
        dedup_id: get(MessageSystemAttributeName::MessageDeduplicationId),
        sequence_number: get(MessageSystemAttributeName::SequenceNumber),
        trace_header: get(MessageSystemAttributeName::AwsTraceHeader),
    })
}

/// `AWSTraceHeader`, X-Ray's form of the message's `traceparent` attribute: a system
/// attribute, so it counts against neither the 10 message attributes nor the message's size,
/// and X-Ray-aware consumers (Lambda, the X-Ray SDKs) pick it up.
fn trace_system_attribute(
    attributes: &fleet_core::Attributes,
) -> Option<HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>> {
    let header = fleet_core::trace_context::xray_header_of(attributes)?;
    let value = MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header)
        .build()
        .ok()?;
    Some(HashMap::from([(
        MessageSystemAttributeNameForSends::AwsTraceHeader,
        value,
    )]))
}

fn delay_secs(d: Option<Duration>) -> Option<i32> {
    // SQS allows 0..=900 s of delay.
    d.map(|d| i32::try_from(d.as_secs().min(900)).unwrap_or(900))
}

#[async_trait]
impl MessageQueue for SqsQueue {
    fn id(&self) -> &str {
        &self.url
    }

    async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Option<Duration>,
    ) -> Result<Vec<ReceivedMessage>, PortError> {
        const OP: &str = "sqs.ReceiveMessage";
        let max = i32::try_from(max.clamp(1, 10)).unwrap_or(10);
        let wait = i32::try_from(wait.as_secs().min(20)).unwrap_or(20);
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait)
            .set_visibility_timeout(visibility.map(visibility_secs))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .message_system_attribute_names(MessageSystemAttributeName::MessageDeduplicationId)
            .message_system_attribute_names(MessageSystemAttributeName::SequenceNumber)
            .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        let messages = out.messages();
        let converted: Vec<ReceivedMessage> = messages.iter().filter_map(convert).collect();
        if converted.len() != messages.len() {
            tracing::warn!(
                queue = %self.url,
                dropped = messages.len() - converted.len(),
                "received messages without id or receipt handle"
            );
        }
        Ok(converted)
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<BatchResult, PortError> {
        const OP: &str = "sqs.DeleteMessageBatch";
        check_batch(OP, receipts.len())?;
        if receipts.is_empty() {
            return Ok(BatchResult::default());
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .build()
                    .map_err(|_| PortError::invalid(OP, "incomplete batch entry"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(batch_result(out.failed()))
    }

    async fn change_visibility_batch(
        &self,
        entries: &[(String, Duration)],
    ) -> Result<BatchResult, PortError> {
        const OP: &str = "sqs.ChangeMessageVisibilityBatch";
        check_batch(OP, entries.len())?;
        if entries.is_empty() {
            return Ok(BatchResult::default());
        }
        let entries = entries
            .iter()
            .enumerate()
            .map(|(i, (r, d))| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(r)
                    .visibility_timeout(visibility_secs(*d))
                    .build()
                    .map_err(|_| PortError::invalid(OP, "incomplete batch entry"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(batch_result(out.failed()))
    }

    async fn send(&self, message: OutgoingMessage) -> Result<String, PortError> {
        const OP: &str = "sqs.SendMessage";
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .set_message_attributes(to_sdk_attributes(OP, &message.attributes)?)
            .set_message_system_attributes(trace_system_attribute(&message.attributes))
            .set_delay_seconds(delay_secs(message.delay))
            .set_message_group_id(message.group_id)
            .set_message_deduplication_id(message.dedup_id)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        out.message_id()
            .map(str::to_string)
            .ok_or_else(|| PortError::transient(OP, "response without message id"))
    }

    async fn send_batch(&self, messages: &[OutgoingMessage]) -> Result<BatchResult, PortError> {
        const OP: &str = "sqs.SendMessageBatch";
        check_batch(OP, messages.len())?;
        if messages.is_empty() {
            return Ok(BatchResult::default());
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .set_message_attributes(to_sdk_attributes(OP, &m.attributes)?)
                    .set_message_system_attributes(trace_system_attribute(&m.attributes))
                    .set_delay_seconds(delay_secs(m.delay))
                    .set_message_group_id(m.group_id.clone())
                    .set_message_deduplication_id(m.dedup_id.clone())
                    .build()
                    .map_err(|_| PortError::invalid(OP, "incomplete batch entry"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(batch_result(out.failed()))
    }

    async fn attributes(&self) -> Result<QueueAttributes, PortError> {
        const OP: &str = "sqs.GetQueueAttributes";
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        let empty = HashMap::new();
        let attrs = out.attributes().unwrap_or(&empty);
        parse_queue_attributes(OP, attrs)
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedriveJson {
    dead_letter_target_arn: String,
    // SQS has been seen to return it both as a number and as a string.
    max_receive_count: serde_json::Value,
}

pub(crate) fn parse_queue_attributes(
    op: &'static str,
    attrs: &HashMap<QueueAttributeName, String>,
) -> Result<QueueAttributes, PortError> {
    let get = |k: QueueAttributeName| attrs.get(&k).map(String::as_str);
    let count = |k: QueueAttributeName| get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let redrive_policy = match get(QueueAttributeName::RedrivePolicy) {
        None | Some("") => None,
        Some(json) => {
            let r: RedriveJson = serde_json::from_str(json)
                .map_err(|_| PortError::invalid(op, "RedrivePolicy is not valid JSON"))?;
            let max = match &r.max_receive_count {
                serde_json::Value::Number(n) => n.as_u64(),
                serde_json::Value::String(s) => s.parse().ok(),
                _ => None,
            }
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                PortError::invalid(op, "RedrivePolicy maxReceiveCount is not a count")
            })?;
            Some(RedrivePolicy {
                dead_letter_target: r.dead_letter_target_arn,
                max_receive_count: max,
            })
        }
    };
    Ok(QueueAttributes {
        fifo: get(QueueAttributeName::FifoQueue) == Some("true"),
        kms_key_id: get(QueueAttributeName::KmsMasterKeyId)
            .filter(|k| !k.is_empty())
            .map(str::to_string),
        sqs_managed_sse: get(QueueAttributeName::SqsManagedSseEnabled) == Some("true"),
        redrive_policy,
        visibility_timeout: Duration::from_secs(count(QueueAttributeName::VisibilityTimeout)),
        approximate_visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        approximate_in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        approximate_delayed: count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        arn: get(QueueAttributeName::QueueArn)
            .unwrap_or_default()
            .to_string(),
        max_message_bytes: get(QueueAttributeName::MaximumMessageSize)
            .and_then(|v| v.trim().parse().ok()),
    })
}

/// The parts of an SQS queue ARN `arn:PARTITION:sqs:REGION:ACCOUNT:NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub name: &'a str,
}

/// A queue's URL by name (in `owner`'s account, or the caller's).
pub(crate) async fn get_queue_url(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    owner: Option<&str>,
) -> Result<String, PortError> {
    const OP: &str = "sqs.GetQueueUrl";
    let out = sqs
        .get_queue_url()
        .queue_name(name)
        .set_queue_owner_aws_account_id(owner.map(str::to_string))
        .send()
        .await
        .map_err(|e| classify(OP, &e))?;
    out.queue_url()
        .map(str::to_string)
        .ok_or_else(|| PortError::transient(OP, "response without queue URL"))
}

pub fn parse_queue_arn(arn: &str) -> Option<QueueArn<'_>> {
    let mut parts = arn.splitn(6, ':');
    let (arn_lit, _partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, name) = (parts.next()?, parts.next()?, parts.next()?);
    if arn_lit != "arn" || service != "sqs" || name.is_empty() || name.contains(':') {
        return None;
    }
    Some(QueueArn {
        region,
        account,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_arns_parse() {
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:eu-west-1:123456789012:adt-dlq.fifo"),
            Some(QueueArn {
                region: "eu-west-1",
                account: "123456789012",
                name: "adt-dlq.fifo"
            })
        );
        assert_eq!(parse_queue_arn("arn:aws:sns:eu-west-1:1:x"), None);
        assert_eq!(parse_queue_arn("arn:aws:sqs:eu-west-1:1"), None);
        assert_eq!(parse_queue_arn("arn:aws:sqs:eu-west-1:1:"), None);
        assert_eq!(parse_queue_arn("queue-name"), None);
    }

    #[test]
    fn visibility_rounds_up_and_caps() {
        assert_eq!(visibility_secs(Duration::ZERO), 0);
        assert_eq!(visibility_secs(Duration::from_millis(1500)), 2);
        assert_eq!(visibility_secs(Duration::from_secs(100_000)), 43_200);
    }

    #[test]
    fn attributes_parse_redrive_and_encryption() {
        let mut m = HashMap::new();
        m.insert(
            QueueAttributeName::KmsMasterKeyId,
            "alias/fleet".to_string(),
        );
        m.insert(
            QueueAttributeName::SqsManagedSseEnabled,
            "false".to_string(),
        );
        m.insert(
            QueueAttributeName::RedrivePolicy,
            r#"{"deadLetterTargetArn":"arn:aws:sqs:r:1:dlq","maxReceiveCount":"5"}"#.to_string(),
        );
        m.insert(QueueAttributeName::VisibilityTimeout, "30".to_string());
        m.insert(
            QueueAttributeName::ApproximateNumberOfMessages,
            "7".to_string(),
        );
        let a = parse_queue_attributes("t", &m).unwrap();
        assert_eq!(a.kms_key_id.as_deref(), Some("alias/fleet"));
        assert!(a.encrypted());
        assert_eq!(
            a.redrive_policy,
            Some(RedrivePolicy {
                dead_letter_target: "arn:aws:sqs:r:1:dlq".into(),
                max_receive_count: 5
            })
        );
        assert_eq!(a.visibility_timeout, Duration::from_secs(30));
        assert_eq!(a.approximate_visible, 7);

        m.insert(QueueAttributeName::RedrivePolicy, "{not json".to_string());
        assert!(parse_queue_attributes("t", &m).is_err());
    }
}
