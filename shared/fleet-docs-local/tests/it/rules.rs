//! The rules extractor against hand-written sentences (none taken from any corpus).

use fleet_docs::ports::EntityExtractor;
use fleet_docs::schema::{Category, Entity, TraitName};
use fleet_docs_local::rules::{
    ATTRIBUTE_SCORE, DICTIONARY_SCORE, NEGATION_SCORE, RELATIONSHIP_AFTER_SCORE, RulesExtractor,
};
use proptest::prelude::*;

fn extract(text: &str) -> Vec<Entity> {
    RulesExtractor::new().extract(text)
}

/// The text of `[begin, end)` counted in chars.
fn by_chars(text: &str, begin: usize, end: usize) -> String {
    text.chars().skip(begin).take(end - begin).collect()
}

fn find<'a>(entities: &'a [Entity], text: &str) -> &'a Entity {
    entities
        .iter()
        .find(|e| e.text.expose() == text)
        .unwrap_or_else(|| panic!("no entity {text:?} in {:?}", texts(entities)))
}

fn texts(entities: &[Entity]) -> Vec<String> {
    entities.iter().map(|e| e.text.expose().clone()).collect()
}

fn attr<'a>(e: &'a Entity, attribute_type: &str) -> Option<&'a str> {
    e.attributes
        .iter()
        .find(|a| a.attribute_type == attribute_type)
        .map(|a| a.text.expose().as_str())
}

fn negated(e: &Entity) -> bool {
    e.traits.iter().any(|t| t.name == TraitName::Negation)
}

fn has_trait(e: &Entity, name: TraitName) -> bool {
    e.traits.iter().any(|t| t.name == name)
}

/// Offsets, ids and texts hold together.
fn check_invariants(text: &str, entities: &[Entity]) {
    let n = text.chars().count();
    let mut ids = std::collections::HashSet::new();
    let mut last_begin = 0;
    for e in entities {
        assert!(e.begin_offset < e.end_offset && e.end_offset <= n);
        assert!(e.begin_offset >= last_begin, "sorted by begin offset");
        last_begin = e.begin_offset;
        assert_eq!(
            &by_chars(text, e.begin_offset, e.end_offset),
            e.text.expose()
        );
        assert!(ids.insert(e.id), "duplicate id {}", e.id);
        for a in &e.attributes {
            assert!(a.begin_offset < a.end_offset && a.end_offset <= n);
            assert_eq!(
                &by_chars(text, a.begin_offset, a.end_offset),
                a.text.expose()
            );
            assert!(ids.insert(a.id), "duplicate id {}", a.id);
        }
    }
}

#[tokio::test]
async fn implements_the_port_with_its_name() {
    let x = RulesExtractor::new();
    assert_eq!(x.name(), "rules");
    let entities = x.detect("Metformin 500 mg daily").await.unwrap();
    assert_eq!(entities.len(), 1);
    assert_eq!(entities[0].entity_type, "GENERIC_NAME");
}

#[test]
fn medication_with_strength_route_form_and_offsets() {
    let text = "Started amoxicillin 500 mg oral tablet three times daily for 10 days.";
    let entities = extract(text);
    check_invariants(text, &entities);
    assert_eq!(entities.len(), 1, "{:?}", texts(&entities));
    let e = &entities[0];
    assert_eq!(e.category, Category::Medication);
    assert_eq!(e.entity_type, "GENERIC_NAME");
    assert_eq!(e.text.expose(), "amoxicillin");
    assert_eq!((e.begin_offset, e.end_offset), (8, 19));
    assert_eq!(e.score, DICTIONARY_SCORE);
    assert_eq!(attr(e, "STRENGTH"), Some("500 mg"));
    assert_eq!(attr(e, "ROUTE_OR_MODE"), Some("oral"));
    assert_eq!(attr(e, "FORM"), Some("tablet"));
    assert_eq!(attr(e, "FREQUENCY"), Some("three times daily"));
    assert_eq!(attr(e, "DURATION"), Some("for 10 days"));
    let strength = e
        .attributes
        .iter()
        .find(|a| a.attribute_type == "STRENGTH")
        .unwrap();
    assert_eq!((strength.begin_offset, strength.end_offset), (20, 26));
    assert_eq!(strength.relationship_type.as_deref(), Some("STRENGTH"));
    assert_eq!(strength.category, Some(Category::Medication));
    assert_eq!(strength.score, ATTRIBUTE_SCORE);
    assert_eq!(strength.relationship_score, RELATIONSHIP_AFTER_SCORE);
    let route = e
        .attributes
        .iter()
        .find(|a| a.attribute_type == "ROUTE_OR_MODE")
        .unwrap();
    assert_eq!(route.relationship_type.as_deref(), Some("ADMINISTERED_VIA"));
}

#[test]
fn dosage_frequency_and_prn() {
    let text = "Take ibuprofen 400 mg po q6h prn; lisinopril 10 mg daily; insulin glargine 10 units at bedtime";
    let entities = extract(text);
    check_invariants(text, &entities);
    assert_eq!(
        texts(&entities),
        ["ibuprofen", "lisinopril", "insulin glargine"]
    );
    let ibu = &entities[0];
    assert_eq!(attr(ibu, "DOSAGE"), Some("400 mg"));
    assert_eq!(attr(ibu, "ROUTE_OR_MODE"), Some("po"));
    assert_eq!(attr(ibu, "FREQUENCY"), Some("q6h"));
    let dosage = ibu
        .attributes
        .iter()
        .find(|a| a.attribute_type == "DOSAGE")
        .unwrap();
    assert_eq!(dosage.relationship_type.as_deref(), Some("WITH_DOSAGE"));
    assert_eq!(attr(&entities[1], "DOSAGE"), Some("10 mg"));
    assert_eq!(attr(&entities[1], "FREQUENCY"), Some("daily"));
    // The window stops at ';': lisinopril does not take insulin's attributes.
    assert_eq!(entities[1].attributes.len(), 2);
    assert_eq!(attr(&entities[2], "DOSAGE"), Some("10 units"));
    assert_eq!(attr(&entities[2], "FREQUENCY"), Some("at bedtime"));
}

#[test]
fn inhaler_concentration_and_route_before() {
    let text =
        "Inhaled fluticasone propionate 0.044 mg/actuat metered dose inhaler, 2 puffs twice daily.";
    let entities = extract(text);
    check_invariants(text, &entities);
    assert_eq!(texts(&entities), ["fluticasone propionate"]);
    let e = &entities[0];
    assert_eq!(attr(e, "STRENGTH"), Some("0.044 mg/actuat"));
    assert_eq!(attr(e, "FORM"), Some("metered dose inhaler"));
    assert_eq!(attr(e, "DOSAGE"), Some("2 puffs"));
    assert_eq!(attr(e, "FREQUENCY"), Some("twice daily"));
    assert_eq!(attr(e, "ROUTE_OR_MODE"), Some("Inhaled"));
}

#[test]
fn combination_products_share_route_and_form() {
    let text =
        "amoxicillin 250 mg / clavulanate 125 mg oral tablet; cetirizine 5 mg chewable tablet";
    let entities = extract(text);
    check_invariants(text, &entities);
    assert_eq!(
        texts(&entities),
        ["amoxicillin", "clavulanate", "cetirizine"]
    );
    let (amox, clav, cet) = (&entities[0], &entities[1], &entities[2]);
    assert_eq!(
        attr(amox, "DOSAGE").or(attr(amox, "STRENGTH")),
        Some("250 mg")
    );
    assert_eq!(attr(amox, "ROUTE_OR_MODE"), Some("oral"));
    assert_eq!(attr(amox, "FORM"), Some("tablet"));
    assert_eq!(attr(clav, "STRENGTH"), Some("125 mg"));
    assert_eq!(attr(clav, "FORM"), Some("tablet"));
    assert_eq!(attr(cet, "STRENGTH"), Some("5 mg"));
    assert_eq!(attr(cet, "FORM"), Some("chewable tablet"));

    // A bracketed brand after the form does not take the generic's route.
    let text = "acetaminophen 325 mg oral tablet [Tylenol]";
    let entities = extract(text);
    assert_eq!(texts(&entities), ["acetaminophen", "Tylenol"]);
    assert_eq!(attr(&entities[0], "ROUTE_OR_MODE"), Some("oral"));
    assert!(entities[1].attributes.is_empty());
}

#[test]
fn offsets_count_characters_after_multibyte_text() {
    let text = "Patiënt 🩺 très malade: ibuprofène non, mais naproxen 250 mg ✓ bid";
    let entities = extract(text);
    check_invariants(text, &entities);
    // "ibuprofène" is not the whole word "ibuprofen".
    assert_eq!(texts(&entities), ["naproxen"]);
    let e = &entities[0];
    let begin = text.chars().collect::<String>().find("naproxen").unwrap();
    assert_ne!(begin, e.begin_offset, "byte and char offsets differ here");
    assert_eq!(e.begin_offset, text[..begin].chars().count());
    assert_eq!(e.end_offset, e.begin_offset + 8);
    assert_eq!(attr(e, "DOSAGE"), Some("250 mg"));
    let dose = &e.attributes[0];
    assert_eq!(
        &by_chars(text, dose.begin_offset, dose.end_offset),
        "250 mg"
    );
}

#[test]
fn brand_names_and_generic_mapping() {
    let text = "She takes LIPITOR 20 mg nightly and Augmentin; also Sprintec.";
    let entities = extract(text);
    check_invariants(text, &entities);
    assert_eq!(texts(&entities), ["LIPITOR", "Augmentin", "Sprintec"]);
    assert!(entities.iter().all(|e| e.entity_type == "BRAND_NAME"));
    assert_eq!(attr(&entities[0], "FREQUENCY"), Some("nightly"));
    assert_eq!(
        RulesExtractor::generic_name_of("Augmentin"),
        Some("amoxicillin / clavulanate")
    );
    assert_eq!(
        RulesExtractor::generic_name_of("LIPITOR"),
        Some("atorvastatin")
    );
    assert_eq!(RulesExtractor::generic_name_of("nonsense"), None);
}

#[test]
fn multi_word_terms_and_longest_match() {
    let text = "Diagnosed with acute bronchitis and type 2 diabetes mellitus; chest x-ray of the left lung.";
    let entities = extract(text);
    check_invariants(text, &entities);
    assert_eq!(
        texts(&entities),
        [
            "acute bronchitis",
            "type 2 diabetes mellitus",
            "chest x-ray",
            "left lung"
        ]
    );
    let kinds: Vec<(Category, &str)> = entities
        .iter()
        .map(|e| (e.category, e.entity_type.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (Category::MedicalCondition, "DX_NAME"),
            (Category::MedicalCondition, "DX_NAME"),
            (Category::TestTreatmentProcedure, "TEST_NAME"),
            (Category::Anatomy, "SYSTEM_ORGAN_SITE"),
        ]
    );
}

#[test]
fn procedures_treatments_and_tests() {
    let text =
        "Underwent laparoscopic cholecystectomy; hemoglobin a1c checked; started physical therapy.";
    let entities = extract(text);
    check_invariants(text, &entities);
    let types: Vec<(&str, &str)> = entities
        .iter()
        .map(|e| (e.text.expose().as_str(), e.entity_type.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("laparoscopic cholecystectomy", "PROCEDURE_NAME"),
            ("hemoglobin a1c", "TEST_NAME"),
            ("physical therapy", "TREATMENT_NAME"),
        ]
    );
}

#[test]
fn denies_chest_pain_is_negated() {
    let text = "Patient denies chest pain.";
    let entities = extract(text);
    check_invariants(text, &entities);
    let e = find(&entities, "chest pain");
    assert!(negated(e));
    assert_eq!(e.traits[0].score, NEGATION_SCORE);
}

#[test]
fn but_ends_the_negation_scope() {
    let entities = extract("chest pain but no fever");
    assert!(!negated(find(&entities, "chest pain")));
    assert!(negated(find(&entities, "fever")));

    let entities = extract("No fever, chills or cough; reports headache. Nausea.");
    assert!(negated(find(&entities, "fever")));
    assert!(negated(find(&entities, "chills")));
    assert!(negated(find(&entities, "cough")));
    assert!(!negated(find(&entities, "headache")));
    assert!(!negated(find(&entities, "Nausea")));

    let entities = extract("Denies dysuria, however has hematuria");
    assert!(negated(find(&entities, "dysuria")));
    assert!(!negated(find(&entities, "hematuria")));
}

#[test]
fn other_negation_triggers() {
    for (text, term) in [
        ("No evidence of pneumonia.", "pneumonia"),
        (
            "Negative for streptococcal pharyngitis",
            "streptococcal pharyngitis",
        ),
        ("Pulmonary embolism was ruled out.", "Pulmonary embolism"),
        ("Rapid strep test is negative", "Rapid strep test"),
        ("Appendicitis is unlikely", "Appendicitis"),
        ("She is free of wheezing", "wheezing"),
        ("Walks without pain", "pain"),
        ("Absence of edema", "edema"),
        ("Not taking aspirin", "aspirin"),
    ] {
        let entities = extract(text);
        assert!(negated(find(&entities, term)), "{text}");
    }
    // Post-triggers reach only a few words back, and pseudo-triggers negate nothing.
    let entities = extract("Pneumonia on the left side of the chest, the workup is negative");
    assert!(!negated(find(&entities, "Pneumonia")));
    let entities = extract("No change in hypertension; gram negative sepsis");
    assert!(!negated(find(&entities, "hypertension")));
    assert!(!negated(find(&entities, "sepsis")));
}

#[test]
fn history_family_and_hypothetical() {
    let entities =
        extract("Patient has a history of otitis media, asthma. Mother has type 2 diabetes.");
    assert!(has_trait(
        find(&entities, "otitis media"),
        TraitName::PastHistory
    ));
    assert!(has_trait(find(&entities, "asthma"), TraitName::PastHistory));
    let dm = find(&entities, "type 2 diabetes");
    assert!(has_trait(dm, TraitName::PertainsToFamily));
    assert!(!has_trait(dm, TraitName::PastHistory));

    let entities = extract("Family history of breast cancer; no family history of stroke");
    let bc = find(&entities, "breast cancer");
    assert!(has_trait(bc, TraitName::PertainsToFamily) && !negated(bc));
    assert!(negated(find(&entities, "stroke")));

    let entities = extract("Return if fever develops. CT to rule out appendicitis.");
    assert!(has_trait(find(&entities, "fever"), TraitName::Hypothetical));
    assert!(has_trait(
        find(&entities, "appendicitis"),
        TraitName::Hypothetical
    ));
    // Anatomy takes no traits.
    let entities = extract("no swelling of the knee");
    assert!(negated(find(&entities, "swelling")));
    assert!(find(&entities, "knee").traits.is_empty());
}

#[test]
fn text_without_entities() {
    assert!(extract("").is_empty());
    assert!(extract("The weather in the city was pleasant; we walked home at noon.").is_empty());
    assert!(extract("No Known Allergies. No Active Medications.").is_empty());
    assert!(extract("\u{0}\u{feff}🩺🩺 ÆØÅ 检查").is_empty());
}

#[test]
fn words_inside_other_words_are_not_matched() {
    let entities = extract("heparinized saline, hypertensive crisis, metforminx, predictable");
    assert_eq!(texts(&entities), Vec::<String>::new());
}

#[test]
fn big_input_is_fast_and_consistent() {
    let unit = "Metformin 500 mg oral tablet twice daily; denies chest pain but reports cough. ";
    let text = unit.repeat(20_000); // about 1.6 MB
    let started = std::time::Instant::now();
    let entities = extract(&text);
    let took = started.elapsed();
    assert_eq!(entities.len(), 3 * 20_000);
    check_invariants(&text, &entities[..30]);
    let last = entities.last().unwrap();
    assert_eq!(last.text.expose(), "cough");
    assert_eq!(last.begin_offset, text.chars().count() - 7);
    let negated_count = entities.iter().filter(|e| negated(e)).count();
    assert_eq!(negated_count, 20_000);
    assert!(took.as_secs() < 30, "took {took:?}");
}

#[test]
fn vocabulary_is_broad() {
    let sizes = RulesExtractor::vocabulary_sizes();
    assert!(sizes.generic_names + sizes.brand_names >= 500, "{sizes:?}");
    assert!(sizes.generic_names >= 500, "{sizes:?}");
    assert!(sizes.brand_names >= 300, "{sizes:?}");
    assert!(sizes.conditions >= 300, "{sizes:?}");
    assert!(sizes.tests >= 200, "{sizes:?}");
    assert!(sizes.procedures >= 150, "{sizes:?}");
    assert!(sizes.anatomy >= 200, "{sizes:?}");
    // A sample across classes.
    let text = "sertraline, apixaban, albuterol, levonorgestrel, insulin lispro, \
                ceftriaxone, oxycodone, montelukast, Tdap, Xarelto, Yaz, Humalog, Ventolin";
    assert_eq!(extract(text).len(), 13, "{:?}", texts(&extract(text)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_string_gives_valid_offsets(text in any::<String>()) {
        let entities = extract(&text);
        check_invariants(&text, &entities);
    }

    #[test]
    fn clinical_looking_strings_give_valid_offsets(
        words in proptest::collection::vec(
            prop_oneof![
                Just("aspirin".to_string()), Just("no".to_string()), Just("500 mg".to_string()),
                Just("b.i.d.".to_string()), Just("/".to_string()), Just("but".to_string()),
                Just("chest pain".to_string()), Just("é".to_string()), Just(";".to_string()),
                Just(".".to_string()), Just("\n".to_string()), Just("was ruled out".to_string()),
                Just("oral tablet".to_string()), Just("🩺".to_string()), "\\PC{0,6}",
            ],
            0..40,
        ),
        sep in prop_oneof![Just(" "), Just(""), Just("\u{a0}"), Just("\r\n")],
    ) {
        let text = words.join(sep);
        let entities = extract(&text);
        check_invariants(&text, &entities);
    }
}
