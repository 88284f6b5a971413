//! Read-only facts about the resources a fleet runs on, for `fleet doctor`'s preflight: how a
//! queue, table, bucket or topic is configured and which CloudWatch alarms watch a queue. Every
//! call is a describe/get; nothing here changes a resource or reads a message. The judging
//! (what passes) is the doctor's, in the launcher crate: this module only reports.
//!
//! A configuration that is absent is a fact, not an error (a bucket without a policy is
//! `policy: None`); an error is what stops the reading (access denied, no such resource).

use std::collections::BTreeMap;

use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleet_core::PortError;

use crate::error::classify;

/// A queue's configuration (GetQueueAttributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFacts {
    pub url: String,
    pub name: String,
    pub arn: String,
    /// `KmsMasterKeyId`: SSE-KMS with this key.
    pub kms_key: Option<String>,
    /// `SqsManagedSseEnabled`: SSE-SQS (encrypted, with a key SQS owns).
    pub sqs_managed_sse: bool,
    pub visibility_timeout_secs: u64,
    /// `RedrivePolicy`: (dead-letter queue ARN, maxReceiveCount).
    pub redrive: Option<(String, u32)>,
    pub fifo: bool,
}

/// A metric alarm's shape, as far as the doctor judges it.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmFacts {
    pub name: String,
    pub namespace: Option<String>,
    pub metric: Option<String>,
    pub dimensions: BTreeMap<String, String>,
    /// `GreaterThanThreshold`, `GreaterThanOrEqualToThreshold`, ...
    pub comparison: Option<String>,
    pub threshold: Option<f64>,
    pub actions_enabled: bool,
    pub alarm_actions: Vec<String>,
}

/// A DynamoDB table's protection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFacts {
    pub name: String,
    /// `SSEDescription`: status and type (`KMS`); `None` is DynamoDB's default encryption
    /// with an AWS-owned key.
    pub sse: Option<(String, Option<String>)>,
    /// Point-in-time recovery status (`ENABLED`, `DISABLED`).
    pub pitr: Option<String>,
    /// Time to live: (status, attribute name).
    pub ttl: Option<(String, Option<String>)>,
    pub deletion_protection: bool,
}

/// An S3 bucket's protection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketFacts {
    pub name: String,
    /// BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets; `None`:
    /// no public access block on the bucket.
    pub public_access_block: Option<[bool; 4]>,
    /// The bucket policy document; `None`: no policy.
    pub policy: Option<String>,
    /// Default encryption algorithm (`aws:kms`, `aws:kms:dsse`, `AES256`).
    pub default_encryption: Option<String>,
}

/// An SNS topic's encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicFacts {
    pub arn: String,
    pub kms_key: Option<String>,
}

/// Describes resources with the backend's clients and a CloudWatch client.
#[derive(Debug, Clone)]
pub struct Inspector {
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) dynamodb: aws_sdk_dynamodb::Client,
    pub(crate) s3: aws_sdk_s3::Client,
    pub(crate) sns: aws_sdk_sns::Client,
    pub(crate) cloudwatch: aws_sdk_cloudwatch::Client,
}

/// An alarm's or metric's dimensions as name -> value.
fn dimensions(d: &[aws_sdk_cloudwatch::types::Dimension]) -> BTreeMap<String, String> {
    d.iter()
        .map(|d| {
            (
                d.name().unwrap_or_default().to_string(),
                d.value().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The error code of a failed call, when the service sent one.
fn code_of<E: ProvideErrorMetadata>(e: &E) -> Option<&str> {
    e.code()
}

impl Inspector {
    /// A queue by URL, or by name in this account and region.
    pub async fn queue(&self, queue: &str) -> Result<QueueFacts, PortError> {
        let url = if queue.starts_with("https://") || queue.starts_with("http://") {
            queue.to_string()
        } else {
            self.queue_url(queue, None).await?
        };
        const OP: &str = "sqs.GetQueueAttributes";
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        let attrs = out.attributes().cloned().unwrap_or_default();
        let get = |k: QueueAttributeName| attrs.get(&k).cloned().filter(|v| !v.is_empty());
        let arn = get(QueueAttributeName::QueueArn)
            .ok_or_else(|| PortError::transient(OP, "queue without QueueArn"))?;
        let redrive = match get(QueueAttributeName::RedrivePolicy) {
            None => None,
            Some(text) => {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|_| PortError::transient(OP, "RedrivePolicy is not JSON"))?;
                let target = v["deadLetterTargetArn"].as_str().unwrap_or("").to_string();
                // SQS returns the count as a number; some tools write it as a string.
                let max = v["maxReceiveCount"]
                    .as_u64()
                    .or_else(|| v["maxReceiveCount"].as_str().and_then(|s| s.parse().ok()))
                    .unwrap_or(0);
                Some((target, u32::try_from(max).unwrap_or(u32::MAX)))
            }
        };
        Ok(QueueFacts {
            name: arn.rsplit(':').next().unwrap_or_default().to_string(),
            url,
            arn,
            kms_key: get(QueueAttributeName::KmsMasterKeyId),
            sqs_managed_sse: get(QueueAttributeName::SqsManagedSseEnabled)
                .is_some_and(|v| v == "true"),
            visibility_timeout_secs: get(QueueAttributeName::VisibilityTimeout)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            redrive,
            fifo: get(QueueAttributeName::FifoQueue).is_some_and(|v| v == "true"),
        })
    }

    /// The queue an ARN names (a DLQ from a redrive policy), in the ARN's account.
    pub async fn queue_by_arn(&self, arn: &str) -> Result<QueueFacts, PortError> {
        let parsed = crate::parse_queue_arn(arn)
            .ok_or_else(|| PortError::invalid("sqs.GetQueueUrl", "not an SQS queue ARN"))?;
        let url = self.queue_url(parsed.name, Some(parsed.account)).await?;
        self.queue(&url).await
    }

    async fn queue_url(&self, name: &str, owner: Option<&str>) -> Result<String, PortError> {
        crate::sqs::get_queue_url(&self.sqs, name, owner).await
    }

    /// Every metric alarm in the account and region (DescribeAlarms, all pages). A metric-math
    /// alarm is reported once per metric it reads.
    pub async fn metric_alarms(&self) -> Result<Vec<AlarmFacts>, PortError> {
        const OP: &str = "cloudwatch.DescribeAlarms";
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .cloudwatch
                .describe_alarms()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(OP, &e))?;
            for a in page.metric_alarms() {
                let base = AlarmFacts {
                    name: a.alarm_name().unwrap_or_default().to_string(),
                    namespace: a.namespace().map(str::to_string),
                    metric: a.metric_name().map(str::to_string),
                    dimensions: dimensions(a.dimensions()),
                    comparison: a.comparison_operator().map(|c| c.as_str().to_string()),
                    threshold: a.threshold(),
                    actions_enabled: a.actions_enabled().unwrap_or(true),
                    alarm_actions: a.alarm_actions().to_vec(),
                };
                let math: Vec<AlarmFacts> = a
                    .metrics()
                    .iter()
                    .filter_map(|q| q.metric_stat().and_then(|s| s.metric()))
                    .map(|m| AlarmFacts {
                        namespace: m.namespace().map(str::to_string),
                        metric: m.metric_name().map(str::to_string),
                        dimensions: dimensions(m.dimensions()),
                        ..base.clone()
                    })
                    .collect();
                if math.is_empty() {
                    out.push(base);
                } else {
                    out.extend(math);
                }
            }
            token = page.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// A table's encryption, point-in-time recovery and time to live.
    pub async fn table(&self, name: &str) -> Result<TableFacts, PortError> {
        let described = self
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("dynamodb.DescribeTable", &e))?;
        let table = described.table();
        let sse = table.and_then(|t| t.sse_description()).map(|s| {
            (
                s.status()
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default(),
                s.sse_type().map(|v| v.as_str().to_string()),
            )
        });
        let deletion_protection = table
            .and_then(|t| t.deletion_protection_enabled())
            .unwrap_or(false);
        let backups = self
            .dynamodb
            .describe_continuous_backups()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("dynamodb.DescribeContinuousBackups", &e))?;
        let pitr = backups
            .continuous_backups_description()
            .and_then(|d| d.point_in_time_recovery_description())
            .and_then(|p| p.point_in_time_recovery_status())
            .map(|s| s.as_str().to_string());
        let ttl = self
            .dynamodb
            .describe_time_to_live()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("dynamodb.DescribeTimeToLive", &e))?;
        let ttl = ttl.time_to_live_description().map(|d| {
            (
                d.time_to_live_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                d.attribute_name().map(str::to_string),
            )
        });
        Ok(TableFacts {
            name: name.to_string(),
            sse,
            pitr,
            ttl,
            deletion_protection,
        })
    }

    /// A bucket's public access block, policy and default encryption.
    pub async fn bucket(&self, name: &str) -> Result<BucketFacts, PortError> {
        let public_access_block = match self.s3.get_public_access_block().bucket(name).send().await
        {
            Ok(out) => out.public_access_block_configuration().map(|c| {
                [
                    c.block_public_acls().unwrap_or(false),
                    c.ignore_public_acls().unwrap_or(false),
                    c.block_public_policy().unwrap_or(false),
                    c.restrict_public_buckets().unwrap_or(false),
                ]
            }),
            Err(e) if code_of(&e) == Some("NoSuchPublicAccessBlockConfiguration") => None,
            Err(e) => return Err(classify("s3.GetPublicAccessBlock", &e)),
        };
        let policy = match self.s3.get_bucket_policy().bucket(name).send().await {
            Ok(out) => out.policy().map(str::to_string),
            Err(e) if code_of(&e) == Some("NoSuchBucketPolicy") => None,
            Err(e) => return Err(classify("s3.GetBucketPolicy", &e)),
        };
        let default_encryption = match self.s3.get_bucket_encryption().bucket(name).send().await {
            Ok(out) => out
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| d.sse_algorithm().as_str().to_string()),
            Err(e) if code_of(&e) == Some("ServerSideEncryptionConfigurationNotFoundError") => None,
            Err(e) => return Err(classify("s3.GetBucketEncryption", &e)),
        };
        Ok(BucketFacts {
            name: name.to_string(),
            public_access_block,
            policy,
            default_encryption,
        })
    }

    /// A topic's KMS key.
    pub async fn topic(&self, arn: &str) -> Result<TopicFacts, PortError> {
        let out = self
            .sns
            .get_topic_attributes()
            .topic_arn(arn)
            .send()
            .await
            .map_err(|e| classify("sns.GetTopicAttributes", &e))?;
        Ok(TopicFacts {
            arn: arn.to_string(),
            kms_key: out
                .attributes()
                .and_then(|a| a.get("KmsMasterKeyId"))
                .filter(|k| !k.is_empty())
                .cloned(),
        })
    }
}
