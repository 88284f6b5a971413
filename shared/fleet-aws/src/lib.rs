//! AWS backend: the fleet's ports on the official AWS SDK — SQS queues, EventBridge buses,
//! DynamoDB tables and S3 buckets — and the
//! document ports: OCR on Textract ([`TextractOcr`]) and medical entities on Comprehend Medical
//! ([`ComprehendMedicalExtractor`]), and notifications on SNS ([`SnsNotifier`]).
//!
//! This is the only crate that depends on `aws-sdk-*`. It honours the standard configuration
//! chain (profiles, SSO, container roles, region, `AWS_ENDPOINT_URL` and its per-service
//! variants), classifies every SDK error once into [`fleet_core::ErrorKind`], and counts every
//! HTTP attempt in [`fleet_core::requests`] under "<service>.<Operation>".

use std::sync::Arc;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use fleet_core::{Backend, EventBus, MessageQueue, Notifier, ObjectStore, PortError, RecordStore};

pub mod comprehend_medical;
mod count;
mod doc_service;
pub mod dynamo;
pub mod error;
pub mod events;
pub mod inspect;
mod queue_age;
pub mod s3;
pub mod sns;
pub mod sqs;
pub mod textract;

pub use comprehend_medical::ComprehendMedicalExtractor;
pub use dynamo::DynamoTable;
pub use error::{classify, classify_code};
pub use events::EventBridgeBus;
pub use s3::S3Bucket;
pub use sns::SnsNotifier;
pub use sqs::{SqsQueue, parse_queue_arn};
pub use textract::{InCallRetry, TextractConfig, TextractOcr};

use count::CountRequests;

/// The `aws` backend: one SDK client per service, shared by every port it hands out.
/// The SDK clients of an [`AwsBackend`].
#[derive(Debug, Clone)]
pub struct SdkClients {
    pub sqs: aws_sdk_sqs::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub s3: aws_sdk_s3::Client,
    pub kms: aws_sdk_kms::Client,
    pub sns: aws_sdk_sns::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

#[derive(Debug, Clone)]
pub struct AwsBackend {
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    s3: aws_sdk_s3::Client,
    kms: aws_sdk_kms::Client,
    sts: aws_sdk_sts::Client,
    sns: aws_sdk_sns::Client,
    /// Read only by `fleet doctor` ([`inspect::Inspector`]) and the test kit.
    cloudwatch: aws_sdk_cloudwatch::Client,
    /// Key for SSE-KMS on S3 puts; `None` uses the account's `aws/s3` key.
    kms_key: Option<String>,
    /// Each service client's endpoint override as the SDK resolves it (`None`: AWS itself).
    endpoints: Vec<(&'static str, Option<String>)>,
}

impl AwsBackend {
    /// Configuration from the standard chain: environment, profiles, SSO, container and
    /// instance roles; endpoint overrides from `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`.
    pub async fn from_env() -> AwsBackend {
        let cfg = aws_config::defaults(BehaviorVersion::latest()).load().await;
        // Virtual-hosted bucket addressing needs DNS for "<bucket>.<host>", which local
        // protocol servers (moto, LocalStack on 127.0.0.1) do not have.
        let path_style = cfg.endpoint_url().is_some()
            || fleet_core::env::is_set(fleet_core::env::AWS_ENDPOINT_URL_S3);
        Self::from_sdk_config(&cfg, path_style)
    }

    /// For a local protocol server (moto, LocalStack): every service at `url`, fixed dummy
    /// credentials, path-style S3 addressing.
    pub async fn with_endpoint(url: &str, region: &str) -> AwsBackend {
        let cfg = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(url)
            .region(Region::new(region.to_string()))
            .test_credentials()
            .load()
            .await;
        Self::from_sdk_config(&cfg, true)
    }

    /// The KMS key S3 puts are encrypted with (SSE-KMS is always requested; `None` means the
    /// AWS-managed `aws/s3` key).
    pub fn with_kms_key(mut self, key_id: Option<String>) -> Self {
        self.kms_key = key_id;
        self
    }

    fn from_sdk_config(cfg: &SdkConfig, s3_path_style: bool) -> Self {
        let sqs = aws_sdk_sqs::config::Builder::from(cfg)
            .interceptor(CountRequests { service: "sqs" })
            .build();
        let events = aws_sdk_eventbridge::config::Builder::from(cfg)
            .interceptor(CountRequests { service: "events" })
            .build();
        let dynamodb = aws_sdk_dynamodb::config::Builder::from(cfg)
            .interceptor(CountRequests {
                service: "dynamodb",
            })
            .build();
        let s3 = aws_sdk_s3::config::Builder::from(cfg)
            .interceptor(CountRequests { service: "s3" })
            .force_path_style(s3_path_style)
            .build();
        let kms = aws_sdk_kms::config::Builder::from(cfg)
            .interceptor(CountRequests { service: "kms" })
            .build();
        let sts = aws_sdk_sts::config::Builder::from(cfg)
            .interceptor(CountRequests { service: "sts" })
            .build();
        let sns = aws_sdk_sns::config::Builder::from(cfg)
            .interceptor(CountRequests { service: "sns" })
            .build();
        let cloudwatch = aws_sdk_cloudwatch::config::Builder::from(cfg)
            .interceptor(CountRequests {
                service: "cloudwatch",
            })
            .build();
        Self {
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(cloudwatch),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            sts: aws_sdk_sts::Client::from_conf(sts),
            sns: aws_sdk_sns::Client::from_conf(sns),
            events: aws_sdk_eventbridge::Client::from_conf(events),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            s3: aws_sdk_s3::Client::from_conf(s3),
            kms: aws_sdk_kms::Client::from_conf(kms),
            kms_key: None,
            endpoints: endpoint_overrides(cfg),
        }
    }

    /// The SDK clients behind this backend (each with the request-counting interceptor), for
    /// the test kit's provisioning: creating resources is not a port operation.
    pub fn sdk_clients(&self) -> SdkClients {
        SdkClients {
            sqs: self.sqs.clone(),
            events: self.events.clone(),
            dynamodb: self.dynamodb.clone(),
            s3: self.s3.clone(),
            kms: self.kms.clone(),
            sns: self.sns.clone(),
            cloudwatch: self.cloudwatch.clone(),
        }
    }

    /// Read-only descriptions of resources, for `fleet doctor`.
    pub fn inspector(&self) -> inspect::Inspector {
        inspect::Inspector {
            sqs: self.sqs.clone(),
            dynamodb: self.dynamodb.clone(),
            s3: self.s3.clone(),
            sns: self.sns.clone(),
            cloudwatch: self.cloudwatch.clone(),
        }
    }

    /// The concrete queue adapter (a URL needs no request).
    pub fn sqs_queue(&self, url: &str) -> SqsQueue {
        SqsQueue::new(self.sqs.clone(), url.to_string())
    }

    async fn queue_url(&self, name: &str, owner: Option<&str>) -> Result<String, PortError> {
        sqs::get_queue_url(&self.sqs, name, owner).await
    }
}

/// The service ids of the clients an [`AwsBackend`] builds, as the SDK names them in
/// `AWS_ENDPOINT_URL_<ID>` and in a profile's `services` section.
const SERVICE_IDS: [&str; 7] = ["SQS", "EventBridge", "DynamoDB", "S3", "KMS", "STS", "SNS"];

/// The endpoint override each service client gets from `cfg`, resolved as the SDK's
/// `Builder::from(&SdkConfig)` does: one set in code wins, else the service's own
/// (`AWS_ENDPOINT_URL_<SERVICE>`, profile `services`), else the global one
/// (`AWS_ENDPOINT_URL`, profile `endpoint_url`).
fn endpoint_overrides(cfg: &SdkConfig) -> Vec<(&'static str, Option<String>)> {
    let global = cfg.endpoint_url().map(str::to_string);
    SERVICE_IDS
        .iter()
        .map(|&id| {
            if cfg.get_origin("endpoint_url").is_client_config() {
                return (id, global.clone());
            }
            let own = cfg.service_config().and_then(|conf| {
                let key = aws_types::service_config::ServiceConfigKey::builder()
                    .service_id(id)
                    .env("AWS_ENDPOINT_URL")
                    .profile("endpoint_url")
                    .build()
                    .ok()?;
                conf.load_config(key)
            });
            (id, own.or_else(|| global.clone()))
        })
        .collect()
}

/// Whether `url`'s host is a loopback address: `localhost`, `127.0.0.0/8` or `::1`. A URL with
/// user information (`http://127.0.0.1@host`) or without an http(s) scheme is not.
pub fn is_loopback_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("http://")
        .or_else(|| lower.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return false;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, port)) if port.is_empty() || port.starts_with(':') => host,
            _ => return false,
        }
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

#[async_trait]
impl Backend for AwsBackend {
    fn kind(&self) -> &'static str {
        "aws"
    }

    async fn queue(&self, name_or_url: &str) -> Result<Arc<dyn MessageQueue>, PortError> {
        let url = if is_url(name_or_url) {
            name_or_url.to_string()
        } else {
            self.queue_url(name_or_url, None).await?
        };
        Ok(Arc::new(self.sqs_queue(&url)))
    }

    async fn queue_by_arn(&self, arn: &str) -> Result<Arc<dyn MessageQueue>, PortError> {
        let parsed = parse_queue_arn(arn)
            .ok_or_else(|| PortError::invalid("sqs.GetQueueUrl", "not an SQS queue ARN"))?;
        let url = self.queue_url(parsed.name, Some(parsed.account)).await?;
        Ok(Arc::new(self.sqs_queue(&url)))
    }

    fn event_bus(&self, name: &str) -> Arc<dyn EventBus> {
        Arc::new(EventBridgeBus::new(self.events.clone(), name.to_string()))
    }

    fn records(&self, table: &str) -> Arc<dyn RecordStore> {
        Arc::new(DynamoTable::new(self.dynamodb.clone(), table.to_string()))
    }

    fn objects(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(S3Bucket::new(
            self.s3.clone(),
            bucket.to_string(),
            self.kms_key.clone(),
        ))
    }

    fn notifier(&self) -> Arc<dyn Notifier> {
        Arc::new(SnsNotifier::new(self.sns.clone()))
    }

    async fn list_queues(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        const OP: &str = "sqs.ListQueues";
        let mut urls = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .sqs
                .list_queues()
                .max_results(1000)
                .set_queue_name_prefix((!prefix.is_empty()).then(|| prefix.to_string()))
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| classify(OP, &e))?;
            urls.extend(out.queue_urls().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        urls.sort();
        Ok(urls)
    }

    /// Only against a local protocol server: every service's endpoint overridden to a loopback
    /// address. Against AWS itself the queues must be encrypted; there is no override.
    fn unencrypted_override(&self) -> Result<(), String> {
        for (service, endpoint) in &self.endpoints {
            let to = match endpoint {
                Some(url) if is_loopback_url(url) => continue,
                Some(url) => format!("{service} goes to {url}, not a loopback address"),
                None => format!("{service} goes to AWS itself (no endpoint override)"),
            };
            return Err(format!(
                "FLEET_ALLOW_UNENCRYPTED (--allow-unencrypted) is for local protocol servers only: \
                 on the aws backend every endpoint must be overridden to a loopback address \
                 (AWS_ENDPOINT_URL=http://127.0.0.1:PORT for moto or LocalStack), but {to}. \
                 Against AWS, encrypt the queue and its dead-letter queue (SSE-SQS or SSE-KMS) \
                 and attach a redrive policy instead"
            ));
        }
        Ok(())
    }

    async fn caller_identity(&self) -> Result<String, PortError> {
        const OP: &str = "sts.GetCallerIdentity";
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        out.arn()
            .map(str::to_string)
            .ok_or_else(|| PortError::transient(OP, "response without an ARN"))
    }
}
