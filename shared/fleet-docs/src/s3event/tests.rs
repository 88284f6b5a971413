use super::*;
use proptest::prelude::*;

const PUT_SPACES_PLUS: &str = include_str!("../../tests/fixtures/s3-put-spaces-plus.json");
const PUT_MULTIBYTE: &str = include_str!("../../tests/fixtures/s3-put-multibyte.json");
const MULTIPLE: &str = include_str!("../../tests/fixtures/s3-multiple-records.json");
const REMOVED: &str = include_str!("../../tests/fixtures/s3-removed.json");
const TEST_EVENT: &str = include_str!("../../tests/fixtures/s3-test-event.json");
const SNS_PUT: &str = include_str!("../../tests/fixtures/sns-s3-put.json");
const SNS_TEST_EVENT: &str = include_str!("../../tests/fixtures/sns-s3-test-event.json");
const EB_CREATED: &str = include_str!("../../tests/fixtures/eventbridge-object-created.json");
const EB_DELETED: &str = include_str!("../../tests/fixtures/eventbridge-object-deleted.json");

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
        format!(r#"{{"Records":[{{"eventSource":"{NAME}","eventName":"ObjectCreated:Put"}}]}}"#),
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
