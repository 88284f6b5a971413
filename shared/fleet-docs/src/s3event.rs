//! Turns the body of a document-queue SQS message into the S3 objects the document worker must
//! process. Three envelopes reach that queue in real deployments: S3 writing to SQS directly
//! (`{"Records":[...]}`, also what SNS raw delivery produces), S3 → SNS → SQS without raw
//! delivery (the S3 event is a JSON string in the SNS `Message`), and S3 → EventBridge → SQS
//! (`detail-type` "Object Created"). S3's `s3:TestEvent`, sent when a notification is
//! configured, is recognised so it can be acknowledged. Only created objects are work; other
//! events (removals, restores, tagging) come back as [`Notification::Ignored`].
//!
//! Object keys can name patients, so errors name fields and positions only, and
//! [`ObjectRef::key`] is a [`Phi`] that never formats. The body is read as a
//! `serde_json::Value` rather than through derived structs because serde's type errors quote
//! the offending value.

use fleet_core::ErrorCode;
use fleet_core::phi::Phi;
use serde_json::{Map, Value};

/// What one message body asks of the document worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// S3's `s3:TestEvent` (direct or through SNS): acknowledge and do nothing.
    TestEvent,
    /// Created objects to process, in record order. Records of other kinds in the same body
    /// are dropped: they need no work.
    Objects(Vec<ObjectRef>),
    /// Only events that are not object creations, by name (`ObjectRemoved:Delete`, or the
    /// EventBridge `detail-type` such as `Object Deleted`). Names that do not look like S3
    /// event names are replaced by `<invalid>` so a caller may log this list.
    Ignored { event_names: Vec<String> },
}

/// One created object, with the key already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    /// The real object key, as `GetObject` wants it.
    pub key: Phi<String>,
    pub size: Option<u64>,
    /// Without surrounding quotes.
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<String>,
    /// In the S3 notification vocabulary (`ObjectCreated:Put`, ...), also for EventBridge
    /// events, whose `reason` is mapped onto it.
    pub event_name: String,
    pub event_time: Option<String>,
}

impl ObjectRef {
    /// Bucket + key + object version (version id, else ETag), for conditional writes. Each
    /// part is length-prefixed and the version part tagged by its kind, so no two different
    /// (bucket, key, version) triples give the same string, whatever characters keys hold.
    ///
    /// A version id of `null` is what S3 gives every object written while versioning is
    /// suspended; it does not tell two uploads apart, so the ETag is used instead. The result
    /// contains the key: treat it as PHI (hash it before it reaches a log).
    pub fn idempotency_key(&self) -> String {
        let (tag, version) = match (self.version_id.as_deref(), self.etag.as_deref()) {
            (Some(v), _) if v != "null" => ('v', v),
            (_, Some(e)) => ('e', e),
            _ => ('-', ""),
        };
        let key = self.key.expose();
        format!(
            "s3:{}:{}{}:{}{}{}:{}",
            self.bucket.len(),
            self.bucket,
            key.len(),
            key,
            tag,
            version.len(),
            version
        )
    }
}

/// Which JSON text failed to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonPart {
    Body,
    SnsMessage,
}

impl std::fmt::Display for JsonPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JsonPart::Body => "body",
            JsonPart::SnsMessage => "SNS Message",
        })
    }
}

/// Why a body is not a usable notification. Messages name fields (`Records[1].s3.object.key`)
/// and byte positions, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3EventError {
    #[error("{part} is not JSON (line {line}, column {column})")]
    NotJson {
        part: JsonPart,
        line: usize,
        column: usize,
    },
    #[error("not an S3 event notification, an SNS notification or an EventBridge S3 event")]
    UnknownEnvelope,
    #[error("{field} does not name Amazon S3")]
    WrongSource { field: String },
    #[error("{field} is missing or not of the expected type")]
    MissingField { field: String },
    #[error("{field} has an invalid percent escape at byte {offset}")]
    BadPercentEncoding { field: String, offset: usize },
    #[error("{field} is not UTF-8 once percent-decoded")]
    KeyNotUtf8 { field: String },
}

impl S3EventError {
    pub fn code(&self) -> ErrorCode {
        match self {
            S3EventError::NotJson { .. }
            | S3EventError::UnknownEnvelope
            | S3EventError::WrongSource { .. }
            | S3EventError::MissingField { .. } => ErrorCode::S3EventInvalid,
            S3EventError::BadPercentEncoding { .. } | S3EventError::KeyNotUtf8 { .. } => {
                ErrorCode::S3KeyInvalid
            }
        }
    }
}

fn missing(field: impl Into<String>) -> S3EventError {
    S3EventError::MissingField {
        field: field.into(),
    }
}

/// Parses one SQS message body.
pub fn parse(body: &str) -> Result<Notification, S3EventError> {
    // Producers that write files through editors sometimes keep a BOM; JSON parsers refuse it.
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let obj = json_object(body, JsonPart::Body)?;
    if obj.get("Type").and_then(Value::as_str) == Some("Notification") {
        let message = obj
            .get("Message")
            .and_then(Value::as_str)
            .ok_or_else(|| missing("Message"))?;
        let inner = json_object(message, JsonPart::SnsMessage)?;
        return parse_payload(&inner);
    }
    parse_payload(&obj)
}

/// An `ObjectCreated:Put` notification for one object, exactly as S3 sends it to SQS (key
/// form-encoded: space as `+`, everything outside unreserved characters and `/` as `%XX`).
/// The local backend has no bucket notifications; its uploaders (the demo, tests) send this.
pub fn object_created_event(bucket: &str, key: &str, size: u64, etag: &str) -> String {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "local",
        "eventTime": "1970-01-01T00:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "local",
            "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": form_encode(key), "size": size, "eTag": etag},
        },
    }]})
    .to_string()
}

fn form_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn json_object(text: &str, part: JsonPart) -> Result<Map<String, Value>, S3EventError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(S3EventError::UnknownEnvelope),
        Err(e) => Err(S3EventError::NotJson {
            part,
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// The S3 payload proper, which SNS may have wrapped: records, the test event, or an
/// EventBridge event (SNS fan-out of EventBridge events is rare, but costs nothing to accept).
fn parse_payload(obj: &Map<String, Value>) -> Result<Notification, S3EventError> {
    if let Some(records) = obj.get("Records") {
        return parse_records(records);
    }
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    if obj.contains_key("detail-type") {
        return parse_eventbridge(obj);
    }
    Err(S3EventError::UnknownEnvelope)
}

fn parse_records(records: &Value) -> Result<Notification, S3EventError> {
    let records = records.as_array().ok_or_else(|| missing("Records"))?;
    if records.is_empty() {
        // S3 never sends an empty list; acknowledging one would hide a broken producer.
        return Err(missing("Records[0]"));
    }
    let mut objects = Vec::new();
    let mut ignored = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let at = |field: &str| format!("Records[{i}].{field}");
        let record = record
            .as_object()
            .ok_or_else(|| missing(format!("Records[{i}]")))?;
        let source = str_field(record, "eventSource").ok_or_else(|| missing(at("eventSource")))?;
        if source != "aws:s3" {
            return Err(S3EventError::WrongSource {
                field: at("eventSource"),
            });
        }
        let name = str_field(record, "eventName").ok_or_else(|| missing(at("eventName")))?;
        // Real S3 omits the `s3:` prefix here; some S3-compatible stores keep it.
        let name = name.strip_prefix("s3:").unwrap_or(name);
        if !name.starts_with("ObjectCreated:") {
            ignored.push(safe_event_name(name));
            continue;
        }
        let s3 = object_field(record, "s3").ok_or_else(|| missing(at("s3")))?;
        let bucket = object_field(s3, "bucket")
            .and_then(|b| str_field(b, "name"))
            .filter(|b| !b.is_empty())
            .ok_or_else(|| missing(at("s3.bucket.name")))?;
        let object = object_field(s3, "object").ok_or_else(|| missing(at("s3.object")))?;
        let key = decode_key(object, &at("s3.object.key"))?;
        objects.push(ObjectRef {
            bucket: bucket.to_owned(),
            key: Phi(key),
            size: size_field(object.get("size")),
            etag: etag_field(object),
            version_id: opt_string(object, "versionId"),
            sequencer: opt_string(object, "sequencer"),
            event_name: safe_event_name(name),
            event_time: opt_string(record, "eventTime"),
        });
    }
    if objects.is_empty() {
        Ok(Notification::Ignored {
            event_names: ignored,
        })
    } else {
        Ok(Notification::Objects(objects))
    }
}

/// EventBridge keys are decoded exactly like S3 notification keys. AWS's EventBridge message
/// structure page (docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html) does not say
/// either way; the libraries that read these events do decode: Powertools for AWS Lambda
/// (Python), `S3EventBridgeNotificationObject.key` returns `unquote_plus(self["key"])`, and
/// OpenSearch Data Prepper's `S3EventBridgeNotification.Object.getUrlDecodedKey` URL-decodes.
fn parse_eventbridge(obj: &Map<String, Value>) -> Result<Notification, S3EventError> {
    let source = str_field(obj, "source").ok_or_else(|| missing("source"))?;
    if source != "aws.s3" {
        return Err(S3EventError::WrongSource {
            field: "source".to_owned(),
        });
    }
    let detail_type = str_field(obj, "detail-type").ok_or_else(|| missing("detail-type"))?;
    if detail_type != "Object Created" {
        return Ok(Notification::Ignored {
            event_names: vec![safe_event_name(detail_type)],
        });
    }
    let detail = object_field(obj, "detail").ok_or_else(|| missing("detail"))?;
    let bucket = object_field(detail, "bucket")
        .and_then(|b| str_field(b, "name"))
        .filter(|b| !b.is_empty())
        .ok_or_else(|| missing("detail.bucket.name"))?;
    let object = object_field(detail, "object").ok_or_else(|| missing("detail.object"))?;
    let key = decode_key(object, "detail.object.key")?;
    let event_name = match str_field(detail, "reason") {
        Some("PutObject") => "ObjectCreated:Put",
        Some("POST Object") => "ObjectCreated:Post",
        Some("CopyObject") => "ObjectCreated:Copy",
        Some("CompleteMultipartUpload") => "ObjectCreated:CompleteMultipartUpload",
        _ => "ObjectCreated:*",
    };
    Ok(Notification::Objects(vec![ObjectRef {
        bucket: bucket.to_owned(),
        key: Phi(key),
        size: size_field(object.get("size")),
        etag: etag_field(object),
        version_id: opt_string(object, "version-id"),
        sequencer: opt_string(object, "sequencer"),
        event_name: event_name.to_owned(),
        // moto sends `time` as a number; only an ISO string is worth passing on.
        event_time: opt_string(obj, "time"),
    }]))
}

fn str_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    obj.get(name).and_then(Value::as_str)
}

fn object_field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    obj.get(name).and_then(Value::as_object)
}

/// Optional descriptive fields are taken when they have the documented type and left out
/// otherwise: the worker heads the object before reading it, so none of them is load-bearing.
fn opt_string(obj: &Map<String, Value>, name: &str) -> Option<String> {
    str_field(obj, name)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A number in real events; AWS's own documentation sample once showed it as a string.
fn size_field(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `eTag` in S3 notifications, `etag` in EventBridge events (moto sends `eTag` there too).
fn etag_field(object: &Map<String, Value>) -> Option<String> {
    let raw = str_field(object, "eTag").or_else(|| str_field(object, "etag"))?;
    let etag = raw.trim_matches('"');
    (!etag.is_empty()).then(|| etag.to_owned())
}

fn decode_key(object: &Map<String, Value>, field: &str) -> Result<String, S3EventError> {
    let raw = str_field(object, "key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| missing(field))?;
    form_decode(raw).map_err(|e| match e {
        DecodeError::BadEscape { offset } => S3EventError::BadPercentEncoding {
            field: field.to_owned(),
            offset,
        },
        DecodeError::NotUtf8 => S3EventError::KeyNotUtf8 {
            field: field.to_owned(),
        },
    })
}

#[derive(Debug, PartialEq, Eq)]
enum DecodeError {
    BadEscape { offset: usize },
    NotUtf8,
}

/// `application/x-www-form-urlencoded` decoding, which is what S3 applies to keys in events:
/// `+` is a space, `%XX` a byte, anything else itself. Written here because the
/// `percent-encoding` crate passes malformed escapes through silently and knows nothing of
/// `+`; a key decoded wrongly would fetch the wrong object or none.
fn form_decode(raw: &str) -> Result<String, DecodeError> {
    if !raw.contains(['+', '%']) {
        return Ok(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value);
                let lo = bytes.get(i + 2).copied().and_then(hex_value);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(DecodeError::BadEscape { offset: i });
                };
                out.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Event names are service tokens; anything else in that position is not, and may be text a
/// caller should not log.
fn safe_event_name(name: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'*' | b'_' | b'-' | b' '));
    if ok {
        name.to_owned()
    } else {
        "<invalid>".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PUT_SPACES_PLUS: &str = include_str!("../tests/fixtures/s3-put-spaces-plus.json");
    const PUT_MULTIBYTE: &str = include_str!("../tests/fixtures/s3-put-multibyte.json");
    const MULTIPLE: &str = include_str!("../tests/fixtures/s3-multiple-records.json");
    const REMOVED: &str = include_str!("../tests/fixtures/s3-removed.json");
    const TEST_EVENT: &str = include_str!("../tests/fixtures/s3-test-event.json");
    const SNS_PUT: &str = include_str!("../tests/fixtures/sns-s3-put.json");
    const SNS_TEST_EVENT: &str = include_str!("../tests/fixtures/sns-s3-test-event.json");
    const EB_CREATED: &str = include_str!("../tests/fixtures/eventbridge-object-created.json");
    const EB_DELETED: &str = include_str!("../tests/fixtures/eventbridge-object-deleted.json");

    fn check(body: &str, expected: Result<Notification, S3EventError>) {
        assert_eq!(parse(body), expected, "body: {body}");
    }

    fn spaces_plus_object() -> ObjectRef {
        ObjectRef {
            bucket: "clinic-docs-intake".into(),
            key: Phi("referrals/Jane Doe (scan) C++ notes.pdf".into()),
            size: Some(184_320),
            etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
            version_id: None,
            sequencer: Some("0055AED6DCD90281E5".into()),
            event_name: "ObjectCreated:Put".into(),
            event_time: Some("2025-03-04T10:15:30.123Z".into()),
        }
    }

    fn missing_field(field: &str) -> Result<Notification, S3EventError> {
        Err(S3EventError::MissingField {
            field: field.into(),
        })
    }

    #[test]
    fn built_events_parse_back_to_their_key() {
        for key in [
            "plain.pdf",
            "scan 1+2 (final).pdf",
            "dir/é 检查 🩺.png",
            "100%.txt",
        ] {
            let body = object_created_event("bkt", key, 7, "abc");
            if key != "plain.pdf" {
                // Form-encoded on the wire, as S3 sends it.
                assert!(!body.contains(key), "{key} not encoded");
            }
            match parse(&body).unwrap() {
                Notification::Objects(objs) => {
                    assert_eq!(objs.len(), 1);
                    assert_eq!(objs[0].key.expose(), key);
                    assert_eq!(objs[0].bucket, "bkt");
                    assert_eq!(objs[0].size, Some(7));
                    assert_eq!(objs[0].etag.as_deref(), Some("abc"));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn s3_direct_key_with_spaces_and_plus() {
        check(
            PUT_SPACES_PLUS,
            Ok(Notification::Objects(vec![spaces_plus_object()])),
        );
    }

    #[test]
    fn s3_direct_multibyte_key() {
        check(
            PUT_MULTIBYTE,
            Ok(Notification::Objects(vec![ObjectRef {
                bucket: "clinic-docs-intake".into(),
                key: Phi("referrals/échographie 检查 🩺.pdf".into()),
                size: Some(2048),
                etag: Some("0123456789abcdef0123456789abcdef".into()),
                version_id: None,
                sequencer: Some("0A1B2C3D4E5F678901".into()),
                event_name: "ObjectCreated:Post".into(),
                event_time: Some("2025-03-04T10:15:30.123Z".into()),
            }])),
        );
    }

    #[test]
    fn s3_direct_multiple_records_in_order() {
        check(
            MULTIPLE,
            Ok(Notification::Objects(vec![
                ObjectRef {
                    bucket: "clinic-docs-intake".into(),
                    key: Phi("scans/2025/03/ward-7/batch-001.tiff".into()),
                    size: Some(73_400_320),
                    etag: Some("4af981f98d22a0b9979da24b259e5e42-12".into()),
                    version_id: Some("uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G".into()),
                    sequencer: Some("0064D3901D00059242".into()),
                    event_name: "ObjectCreated:CompleteMultipartUpload".into(),
                    event_time: Some("2025-03-04T10:15:30.123Z".into()),
                },
                ObjectRef {
                    bucket: "clinic-docs-intake".into(),
                    key: Phi("scans/2025/03/ward-7/batch-002.tiff".into()),
                    size: Some(1024),
                    etag: Some("b1946ac92492d2347c6235b4d2611184".into()),
                    version_id: Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e".into()),
                    sequencer: Some("0064D3901D00059243".into()),
                    event_name: "ObjectCreated:Copy".into(),
                    event_time: Some("2025-03-04T10:15:31.456Z".into()),
                },
            ])),
        );
    }

    #[test]
    fn removal_is_ignored_by_name() {
        check(
            REMOVED,
            Ok(Notification::Ignored {
                event_names: vec!["ObjectRemoved:Delete".into()],
            }),
        );
    }

    #[test]
    fn test_event_direct_and_through_sns() {
        check(TEST_EVENT, Ok(Notification::TestEvent));
        check(SNS_TEST_EVENT, Ok(Notification::TestEvent));
    }

    #[test]
    fn sns_envelope_yields_the_inner_objects() {
        check(
            SNS_PUT,
            Ok(Notification::Objects(vec![spaces_plus_object()])),
        );
    }

    #[test]
    fn eventbridge_object_created() {
        check(
            EB_CREATED,
            Ok(Notification::Objects(vec![ObjectRef {
                bucket: "clinic-docs-intake".into(),
                key: Phi("referrals/Jane Doe (scan).pdf".into()),
                size: Some(5),
                etag: Some("b1946ac92492d2347c6235b4d2611184".into()),
                version_id: Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e".into()),
                sequencer: Some("617f08299329d189".into()),
                event_name: "ObjectCreated:Put".into(),
                event_time: Some("2025-03-04T10:15:30Z".into()),
            }])),
        );
    }

    #[test]
    fn eventbridge_other_detail_types_are_ignored() {
        check(
            EB_DELETED,
            Ok(Notification::Ignored {
                event_names: vec!["Object Deleted".into()],
            }),
        );
    }

    /// Builds a one-record S3 body with the given eventName and object JSON.
    fn s3_body(event_name: &str, object: &str) -> String {
        format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"{event_name}","s3":{{"bucket":{{"name":"b"}},"object":{object}}}}}]}}"#
        )
    }

    fn eb_body(reason: &str, object: &str) -> String {
        format!(
            r#"{{"version":"0","detail-type":"Object Created","source":"aws.s3","time":12345,"detail":{{"bucket":{{"name":"b"}},"object":{object},"reason":"{reason}"}}}}"#
        )
    }

    fn minimal(key: &str, event_name: &str) -> ObjectRef {
        ObjectRef {
            bucket: "b".into(),
            key: Phi(key.into()),
            size: None,
            etag: None,
            version_id: None,
            sequencer: None,
            event_name: event_name.into(),
            event_time: None,
        }
    }

    #[test]
    fn field_variants() {
        let with = |f: fn(&mut ObjectRef)| {
            let mut o = minimal("k", "ObjectCreated:Put");
            f(&mut o);
            Ok(Notification::Objects(vec![o]))
        };
        let cases: Vec<(String, Result<Notification, S3EventError>)> = vec![
            (
                s3_body("ObjectCreated:Put", r#"{"key":"k","eTag":"\"abc\""}"#),
                with(|o| o.etag = Some("abc".into())),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"k","etag":"abc"}"#),
                with(|o| o.etag = Some("abc".into())),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"k","eTag":"\"\""}"#),
                with(|_| {}),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"k","size":"1024"}"#),
                with(|o| o.size = Some(1024)),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"k","size":-1}"#),
                with(|_| {}),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"k","versionId":null}"#),
                with(|_| {}),
            ),
            (
                s3_body("s3:ObjectCreated:Put", r#"{"key":"k"}"#),
                with(|_| {}),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"a%2Fb%2fc/d"}"#),
                Ok(Notification::Objects(vec![minimal(
                    "a/b/c/d",
                    "ObjectCreated:Put",
                )])),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"100%25+sure"}"#),
                Ok(Notification::Objects(vec![minimal(
                    "100% sure",
                    "ObjectCreated:Put",
                )])),
            ),
            (
                eb_body("CopyObject", r#"{"key":"k","eTag":"x"}"#),
                with(|o| {
                    o.event_name = "ObjectCreated:Copy".into();
                    o.etag = Some("x".into());
                }),
            ),
            (
                eb_body("POST Object", r#"{"key":"k"}"#),
                with(|o| o.event_name = "ObjectCreated:Post".into()),
            ),
            (
                eb_body("CompleteMultipartUpload", r#"{"key":"k"}"#),
                with(|o| o.event_name = "ObjectCreated:CompleteMultipartUpload".into()),
            ),
            (
                eb_body("SomethingNew", r#"{"key":"k"}"#),
                with(|o| o.event_name = "ObjectCreated:*".into()),
            ),
            (
                format!("\u{feff}{}", s3_body("ObjectCreated:Put", r#"{"key":"k"}"#)),
                with(|_| {}),
            ),
        ];
        for (body, expected) in cases {
            check(&body, expected);
        }
    }

    #[test]
    fn mixed_records_keep_only_created_objects() {
        let body = r#"{"Records":[
            {"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}},
            {"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}
        ]}"#;
        check(
            body,
            Ok(Notification::Objects(vec![minimal(
                "k",
                "ObjectCreated:Put",
            )])),
        );
    }

    #[test]
    fn ignored_event_names_that_are_not_tokens_are_masked() {
        check(
            &s3_body("Jane Doe\u{e9}", r#"{"key":"k"}"#),
            Ok(Notification::Ignored {
                event_names: vec!["<invalid>".into()],
            }),
        );
    }

    #[test]
    fn malformed_bodies() {
        let not_json = |part, line, column| Err(S3EventError::NotJson { part, line, column });
        let cases: Vec<(String, Result<Notification, S3EventError>)> = vec![
            ("".into(), not_json(JsonPart::Body, 1, 0)),
            ("hello".into(), not_json(JsonPart::Body, 1, 1)),
            ("{\"Records\":".into(), not_json(JsonPart::Body, 1, 11)),
            ("[]".into(), Err(S3EventError::UnknownEnvelope)),
            ("\"Records\"".into(), Err(S3EventError::UnknownEnvelope)),
            ("{}".into(), Err(S3EventError::UnknownEnvelope)),
            (
                r#"{"Service":"Amazon S3","Event":"s3:Other"}"#.into(),
                Err(S3EventError::UnknownEnvelope),
            ),
            (r#"{"Records":"x"}"#.into(), missing_field("Records")),
            (r#"{"Records":[]}"#.into(), missing_field("Records[0]")),
            (r#"{"Records":[1]}"#.into(), missing_field("Records[0]")),
            (
                r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#.into(),
                missing_field("Records[0].eventSource"),
            ),
            (
                r#"{"Records":[{"eventSource":"aws:dynamodb","eventName":"INSERT"}]}"#.into(),
                Err(S3EventError::WrongSource {
                    field: "Records[0].eventSource".into(),
                }),
            ),
            (
                r#"{"Records":[{"eventSource":"aws:s3"}]}"#.into(),
                missing_field("Records[0].eventName"),
            ),
            (
                r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put"}]}"#.into(),
                missing_field("Records[0].s3"),
            ),
            (
                r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"object":{"key":"k"}}}]}"#.into(),
                missing_field("Records[0].s3.bucket.name"),
            ),
            (
                r#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"}}}]}"#.into(),
                missing_field("Records[0].s3.object"),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"size":1}"#),
                missing_field("Records[0].s3.object.key"),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":42}"#),
                missing_field("Records[0].s3.object.key"),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":""}"#),
                missing_field("Records[0].s3.object.key"),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"ab%4"}"#),
                Err(S3EventError::BadPercentEncoding {
                    field: "Records[0].s3.object.key".into(),
                    offset: 2,
                }),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"%"}"#),
                Err(S3EventError::BadPercentEncoding {
                    field: "Records[0].s3.object.key".into(),
                    offset: 0,
                }),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"a+%zzb"}"#),
                Err(S3EventError::BadPercentEncoding {
                    field: "Records[0].s3.object.key".into(),
                    offset: 2,
                }),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"%FF%FE"}"#),
                Err(S3EventError::KeyNotUtf8 {
                    field: "Records[0].s3.object.key".into(),
                }),
            ),
            (
                s3_body("ObjectCreated:Put", r#"{"key":"%C3"}"#),
                Err(S3EventError::KeyNotUtf8 {
                    field: "Records[0].s3.object.key".into(),
                }),
            ),
            (
                r#"{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:1:t"}"#.into(),
                missing_field("Message"),
            ),
            (
                r#"{"Type":"Notification","Message":"Hello from SNS"}"#.into(),
                not_json(JsonPart::SnsMessage, 1, 1),
            ),
            (
                r#"{"Type":"Notification","Message":"{\"Type\":\"Notification\",\"Message\":\"{}\"}"}"#.into(),
                Err(S3EventError::UnknownEnvelope),
            ),
            (
                r#"{"Type":"SubscriptionConfirmation","Message":"You have chosen to subscribe"}"#.into(),
                Err(S3EventError::UnknownEnvelope),
            ),
            (
                r#"{"detail-type":"Object Created","source":"aws.ec2","detail":{}}"#.into(),
                Err(S3EventError::WrongSource {
                    field: "source".into(),
                }),
            ),
            (
                r#"{"detail-type":"Object Created","detail":{}}"#.into(),
                missing_field("source"),
            ),
            (
                r#"{"detail-type":"Object Created","source":"aws.s3"}"#.into(),
                missing_field("detail"),
            ),
            (
                r#"{"detail-type":"Object Created","source":"aws.s3","detail":{"object":{"key":"k"}}}"#.into(),
                missing_field("detail.bucket.name"),
            ),
            (
                r#"{"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"}}}"#.into(),
                missing_field("detail.object"),
            ),
            (
                eb_body("PutObject", r#"{"key":"%G0"}"#),
                Err(S3EventError::BadPercentEncoding {
                    field: "detail.object.key".into(),
                    offset: 0,
                }),
            ),
        ];
        for (body, expected) in cases {
            check(&body, expected);
        }
    }

    #[test]
    fn errors_map_to_codes() {
        let cases = [
            (
                S3EventError::NotJson {
                    part: JsonPart::Body,
                    line: 1,
                    column: 1,
                },
                ErrorCode::S3EventInvalid,
            ),
            (S3EventError::UnknownEnvelope, ErrorCode::S3EventInvalid),
            (
                S3EventError::WrongSource { field: "f".into() },
                ErrorCode::S3EventInvalid,
            ),
            (
                S3EventError::MissingField { field: "f".into() },
                ErrorCode::S3EventInvalid,
            ),
            (
                S3EventError::BadPercentEncoding {
                    field: "f".into(),
                    offset: 0,
                },
                ErrorCode::S3KeyInvalid,
            ),
            (
                S3EventError::KeyNotUtf8 { field: "f".into() },
                ErrorCode::S3KeyInvalid,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    /// The key, the SNS message and the event name are the places patient text turns up;
    /// whatever fails around them, the error must not carry it.
    #[test]
    fn errors_never_echo_values() {
        const NAME: &str = "Zbigniew";
        let bodies = [
            format!("{NAME} is not JSON"),
            s3_body("ObjectCreated:Put", &format!(r#"{{"key":"{NAME}%zz"}}"#)),
            s3_body("ObjectCreated:Put", &format!(r#"{{"key":"{NAME}%FF"}}"#)),
            s3_body("ObjectCreated:Put", &format!(r#"{{"key":["{NAME}"]}}"#)),
            format!(r#"{{"Type":"Notification","Message":"{NAME}"}}"#),
            format!(r#"{{"Type":"Notification","Message":"{{\"{NAME}\":1}}"}}"#),
            format!(
                r#"{{"Records":[{{"eventSource":"{NAME}","eventName":"ObjectCreated:Put"}}]}}"#
            ),
            format!(r#"{{"detail-type":"Object Created","source":"{NAME}","detail":{{}}}}"#),
        ];
        for body in bodies {
            let err = parse(&body).expect_err("each body is invalid");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(NAME), "{shown}");
        }
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let shown = format!("{:?}", spaces_plus_object());
        assert!(!shown.contains("Jane"), "{shown}");
        assert!(shown.contains("clinic-docs-intake"), "{shown}");
    }

    #[test]
    fn idempotency_key_uses_version_then_etag() {
        let mut o = minimal("k/1", "ObjectCreated:Put");
        assert_eq!(o.idempotency_key(), "s3:1:b3:k/1-0:");
        o.etag = Some("e1".into());
        assert_eq!(o.idempotency_key(), "s3:1:b3:k/1e2:e1");
        o.version_id = Some("null".into());
        assert_eq!(o.idempotency_key(), "s3:1:b3:k/1e2:e1");
        o.version_id = Some("V9".into());
        assert_eq!(o.idempotency_key(), "s3:1:b3:k/1v2:V9");
    }

    #[test]
    fn idempotency_keys_of_lookalike_objects_differ() {
        let obj = |bucket: &str, key: &str, version: Option<&str>, etag: Option<&str>| ObjectRef {
            bucket: bucket.into(),
            key: Phi(key.into()),
            version_id: version.map(Into::into),
            etag: etag.map(Into::into),
            ..minimal("", "ObjectCreated:Put")
        };
        let pairs = [
            (obj("a", "b/c", None, None), obj("a/b", "c", None, None)),
            (obj("a", "1:b", None, None), obj("a1", ":b", None, None)),
            (
                obj("b", "k", Some("x"), None),
                obj("b", "k", None, Some("x")),
            ),
            (
                obj("b", "kv1:x", None, None),
                obj("b", "k", Some("x"), None),
            ),
            (
                obj("b", "k", Some("1"), None),
                obj("b", "k", Some("2"), None),
            ),
        ];
        for (x, y) in pairs {
            assert_ne!(x.idempotency_key(), y.idempotency_key());
        }
    }

    /// The reference encoder S3 behaves like: unreserved bytes and `/` kept, space as `+`,
    /// everything else `%XX` (upper case, as S3 writes it).
    fn form_encode(key: &str) -> String {
        let mut out = String::new();
        for b in key.bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                    out.push(char::from(b))
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }

    fn effective_version(o: &ObjectRef) -> (char, Option<String>) {
        match (&o.version_id, &o.etag) {
            (Some(v), _) if v != "null" => ('v', Some(v.clone())),
            (_, Some(e)) => ('e', Some(e.clone())),
            _ => ('-', None),
        }
    }

    fn arb_object() -> impl Strategy<Value = ObjectRef> {
        // A small alphabet of digits and separators makes near-collisions likely.
        let part = "[ab1:/v-]{0,4}";
        (
            part,
            part,
            proptest::option::of(prop_oneof![Just("null".to_owned()), part.prop_map(|s| s)]),
            proptest::option::of(part),
        )
            .prop_map(|(bucket, key, version_id, etag)| ObjectRef {
                bucket,
                key: Phi(key),
                version_id,
                etag,
                ..minimal("", "ObjectCreated:Put")
            })
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(body in any::<String>()) {
            let _ = parse(&body);
        }

        #[test]
        fn arbitrary_keys_in_an_envelope_never_panic(key in any::<String>(), sns in any::<bool>()) {
            let key_json = serde_json::to_string(&key).unwrap();
            let body = s3_body("ObjectCreated:Put", &format!(r#"{{"key":{key_json}}}"#));
            let body = if sns {
                serde_json::json!({"Type": "Notification", "Message": body}).to_string()
            } else {
                body
            };
            let _ = parse(&body);
        }

        #[test]
        fn encoded_keys_decode_to_the_original(key in "\\PC{1,40}") {
            let encoded = serde_json::to_string(&form_encode(&key)).unwrap();
            let body = s3_body("ObjectCreated:Put", &format!(r#"{{"key":{encoded}}}"#));
            let parsed = parse(&body).unwrap();
            prop_assert_eq!(parsed, Notification::Objects(vec![minimal(&key, "ObjectCreated:Put")]));
        }

        #[test]
        fn idempotency_keys_collide_only_for_the_same_object(x in arb_object(), y in arb_object()) {
            let same = x.bucket == y.bucket
                && x.key == y.key
                && effective_version(&x) == effective_version(&y);
            prop_assert_eq!(x.idempotency_key() == y.idempotency_key(), same);
        }
    }
}
