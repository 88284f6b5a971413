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
mod tests;
