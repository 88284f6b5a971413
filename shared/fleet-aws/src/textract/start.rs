//! Starting an asynchronous job (PDF, TIFF): `StartDocumentTextDetection` with the SNS
//! completion channel and the caller's token as `ClientRequestToken` and `JobTag`.

use aws_sdk_textract::types::{DocumentLocation, NotificationChannel};
use fleet_core::ErrorCode;
use fleet_docs::{DocError, Document};

use super::errors::{classify_sdk, start_code};
use super::{OP_START, TextractOcr, no_sdk_retries, s3_object};

impl TextractOcr {
    pub(super) async fn start_job(
        &self,
        document: &Document,
        token: &str,
    ) -> Result<String, DocError> {
        let Some(loc) = &document.location else {
            return Err(DocError::permanent(
                ErrorCode::OcrFailed,
                format!("{OP_START}: a multi-page document needs an S3 location"),
            ));
        };
        let channel = self.notification_channel()?;
        if !valid_token(token) {
            return Err(DocError::permanent(
                ErrorCode::OcrFailed,
                format!("{OP_START}: the token must be 1 to 64 characters of [A-Za-z0-9_-]"),
            ));
        }
        let location = DocumentLocation::builder()
            .s3_object(s3_object(loc))
            .build();
        let out = self
            .retry
            .run(|| async {
                self.client
                    .start_document_text_detection()
                    .document_location(location.clone())
                    .client_request_token(token)
                    .job_tag(token)
                    .notification_channel(channel.clone())
                    .customize()
                    .config_override(no_sdk_retries())
                    .send()
                    .await
                    .map_err(|e| classify_sdk(OP_START, &e, start_code))
            })
            .await?;
        match out.job_id() {
            Some(id) if !id.is_empty() => Ok(id.to_string()),
            // The token makes a second start return the same job.
            _ => Err(DocError::retryable(
                "transient",
                format!("{OP_START}: response without a JobId"),
            )),
        }
    }

    fn notification_channel(&self) -> Result<NotificationChannel, DocError> {
        let missing: Vec<&str> = [
            ("sns_topic_arn", self.cfg.sns_topic_arn.as_deref()),
            ("role_arn", self.cfg.role_arn.as_deref()),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_none_or(|v| v.trim().is_empty()))
        .map(|(name, _)| name)
        .collect();
        if !missing.is_empty() {
            return Err(DocError::permanent(
                ErrorCode::OcrFailed,
                format!(
                    "{OP_START}: configuration error: TextractConfig.{} not set; asynchronous \
                     Textract needs an SNS topic and a role Textract may publish to it with",
                    missing.join(" and TextractConfig.")
                ),
            ));
        }
        NotificationChannel::builder()
            .set_sns_topic_arn(self.cfg.sns_topic_arn.clone())
            .set_role_arn(self.cfg.role_arn.clone())
            .build()
            .map_err(|_| {
                DocError::permanent(
                    ErrorCode::OcrFailed,
                    format!("{OP_START}: configuration error: notification channel incomplete"),
                )
            })
    }
}

/// `ClientRequestToken`'s pattern in the API reference (`^[a-zA-Z0-9-_]+$`, 1 to 64), which
/// also satisfies `JobTag`'s.
fn valid_token(token: &str) -> bool {
    (1..=64).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_follow_the_client_request_token_pattern() {
        assert!(valid_token("doc-v1_abc"));
        assert!(!valid_token(""));
        assert!(!valid_token("a b"));
        assert!(!valid_token(&"a".repeat(65)));
    }
}
