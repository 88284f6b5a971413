//! The Textract OCR adapter against mocked SDK responses (aws-smithy-mocks): fixtures are the
//! service's wire JSON (PascalCase, as in the Textract API reference), turned into SDK output
//! types by the small converter below. All document text is synthetic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_textract::Client;
use aws_sdk_textract::operation::detect_document_text::{
    DetectDocumentTextError, DetectDocumentTextOutput,
};
use aws_sdk_textract::operation::get_document_text_detection::{
    GetDocumentTextDetectionError, GetDocumentTextDetectionOutput,
};
use aws_sdk_textract::operation::start_document_text_detection::{
    StartDocumentTextDetectionError, StartDocumentTextDetectionOutput,
};
use aws_sdk_textract::types::error as tx;
use aws_sdk_textract::types::{
    Block, BlockType, BoundingBox, DocumentMetadata, Geometry, JobStatus, Relationship,
    RelationshipType, TextType, Warning,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use fleet_aws::{InCallRetry, TextractConfig, TextractOcr};
use fleet_core::ErrorCode;
use fleet_core::phi::Phi;
use fleet_docs::schema::{BoundingBox as Bbox, OcrWarning};
use fleet_docs::{DocError, Document, MediaType, ObjectLocation, Ocr, OcrJob, OcrStart};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// Fixture → SDK types (the generic JSON helpers are in `support`).

use crate::support::{f32_of, fixture, i32_of, items, str_of};

fn block(v: &Value) -> Block {
    let geometry = v.get("Geometry").map(|g| {
        let b = &g["BoundingBox"];
        Geometry::builder()
            .bounding_box(
                BoundingBox::builder()
                    .width(f32_of(b, "Width").unwrap())
                    .height(f32_of(b, "Height").unwrap())
                    .left(f32_of(b, "Left").unwrap())
                    .top(f32_of(b, "Top").unwrap())
                    .build(),
            )
            .build()
    });
    let relationships = items(v, "Relationships")
        .map(|r| {
            Relationship::builder()
                .r#type(RelationshipType::from(r["Type"].as_str().unwrap()))
                .set_ids(Some(
                    items(r, "Ids")
                        .map(|id| id.as_str().unwrap().to_string())
                        .collect(),
                ))
                .build()
        })
        .collect::<Vec<_>>();
    Block::builder()
        .block_type(BlockType::from(v["BlockType"].as_str().unwrap()))
        .set_id(str_of(v, "Id"))
        .set_page(i32_of(v, "Page"))
        .set_confidence(f32_of(v, "Confidence"))
        .set_text(str_of(v, "Text"))
        .set_text_type(str_of(v, "TextType").map(|t| TextType::from(t.as_str())))
        .set_geometry(geometry)
        .set_relationships((!relationships.is_empty()).then_some(relationships))
        .build()
}

fn blocks(v: &Value) -> Option<Vec<Block>> {
    v.get("Blocks")
        .map(|_| items(v, "Blocks").map(block).collect())
}

fn metadata(v: &Value) -> Option<DocumentMetadata> {
    v.get("DocumentMetadata").map(|m| {
        DocumentMetadata::builder()
            .set_pages(i32_of(m, "Pages"))
            .build()
    })
}

fn detect_output(v: &Value) -> DetectDocumentTextOutput {
    DetectDocumentTextOutput::builder()
        .set_document_metadata(metadata(v))
        .set_blocks(blocks(v))
        .set_detect_document_text_model_version(str_of(v, "DetectDocumentTextModelVersion"))
        .build()
}

fn get_output(v: &Value) -> GetDocumentTextDetectionOutput {
    let warnings: Vec<Warning> = items(v, "Warnings")
        .map(|w| {
            Warning::builder()
                .set_error_code(str_of(w, "ErrorCode"))
                .set_pages(Some(
                    items(w, "Pages")
                        .map(|p| i32::try_from(p.as_i64().unwrap()).unwrap())
                        .collect(),
                ))
                .build()
        })
        .collect();
    GetDocumentTextDetectionOutput::builder()
        .set_document_metadata(metadata(v))
        .set_job_status(str_of(v, "JobStatus").map(|s| JobStatus::from(s.as_str())))
        .set_next_token(str_of(v, "NextToken"))
        .set_blocks(blocks(v))
        .set_warnings((!warnings.is_empty()).then_some(warnings))
        .set_status_message(str_of(v, "StatusMessage"))
        .set_detect_document_text_model_version(str_of(v, "DetectDocumentTextModelVersion"))
        .build()
}

fn start_output(v: &Value) -> StartDocumentTextDetectionOutput {
    StartDocumentTextDetectionOutput::builder()
        .set_job_id(str_of(v, "JobId"))
        .build()
}

/// Error metadata as the SDK's deserializer fills it from a response.
fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const FAST: InCallRetry = InCallRetry {
    max_attempts: 4,
    base_delay: Duration::from_millis(1),
    max_delay: Duration::from_millis(4),
};

const TOKEN: &str = "doc-4f1c2a9e_v3";
const TOPIC: &str = "arn:aws:sns:us-east-1:000000000000:fake-textract-done";
const ROLE: &str = "arn:aws:iam::000000000000:role/fake-textract-publish";
/// A key that must never appear in an error detail.
const SECRET_KEY: &str = "patients/TESTPATIENT-Zebulon/scan.pdf";

fn channel() -> TextractConfig {
    TextractConfig {
        sns_topic_arn: Some(TOPIC.into()),
        role_arn: Some(ROLE.into()),
    }
}

fn ocr(client: Client, cfg: TextractConfig) -> TextractOcr {
    TextractOcr::from_client(client, cfg).with_retry(FAST)
}

fn located(media_type: MediaType) -> Document {
    Document {
        media_type,
        bytes: b"fake document bytes".to_vec(),
        location: Some(ObjectLocation {
            bucket: "fake-docs-bucket".into(),
            key: Phi(SECRET_KEY.into()),
            version_id: Some("v-42".into()),
        }),
    }
}

fn texts(page: &fleet_docs::schema::Page) -> Vec<&str> {
    page.lines
        .iter()
        .map(|l| l.text.expose().as_str())
        .collect()
}

fn done(start: OcrStart) -> fleet_docs::schema::OcrResult {
    match start {
        OcrStart::Done(r) => r,
        other => panic!("expected Done, got {other:?}"),
    }
}

fn permanent_code(e: &DocError) -> ErrorCode {
    match e {
        DocError::Permanent { code, .. } => *code,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Synchronous DetectDocumentText.

#[tokio::test]
async fn png_with_a_location_is_read_synchronously_from_s3() {
    let out = detect_output(&fixture("textract_detect_document_text_png.json"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let rule = mock!(Client::detect_document_text)
        .match_requests(move |req| {
            log.lock().unwrap().push(req.clone());
            true
        })
        .then_output(move || out.clone());
    let client = mock_client!(aws_sdk_textract, [&rule]);

    let result = done(
        ocr(client, TextractConfig::default())
            .start(&located(MediaType::Png), TOKEN)
            .await
            .unwrap(),
    );

    let requests = seen.lock().unwrap();
    assert_eq!(requests.len(), 1);
    let doc = requests[0].document().unwrap();
    assert!(doc.bytes().is_none(), "S3 documents are not uploaded");
    let s3 = doc.s3_object().unwrap();
    assert_eq!(s3.bucket(), Some("fake-docs-bucket"));
    assert_eq!(s3.name(), Some(SECRET_KEY));
    assert_eq!(s3.version(), Some("v-42"));

    assert_eq!(result.pages.len(), 1);
    let page = &result.pages[0];
    assert_eq!((page.number, page.width, page.height), (1, None, None));
    assert_eq!(texts(page), ["TESTPATIENT Zebulon", "Fakemab 10 mg daily"]);
    let second = &page.lines[1];
    assert_eq!(second.confidence, 97.5);
    assert_eq!(
        second.bbox,
        Bbox {
            left: 0.125,
            top: 0.125,
            width: 0.625,
            height: 0.03125
        }
    );
    let words: Vec<(&str, f32)> = second
        .words
        .iter()
        .map(|w| (w.text.expose().as_str(), w.confidence))
        .collect();
    assert_eq!(
        words,
        [
            ("Fakemab", 98.0),
            ("10", 97.0),
            ("mg", 96.5),
            ("daily", 98.5)
        ]
    );
    assert_eq!(second.words[1].bbox.left, 0.34375);
    assert!(result.warnings.is_empty());
    assert_eq!(result.text(), "TESTPATIENT Zebulon\nFakemab 10 mg daily");
}

#[tokio::test]
async fn jpeg_without_a_location_is_sent_as_bytes() {
    let out = detect_output(&fixture("textract_detect_document_text_png.json"));
    let rule = mock!(Client::detect_document_text)
        .match_requests(|req| {
            let doc = req.document().unwrap();
            doc.s3_object().is_none()
                && doc.bytes().map(|b| b.as_ref()) == Some(&b"\xFF\xD8\xFFfake jpeg"[..])
        })
        .then_output(move || out.clone());
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let document = Document {
        media_type: MediaType::Jpeg,
        bytes: b"\xFF\xD8\xFFfake jpeg".to_vec(),
        location: None,
    };
    let result = done(
        ocr(client, TextractConfig::default())
            .start(&document, TOKEN)
            .await
            .unwrap(),
    );
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(texts(&result.pages[0])[0], "TESTPATIENT Zebulon");
}

#[tokio::test]
async fn plain_text_is_never_sent_to_textract() {
    let rule = mock!(Client::detect_document_text)
        .then_output(|| DetectDocumentTextOutput::builder().build());
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let document = Document {
        media_type: MediaType::Text,
        bytes: b"Fakemab 10 mg".to_vec(),
        location: None,
    };
    let err = ocr(client, channel())
        .start(&document, TOKEN)
        .await
        .unwrap_err();
    assert_eq!(permanent_code(&err), ErrorCode::DocumentUnsupportedType);
    assert_eq!(rule.num_calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// Asynchronous start.

#[tokio::test]
async fn pdf_starts_a_job_with_the_token_and_the_notification_channel() {
    let out = start_output(&fixture("textract_start_document_text_detection.json"));
    let job = out.job_id().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let rule = mock!(Client::start_document_text_detection)
        .match_requests(move |req| {
            log.lock().unwrap().push(req.clone());
            true
        })
        .then_output(move || out.clone());
    let client = mock_client!(aws_sdk_textract, RuleMode::MatchAny, [&rule]);

    for media_type in [MediaType::Pdf, MediaType::Tiff] {
        let started = ocr(client.clone(), channel())
            .start(&located(media_type), TOKEN)
            .await
            .unwrap();
        assert_eq!(
            started,
            OcrStart::Started {
                job_id: job.clone()
            }
        );
    }

    let requests = seen.lock().unwrap();
    assert_eq!(requests.len(), 2);
    for req in requests.iter() {
        assert_eq!(req.client_request_token(), Some(TOKEN));
        assert_eq!(req.job_tag(), Some(TOKEN));
        let channel = req.notification_channel().unwrap();
        assert_eq!(channel.sns_topic_arn(), TOPIC);
        assert_eq!(channel.role_arn(), ROLE);
        let s3 = req.document_location().unwrap().s3_object().unwrap();
        assert_eq!(
            (s3.bucket(), s3.name(), s3.version()),
            (Some("fake-docs-bucket"), Some(SECRET_KEY), Some("v-42"))
        );
    }
}

#[tokio::test]
async fn async_start_without_a_completion_channel_is_a_configuration_error() {
    let rule = mock!(Client::start_document_text_detection).then_output(|| {
        StartDocumentTextDetectionOutput::builder()
            .job_id("j")
            .build()
    });
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let cases = [
        (TextractConfig::default(), vec!["sns_topic_arn", "role_arn"]),
        (
            TextractConfig {
                sns_topic_arn: Some(TOPIC.into()),
                role_arn: None,
            },
            vec!["role_arn"],
        ),
        (
            TextractConfig {
                sns_topic_arn: Some("  ".into()),
                role_arn: Some(ROLE.into()),
            },
            vec!["sns_topic_arn"],
        ),
    ];
    for (cfg, missing) in cases {
        let err = ocr(client.clone(), cfg)
            .start(&located(MediaType::Pdf), TOKEN)
            .await
            .unwrap_err();
        let DocError::Permanent { code, detail } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(*code, ErrorCode::OcrFailed);
        assert!(detail.contains("configuration"), "{detail}");
        for name in missing {
            assert!(detail.contains(name), "{detail} should name {name}");
        }
        if !detail.contains("sns_topic_arn") {
            assert!(!detail.contains("TextractConfig.sns_topic_arn"), "{detail}");
        }
    }
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn async_start_needs_an_s3_location() {
    let rule = mock!(Client::start_document_text_detection).then_output(|| {
        StartDocumentTextDetectionOutput::builder()
            .job_id("j")
            .build()
    });
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let document = Document {
        media_type: MediaType::Pdf,
        bytes: b"%PDF-1.7 fake".to_vec(),
        location: None,
    };
    let err = ocr(client, channel())
        .start(&document, TOKEN)
        .await
        .unwrap_err();
    assert_eq!(permanent_code(&err), ErrorCode::OcrFailed);
    assert!(err.to_string().contains("S3 location"), "{err}");
    assert_eq!(rule.num_calls(), 0);
}

// ---------------------------------------------------------------------------------------------
// Collecting jobs.

#[tokio::test]
async fn collect_follows_next_token_through_every_result_page() {
    let first = get_output(&fixture("textract_get_document_text_detection_1of2.json"));
    let second = get_output(&fixture("textract_get_document_text_detection_2of2.json"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let rule = mock!(Client::get_document_text_detection)
        .match_requests(move |req| {
            log.lock().unwrap().push(req.clone());
            true
        })
        .then_compute_output(move |req| match req.next_token() {
            None => first.clone(),
            Some("fake-next-token-2") => second.clone(),
            Some(other) => panic!("unexpected NextToken {other}"),
        });
    let client = mock_client!(aws_sdk_textract, RuleMode::MatchAny, [&rule]);

    let job = ocr(client, channel()).collect("job-123").await.unwrap();
    let OcrJob::Done(result) = job else {
        panic!("{job:?}")
    };

    assert_eq!(rule.num_calls(), 2);
    let requests = seen.lock().unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].next_token(), None);
    assert_eq!(requests[1].next_token(), Some("fake-next-token-2"));
    for req in requests.iter() {
        assert_eq!(req.job_id(), Some("job-123"));
        assert_eq!(req.max_results(), Some(1000));
    }

    let numbers: Vec<u32> = result.pages.iter().map(|p| p.number).collect();
    assert_eq!(numbers, [1, 2, 3], "page 2 has no block and still appears");
    assert_eq!(
        texts(&result.pages[0]),
        ["Discharge summary (synthetic)", "Fakeprazole 20 mg"]
    );
    assert!(result.pages[1].lines.is_empty());
    assert_eq!(texts(&result.pages[2]), ["Follow up in 2 weeks"]);
    // The second line's words arrived on the next result page.
    let words: Vec<&str> = result.pages[0].lines[1]
        .words
        .iter()
        .map(|w| w.text.expose().as_str())
        .collect();
    assert_eq!(words, ["Fakeprazole", "20", "mg"]);
    assert_eq!(result.pages[2].lines[0].words.len(), 5);
    assert_eq!(
        result.text(),
        "Discharge summary (synthetic)\nFakeprazole 20 mg\n\n\n\nFollow up in 2 weeks"
    );
    assert!(result.warnings.is_empty());
}

#[tokio::test]
async fn partial_success_is_done_with_the_warnings() {
    let out = get_output(&fixture(
        "textract_get_document_text_detection_partial.json",
    ));
    let rule = mock!(Client::get_document_text_detection).then_output(move || out.clone());
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let job = ocr(client, channel()).collect("job-partial").await.unwrap();
    let OcrJob::Done(result) = job else {
        panic!("{job:?}")
    };
    assert_eq!(
        result.warnings,
        [OcrWarning {
            code: "UNSUPPORTED_DOCUMENT".into(),
            pages: vec![2]
        }]
    );
    assert_eq!(result.pages.len(), 2);
    assert_eq!(texts(&result.pages[0]), ["Page one only"]);
    assert!(result.pages[1].lines.is_empty());
}

#[tokio::test]
async fn a_running_job_is_in_progress() {
    let out = get_output(&fixture(
        "textract_get_document_text_detection_in_progress.json",
    ));
    let rule = mock!(Client::get_document_text_detection).then_output(move || out.clone());
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let job = ocr(client, channel()).collect("job-running").await.unwrap();
    assert_eq!(job, OcrJob::InProgress);
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn a_failed_job_is_ocr_failed_with_a_bounded_status_message() {
    let out = get_output(&fixture("textract_get_document_text_detection_failed.json"));
    let rule = mock!(Client::get_document_text_detection).then_output(move || out.clone());
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let err = ocr(client, channel())
        .collect("job-failed")
        .await
        .unwrap_err();
    assert_eq!(permanent_code(&err), ErrorCode::OcrFailed);
    assert!(
        err.to_string()
            .contains("Request has unsupported document format"),
        "{err}"
    );

    let long = "q".repeat(1000);
    let rule = mock!(Client::get_document_text_detection).then_output(move || {
        GetDocumentTextDetectionOutput::builder()
            .job_status(JobStatus::Failed)
            .status_message(long.clone())
            .build()
    });
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let err = ocr(client, channel())
        .collect("job-long")
        .await
        .unwrap_err();
    let DocError::Permanent { detail, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(detail.matches('q').count(), 200, "{detail}");
}

#[tokio::test]
async fn a_restarted_worker_collects_a_finished_job_by_id_alone() {
    // The first worker starts the job and goes away.
    let started = start_output(&fixture("textract_start_document_text_detection.json"));
    let job_id = started.job_id().unwrap().to_string();
    let start_rule =
        mock!(Client::start_document_text_detection).then_output(move || started.clone());
    let first_worker = ocr(mock_client!(aws_sdk_textract, [&start_rule]), channel());
    let OcrStart::Started { job_id: got } = first_worker
        .start(&located(MediaType::Pdf), TOKEN)
        .await
        .unwrap()
    else {
        panic!("expected a job")
    };
    assert_eq!(got, job_id);
    drop(first_worker);

    // A new process: new client, new adapter, nothing but the id from the completion message.
    let out = get_output(&fixture(
        "textract_get_document_text_detection_partial.json",
    ));
    let expected = job_id.clone();
    let get_rule = mock!(Client::get_document_text_detection)
        .match_requests(move |req| req.job_id() == Some(expected.as_str()))
        .then_output(move || out.clone());
    let restarted = TextractOcr::from_client(
        mock_client!(aws_sdk_textract, [&get_rule]),
        TextractConfig::default(),
    );
    let job = restarted.collect(&job_id).await.unwrap();
    let OcrJob::Done(result) = job else {
        panic!("{job:?}")
    };
    assert_eq!(get_rule.num_calls(), 1);
    assert_eq!(result.text(), "Page one only\n\n");
}

// ---------------------------------------------------------------------------------------------
// Throttling and errors.

fn throttled_detect() -> DetectDocumentTextError {
    DetectDocumentTextError::ThrottlingException(
        tx::ThrottlingException::builder()
            .message("Rate exceeded")
            .meta(meta("ThrottlingException", "Rate exceeded"))
            .build(),
    )
}

#[tokio::test]
async fn throttling_then_success_is_retried_within_the_call() {
    let out = detect_output(&fixture("textract_detect_document_text_png.json"));
    let rule = mock!(Client::detect_document_text)
        .sequence()
        .error(throttled_detect)
        .output(move || out.clone())
        .build();
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let result = done(
        ocr(client, TextractConfig::default())
            .start(&located(MediaType::Png), TOKEN)
            .await
            .unwrap(),
    );
    assert_eq!(rule.num_calls(), 2);
    assert_eq!(result.pages[0].lines.len(), 2);
}

#[tokio::test]
async fn throttled_on_every_attempt_is_retryable_after_a_bounded_number_of_requests() {
    let rule = mock!(Client::detect_document_text)
        .sequence()
        .error(throttled_detect)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let err = ocr(client, TextractConfig::default())
        .start(&located(MediaType::Png), TOKEN)
        .await
        .unwrap_err();
    let DocError::Retryable { reason, detail, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*reason, "throttled");
    assert!(detail.contains("ThrottlingException"), "{detail}");
    assert!(detail.contains("textract.DetectDocumentText"), "{detail}");
    assert_eq!(
        rule.num_calls(),
        4,
        "the SDK must not retry on top of the adapter"
    );

    // Collect pages are retried the same way.
    let rule = mock!(Client::get_document_text_detection)
        .sequence()
        .error(|| {
            GetDocumentTextDetectionError::ProvisionedThroughputExceededException(
                tx::ProvisionedThroughputExceededException::builder()
                    .meta(meta("ProvisionedThroughputExceededException", "slow down"))
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let err = ocr(client, channel()).collect("job").await.unwrap_err();
    assert!(
        matches!(
            err,
            DocError::Retryable {
                reason: "throttled",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(rule.num_calls(), 4);
}

#[tokio::test]
async fn the_concurrent_job_limit_waits_in_the_queue_not_in_the_call() {
    let rule = mock!(Client::start_document_text_detection)
        .sequence()
        .error(|| {
            StartDocumentTextDetectionError::LimitExceededException(
                tx::LimitExceededException::builder()
                    .meta(meta("LimitExceededException", "too many jobs"))
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let err = ocr(client, channel())
        .start(&located(MediaType::Pdf), TOKEN)
        .await
        .unwrap_err();
    let DocError::Retryable {
        reason,
        retry_after,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*reason, "throttled");
    assert!(retry_after.is_some());
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_transient() {
    let out = detect_output(&fixture("textract_detect_document_text_png.json"));
    let rule = mock!(Client::detect_document_text)
        .sequence()
        .http_status(503, None)
        .error(|| {
            DetectDocumentTextError::InternalServerError(
                tx::InternalServerError::builder()
                    .meta(meta("InternalServerError", "oops"))
                    .build(),
            )
        })
        .output(move || out.clone())
        .build();
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let result = ocr(client, TextractConfig::default())
        .start(&located(MediaType::Png), TOKEN)
        .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(rule.num_calls(), 3);

    let rule = mock!(Client::detect_document_text)
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let err = ocr(client, TextractConfig::default())
        .start(&located(MediaType::Png), TOKEN)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DocError::Retryable {
                reason: "transient",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(rule.num_calls(), 4);
}

/// Every modeled permanent exception of the three operations, with the code it must map to.
#[tokio::test]
async fn modeled_exceptions_map_to_their_error_codes() {
    type Detect = DetectDocumentTextError;
    type Start = StartDocumentTextDetectionError;
    type Get = GetDocumentTextDetectionError;
    let missing = "The specified key does not exist.";
    let vague = "Unable to get object metadata from S3. Check object key, region and/or access permissions.";

    macro_rules! e {
        ($op:ident :: $variant:ident, $code:literal, $msg:expr) => {
            move || {
                $op::$variant(
                    tx::$variant::builder()
                        .message($msg)
                        .meta(meta($code, $msg))
                        .build(),
                )
            }
        };
    }

    async fn run_detect(f: impl Fn() -> Detect + Send + Sync + 'static) -> DocError {
        let rule = mock!(Client::detect_document_text).then_error(f);
        let client = mock_client!(aws_sdk_textract, [&rule]);
        let err = ocr(client, channel())
            .start(&located(MediaType::Png), TOKEN)
            .await
            .unwrap_err();
        assert_eq!(rule.num_calls(), 1, "{err:?} must not be retried");
        err
    }
    async fn run_start(f: impl Fn() -> Start + Send + Sync + 'static) -> DocError {
        let rule = mock!(Client::start_document_text_detection).then_error(f);
        let client = mock_client!(aws_sdk_textract, [&rule]);
        let err = ocr(client, channel())
            .start(&located(MediaType::Pdf), TOKEN)
            .await
            .unwrap_err();
        assert_eq!(rule.num_calls(), 1, "{err:?} must not be retried");
        err
    }
    async fn run_get(f: impl Fn() -> Get + Send + Sync + 'static) -> DocError {
        let rule = mock!(Client::get_document_text_detection).then_error(f);
        let client = mock_client!(aws_sdk_textract, [&rule]);
        let err = ocr(client, channel()).collect("job").await.unwrap_err();
        assert_eq!(rule.num_calls(), 1, "{err:?} must not be retried");
        err
    }

    let cases: Vec<(&str, &str, DocError, ErrorCode)> = vec![
        // DetectDocumentText
        (
            "DetectDocumentText",
            "DocumentTooLargeException",
            run_detect(e!(
                Detect::DocumentTooLargeException,
                "DocumentTooLargeException",
                "too big"
            ))
            .await,
            ErrorCode::DocumentTooLarge,
        ),
        (
            "DetectDocumentText",
            "BadDocumentException",
            run_detect(e!(
                Detect::BadDocumentException,
                "BadDocumentException",
                "bad"
            ))
            .await,
            ErrorCode::DocumentCorrupt,
        ),
        (
            "DetectDocumentText",
            "UnsupportedDocumentException",
            run_detect(e!(
                Detect::UnsupportedDocumentException,
                "UnsupportedDocumentException",
                "no"
            ))
            .await,
            ErrorCode::DocumentUnsupportedType,
        ),
        (
            "DetectDocumentText",
            "InvalidS3ObjectException",
            run_detect(e!(
                Detect::InvalidS3ObjectException,
                "InvalidS3ObjectException",
                missing
            ))
            .await,
            ErrorCode::DocumentNotFound,
        ),
        (
            "DetectDocumentText",
            "InvalidS3ObjectException",
            run_detect(e!(
                Detect::InvalidS3ObjectException,
                "InvalidS3ObjectException",
                vague
            ))
            .await,
            ErrorCode::OcrFailed,
        ),
        (
            "DetectDocumentText",
            "AccessDeniedException",
            run_detect(e!(
                Detect::AccessDeniedException,
                "AccessDeniedException",
                "denied"
            ))
            .await,
            ErrorCode::DownstreamRejected,
        ),
        (
            "DetectDocumentText",
            "InvalidParameterException",
            run_detect(e!(
                Detect::InvalidParameterException,
                "InvalidParameterException",
                "bad param"
            ))
            .await,
            ErrorCode::OcrFailed,
        ),
        // StartDocumentTextDetection
        (
            "StartDocumentTextDetection",
            "DocumentTooLargeException",
            run_start(e!(
                Start::DocumentTooLargeException,
                "DocumentTooLargeException",
                "too big"
            ))
            .await,
            ErrorCode::DocumentTooLarge,
        ),
        (
            "StartDocumentTextDetection",
            "BadDocumentException",
            run_start(e!(
                Start::BadDocumentException,
                "BadDocumentException",
                "bad"
            ))
            .await,
            ErrorCode::DocumentCorrupt,
        ),
        (
            "StartDocumentTextDetection",
            "UnsupportedDocumentException",
            run_start(e!(
                Start::UnsupportedDocumentException,
                "UnsupportedDocumentException",
                "no"
            ))
            .await,
            ErrorCode::DocumentUnsupportedType,
        ),
        (
            "StartDocumentTextDetection",
            "InvalidS3ObjectException",
            run_start(e!(
                Start::InvalidS3ObjectException,
                "InvalidS3ObjectException",
                missing
            ))
            .await,
            ErrorCode::DocumentNotFound,
        ),
        (
            "StartDocumentTextDetection",
            "InvalidS3ObjectException",
            run_start(e!(
                Start::InvalidS3ObjectException,
                "InvalidS3ObjectException",
                vague
            ))
            .await,
            ErrorCode::OcrFailed,
        ),
        (
            "StartDocumentTextDetection",
            "AccessDeniedException",
            run_start(e!(
                Start::AccessDeniedException,
                "AccessDeniedException",
                "denied"
            ))
            .await,
            ErrorCode::DownstreamRejected,
        ),
        (
            "StartDocumentTextDetection",
            "InvalidKMSKeyException",
            run_start(e!(
                Start::InvalidKmsKeyException,
                "InvalidKMSKeyException",
                "kms"
            ))
            .await,
            ErrorCode::DownstreamRejected,
        ),
        (
            "StartDocumentTextDetection",
            "IdempotentParameterMismatchException",
            run_start(e!(
                Start::IdempotentParameterMismatchException,
                "IdempotentParameterMismatchException",
                "token reused"
            ))
            .await,
            ErrorCode::DownstreamRejected,
        ),
        (
            "StartDocumentTextDetection",
            "InvalidParameterException",
            run_start(e!(
                Start::InvalidParameterException,
                "InvalidParameterException",
                "bad param"
            ))
            .await,
            ErrorCode::OcrFailed,
        ),
        // GetDocumentTextDetection
        (
            "GetDocumentTextDetection",
            "InvalidJobIdException",
            run_get(e!(
                Get::InvalidJobIdException,
                "InvalidJobIdException",
                "no such job"
            ))
            .await,
            ErrorCode::OcrJobUnknown,
        ),
        (
            "GetDocumentTextDetection",
            "AccessDeniedException",
            run_get(e!(
                Get::AccessDeniedException,
                "AccessDeniedException",
                "denied"
            ))
            .await,
            ErrorCode::DownstreamRejected,
        ),
        (
            "GetDocumentTextDetection",
            "InvalidKMSKeyException",
            run_get(e!(
                Get::InvalidKmsKeyException,
                "InvalidKMSKeyException",
                "kms"
            ))
            .await,
            ErrorCode::DownstreamRejected,
        ),
        (
            "GetDocumentTextDetection",
            "InvalidParameterException",
            run_get(e!(
                Get::InvalidParameterException,
                "InvalidParameterException",
                "bad"
            ))
            .await,
            ErrorCode::OcrFailed,
        ),
        (
            "GetDocumentTextDetection",
            "InvalidS3ObjectException",
            run_get(e!(
                Get::InvalidS3ObjectException,
                "InvalidS3ObjectException",
                vague
            ))
            .await,
            ErrorCode::OcrFailed,
        ),
    ];
    for (op, service_code, err, expected) in cases {
        let DocError::Permanent { code, detail } = &err else {
            panic!("{op} {service_code}: {err:?}");
        };
        assert_eq!(*code, expected, "{op} {service_code}: {detail}");
        assert!(detail.contains(service_code), "{detail}");
        assert!(detail.contains(op), "{detail}");
        assert!(
            !detail.contains(SECRET_KEY) && !detail.contains("Zebulon"),
            "{detail}"
        );
        assert!(
            !detail.contains("object key, region"),
            "messages stay out: {detail}"
        );
    }
}

#[tokio::test]
async fn a_modeled_error_without_metadata_is_still_classified() {
    let rule = mock!(Client::detect_document_text).then_error(|| {
        DetectDocumentTextError::BadDocumentException(tx::BadDocumentException::builder().build())
    });
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let err = ocr(client, channel())
        .start(&located(MediaType::Png), TOKEN)
        .await
        .unwrap_err();
    assert_eq!(permanent_code(&err), ErrorCode::DocumentCorrupt);
}

#[tokio::test]
async fn only_pdf_and_tiff_start_jobs() {
    let client = mock_client!(aws_sdk_textract, Vec::<&aws_smithy_mocks::Rule>::new());
    let ocr = ocr(client, channel());
    assert_eq!(ocr.name(), "textract");
    assert!(ocr.starts_job(MediaType::Pdf) && ocr.starts_job(MediaType::Tiff));
    assert!(!ocr.starts_job(MediaType::Png) && !ocr.starts_job(MediaType::Jpeg));
    assert!(!ocr.starts_job(MediaType::Text));
}

// ---------------------------------------------------------------------------------------------
// Issue 15 item 10: a job Textract no longer knows.

/// GetDocumentTextDetection for a job id past its 7 days answers HTTP 400 with the modeled
/// `InvalidJobIdException` (awsJson1.1 error body, `__type`); the adapter names it
/// `OCR_JOB_UNKNOWN`, which the worker turns into `OCR_TIMED_OUT` for a job it recorded. Not
/// retried: the answer will not change.
#[tokio::test]
async fn item10_a_job_id_textract_no_longer_knows_is_ocr_job_unknown() {
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    let body = fixture("textract_get_document_text_detection_invalid_job_id.json").to_string();
    let rule = mock!(Client::get_document_text_detection).then_http_response(move || {
        let mut r = Response::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(body.clone()),
        );
        r.headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        r
    });
    let client = mock_client!(aws_sdk_textract, [&rule]);
    let err = ocr(client, channel())
        .collect("0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4")
        .await
        .unwrap_err();
    assert_eq!(permanent_code(&err), ErrorCode::OcrJobUnknown, "{err:?}");
    assert!(err.to_string().contains("InvalidJobIdException"), "{err}");
    assert_eq!(rule.num_calls(), 1);
}
