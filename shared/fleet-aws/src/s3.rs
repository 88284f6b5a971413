//! [`ObjectStore`] on S3, with SSE-KMS on every put.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use fleet_core::{LimitedGet, ObjectMeta, ObjectStore, PortError};

use crate::error::classify;

/// One S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    client: Client,
    bucket: String,
    /// KMS key for SSE-KMS; `None` uses the account's `aws/s3` key.
    kms_key: Option<String>,
}

impl S3Bucket {
    pub(crate) fn new(client: Client, bucket: String, kms_key: Option<String>) -> Self {
        Self {
            client,
            bucket,
            kms_key,
        }
    }
}

impl S3Bucket {
    /// GetObject up to its headers: the body is still unread. `None` when the key does not
    /// exist.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<Option<(GetObjectOutput, ObjectMeta)>, PortError> {
        const OP: &str = "s3.GetObject";
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e)
                if e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
                    && e.as_service_error().is_some_and(|s| {
                        aws_sdk_s3::error::ProvideErrorMetadata::code(s) != Some("NoSuchBucket")
                    }) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify(OP, &e)),
        };
        let meta = ObjectMeta {
            size: size(out.content_length()),
            content_type: out.content_type().map(str::to_string),
            etag: out.e_tag().map(str::to_string),
            version_id: out.version_id().map(str::to_string),
        };
        Ok(Some((out, meta)))
    }
}

fn size(len: Option<i64>) -> u64 {
    len.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

#[async_trait]
impl ObjectStore for S3Bucket {
    fn id(&self) -> &str {
        &self.bucket
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, ObjectMeta)>, PortError> {
        const OP: &str = "s3.GetObject";
        let Some((out, meta)) = self.get_object(key).await? else {
            return Ok(None);
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|_| PortError::transient(OP, "object body could not be read"))?
            .into_bytes()
            .to_vec();
        let meta = ObjectMeta {
            size: bytes.len() as u64,
            ..meta
        };
        Ok(Some((bytes, meta)))
    }

    async fn get_limited(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<LimitedGet>, PortError> {
        const OP: &str = "s3.GetObject";
        let Some((mut out, meta)) = self.get_object(key).await? else {
            return Ok(None);
        };
        // The stored size already says too much: the body is dropped unread (the connection
        // is closed, not drained).
        if out
            .content_length()
            .and_then(|n| u64::try_from(n).ok())
            .is_some_and(|n| n > max_bytes)
        {
            return Ok(Some(LimitedGet::TooLarge));
        }
        // Read chunk by chunk and stop past the limit, whatever the length header said.
        let mut bytes = Vec::new();
        while let Some(chunk) = out.body.next().await {
            let chunk =
                chunk.map_err(|_| PortError::transient(OP, "object body could not be read"))?;
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Ok(Some(LimitedGet::TooLarge));
            }
            bytes.extend_from_slice(&chunk);
        }
        let meta = ObjectMeta {
            size: bytes.len() as u64,
            ..meta
        };
        Ok(Some(LimitedGet::Read(bytes, meta)))
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, PortError> {
        const OP: &str = "s3.HeadObject";
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                size: size(out.content_length()),
                content_type: out.content_type().map(str::to_string),
                etag: out.e_tag().map(str::to_string),
                version_id: out.version_id().map(str::to_string),
            })),
            // HEAD responses have no body, so a missing key is a bare 404 ("NotFound"); a
            // missing bucket looks the same, which callers then see as a missing object.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(classify(OP, &e)),
        }
    }

    async fn put(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<ObjectMeta, PortError> {
        const OP: &str = "s3.PutObject";
        let len = bytes.len() as u64;
        let out = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .set_ssekms_key_id(self.kms_key.clone())
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| classify(OP, &e))?;
        Ok(ObjectMeta {
            size: len,
            content_type: Some(content_type.to_string()),
            etag: out.e_tag().map(str::to_string),
            version_id: out.version_id().map(str::to_string),
        })
    }
}
