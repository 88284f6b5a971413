//! The Comprehend Medical entity adapter against mocked SDK responses (aws-smithy-mocks):
//! fixtures are DetectEntitiesV2's wire JSON (PascalCase, as in the API reference), turned into
//! SDK output types by the small converter below. All clinical text is synthetic.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_comprehendmedical::Client;
use aws_sdk_comprehendmedical::operation::detect_entities_v2::{
    DetectEntitiesV2Error, DetectEntitiesV2Output,
};
use aws_sdk_comprehendmedical::types::error as cm;
use aws_sdk_comprehendmedical::types::{
    Attribute, AttributeName, Entity, EntitySubType, EntityType, RelationshipType, Trait,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::error::ErrorMetadata;
use fleet_aws::{ComprehendMedicalExtractor, InCallRetry};
use fleet_core::ErrorCode;
use fleet_docs::EntityExtractor;
use fleet_docs::schema::{Category, TraitName};
use fleet_docs::{DocError, schema};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Fixture → SDK types (the generic JSON helpers are in `support`).

use crate::support::{f32_of, fixture, i32_of, items, str_of};

fn traits(v: &Value) -> Option<Vec<Trait>> {
    v.get("Traits").map(|_| {
        items(v, "Traits")
            .map(|t| {
                Trait::builder()
                    .set_name(str_of(t, "Name").map(|n| AttributeName::from(n.as_str())))
                    .set_score(f32_of(t, "Score"))
                    .build()
            })
            .collect()
    })
}

fn attribute(v: &Value) -> Attribute {
    Attribute::builder()
        .set_type(str_of(v, "Type").map(|t| EntitySubType::from(t.as_str())))
        .set_score(f32_of(v, "Score"))
        .set_relationship_score(f32_of(v, "RelationshipScore"))
        .set_relationship_type(
            str_of(v, "RelationshipType").map(|t| RelationshipType::from(t.as_str())),
        )
        .set_id(i32_of(v, "Id"))
        .set_begin_offset(i32_of(v, "BeginOffset"))
        .set_end_offset(i32_of(v, "EndOffset"))
        .set_text(str_of(v, "Text"))
        .set_category(str_of(v, "Category").map(|c| EntityType::from(c.as_str())))
        .set_traits(traits(v))
        .build()
}

fn entity(v: &Value) -> Entity {
    Entity::builder()
        .set_id(i32_of(v, "Id"))
        .set_begin_offset(i32_of(v, "BeginOffset"))
        .set_end_offset(i32_of(v, "EndOffset"))
        .set_score(f32_of(v, "Score"))
        .set_text(str_of(v, "Text"))
        .set_category(str_of(v, "Category").map(|c| EntityType::from(c.as_str())))
        .set_type(str_of(v, "Type").map(|t| EntitySubType::from(t.as_str())))
        .set_traits(traits(v))
        .set_attributes(
            v.get("Attributes")
                .map(|_| items(v, "Attributes").map(attribute).collect()),
        )
        .build()
}

fn output(v: &Value) -> DetectEntitiesV2Output {
    DetectEntitiesV2Output::builder()
        .set_entities(Some(items(v, "Entities").map(entity).collect()))
        .set_pagination_token(str_of(v, "PaginationToken"))
        .set_model_version(str_of(v, "ModelVersion"))
        .build()
        .expect("Entities and ModelVersion are required")
}

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

fn extractor(client: Client) -> ComprehendMedicalExtractor {
    ComprehendMedicalExtractor::from_client(client).with_retry(FAST)
}

/// The text the fixture's offsets were computed on.
const FIXTURE_TEXT: &str =
    "Synthetic note: no chest pain. Fakemab 10 mg by mouth daily. Café µg 检查 🩺 ok.";

fn slice(text: &str, begin: usize, end: usize) -> String {
    text.chars().skip(begin).take(end - begin).collect()
}

fn char_offset(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

// ---------------------------------------------------------------------------------------------
// Conversion.

#[tokio::test]
async fn entities_keep_the_service_model() {
    let out = output(&fixture("comprehend_medical_detect_entities_v2.json"));
    let rule = mock!(Client::detect_entities_v2)
        .match_requests(|req| req.text() == Some(FIXTURE_TEXT))
        .then_output(move || out.clone());
    let client = mock_client!(aws_sdk_comprehendmedical, [&rule]);
    let got = extractor(client).detect(FIXTURE_TEXT).await.unwrap();
    assert_eq!(rule.num_calls(), 1);

    // The entity of a category this adapter does not know is left out, not the document.
    assert_eq!(got.len(), 2, "{got:?}");
    let pain = &got[0];
    assert_eq!(pain.category, Category::MedicalCondition);
    assert_eq!(pain.entity_type, "DX_NAME");
    assert_eq!(pain.text.expose(), "chest pain");
    assert_eq!(pain.score, 0.96875);
    assert_eq!(
        slice(FIXTURE_TEXT, pain.begin_offset, pain.end_offset),
        "chest pain"
    );
    // The unknown trait is dropped, the known ones kept in order.
    let names: Vec<(TraitName, f32)> = pain.traits.iter().map(|t| (t.name, t.score)).collect();
    assert_eq!(
        names,
        [(TraitName::Symptom, 0.875), (TraitName::Negation, 0.9375)]
    );

    let drug = &got[1];
    assert_eq!(drug.category, Category::Medication);
    assert_eq!(drug.entity_type, "GENERIC_NAME");
    assert_eq!(
        slice(FIXTURE_TEXT, drug.begin_offset, drug.end_offset),
        "Fakemab"
    );
    let attrs: Vec<(&str, Option<Category>, Option<&str>, String)> = drug
        .attributes
        .iter()
        .map(|a| {
            (
                a.attribute_type.as_str(),
                a.category,
                a.relationship_type.as_deref(),
                slice(FIXTURE_TEXT, a.begin_offset, a.end_offset),
            )
        })
        .collect();
    assert_eq!(
        attrs,
        [
            (
                "DOSAGE",
                Some(Category::Medication),
                Some("DOSAGE"),
                "10 mg".to_string()
            ),
            (
                "ROUTE_OR_MODE",
                Some(Category::Medication),
                Some("ROUTE_OR_MODE"),
                "by mouth".to_string()
            ),
            // An unknown attribute category becomes "none given"; its unknown trait goes.
            ("FREQUENCY", None, Some("FREQUENCY"), "daily".to_string()),
        ]
    );
    let dosage = &drug.attributes[0];
    assert_eq!(dosage.text.expose(), "10 mg");
    assert_eq!(
        (dosage.score, dosage.relationship_score),
        (0.984375, 0.96875)
    );
    assert!(drug.attributes[2].traits.is_empty());

    let mut ids: Vec<u32> = got
        .iter()
        .flat_map(|e| std::iter::once(e.id).chain(e.attributes.iter().map(|a| a.id)))
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "ids must be unique");
}

#[tokio::test]
async fn blank_text_sends_no_request() {
    let rule = mock!(Client::detect_entities_v2).then_output(|| {
        DetectEntitiesV2Output::builder()
            .set_entities(Some(vec![]))
            .model_version("x")
            .build()
            .unwrap()
    });
    let client = mock_client!(aws_sdk_comprehendmedical, [&rule]);
    let cm = extractor(client);
    for text in ["", "   ", "\n\n\t \r\n"] {
        assert_eq!(cm.detect(text).await.unwrap(), Vec::<schema::Entity>::new());
    }
    assert_eq!(rule.num_calls(), 0);
    assert_eq!(cm.name(), "comprehend-medical");
}

// ---------------------------------------------------------------------------------------------
// Chunking.

const DRUGS: [&str; 4] = ["Lévothyroxine", "Fakemab", "アスピリン", "Wärfarin🙂"];
const DOSE: &str = "50 µg";

/// 60,000 characters of synthetic notes, multibyte everywhere, with drug names at known
/// character offsets: (offset, name).
fn long_document() -> (String, Vec<(usize, &'static str)>) {
    const FILLERS: [&str; 4] = [
        "Patient reports mild café-au-lait pain, no fever. ",
        "BP normal 血压 检查 ok 🩺 today. ",
        "Dose réduite given 👍 at night, µg per kg. ",
        "Synthetic note for testing only, é è ê. ",
    ];
    let mut text = String::new();
    let mut chars = 0;
    let mut drugs = Vec::new();
    let mut i = 0usize;
    while chars < 59_800 {
        let sentence = if i % 7 == 3 {
            let drug = DRUGS[(i / 7) % DRUGS.len()];
            drugs.push((chars + "Takes ".len(), drug));
            format!("Takes {drug} {DOSE} daily. ")
        } else {
            FILLERS[i % FILLERS.len()].to_string()
        };
        chars += sentence.chars().count();
        text.push_str(&sentence);
        if i % 5 == 4 {
            text.push('\n');
            chars += 1;
        }
        if i % 40 == 39 {
            text.push('\n');
            chars += 1;
        }
        i += 1;
    }
    while chars < 60_000 {
        text.push('.');
        chars += 1;
    }
    (text, drugs)
}

/// What DetectEntitiesV2 would answer for `text`: each drug name with its dosage, offsets in
/// characters of `text`, ids unique in the response, in reverse order (the adapter sorts).
fn answer(text: &str) -> DetectEntitiesV2Output {
    let mut entities = Vec::new();
    let mut id = 0;
    for drug in DRUGS {
        for (byte, _) in text.match_indices(drug) {
            let begin = char_offset(text, byte);
            let end = begin + drug.chars().count();
            let dose_begin = end + 1;
            let dose_end = dose_begin + DOSE.chars().count();
            entities.push(json!({
                "Id": id, "BeginOffset": begin, "EndOffset": end, "Score": 0.99,
                "Text": drug, "Category": "MEDICATION", "Type": "GENERIC_NAME", "Traits": [],
                "Attributes": [{
                    "Type": "DOSAGE", "Score": 0.98, "RelationshipScore": 0.97,
                    "RelationshipType": "DOSAGE", "Id": id + 1,
                    "BeginOffset": dose_begin, "EndOffset": dose_end,
                    "Text": DOSE, "Category": "MEDICATION", "Traits": []
                }]
            }));
            id += 2;
        }
    }
    entities.reverse();
    output(&json!({"Entities": entities, "ModelVersion": "2.0.0-synthetic"}))
}

#[tokio::test]
async fn a_long_multibyte_document_is_chunked_and_offsets_map_back() {
    let (text, drugs) = long_document();
    assert_eq!(text.chars().count(), 60_000);
    assert!(text.len() > 60_000, "multibyte: {} bytes", text.len());
    assert!(drugs.len() > 100);
    for &(at, name) in &drugs {
        assert_eq!(slice(&text, at, at + name.chars().count()), name);
    }

    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let rule = mock!(Client::detect_entities_v2)
        .match_requests(move |req| {
            log.lock()
                .unwrap()
                .push(req.text().unwrap_or_default().to_string());
            true
        })
        .then_compute_output(|req| answer(req.text().unwrap()));
    let client = mock_client!(aws_sdk_comprehendmedical, RuleMode::MatchAny, [&rule]);

    let got = extractor(client).detect(&text).await.unwrap();

    let requests = seen.lock().unwrap();
    assert!(
        requests.len() >= text.len().div_ceil(20_000) && requests.len() >= 4,
        "{} requests",
        requests.len()
    );
    for (i, r) in requests.iter().enumerate() {
        assert!(r.len() < 20_000, "request {i} has {} bytes", r.len());
        assert!(!r.is_empty());
    }
    assert_eq!(requests.concat(), text, "the pieces are the text, in order");
    assert_eq!(rule.num_calls(), requests.len());

    assert_eq!(got.len(), drugs.len());
    for (entity, &(at, name)) in got.iter().zip(&drugs) {
        assert_eq!(entity.begin_offset, at);
        assert_eq!(slice(&text, entity.begin_offset, entity.end_offset), name);
        assert_eq!(entity.text.expose(), name);
        let dose = &entity.attributes[0];
        assert_eq!(slice(&text, dose.begin_offset, dose.end_offset), DOSE);
    }
    assert!(
        got.windows(2)
            .all(|w| w[0].begin_offset <= w[1].begin_offset)
    );
    let ids: HashSet<u32> = got
        .iter()
        .flat_map(|e| std::iter::once(e.id).chain(e.attributes.iter().map(|a| a.id)))
        .collect();
    assert_eq!(ids.len(), 2 * got.len(), "ids unique across the document");
}

// ---------------------------------------------------------------------------------------------
// Errors.

fn too_many_requests() -> DetectEntitiesV2Error {
    DetectEntitiesV2Error::TooManyRequestsException(
        cm::TooManyRequestsException::builder()
            .message("Rate exceeded")
            .meta(meta("TooManyRequestsException", "Rate exceeded"))
            .build(),
    )
}

#[tokio::test]
async fn throttling_then_success_is_retried_within_the_call() {
    let out = output(&fixture("comprehend_medical_detect_entities_v2.json"));
    let rule = mock!(Client::detect_entities_v2)
        .sequence()
        .error(too_many_requests)
        .times(2)
        .output(move || out.clone())
        .build();
    let client = mock_client!(aws_sdk_comprehendmedical, [&rule]);
    let got = extractor(client).detect(FIXTURE_TEXT).await.unwrap();
    assert_eq!(rule.num_calls(), 3);
    assert_eq!(got.len(), 2);
}

#[tokio::test]
async fn throttled_on_every_attempt_is_retryable() {
    let rule = mock!(Client::detect_entities_v2)
        .sequence()
        .error(too_many_requests)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_comprehendmedical, [&rule]);
    let err = extractor(client).detect(FIXTURE_TEXT).await.unwrap_err();
    let DocError::Retryable { reason, detail, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*reason, "throttled");
    assert!(detail.contains("TooManyRequestsException"), "{detail}");
    assert!(
        detail.contains("comprehendmedical.DetectEntitiesV2"),
        "{detail}"
    );
    assert_eq!(rule.num_calls(), 4, "bounded: the SDK adds no retries");
}

#[tokio::test]
async fn unavailable_and_5xx_are_transient_after_retries() {
    let rule = mock!(Client::detect_entities_v2)
        .sequence()
        .error(|| {
            DetectEntitiesV2Error::ServiceUnavailableException(
                cm::ServiceUnavailableException::builder()
                    .meta(meta("ServiceUnavailableException", "try later"))
                    .build(),
            )
        })
        .error(|| {
            DetectEntitiesV2Error::InternalServerException(
                cm::InternalServerException::builder()
                    .meta(meta("InternalServerException", "oops"))
                    .build(),
            )
        })
        .http_status(502, None)
        .times(2)
        .build();
    let client = mock_client!(aws_sdk_comprehendmedical, [&rule]);
    let err = extractor(client).detect(FIXTURE_TEXT).await.unwrap_err();
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

/// A service error code, the error the mock returns, and the code it must map to.
type ErrorCase = (&'static str, fn() -> DetectEntitiesV2Error, ErrorCode);

#[tokio::test]
async fn rejected_text_and_access_errors_are_permanent() {
    type E = DetectEntitiesV2Error;
    let cases: Vec<ErrorCase> = vec![
        (
            "InvalidRequestException",
            || {
                E::InvalidRequestException(
                    cm::InvalidRequestException::builder()
                        .meta(meta("InvalidRequestException", "bad"))
                        .build(),
                )
            },
            ErrorCode::EntitiesRejected,
        ),
        (
            "InvalidEncodingException",
            || {
                E::InvalidEncodingException(
                    cm::InvalidEncodingException::builder()
                        .meta(meta("InvalidEncodingException", "bad"))
                        .build(),
                )
            },
            ErrorCode::EntitiesRejected,
        ),
        (
            "TextSizeLimitExceededException",
            || {
                E::TextSizeLimitExceededException(
                    cm::TextSizeLimitExceededException::builder()
                        .meta(meta("TextSizeLimitExceededException", "too long"))
                        .build(),
                )
            },
            ErrorCode::EntitiesRejected,
        ),
        // Not modeled on DetectEntitiesV2: arrives as an unhandled error with its code.
        (
            "AccessDeniedException",
            || E::generic(meta("AccessDeniedException", "denied")),
            ErrorCode::DownstreamRejected,
        ),
        (
            "UnrecognizedClientException",
            || E::generic(meta("UnrecognizedClientException", "who are you")),
            ErrorCode::DownstreamRejected,
        ),
        // A modeled error without metadata is still known by its variant.
        (
            "InvalidRequestException",
            || E::InvalidRequestException(cm::InvalidRequestException::builder().build()),
            ErrorCode::EntitiesRejected,
        ),
    ];
    for (service_code, error, expected) in cases {
        let rule = mock!(Client::detect_entities_v2)
            .sequence()
            .error(error)
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_comprehendmedical, [&rule]);
        let err = extractor(client).detect(FIXTURE_TEXT).await.unwrap_err();
        let DocError::Permanent { code, detail } = &err else {
            panic!("{service_code}: {err:?}")
        };
        assert_eq!(*code, expected, "{service_code}: {detail}");
        assert!(detail.contains(service_code), "{detail}");
        assert!(!detail.contains("Fakemab"), "no text in details: {detail}");
        assert_eq!(rule.num_calls(), 1, "{service_code} must not be retried");
    }
}
