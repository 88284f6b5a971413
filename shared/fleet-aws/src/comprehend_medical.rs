//! [`fleet_docs::EntityExtractor`] on Amazon Comprehend Medical `DetectEntitiesV2`.
//!
//! The text is cut with [`fleet_docs::chunk::chunks`] under the request's byte limit (at
//! paragraph, line or sentence ends), each piece is sent on its own, and the entities' offsets
//! (characters of the piece) are mapped back onto the whole text. The service numbers ids per
//! response; they are renumbered so that they are unique in the document, consistently within a
//! response (an attribute that repeats an entity's id keeps pointing at the same new id).
//!
//! Names the service adds after this adapter was written are not a reason to fail a document:
//! * an unknown trait name: that trait is dropped;
//! * an unknown attribute category: the attribute is kept with `category: None` (the schema's
//!   "when the service gives one");
//! * an unknown entity category: the entity is dropped, since the stored schema's category is a
//!   closed list and guessing one would put a wrong fact in the results; a warning names the
//!   category (a service enum value, never document text);
//! * types (`Type`) are strings in the schema and are kept as spelled, known or not.
//!
//! Entities or attributes whose offsets do not fit their piece are dropped the same way.
//! `UnmappedAttributes` have no place in the schema and are not returned.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_comprehendmedical::Client;
use aws_sdk_comprehendmedical::config::retry::RetryConfig;
use aws_sdk_comprehendmedical::operation::detect_entities_v2::DetectEntitiesV2Error;
use aws_sdk_comprehendmedical::types::{
    Attribute as CmAttribute, Entity as CmEntity, EntityType, Trait as CmTrait,
};
use fleet_core::ErrorCode;
use fleet_core::phi::Phi;
use fleet_docs::chunk::{Chunk, DETECT_ENTITIES_V2_MAX_TEXT_BYTES, chunks, to_document_offsets};
use fleet_docs::schema::{Category, Entity, EntityAttribute, Trait, TraitName};
use fleet_docs::{DocError, EntityExtractor};

use crate::count::CountRequests;
use crate::doc_service::{Failure, InCallRetry, failure, service_detail};

const OP: &str = "comprehendmedical.DetectEntitiesV2";

/// The Comprehend Medical entity adapter.
#[derive(Debug, Clone)]
pub struct ComprehendMedicalExtractor {
    client: Client,
    retry: InCallRetry,
}

impl ComprehendMedicalExtractor {
    /// A client from the standard configuration chain (`AWS_ENDPOINT_URL` /
    /// `AWS_ENDPOINT_URL_COMPREHENDMEDICAL` included), counting requests as
    /// "comprehendmedical.<Operation>".
    pub async fn from_env() -> Self {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let conf = aws_sdk_comprehendmedical::config::Builder::from(&sdk)
            .interceptor(CountRequests {
                service: "comprehendmedical",
            })
            .build();
        Self::from_client(Client::from_conf(conf))
    }

    /// Around an existing client (tests use a mocked one).
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            retry: InCallRetry::default(),
        }
    }

    /// Replaces the in-call retry bounds (default: 4 attempts, 200 ms base, jitter).
    pub fn with_retry(mut self, retry: InCallRetry) -> Self {
        self.retry = retry;
        self
    }

    async fn detect_chunk(&self, chunk: &Chunk<'_>) -> Result<Vec<CmEntity>, DocError> {
        let out = self
            .retry
            .run(|| async {
                self.client
                    .detect_entities_v2()
                    .text(chunk.text)
                    .customize()
                    .config_override(
                        aws_sdk_comprehendmedical::config::Config::builder()
                            .retry_config(RetryConfig::disabled()),
                    )
                    .send()
                    .await
                    .map_err(|e| match failure(OP, &e, modeled_code) {
                        Failure::Settled(e) => e,
                        Failure::Service { code, status, .. } => classify(code, status),
                    })
            })
            .await?;
        Ok(out.entities().to_vec())
    }
}

#[async_trait]
impl EntityExtractor for ComprehendMedicalExtractor {
    fn name(&self) -> &'static str {
        "comprehend-medical"
    }

    async fn detect(&self, text: &str) -> Result<Vec<Entity>, DocError> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        let mut next_id: u32 = 0;
        let mut entities = Vec::new();
        for chunk in chunks(text, DETECT_ENTITIES_V2_MAX_TEXT_BYTES) {
            // A piece of only whitespace (between two long runs of text) has nothing to find.
            if chunk.text.trim().is_empty() {
                continue;
            }
            let found = self.detect_chunk(&chunk).await?;
            let mut ids = Renumber {
                map: HashMap::new(),
                next: &mut next_id,
            };
            let len = chunk.text.chars().count();
            entities.extend(
                found
                    .iter()
                    .filter_map(|e| convert_entity(e, &chunk, len, &mut ids)),
            );
        }
        entities.sort_by_key(|e| (e.begin_offset, e.end_offset, e.id));
        Ok(entities)
    }
}

/// Service ids of one response → ids unique in the document.
struct Renumber<'a> {
    map: HashMap<i32, u32>,
    next: &'a mut u32,
}

impl Renumber<'_> {
    fn id(&mut self, service_id: Option<i32>) -> u32 {
        let fresh = |next: &mut u32| {
            let id = *next;
            *next = next.saturating_add(1);
            id
        };
        match service_id {
            Some(s) => *self.map.entry(s).or_insert_with(|| fresh(self.next)),
            None => fresh(self.next),
        }
    }
}

/// Document offsets of a `[begin, end)` the service gave within `chunk` (`len` characters),
/// or `None` when they do not fit it.
fn offsets(
    chunk: &Chunk<'_>,
    len: usize,
    begin: Option<i32>,
    end: Option<i32>,
) -> Option<(usize, usize)> {
    let begin = usize::try_from(begin?).ok()?;
    let end = usize::try_from(end?).ok()?;
    (begin <= end && end <= len).then(|| to_document_offsets(chunk, begin, end))
}

fn convert_entity(
    e: &CmEntity,
    chunk: &Chunk<'_>,
    len: usize,
    ids: &mut Renumber<'_>,
) -> Option<Entity> {
    let Some(category) = e.category().and_then(category) else {
        let name = e.category().map_or("none", EntityType::as_str);
        tracing::warn!(
            category = %crate::error::sanitize_code(name),
            "Comprehend Medical entity with an unknown category dropped"
        );
        return None;
    };
    let Some((begin_offset, end_offset)) = offsets(chunk, len, e.begin_offset(), e.end_offset())
    else {
        tracing::warn!("Comprehend Medical entity with offsets outside its text dropped");
        return None;
    };
    Some(Entity {
        id: ids.id(e.id()),
        category,
        entity_type: e.r#type().map_or("", |t| t.as_str()).to_string(),
        text: Phi(e.text().unwrap_or_default().to_string()),
        score: e.score().unwrap_or(0.0),
        begin_offset,
        end_offset,
        traits: traits(e.traits()),
        attributes: e
            .attributes()
            .iter()
            .filter_map(|a| convert_attribute(a, chunk, len, ids))
            .collect(),
    })
}

fn convert_attribute(
    a: &CmAttribute,
    chunk: &Chunk<'_>,
    len: usize,
    ids: &mut Renumber<'_>,
) -> Option<EntityAttribute> {
    let (begin_offset, end_offset) = offsets(chunk, len, a.begin_offset(), a.end_offset())?;
    Some(EntityAttribute {
        attribute_type: a.r#type().map_or("", |t| t.as_str()).to_string(),
        category: a.category().and_then(category),
        score: a.score().unwrap_or(0.0),
        relationship_score: a.relationship_score().unwrap_or(0.0),
        relationship_type: a.relationship_type().map(|t| t.as_str().to_string()),
        id: ids.id(a.id()),
        begin_offset,
        end_offset,
        text: Phi(a.text().unwrap_or_default().to_string()),
        traits: traits(a.traits()),
    })
}

fn category(c: &EntityType) -> Option<Category> {
    Some(match c.as_str() {
        "MEDICATION" => Category::Medication,
        "MEDICAL_CONDITION" => Category::MedicalCondition,
        "PROTECTED_HEALTH_INFORMATION" => Category::ProtectedHealthInformation,
        "TEST_TREATMENT_PROCEDURE" => Category::TestTreatmentProcedure,
        "ANATOMY" => Category::Anatomy,
        "TIME_EXPRESSION" => Category::TimeExpression,
        "BEHAVIORAL_ENVIRONMENTAL_SOCIAL" => Category::BehavioralEnvironmentalSocial,
        _ => return None,
    })
}

fn traits(ts: &[CmTrait]) -> Vec<Trait> {
    ts.iter()
        .filter_map(|t| {
            let name = match t.name()?.as_str() {
                "SIGN" => TraitName::Sign,
                "SYMPTOM" => TraitName::Symptom,
                "DIAGNOSIS" => TraitName::Diagnosis,
                "NEGATION" => TraitName::Negation,
                "PERTAINS_TO_FAMILY" => TraitName::PertainsToFamily,
                "HYPOTHETICAL" => TraitName::Hypothetical,
                "LOW_CONFIDENCE" => TraitName::LowConfidence,
                "PAST_HISTORY" => TraitName::PastHistory,
                "FUTURE" => TraitName::Future,
                _ => return None,
            };
            Some(Trait {
                name,
                score: t.score().unwrap_or(0.0),
            })
        })
        .collect()
}

/// The modeled exception names, for errors built without metadata.
fn modeled_code(e: &DetectEntitiesV2Error) -> Option<&'static str> {
    use DetectEntitiesV2Error as E;
    Some(match e {
        E::InternalServerException(_) => "InternalServerException",
        E::InvalidEncodingException(_) => "InvalidEncodingException",
        E::InvalidRequestException(_) => "InvalidRequestException",
        E::ServiceUnavailableException(_) => "ServiceUnavailableException",
        E::TextSizeLimitExceededException(_) => "TextSizeLimitExceededException",
        E::TooManyRequestsException(_) => "TooManyRequestsException",
        _ => return None,
    })
}

/// Comprehend Medical's error table (API reference, DetectEntitiesV2 "Errors", plus the
/// common errors every AWS API can return).
pub(crate) fn classify(code: Option<&str>, status: u16) -> DocError {
    let detail = service_detail(OP, code, status);
    match code.unwrap_or("") {
        "TooManyRequestsException" | "ThrottlingException" => {
            DocError::retryable("throttled", detail)
        }
        "ServiceUnavailableException" | "InternalServerException" | "InternalFailure" => {
            DocError::retryable("transient", detail)
        }
        "InvalidRequestException"
        | "InvalidEncodingException"
        | "TextSizeLimitExceededException"
        | "ValidationException" => DocError::permanent(ErrorCode::EntitiesRejected, detail),
        "AccessDeniedException"
        | "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidClientTokenId"
        | "SubscriptionRequiredException"
        | "OptInRequired" => DocError::permanent(ErrorCode::DownstreamRejected, detail),
        _ => match status {
            429 => DocError::retryable("throttled", detail),
            s if s >= 500 => DocError::retryable("transient", detail),
            401 | 403 => DocError::permanent(ErrorCode::DownstreamRejected, detail),
            _ => DocError::permanent(ErrorCode::EntitiesRejected, detail),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_map_to_outcomes() {
        let code = |c: &str, s| match classify(Some(c), s) {
            DocError::Permanent { code, .. } => code.as_str(),
            DocError::Retryable { reason, .. } => reason,
        };
        assert_eq!(code("TooManyRequestsException", 400), "throttled");
        assert_eq!(code("ServiceUnavailableException", 503), "transient");
        assert_eq!(code("InternalServerException", 500), "transient");
        assert_eq!(code("InvalidRequestException", 400), "ENTITIES_REJECTED");
        assert_eq!(code("InvalidEncodingException", 400), "ENTITIES_REJECTED");
        assert_eq!(
            code("TextSizeLimitExceededException", 400),
            "ENTITIES_REJECTED"
        );
        assert_eq!(code("AccessDeniedException", 400), "DOWNSTREAM_REJECTED");
        assert_eq!(code("SomethingNew", 403), "DOWNSTREAM_REJECTED");
        assert_eq!(code("SomethingNew", 502), "transient");
        assert_eq!(code("SomethingNew", 400), "ENTITIES_REJECTED");
    }

    #[test]
    fn offsets_outside_the_piece_are_refused() {
        let text = "ab é";
        let chunk = Chunk {
            text,
            byte_start: 10,
            char_start: 7,
        };
        assert_eq!(offsets(&chunk, 4, Some(3), Some(4)), Some((10, 11)));
        assert_eq!(offsets(&chunk, 4, Some(3), Some(5)), None);
        assert_eq!(offsets(&chunk, 4, Some(2), Some(1)), None);
        assert_eq!(offsets(&chunk, 4, Some(-1), Some(1)), None);
        assert_eq!(offsets(&chunk, 4, None, Some(1)), None);
    }
}
