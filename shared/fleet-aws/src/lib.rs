//! AWS backend: SQS, EventBridge, DynamoDB and S3 adapters on the official SDK.
