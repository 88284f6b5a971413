//! The result types the document pipeline stores and publishes about, filled by both OCR
//! adapters (Textract, Tesseract) and both entity adapters (Comprehend Medical
//! DetectEntitiesV2, the local rules extractor), so that everything after extraction has one
//! shape whatever the backend. Field names are snake_case on the wire and are a stored format:
//! rename nothing, add fields only as optional.
//!
//! Geometry follows Textract: a [`BoundingBox`] is in fractions of the page (0.0 to 1.0 from the
//! top-left corner), and confidences are percentages (0 to 100). Entities follow Comprehend
//! Medical's model (`Entity`, `Attribute`, `Trait` in its API reference), with the category and
//! trait names spelled as the service spells them. Every piece of document text is a [`Phi`],
//! so a result can be `Debug`-printed without printing what the document says.

use fleet_core::phi::Phi;
use serde::{Deserialize, Deserializer, Serialize};

/// `Phi` is transparent on the wire when serialising but has no `Deserialize` of its own.
fn phi<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Phi<T>, D::Error> {
    T::deserialize(d).map(Phi)
}

/// All the text OCR found in one document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OcrResult {
    pub pages: Vec<Page>,
    /// Pages OCR could not read while reading the rest (Textract `PARTIAL_SUCCESS` warnings,
    /// a page Tesseract failed on). Empty when every page was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<OcrWarning>,
}

/// Pages that failed, with the engine's reason (Textract's `Warning`: `ErrorCode`, `Pages`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OcrWarning {
    pub code: String,
    pub pages: Vec<u32>,
}

impl OcrResult {
    /// The document text the entity extractor reads and whose character offsets entities
    /// carry: each page's lines joined by `'\n'`, pages joined by `"\n\n"`. An empty page still
    /// takes its place, so the number of page breaks always equals `pages.len() - 1`. Lines are
    /// taken in stored order: the adapters store them in reading order (Textract returns LINE
    /// blocks in reading order; Tesseract's hOCR is in reading order).
    pub fn text(&self) -> String {
        let pages: Vec<String> = self.pages.iter().map(Page::text).collect();
        pages.join("\n\n")
    }

    /// A plain-text document as one page, one line per text line (no words, no geometry, full
    /// confidence), so that [`OcrResult::text`] gives the text back with `\r\n` made `\n`.
    pub fn from_plain_text(text: &str) -> Self {
        let lines = text
            .split('\n')
            .map(|l| Line {
                text: Phi(l.strip_suffix('\r').unwrap_or(l).to_string()),
                confidence: 100.0,
                bbox: BoundingBox::default(),
                words: Vec::new(),
            })
            .collect();
        Self {
            pages: vec![Page {
                number: 1,
                width: None,
                height: None,
                lines,
            }],
            warnings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Page {
    /// 1-based, as Textract numbers pages.
    pub number: u32,
    /// Pixel size of the image OCR read, when the engine reports one (Tesseract does;
    /// Textract gives only relative geometry).
    pub width: Option<u32>,
    pub height: Option<u32>,
    #[serde(default)]
    pub lines: Vec<Line>,
}

impl Page {
    /// This page's lines joined by `'\n'`.
    pub fn text(&self) -> String {
        let lines: Vec<&str> = self
            .lines
            .iter()
            .map(|l| l.text.expose().as_str())
            .collect();
        lines.join("\n")
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Line {
    #[serde(deserialize_with = "phi")]
    pub text: Phi<String>,
    /// 0 to 100.
    pub confidence: f32,
    pub bbox: BoundingBox,
    #[serde(default)]
    pub words: Vec<Word>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Word {
    #[serde(deserialize_with = "phi")]
    pub text: Phi<String>,
    /// 0 to 100.
    pub confidence: f32,
    pub bbox: BoundingBox,
}

/// Fractions of the page width (`left`, `width`) and height (`top`, `height`), origin at the
/// top-left corner, as Textract's `BoundingBox`. Tesseract's pixel boxes are divided by the
/// page size.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BoundingBox {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
}

/// Comprehend Medical's `EntityType` (the field is `Category` on an entity): the seven valid
/// values of `Attribute.Category` in the API reference, which the "Detect entities
/// (Version 2)" guide also lists (while saying "all six categories").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Category {
    Medication,
    MedicalCondition,
    ProtectedHealthInformation,
    TestTreatmentProcedure,
    Anatomy,
    TimeExpression,
    BehavioralEnvironmentalSocial,
}

/// Comprehend Medical's `Trait` names (`AttributeName` in the service model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TraitName {
    Sign,
    Symptom,
    Diagnosis,
    Negation,
    PertainsToFamily,
    Hypothetical,
    LowConfidence,
    PastHistory,
    Future,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Trait {
    pub name: TraitName,
    /// 0 to 1, as the service scores.
    pub score: f32,
}

/// One detected entity. Offsets are in characters (Unicode code points) of
/// [`OcrResult::text`], end exclusive: Comprehend Medical documents `BeginOffset` as "the
/// 0-based character offset in the input text ... The offset returns the UTF-8 code point in
/// the string" (API reference, `Entity`). The entity adapter maps chunk offsets back with
/// [`crate::chunk::to_document_offsets`] and renumbers `id` so it stays unique per document
/// (the service's ids are unique per response only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub id: u32,
    pub category: Category,
    /// Comprehend Medical's `Type` (`EntitySubType`: `GENERIC_NAME`, `DX_NAME`,
    /// `TEST_NAME`, ...). A string because the service adds types; the rules extractor uses
    /// the same spellings.
    pub entity_type: String,
    #[serde(deserialize_with = "phi")]
    pub text: Phi<String>,
    /// 0 to 1.
    pub score: f32,
    pub begin_offset: usize,
    pub end_offset: usize,
    #[serde(default)]
    pub traits: Vec<Trait>,
    #[serde(default)]
    pub attributes: Vec<EntityAttribute>,
}

/// An attribute linked to an entity (a medication's dosage, a condition's anatomy), as
/// Comprehend Medical's `Attribute`. Offsets as on [`Entity`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityAttribute {
    /// Comprehend Medical's `Type` for the attribute: `DOSAGE`, `ROUTE_OR_MODE`, `FREQUENCY`,
    /// `STRENGTH`, `FORM`, `DURATION`, `RATE`, `DIRECTION`, `SYSTEM_ORGAN_SITE`, ... (the same
    /// open `EntitySubType` list as [`Entity::entity_type`]).
    pub attribute_type: String,
    /// The attribute's own category, when the service gives one.
    pub category: Option<Category>,
    /// 0 to 1: that the text is this attribute.
    pub score: f32,
    /// 0 to 1: that it belongs to its entity.
    pub relationship_score: f32,
    /// `WITH_DOSAGE`, `ADMINISTERED_VIA`, `EVERY`, `OVERLAP`, ... when the service gives one.
    pub relationship_type: Option<String>,
    pub id: u32,
    pub begin_offset: usize,
    pub end_offset: usize,
    #[serde(deserialize_with = "phi")]
    pub text: Phi<String>,
    #[serde(default)]
    pub traits: Vec<Trait>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bbox(left: f32, top: f32) -> BoundingBox {
        BoundingBox {
            left,
            top,
            width: 0.5,
            height: 0.25,
        }
    }

    fn line(text: &str) -> Line {
        Line {
            text: Phi(text.into()),
            confidence: 99.5,
            bbox: bbox(0.125, 0.25),
            words: vec![],
        }
    }

    fn page(number: u32, lines: &[&str]) -> Page {
        Page {
            number,
            width: None,
            height: None,
            lines: lines.iter().map(|t| line(t)).collect(),
        }
    }

    /// Serialises through a string (so f32 values print as f32, not widened to f64), compares
    /// with the expected JSON, and reads it back.
    fn round_trip<T>(value: &T, expected: serde_json::Value)
    where
        T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug,
    {
        let text = serde_json::to_string(value).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, expected);
        let back: T = serde_json::from_str(&text).unwrap();
        assert_eq!(&back, value);
    }

    #[test]
    fn ocr_result_round_trips_with_stable_names() {
        let result = OcrResult {
            pages: vec![Page {
                number: 1,
                width: Some(2480),
                height: Some(3508),
                lines: vec![Line {
                    text: Phi("Metformin 500 mg".into()),
                    confidence: 98.25,
                    bbox: bbox(0.125, 0.25),
                    words: vec![
                        Word {
                            text: Phi("Metformin".into()),
                            confidence: 99.5,
                            bbox: bbox(0.125, 0.25),
                        },
                        Word {
                            text: Phi("500".into()),
                            confidence: 97.0,
                            bbox: bbox(0.5, 0.25),
                        },
                    ],
                }],
            }],
            ..Default::default()
        };
        round_trip(
            &result,
            json!({"pages": [{
                "number": 1, "width": 2480, "height": 3508,
                "lines": [{
                    "text": "Metformin 500 mg",
                    "confidence": 98.25,
                    "bbox": {"left": 0.125, "top": 0.25, "width": 0.5, "height": 0.25},
                    "words": [
                        {"text": "Metformin", "confidence": 99.5,
                         "bbox": {"left": 0.125, "top": 0.25, "width": 0.5, "height": 0.25}},
                        {"text": "500", "confidence": 97.0,
                         "bbox": {"left": 0.5, "top": 0.25, "width": 0.5, "height": 0.25}}
                    ]
                }]
            }]}),
        );
    }

    #[test]
    fn absent_page_size_is_null_and_may_be_omitted() {
        round_trip(
            &OcrResult {
                pages: vec![page(2, &[])],
                ..Default::default()
            },
            json!({"pages": [{"number": 2, "width": null, "height": null, "lines": []}]}),
        );
        let lean: OcrResult = serde_json::from_str(r#"{"pages":[{"number":1}]}"#).unwrap();
        assert_eq!(lean.pages, vec![page(1, &[])]);
    }

    #[test]
    fn entity_round_trips_with_service_spellings() {
        let entity = Entity {
            id: 3,
            category: Category::Medication,
            entity_type: "GENERIC_NAME".into(),
            text: Phi("metformin".into()),
            score: 0.75,
            begin_offset: 12,
            end_offset: 21,
            traits: vec![Trait {
                name: TraitName::PastHistory,
                score: 0.5,
            }],
            attributes: vec![EntityAttribute {
                attribute_type: "DOSAGE".into(),
                category: Some(Category::Medication),
                score: 0.875,
                relationship_score: 1.0,
                relationship_type: Some("DOSAGE".into()),
                id: 4,
                begin_offset: 22,
                end_offset: 28,
                text: Phi("500 mg".into()),
                traits: vec![Trait {
                    name: TraitName::Negation,
                    score: 0.25,
                }],
            }],
        };
        round_trip(
            &entity,
            json!({
                "id": 3, "category": "MEDICATION", "entity_type": "GENERIC_NAME",
                "text": "metformin", "score": 0.75, "begin_offset": 12, "end_offset": 21,
                "traits": [{"name": "PAST_HISTORY", "score": 0.5}],
                "attributes": [{
                    "attribute_type": "DOSAGE", "category": "MEDICATION", "score": 0.875,
                    "relationship_score": 1.0, "relationship_type": "DOSAGE", "id": 4,
                    "begin_offset": 22, "end_offset": 28, "text": "500 mg",
                    "traits": [{"name": "NEGATION", "score": 0.25}]
                }]
            }),
        );
    }

    /// The lists from the Comprehend Medical API reference (`Attribute.Category`,
    /// `Trait.Name` valid values), spelled out here so a renamed variant fails.
    #[test]
    fn enums_serialise_as_the_service_spells_them() {
        let categories = [
            (Category::Medication, "MEDICATION"),
            (Category::MedicalCondition, "MEDICAL_CONDITION"),
            (
                Category::ProtectedHealthInformation,
                "PROTECTED_HEALTH_INFORMATION",
            ),
            (Category::TestTreatmentProcedure, "TEST_TREATMENT_PROCEDURE"),
            (Category::Anatomy, "ANATOMY"),
            (Category::TimeExpression, "TIME_EXPRESSION"),
            (
                Category::BehavioralEnvironmentalSocial,
                "BEHAVIORAL_ENVIRONMENTAL_SOCIAL",
            ),
        ];
        for (category, name) in categories {
            assert_eq!(serde_json::to_value(category).unwrap(), json!(name));
            let back: Category = serde_json::from_value(json!(name)).unwrap();
            assert_eq!(back, category);
        }
        let traits = [
            (TraitName::Sign, "SIGN"),
            (TraitName::Symptom, "SYMPTOM"),
            (TraitName::Diagnosis, "DIAGNOSIS"),
            (TraitName::Negation, "NEGATION"),
            (TraitName::PertainsToFamily, "PERTAINS_TO_FAMILY"),
            (TraitName::Hypothetical, "HYPOTHETICAL"),
            (TraitName::LowConfidence, "LOW_CONFIDENCE"),
            (TraitName::PastHistory, "PAST_HISTORY"),
            (TraitName::Future, "FUTURE"),
        ];
        for (name, spelled) in traits {
            assert_eq!(serde_json::to_value(name).unwrap(), json!(spelled));
            let back: TraitName = serde_json::from_value(json!(spelled)).unwrap();
            assert_eq!(back, name);
        }
    }

    #[test]
    fn unknown_category_or_trait_is_refused() {
        assert!(serde_json::from_value::<Category>(json!("MEDICATIONS")).is_err());
        assert!(serde_json::from_value::<Category>(json!("medication")).is_err());
        assert!(serde_json::from_value::<TraitName>(json!("NEGATED")).is_err());
    }

    fn check(result: OcrResult, expected: &str) {
        assert_eq!(result.text(), expected, "{:?}", result.pages);
    }

    #[test]
    fn plain_text_becomes_one_page_and_reads_back() {
        let r = OcrResult::from_plain_text("Aspirin 81 mg\r\ndaily\n\nend");
        assert_eq!(r.pages.len(), 1);
        assert_eq!(r.pages[0].lines.len(), 4);
        assert_eq!(r.text(), "Aspirin 81 mg\ndaily\n\nend");
    }

    #[test]
    fn warnings_are_omitted_when_empty_and_kept_otherwise() {
        let mut r = OcrResult::from_plain_text("x");
        assert!(!serde_json::to_string(&r).unwrap().contains("warnings"));
        r.warnings.push(OcrWarning {
            code: "PAGE_FAILED".into(),
            pages: vec![2],
        });
        let back: OcrResult = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.warnings, r.warnings);
    }

    #[test]
    fn text_joins_lines_and_pages() {
        check(OcrResult::default(), "");
        check(
            OcrResult {
                pages: vec![page(1, &["only line"])],
                ..Default::default()
            },
            "only line",
        );
        check(
            OcrResult {
                pages: vec![page(1, &["a", "b"]), page(2, &["c"])],
                ..Default::default()
            },
            "a\nb\n\nc",
        );
        check(
            OcrResult {
                pages: vec![page(1, &["a"]), page(2, &[]), page(3, &["c", "d"])],
                ..Default::default()
            },
            "a\n\n\n\nc\nd",
        );
        check(
            OcrResult {
                pages: vec![page(1, &["é µg 检查 🩺", ""])],
                ..Default::default()
            },
            "é µg 检查 🩺\n",
        );
    }

    #[test]
    fn debug_hides_document_text() {
        let entity = Entity {
            id: 1,
            category: Category::ProtectedHealthInformation,
            entity_type: "NAME".into(),
            text: Phi("Zbigniew".into()),
            score: 0.9,
            begin_offset: 0,
            end_offset: 8,
            traits: vec![],
            attributes: vec![],
        };
        let shown = format!("{entity:?} {:?}", page(1, &["Zbigniew Brzezinski"]));
        assert!(!shown.contains("Zbigniew"), "{shown}");
    }
}
