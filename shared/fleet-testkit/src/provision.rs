//! Provisioning: create (and delete) the resources the fleet runs on, for the tests against moto
//! and the load tool's own stack. Deployments create them with the CloudFormation template;
//! no worker creates what it consumes, so this is not a port and lives here, not in fleet-aws.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    SseSpecification, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_eventbridge::types::{SqsParameters, Target};
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Event, NotificationConfiguration,
    QueueConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use aws_sdk_sqs::types::QueueAttributeName;
use fleet_core::PortError;
use serde_json::json;

use fleet_aws::AwsBackend;
use fleet_aws::error::classify;

/// How to create a queue. The default is SQS's own: standard, 30 s visibility, SSE-SQS.
#[derive(Debug, Clone)]
pub struct QueueSetup {
    /// FIFO queue (the name must end in ".fifo").
    pub fifo: bool,
    /// FIFO only.
    pub content_based_dedup: bool,
    pub visibility_timeout: Duration,
    /// SSE-KMS with this key.
    pub kms_key_id: Option<String>,
    /// SSE-SQS; ignored when `kms_key_id` is set.
    pub sqs_managed_sse: bool,
    /// (DLQ ARN, maxReceiveCount).
    pub redrive: Option<(String, u32)>,
}

impl Default for QueueSetup {
    fn default() -> Self {
        Self {
            fifo: false,
            content_based_dedup: false,
            visibility_timeout: Duration::from_secs(30),
            kms_key_id: None,
            sqs_managed_sse: true,
            redrive: None,
        }
    }
}

/// Creates and deletes resources with the backend's clients.
#[derive(Debug, Clone)]
pub struct Provisioner {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    kms: aws_sdk_kms::Client,
    sns: aws_sdk_sns::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
}

impl Provisioner {
    pub fn new(b: &AwsBackend) -> Self {
        let c = b.sdk_clients();
        Self {
            sqs: c.sqs,
            events: c.events,
            dynamodb: c.dynamodb,
            s3: c.s3,
            kms: c.kms,
            sns: c.sns,
            cloudwatch: c.cloudwatch,
        }
    }

    /// A symmetric KMS key; returns its key id.
    pub async fn create_kms_key(&self, description: &str) -> Result<String, PortError> {
        const OP: &str = "kms.CreateKey";
        let out = self
            .kms
            .create_key()
            .description(description)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        out.key_metadata()
            .map(|m| m.key_id().to_string())
            .ok_or_else(|| PortError::transient(OP, "response without key metadata"))
    }

    /// Create a queue; returns its URL.
    pub async fn create_queue(&self, name: &str, setup: QueueSetup) -> Result<String, PortError> {
        const OP: &str = "sqs.CreateQueue";
        if setup.fifo != name.ends_with(".fifo") {
            return Err(PortError::invalid(
                OP,
                "FIFO queue names (and only those) end in .fifo",
            ));
        }
        let mut attrs = HashMap::new();
        attrs.insert(
            QueueAttributeName::VisibilityTimeout,
            setup.visibility_timeout.as_secs().to_string(),
        );
        if setup.fifo {
            attrs.insert(QueueAttributeName::FifoQueue, "true".into());
            if setup.content_based_dedup {
                attrs.insert(QueueAttributeName::ContentBasedDeduplication, "true".into());
            }
        }
        match setup.kms_key_id {
            Some(key) => {
                attrs.insert(QueueAttributeName::KmsMasterKeyId, key);
                attrs.insert(QueueAttributeName::SqsManagedSseEnabled, "false".into());
            }
            None => {
                attrs.insert(
                    QueueAttributeName::SqsManagedSseEnabled,
                    setup.sqs_managed_sse.to_string(),
                );
            }
        }
        if let Some((dlq_arn, max)) = setup.redrive {
            let policy = json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max });
            attrs.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let out = self
            .sqs
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(attrs))
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        out.queue_url()
            .map(str::to_string)
            .ok_or_else(|| PortError::transient(OP, "response without queue URL"))
    }

    pub async fn queue_arn(&self, url: &str) -> Result<String, PortError> {
        self.queue_attribute(url, QueueAttributeName::QueueArn)
            .await?
            .ok_or_else(|| PortError::transient("sqs.GetQueueAttributes", "queue has no ARN"))
    }

    async fn queue_attribute(
        &self,
        url: &str,
        name: QueueAttributeName,
    ) -> Result<Option<String>, PortError> {
        const OP: &str = "sqs.GetQueueAttributes";
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(name.clone())
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(out.attributes().and_then(|a| a.get(&name)).cloned())
    }

    pub async fn delete_queue(&self, url: &str) -> Result<(), PortError> {
        const OP: &str = "sqs.DeleteQueue";
        self.sqs
            .delete_queue()
            .queue_url(url)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(())
    }

    /// Create an event bus; returns its ARN. "default" exists already and is left alone.
    pub async fn create_bus(&self, name: &str) -> Result<Option<String>, PortError> {
        const OP: &str = "events.CreateEventBus";
        if name == "default" {
            return Ok(None);
        }
        let out = self
            .events
            .create_event_bus()
            .name(name)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(out.event_bus_arn().map(str::to_string))
    }

    /// A rule on `bus` matching `pattern_json` with the queue as its target, and a statement
    /// in the queue's policy that lets EventBridge (this rule only) send to it.
    pub async fn put_rule_to_queue(
        &self,
        bus: &str,
        rule_name: &str,
        pattern_json: &str,
        target_queue_url: &str,
    ) -> Result<(), PortError> {
        let queue_arn = self.queue_arn(target_queue_url).await?;
        let rule = self
            .events
            .put_rule()
            .name(rule_name)
            .event_bus_name(bus)
            .event_pattern(pattern_json)
            .send()
            .await
            .map_err(|e| classify("events.PutRule", &e))?;
        let rule_arn = rule.rule_arn().unwrap_or_default().to_string();

        let mut target = Target::builder().id("queue").arn(&queue_arn);
        if target_queue_url.ends_with(".fifo") {
            // FIFO targets need a group; one per rule keeps a rule's events in order.
            target =
                target.sqs_parameters(SqsParameters::builder().message_group_id(rule_name).build());
        }
        let target = target
            .build()
            .map_err(|_| PortError::invalid("events.PutTargets", "incomplete target"))?;
        let out = self
            .events
            .put_targets()
            .rule(rule_name)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| classify("events.PutTargets", &e))?;
        if out.failed_entry_count() > 0 {
            return Err(PortError::invalid(
                "events.PutTargets",
                "target was rejected",
            ));
        }
        self.allow_rule_to_send(target_queue_url, &queue_arn, rule_name, &rule_arn)
            .await
    }

    async fn allow_rule_to_send(
        &self,
        queue_url: &str,
        queue_arn: &str,
        rule_name: &str,
        rule_arn: &str,
    ) -> Result<(), PortError> {
        let sid = format!("events-{rule_name}");
        self.allow_service_to_send(queue_url, queue_arn, &sid, "events.amazonaws.com", rule_arn)
            .await
    }

    /// Add (or replace, by `sid`) a statement to the queue's policy that lets `service` send
    /// to it on behalf of `source_arn` (an EventBridge rule, an SNS topic).
    async fn allow_service_to_send(
        &self,
        queue_url: &str,
        queue_arn: &str,
        sid: &str,
        service: &str,
        source_arn: &str,
    ) -> Result<(), PortError> {
        const OP: &str = "sqs.SetQueueAttributes";
        let existing = self
            .queue_attribute(queue_url, QueueAttributeName::Policy)
            .await?;
        let mut policy = existing
            .as_deref()
            .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
            .filter(|p| p.get("Statement").is_some_and(serde_json::Value::is_array))
            .unwrap_or_else(|| json!({ "Version": "2012-10-17", "Statement": [] }));
        let statement = json!({
            "Sid": sid,
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": { "ArnEquals": { "aws:SourceArn": source_arn } },
        });
        if let Some(list) = policy.get_mut("Statement").and_then(|s| s.as_array_mut()) {
            list.retain(|s| s.get("Sid").and_then(|v| v.as_str()) != Some(sid));
            list.push(statement);
        }
        self.sqs
            .set_queue_attributes()
            .queue_url(queue_url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(())
    }

    /// A records table: `pk`/`sk` string keys, on-demand billing, encryption at rest with
    /// the AWS-managed KMS key, TTL on `expires_at`. Waits until the table is active.
    pub async fn create_table(&self, name: &str) -> Result<(), PortError> {
        self.create_table_with(name, true).await
    }

    /// A records table as DynamoDB makes it by default: no KMS encryption, no TTL (for the
    /// tests of `fleet doctor`'s failures).
    pub async fn create_plain_table(&self, name: &str) -> Result<(), PortError> {
        self.create_table_with(name, false).await
    }

    async fn create_table_with(&self, name: &str, protected: bool) -> Result<(), PortError> {
        const OP: &str = "dynamodb.CreateTable";
        let key = |n: &str, t: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(t)
                .build()
                .map_err(|_| PortError::invalid(OP, "incomplete key schema"))
        };
        let def = |n: &str| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|_| PortError::invalid(OP, "incomplete attribute definition"))
        };
        self.dynamodb
            .create_table()
            .table_name(name)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .attribute_definitions(def("pk")?)
            .attribute_definitions(def("sk")?)
            .billing_mode(BillingMode::PayPerRequest)
            .set_sse_specification(
                protected.then(|| SseSpecification::builder().enabled(true).build()),
            )
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        self.wait_table_active(name).await?;
        if !protected {
            return Ok(());
        }
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name("expires_at")
            .build()
            .map_err(|_| PortError::invalid("dynamodb.UpdateTimeToLive", "incomplete TTL"))?;
        self.dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| classify("dynamodb.UpdateTimeToLive", &e))?;
        Ok(())
    }

    async fn wait_table_active(&self, name: &str) -> Result<(), PortError> {
        const OP: &str = "dynamodb.DescribeTable";
        for _ in 0..300 {
            let out = self
                .dynamodb
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| classify(OP, &e))?;
            if out.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(PortError::transient(
            OP,
            "table did not become active within 5 minutes",
        ))
    }

    pub async fn delete_table(&self, name: &str) -> Result<(), PortError> {
        const OP: &str = "dynamodb.DeleteTable";
        self.dynamodb
            .delete_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(())
    }

    /// A bucket with default SSE-KMS encryption (`kms_key_id`, or the `aws/s3` key).
    pub async fn create_bucket(
        &self,
        name: &str,
        kms_key_id: Option<&str>,
    ) -> Result<(), PortError> {
        const OP: &str = "s3.CreateBucket";
        let region = self.s3.config().region().map(|r| r.as_ref().to_string());
        let mut req = self.s3.create_bucket().bucket(name);
        // us-east-1 is the one region that rejects an explicit location constraint.
        if let Some(region) = region.filter(|r| r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region.as_str()))
                    .build(),
            );
        }
        req.send().await.map_err(|e| classify(OP, &e))?;
        let default = ServerSideEncryptionByDefault::builder()
            .sse_algorithm(ServerSideEncryption::AwsKms)
            .set_kms_master_key_id(kms_key_id.map(str::to_string))
            .build()
            .map_err(|_| PortError::invalid("s3.PutBucketEncryption", "incomplete rule"))?;
        let config = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default)
                    .bucket_key_enabled(true)
                    .build(),
            )
            .build()
            .map_err(|_| {
                PortError::invalid("s3.PutBucketEncryption", "incomplete configuration")
            })?;
        self.s3
            .put_bucket_encryption()
            .bucket(name)
            .server_side_encryption_configuration(config)
            .send()
            .await
            .map_err(|e| classify("s3.PutBucketEncryption", &e))?;
        Ok(())
    }

    /// Send the bucket's object-created notifications to a queue (S3 → SQS directly). S3
    /// then posts an `s3:TestEvent` to the queue, as it does on AWS.
    pub async fn notify_queue_on_create(
        &self,
        bucket: &str,
        queue_arn: &str,
    ) -> Result<(), PortError> {
        const OP: &str = "s3.PutBucketNotificationConfiguration";
        let target = QueueConfiguration::builder()
            .id("fleet-doc-pipeline")
            .queue_arn(queue_arn)
            .events(Event::from("s3:ObjectCreated:*"))
            .build()
            .map_err(|_| PortError::invalid(OP, "incomplete queue configuration"))?;
        self.s3
            .put_bucket_notification_configuration()
            .bucket(bucket)
            .notification_configuration(
                NotificationConfiguration::builder()
                    .queue_configurations(target)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(())
    }

    /// Delete one object (tests: a document removed before the worker reads it).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), PortError> {
        self.s3
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("s3.DeleteObject", &e))?;
        Ok(())
    }

    /// An SNS topic (idempotent, like CreateTopic); returns its ARN.
    pub async fn create_topic(&self, name: &str) -> Result<String, PortError> {
        const OP: &str = "sns.CreateTopic";
        let out = self
            .sns
            .create_topic()
            .name(name)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        out.topic_arn()
            .map(str::to_string)
            .ok_or_else(|| PortError::transient(OP, "response without a topic ARN"))
    }

    pub async fn delete_topic(&self, arn: &str) -> Result<(), PortError> {
        const OP: &str = "sns.DeleteTopic";
        self.sns
            .delete_topic()
            .topic_arn(arn)
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(())
    }

    /// Subscribe a queue to a topic (SNS → SQS) and let that topic send to the queue. With
    /// `raw`, the queue gets the message itself instead of SNS's JSON notification envelope.
    /// Returns the subscription ARN.
    pub async fn subscribe_queue(
        &self,
        topic_arn: &str,
        queue_url: &str,
        raw: bool,
    ) -> Result<String, PortError> {
        const OP: &str = "sns.Subscribe";
        let queue_arn = self.queue_arn(queue_url).await?;
        self.allow_topic_to_send(queue_url, &queue_arn, topic_arn)
            .await?;
        let mut req = self
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .return_subscription_arn(true);
        if raw {
            req = req.attributes("RawMessageDelivery", "true");
        }
        let out = req.send().await.map_err(|e| classify(OP, &e))?;
        out.subscription_arn()
            .map(str::to_string)
            .ok_or_else(|| PortError::transient(OP, "response without a subscription ARN"))
    }

    async fn allow_topic_to_send(
        &self,
        queue_url: &str,
        queue_arn: &str,
        topic_arn: &str,
    ) -> Result<(), PortError> {
        let topic_name = topic_arn.rsplit(':').next().unwrap_or("topic");
        let sid = format!("sns-{topic_name}");
        self.allow_service_to_send(queue_url, queue_arn, &sid, "sns.amazonaws.com", topic_arn)
            .await
    }

    /// The settings `fleet doctor` requires of a bucket beyond encryption: all four public
    /// access blocks, and a policy denying every request made without TLS.
    pub async fn harden_bucket(&self, name: &str) -> Result<(), PortError> {
        let block = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        self.s3
            .put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(block)
            .send()
            .await
            .map_err(|e| classify("s3.PutPublicAccessBlock", &e))?;
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [format!("arn:aws:s3:::{name}"), format!("arn:aws:s3:::{name}/*")],
                "Condition": { "Bool": { "aws:SecureTransport": "false" } }
            }]
        });
        self.s3
            .put_bucket_policy()
            .bucket(name)
            .policy(policy.to_string())
            .send()
            .await
            .map_err(|e| classify("s3.PutBucketPolicy", &e))?;
        Ok(())
    }

    /// Point-in-time recovery on a table.
    pub async fn enable_pitr(&self, table: &str) -> Result<(), PortError> {
        let spec = aws_sdk_dynamodb::types::PointInTimeRecoverySpecification::builder()
            .point_in_time_recovery_enabled(true)
            .build()
            .map_err(|_| PortError::invalid("dynamodb.UpdateContinuousBackups", "incomplete"))?;
        self.dynamodb
            .update_continuous_backups()
            .table_name(table)
            .point_in_time_recovery_specification(spec)
            .send()
            .await
            .map_err(|e| classify("dynamodb.UpdateContinuousBackups", &e))?;
        Ok(())
    }

    /// Encrypt a topic with a KMS key.
    pub async fn encrypt_topic(&self, arn: &str, key_id: &str) -> Result<(), PortError> {
        self.sns
            .set_topic_attributes()
            .topic_arn(arn)
            .attribute_name("KmsMasterKeyId")
            .attribute_value(key_id)
            .send()
            .await
            .map_err(|e| classify("sns.SetTopicAttributes", &e))?;
        Ok(())
    }

    /// A CloudWatch alarm on an SQS metric of one queue (`QueueName` dimension), Maximum over
    /// 60 s, `GreaterThanThreshold`, notifying `action_arn`.
    pub async fn put_queue_alarm(
        &self,
        alarm: &str,
        queue_name: &str,
        metric: &str,
        threshold: f64,
        action_arn: &str,
    ) -> Result<(), PortError> {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
        self.cloudwatch
            .put_metric_alarm()
            .alarm_name(alarm)
            .namespace("AWS/SQS")
            .metric_name(metric)
            .dimensions(
                Dimension::builder()
                    .name("QueueName")
                    .value(queue_name)
                    .build(),
            )
            .statistic(Statistic::Maximum)
            .period(60)
            .evaluation_periods(1)
            .threshold(threshold)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .alarm_actions(action_arn)
            .send()
            .await
            .map_err(|e| classify("cloudwatch.PutMetricAlarm", &e))?;
        Ok(())
    }
}

/// `backend.provisioner()`, as the backend offered it before provisioning moved here.
pub trait ProvisionExt {
    fn provisioner(&self) -> Provisioner;
}

impl ProvisionExt for AwsBackend {
    fn provisioner(&self) -> Provisioner {
        Provisioner::new(self)
    }
}
