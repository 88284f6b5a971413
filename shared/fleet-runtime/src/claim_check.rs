//! The SQS Extended Client claim-check format, so Java and Python producers that offload large
//! bodies to S3 interoperate. Their body is
//! `["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k"}]`
//! and a size attribute (`ExtendedPayloadSize`, or `SQSLargePayloadSize` from older Java
//! clients) carries the payload length.
//!
//! The runtime resolves the pointer before the handler runs; the original (pointer) body is
//! what a dead-lettered message keeps, so a replay offloads nothing twice. The S3 object is not
//! deleted here: its lifetime is the producer's bucket lifecycle rule.
//!
//! A pointer is producer data, so what it may make the worker read is bounded (issue 16 item
//! 1): only buckets on the allow-list ([`ClaimCheckSource`], `FLEET_CLAIM_CHECK_BUCKETS`;
//! empty by default, so claim checks are refused until configured) are touched at all, the
//! object's size is asked for first (HEAD) and an object above the body limit is refused
//! without a GET, and the GET itself reads at most the limit plus one byte.

use std::collections::BTreeSet;
use std::sync::Arc;

use fleet_core::{
    Attributes, Backend, ErrorCode, ErrorKind, Failure, LimitedGet, ObjectStore, PortError,
};

pub const POINTER_CLASS: &str = "software.amazon.payloadoffloading.PayloadS3Pointer";
/// Attributes the extended clients set on offloaded messages.
pub const SIZE_ATTRIBUTES: [&str; 2] = ["ExtendedPayloadSize", "SQSLargePayloadSize"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Pointer {
    pub bucket: String,
    pub key: String,
}

/// What a body is, as far as claim checks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimCheck {
    /// An ordinary inline body.
    Inline,
    Pointer {
        pointer: S3Pointer,
        declared_size: Option<u64>,
    },
    /// Marked as offloaded (size attribute or pointer class) but not a usable pointer.
    Invalid(&'static str),
}

/// Classify a body. A message counts as offloaded when it carries a size attribute or its
/// body names the pointer class; either way the pointer must then be well formed.
pub fn detect(body: &str, attributes: &Attributes) -> ClaimCheck {
    let size_attr = SIZE_ATTRIBUTES
        .iter()
        .find_map(|name| attributes.get(*name));
    let looks_like_pointer = body.trim_start().starts_with('[') && body.contains(POINTER_CLASS);
    if size_attr.is_none() && !looks_like_pointer {
        return ClaimCheck::Inline;
    }
    let declared_size = size_attr
        .and_then(|v| v.as_str())
        .and_then(|s| s.trim().parse::<u64>().ok());
    match parse_pointer(body) {
        Ok(pointer) => ClaimCheck::Pointer {
            pointer,
            declared_size,
        },
        Err(why) => ClaimCheck::Invalid(why),
    }
}

fn parse_pointer(body: &str) -> Result<S3Pointer, &'static str> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|_| "claim-check body is not JSON")?;
    let items = value
        .as_array()
        .ok_or("claim-check body is not a JSON array")?;
    let [class, fields] = items.as_slice() else {
        return Err("claim-check array does not have two elements");
    };
    if class.as_str() != Some(POINTER_CLASS) {
        return Err("claim-check array does not name the S3 pointer class");
    }
    let field = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let bucket = field("s3BucketName").ok_or("claim-check pointer has no s3BucketName")?;
    let key = field("s3Key").ok_or("claim-check pointer has no s3Key")?;
    Ok(S3Pointer { bucket, key })
}

/// Where the runtime fetches claim-check objects: the backend, and the buckets a pointer may
/// name. A bucket outside the set is never asked for anything.
pub struct ClaimCheckSource {
    backend: Arc<dyn Backend>,
    buckets: BTreeSet<String>,
}

impl ClaimCheckSource {
    /// `buckets` is the allow-list (names; blanks are ignored). Empty: every claim check is
    /// refused with `CLAIM_CHECK_BUCKET_NOT_ALLOWED`.
    pub fn new<S: AsRef<str>>(
        backend: Arc<dyn Backend>,
        buckets: impl IntoIterator<Item = S>,
    ) -> Self {
        let buckets = buckets
            .into_iter()
            .map(|b| b.as_ref().trim().to_string())
            .filter(|b| !b.is_empty())
            .collect();
        Self { backend, buckets }
    }

    /// Whether a pointer may name `bucket` (exact, case-sensitive: S3 bucket names are).
    pub fn allows(&self, bucket: &str) -> bool {
        self.buckets.contains(bucket)
    }

    fn objects(&self, bucket: &str) -> Option<Arc<dyn ObjectStore>> {
        self.allows(bucket).then(|| self.backend.objects(bucket))
    }
}

/// The body the handler sees: inline bodies as they are, pointers fetched, both bounded by
/// `max_body_bytes`. A body that cannot be handed to the handler is a [`Failure`]; details
/// are fixed strings or port-error words: bucket and key names are not logged.
///
/// A pointer is checked in this order, each step before any request the next one makes: the
/// bucket against the allow-list (`CLAIM_CHECK_BUCKET_NOT_ALLOWED`, no request), the declared
/// size attribute (`BODY_TOO_LARGE`, no request), HEAD (`CLAIM_CHECK_TOO_LARGE` above the
/// limit, no GET), then a GET that reads at most `max_body_bytes + 1` bytes
/// (`CLAIM_CHECK_TOO_LARGE` if the object grew in between).
pub async fn resolve(
    body: &str,
    attributes: &Attributes,
    source: &ClaimCheckSource,
    max_body_bytes: usize,
) -> Result<Option<String>, Failure> {
    let too_large = || Failure::permanent(ErrorCode::BodyTooLarge, "body exceeds max_body_bytes");
    match detect(body, attributes) {
        ClaimCheck::Inline => {
            if body.len() > max_body_bytes {
                return Err(too_large());
            }
            Ok(None)
        }
        ClaimCheck::Invalid(detail) => {
            Err(Failure::permanent(ErrorCode::ClaimCheckInvalid, detail))
        }
        ClaimCheck::Pointer {
            pointer,
            declared_size,
        } => {
            let Some(store) = source.objects(&pointer.bucket) else {
                return Err(Failure::permanent(
                    ErrorCode::ClaimCheckBucketNotAllowed,
                    "the pointer names a bucket outside the claim-check allow-list (FLEET_CLAIM_CHECK_BUCKETS); nothing was read",
                ));
            };
            // Refuse a declared-too-large payload without asking the store.
            if declared_size.is_some_and(|n| n > max_body_bytes as u64) {
                return Err(too_large());
            }
            let object_too_large = || {
                Failure::permanent(
                    ErrorCode::ClaimCheckTooLarge,
                    format!(
                        "claim-check object above the body limit of {max_body_bytes} bytes; not read"
                    ),
                )
            };
            let not_found =
                || Failure::permanent(ErrorCode::ClaimCheckInvalid, "claim-check object not found");
            let meta = store
                .head(&pointer.key)
                .await
                .map_err(fetch_failure)?
                .ok_or_else(not_found)?;
            if meta.size > max_body_bytes as u64 {
                return Err(object_too_large());
            }
            let bytes = match store
                .get_limited(&pointer.key, max_body_bytes as u64)
                .await
                .map_err(fetch_failure)?
            {
                None => return Err(not_found()),
                Some(LimitedGet::TooLarge) => return Err(object_too_large()),
                Some(LimitedGet::Read(bytes, _meta)) => bytes,
            };
            String::from_utf8(bytes).map(Some).map_err(|_| {
                Failure::permanent(ErrorCode::BodyEncoding, "claim-check object is not UTF-8")
            })
        }
    }
}

/// A failed pointer fetch: the fleet's mapping, with one documented override. The bucket and
/// key come from the message, not from this deployment's configuration, so a bucket that does
/// not exist or a request S3 refuses as invalid is the message's defect
/// (`CLAIM_CHECK_INVALID`), not an outage to wait out. Throttling, outages and a denied
/// permission (our IAM or KMS policy) retry as everywhere else.
fn fetch_failure(e: PortError) -> Failure {
    match e.kind {
        ErrorKind::NotFound | ErrorKind::Invalid => Failure::permanent(
            ErrorCode::ClaimCheckInvalid,
            "claim-check bucket not found or request invalid",
        ),
        _ => Failure::from_port(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_core::AttributeValue;

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), AttributeValue::number(v)))
            .collect()
    }

    fn check(body: &str, attributes: &Attributes, expected: ClaimCheck) {
        assert_eq!(detect(body, attributes), expected, "body: {body}");
    }

    fn ptr(bucket: &str, key: &str) -> S3Pointer {
        S3Pointer {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    #[test]
    fn detects_pointers_and_their_defects() {
        let none = Attributes::new();
        let sized = attrs(&[("ExtendedPayloadSize", "300000")]);
        let legacy = attrs(&[("SQSLargePayloadSize", "12")]);
        let good = r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k/1"}]"#;
        check("MSH|^~\\&|A", &none, ClaimCheck::Inline);
        check("[1,2]", &none, ClaimCheck::Inline);
        check(
            good,
            &sized,
            ClaimCheck::Pointer {
                pointer: ptr("b", "k/1"),
                declared_size: Some(300000),
            },
        );
        check(
            good,
            &legacy,
            ClaimCheck::Pointer {
                pointer: ptr("b", "k/1"),
                declared_size: Some(12),
            },
        );
        // No size attribute (lost on the way): the class name alone marks it.
        check(
            good,
            &none,
            ClaimCheck::Pointer {
                pointer: ptr("b", "k/1"),
                declared_size: None,
            },
        );
        check(
            "MSH|^~\\&|A",
            &sized,
            ClaimCheck::Invalid("claim-check body is not JSON"),
        );
        check(
            "{}",
            &sized,
            ClaimCheck::Invalid("claim-check body is not a JSON array"),
        );
        check(
            r#"["x"]"#,
            &sized,
            ClaimCheck::Invalid("claim-check array does not have two elements"),
        );
        check(
            r#"["x",{}]"#,
            &sized,
            ClaimCheck::Invalid("claim-check array does not name the S3 pointer class"),
        );
        check(
            r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3Key":"k"}]"#,
            &none,
            ClaimCheck::Invalid("claim-check pointer has no s3BucketName"),
        );
        check(
            r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":""}]"#,
            &none,
            ClaimCheck::Invalid("claim-check pointer has no s3Key"),
        );
        check(
            r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k"}"#,
            &none,
            ClaimCheck::Invalid("claim-check body is not JSON"),
        );
    }

    #[test]
    fn a_non_numeric_size_attribute_is_ignored_not_fatal() {
        let a: Attributes = [(
            "ExtendedPayloadSize".to_string(),
            AttributeValue::string("lots"),
        )]
        .into();
        let good = r#"["software.amazon.payloadoffloading.PayloadS3Pointer",{"s3BucketName":"b","s3Key":"k"}]"#;
        assert_eq!(
            detect(good, &a),
            ClaimCheck::Pointer {
                pointer: ptr("b", "k"),
                declared_size: None
            }
        );
    }

    #[test]
    fn the_allow_list_matches_whole_names_and_ignores_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let local =
            fleet_local::LocalBackend::open(&dir.path().join("db"), &dir.path().join("o")).unwrap();
        let backend: Arc<dyn Backend> = Arc::new(local);
        let source = ClaimCheckSource::new(backend.clone(), [" offload ", "", "b"]);
        assert!(source.allows("offload") && source.allows("b"));
        for other in ["", "Offload", "offload2", "offloa", "c"] {
            assert!(!source.allows(other), "{other:?}");
        }
        let none = ClaimCheckSource::new(backend, Vec::<String>::new());
        assert!(!none.allows("offload"));
    }

    #[test]
    fn a_failed_fetch_uses_the_fleet_mapping_but_blames_a_bad_pointer() {
        use fleet_core::ErrorKind::*;
        for kind in [Throttled, Transient, AccessDenied, Other] {
            let e = PortError::new(kind, "s3.GetObject", "x");
            assert_eq!(fetch_failure(e.clone()), Failure::from_port(&e), "{kind:?}");
        }
        for kind in [NotFound, Invalid] {
            let f = fetch_failure(PortError::new(kind, "s3.GetObject", "x"));
            assert_eq!(f.code(), Some(ErrorCode::ClaimCheckInvalid), "{kind:?}");
        }
    }
}
