//! The dictionary-and-rules medical entity extractor: the local stand-in for Comprehend
//! Medical DetectEntitiesV2, giving [`Entity`] values in the service's model.
//!
//! - **Vocabulary** (`vocab/`, compiled in; see `vocab/PROVENANCE.md`): generic and brand
//!   medication names, conditions, tests, procedures, treatments and anatomy, matched
//!   case-insensitively on whole words (Unicode word boundaries), longest term first, with one
//!   Aho-Corasick automaton built once.
//! - **Segments**: the text is cut into segments at line ends, `;` and sentence ends (`.`, `!`,
//!   `?` followed by space and then not a lower-case letter). Attributes and traits never reach
//!   across a segment.
//! - **Medication attributes** (STRENGTH, DOSAGE, ROUTE_OR_MODE, FREQUENCY, FORM, DURATION): by
//!   rules in a window after the medication, up to [`ATTRIBUTE_WINDOW`] bytes, the segment end,
//!   or the next medication (route, form, frequency and duration reach through a combination
//!   joined by `/`, `+`, `and`, `with`, which they share); route and frequency are also taken
//!   from just before the medication ("inhaled fluticasone", "daily aspirin") when none follows.
//!   At most one attribute of each type per medication, the nearest.
//! - **Traits**: NegEx-style. A pre-trigger ("no", "denies", "without", "negative for", "free
//!   of", ...) marks every later entity of its segment until a terminator ("but", "however",
//!   "although", "except", ...); a post-trigger ("was ruled out", "is negative", "unlikely")
//!   marks the entities at most [`POST_TRIGGER_WORDS`] words before it. PAST_HISTORY ("history
//!   of", "s/p", ...), PERTAINS_TO_FAMILY ("family history of", "mother", ...) and HYPOTHETICAL
//!   ("if", "rule out", ...) work like pre-triggers. NEGATION and HYPOTHETICAL apply to
//!   conditions, medications (NEGATION only) and tests/treatments/procedures; PAST_HISTORY to
//!   all but anatomy; PERTAINS_TO_FAMILY to conditions.
//! - **Scores** are fixed: [`DICTIONARY_SCORE`] for every dictionary hit, [`ATTRIBUTE_SCORE`]
//!   for a rule-found attribute with [`RELATIONSHIP_AFTER_SCORE`] or
//!   [`RELATIONSHIP_BEFORE_SCORE`] for its link, and the trait scores below.
//!
//! Offsets are in characters (Unicode scalar values) of the input, end exclusive; ids are
//! unique in one result (entities and attributes share one sequence); entities are sorted by
//! begin offset. Any input is accepted: the extractor does not panic.

mod attrs;
mod context;
mod matcher;
mod vocab;

use async_trait::async_trait;
use fleet_core::phi::Phi;
use fleet_docs::ports::{DocError, EntityExtractor};
use fleet_docs::schema::{Category, Entity, EntityAttribute, Trait, TraitName};

use attrs::{AttrKind, Candidate};
use context::{TRIGGERS, Trigger};
use vocab::DICTIONARY;
pub use vocab::VocabularySizes;

/// Score of an entity found in the vocabulary.
pub const DICTIONARY_SCORE: f32 = 0.9;
/// Score that an attribute's text is that attribute (rule-found).
pub const ATTRIBUTE_SCORE: f32 = 0.8;
/// Relationship score of an attribute found after its medication.
pub const RELATIONSHIP_AFTER_SCORE: f32 = 0.8;
/// Relationship score of a route or frequency found before its medication.
pub const RELATIONSHIP_BEFORE_SCORE: f32 = 0.6;
/// Score of a NEGATION trait.
pub const NEGATION_SCORE: f32 = 0.85;
/// Score of a PAST_HISTORY trait.
pub const PAST_HISTORY_SCORE: f32 = 0.75;
/// Score of a PERTAINS_TO_FAMILY trait.
pub const FAMILY_SCORE: f32 = 0.75;
/// Score of a HYPOTHETICAL trait.
pub const HYPOTHETICAL_SCORE: f32 = 0.7;
/// How far after a medication (bytes of text) its attributes are looked for.
pub const ATTRIBUTE_WINDOW: usize = 100;
/// How far before a medication (bytes of text) a route or frequency is looked for.
pub const ATTRIBUTE_WINDOW_BEFORE: usize = 30;
/// How many words may stand between an entity and a negating post-trigger.
pub const POST_TRIGGER_WORDS: usize = 4;

/// The local entity extractor. Cheap to create: the vocabulary is compiled once per process.
#[derive(Debug, Clone, Copy, Default)]
pub struct RulesExtractor;

impl RulesExtractor {
    pub fn new() -> Self {
        Self
    }

    /// Entities of `text` (see the module docs), synchronously.
    pub fn extract(&self, text: &str) -> Vec<Entity> {
        extract(text)
    }

    /// How many terms the compiled vocabulary holds, per list.
    pub fn vocabulary_sizes() -> VocabularySizes {
        DICTIONARY.sizes
    }

    /// The generic ingredient(s) of a brand name in the vocabulary (`"augmentin"` →
    /// `"amoxicillin / clavulanate"`), case-insensitive.
    pub fn generic_name_of(brand: &str) -> Option<&'static str> {
        DICTIONARY.generic_of(brand)
    }
}

#[async_trait]
impl EntityExtractor for RulesExtractor {
    fn name(&self) -> &'static str {
        "rules"
    }

    async fn detect(&self, text: &str) -> Result<Vec<Entity>, DocError> {
        Ok(extract(text))
    }
}

/// An entity while being built: byte offsets.
struct Draft {
    start: usize,
    end: usize,
    category: Category,
    entity_type: &'static str,
    traits: Vec<(TraitName, f32)>,
    attributes: Vec<(Candidate, f32)>,
}

fn extract(text: &str) -> Vec<Entity> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut drafts: Vec<Draft> = DICTIONARY
        .find(text)
        .into_iter()
        .map(|(f, kind)| Draft {
            start: f.start,
            end: f.end,
            category: kind.category,
            entity_type: kind.entity_type,
            traits: Vec::new(),
            attributes: Vec::new(),
        })
        .collect();
    if drafts.is_empty() {
        return Vec::new();
    }
    let ends = context::segment_ends(text);
    attach_attributes(text, &ends, &mut drafts);
    attach_traits(text, &ends, &mut drafts);
    finish(text, drafts)
}

/// Whether the text between two medications makes them one combination product.
fn joins_combination(gap: &str, candidates: &[Candidate], gap_start: usize) -> bool {
    // Drop amounts (the first ingredient's strength) from the gap, then look at what is left.
    let mut rest = String::new();
    let mut at = gap_start;
    for c in candidates {
        if matches!(c.kind, AttrKind::Strength | AttrKind::Dosage) && c.start >= at {
            if let Some(piece) = gap.get(at - gap_start..c.start - gap_start) {
                rest.push_str(piece);
            }
            at = c.end;
        }
    }
    if let Some(piece) = gap.get(at.saturating_sub(gap_start)..) {
        rest.push_str(piece);
    }
    matches!(
        rest.trim().to_ascii_lowercase().as_str(),
        "/" | "+" | "and" | "&" | "with" | "-"
    )
}

fn attach_attributes(text: &str, ends: &[usize], drafts: &mut [Draft]) {
    let meds: Vec<usize> = (0..drafts.len())
        .filter(|&i| drafts[i].category == Category::Medication)
        .collect();
    if meds.is_empty() {
        return;
    }
    let candidates = attrs::candidates(text);
    // combined[k]: medication meds[k] is joined to meds[k + 1] as one combination product.
    let mut combined = vec![false; meds.len()];
    for k in 0..meds.len().saturating_sub(1) {
        let (a, b) = (&drafts[meds[k]], &drafts[meds[k + 1]]);
        if b.start < a.end || b.start - a.end > ATTRIBUTE_WINDOW {
            continue;
        }
        if context::segment_of(ends, a.start).0 != context::segment_of(ends, b.start).0 {
            continue;
        }
        let lo = candidates.partition_point(|c| c.start < a.end);
        let hi = candidates.partition_point(|c| c.start < b.start);
        let inside: Vec<Candidate> = candidates[lo..hi]
            .iter()
            .copied()
            .filter(|c| c.end <= b.start)
            .collect();
        combined[k] = joins_combination(&text[a.end..b.start], &inside, a.end);
    }
    // Attributes taken from after a medication, which no later one may take from before it.
    let mut claimed: std::collections::HashSet<(usize, usize)> = Default::default();
    for (k, &i) in meds.iter().enumerate() {
        let (_, seg_start, seg_end) = context::segment_of(ends, drafts[i].start);
        let (start, end) = (drafts[i].start, drafts[i].end);
        let next_med = meds.get(k + 1).map(|&j| drafts[j].start);
        let window_end = seg_end.min(end.saturating_add(ATTRIBUTE_WINDOW));
        let own_end = next_med.map_or(window_end, |n| n.min(window_end));
        // Through a combination: up to the first following medication that is not joined.
        let mut shared_end = own_end;
        let mut m = k;
        while m + 1 < meds.len() && combined[m] {
            m += 1;
            let after = meds.get(m + 1).map(|&j| drafts[j].start);
            let member_end = drafts[meds[m]].end;
            let w = seg_end.min(member_end.saturating_add(ATTRIBUTE_WINDOW));
            shared_end = after.map_or(w, |n| n.min(w));
        }
        let mut chosen: Vec<(Candidate, f32)> = Vec::new();
        let overlaps = |c: &Candidate, chosen: &[(Candidate, f32)]| {
            chosen
                .iter()
                .any(|(o, _)| o.kind == c.kind || (c.start < o.end && o.start < c.end))
        };
        let first = candidates.partition_point(|c| c.start < end);
        for c in &candidates[first..] {
            if c.start >= shared_end {
                break;
            }
            let limit = match c.kind {
                AttrKind::Strength | AttrKind::Dosage => own_end,
                _ => shared_end,
            };
            // Between the members of a combination only amounts belong to the earlier one.
            let in_other_member = c.start >= own_end;
            if c.end > limit || (in_other_member && c.start < drafts[meds[m]].end) {
                continue;
            }
            if !overlaps(c, &chosen) {
                chosen.push((*c, RELATIONSHIP_AFTER_SCORE));
            }
        }
        // "amoxicillin 250 mg / clavulanate 125 mg oral tablet": 250 mg is a product strength.
        if combined[k] && chosen.iter().any(|(c, _)| c.kind == AttrKind::Form) {
            for (c, _) in chosen.iter_mut() {
                if c.kind == AttrKind::Dosage && c.mass {
                    c.kind = AttrKind::Strength;
                }
            }
        }
        claimed.extend(chosen.iter().map(|(c, _)| (c.start, c.end)));
        // Before: route and frequency, from the nearest one backwards.
        let prev_med_end = k.checked_sub(1).map_or(0, |p| drafts[meds[p]].end);
        let before_start = seg_start
            .max(prev_med_end)
            .max(start.saturating_sub(ATTRIBUTE_WINDOW_BEFORE));
        let upto = candidates.partition_point(|c| c.start < start);
        for c in candidates[..upto].iter().rev() {
            if c.start < before_start {
                break;
            }
            if c.end > start
                || !matches!(c.kind, AttrKind::Route | AttrKind::Frequency)
                || claimed.contains(&(c.start, c.end))
            {
                continue;
            }
            if !overlaps(c, &chosen) {
                chosen.push((*c, RELATIONSHIP_BEFORE_SCORE));
            }
        }
        chosen.sort_by_key(|(c, _)| (c.start, c.end));
        drafts[i].attributes = chosen;
    }
}

/// Which traits apply to which category.
fn trait_applies(name: TraitName, category: Category) -> bool {
    use Category::*;
    match name {
        TraitName::Negation => matches!(
            category,
            MedicalCondition | Medication | TestTreatmentProcedure
        ),
        TraitName::Hypothetical => matches!(category, MedicalCondition | TestTreatmentProcedure),
        TraitName::PastHistory => matches!(
            category,
            MedicalCondition | Medication | TestTreatmentProcedure
        ),
        TraitName::PertainsToFamily => category == MedicalCondition,
        _ => false,
    }
}

fn add_trait(draft: &mut Draft, name: TraitName, score: f32) {
    if trait_applies(name, draft.category) && !draft.traits.iter().any(|(n, _)| *n == name) {
        draft.traits.push((name, score));
    }
}

fn attach_traits(text: &str, ends: &[usize], drafts: &mut [Draft]) {
    let triggers = TRIGGERS.find(text);
    if triggers.is_empty() {
        return;
    }
    // Forward sweep: pre-triggers, active until a terminator or the segment's end.
    let mut t = 0;
    let mut segment = usize::MAX;
    let mut active: Vec<(TraitName, f32)> = Vec::new();
    for d in drafts.iter_mut() {
        while t < triggers.len() && triggers[t].0.end <= d.start {
            let (f, kind) = triggers[t];
            let seg = context::segment_of(ends, f.start).0;
            if seg != segment {
                segment = seg;
                active.clear();
            }
            match kind {
                Trigger::Terminator => active.clear(),
                Trigger::NegationBefore => active.push((TraitName::Negation, NEGATION_SCORE)),
                Trigger::PastHistoryBefore => {
                    active.push((TraitName::PastHistory, PAST_HISTORY_SCORE));
                }
                Trigger::FamilyBefore => active.push((TraitName::PertainsToFamily, FAMILY_SCORE)),
                Trigger::HypotheticalBefore => {
                    active.push((TraitName::Hypothetical, HYPOTHETICAL_SCORE));
                }
                Trigger::NegationAfter | Trigger::Pseudo => {}
            }
            t += 1;
        }
        let seg = context::segment_of(ends, d.start).0;
        if seg != segment {
            segment = seg;
            active.clear();
        }
        for &(name, score) in &active {
            add_trait(d, name, score);
        }
    }
    // Backward sweep: negating post-triggers, for the few words before them.
    let mut t = triggers.len();
    let mut pending: Option<usize> = None; // start of the nearest post-trigger
    let mut segment = usize::MAX;
    for d in drafts.iter_mut().rev() {
        while t > 0 && triggers[t - 1].0.start >= d.end {
            let (f, kind) = triggers[t - 1];
            let seg = context::segment_of(ends, f.start).0;
            if seg != segment {
                segment = seg;
                pending = None;
            }
            match kind {
                Trigger::Terminator => pending = None,
                Trigger::NegationAfter => pending = Some(f.start),
                _ => {}
            }
            t -= 1;
        }
        let seg = context::segment_of(ends, d.start).0;
        if seg != segment {
            segment = seg;
            pending = None;
        }
        if let Some(p) = pending
            && text
                .get(d.end..p)
                .is_some_and(|gap| context::at_most_words(gap, POST_TRIGGER_WORDS))
        {
            add_trait(d, TraitName::Negation, NEGATION_SCORE);
        }
    }
}

/// Byte offsets to character offsets, in one pass over the text.
struct CharOffsets {
    bytes: Vec<usize>,
    chars: Vec<usize>,
}

impl CharOffsets {
    fn new(text: &str, mut offsets: Vec<usize>) -> Self {
        offsets.sort_unstable();
        offsets.dedup();
        let mut chars = Vec::with_capacity(offsets.len());
        let (mut at_byte, mut at_char) = (0, 0);
        for &b in &offsets {
            at_char += text.get(at_byte..b).map_or(0, |s| s.chars().count());
            at_byte = b;
            chars.push(at_char);
        }
        Self {
            bytes: offsets,
            chars,
        }
    }

    fn get(&self, byte: usize) -> usize {
        let i = self.bytes.partition_point(|&b| b < byte);
        self.chars.get(i).copied().unwrap_or(0)
    }
}

fn finish(text: &str, mut drafts: Vec<Draft>) -> Vec<Entity> {
    drafts.sort_by_key(|d| (d.start, d.end));
    let mut offsets = Vec::new();
    for d in &drafts {
        offsets.extend([d.start, d.end]);
        for (c, _) in &d.attributes {
            offsets.extend([c.start, c.end]);
        }
    }
    let map = CharOffsets::new(text, offsets);
    let slice = |s: usize, e: usize| Phi(text.get(s..e).unwrap_or_default().to_string());
    let mut next_id = 0u32;
    let mut id = || {
        let i = next_id;
        next_id = next_id.wrapping_add(1);
        i
    };
    drafts
        .into_iter()
        .map(|d| {
            let entity_id = id();
            let attributes = d
                .attributes
                .iter()
                .map(|&(c, relationship_score)| EntityAttribute {
                    attribute_type: c.kind.attribute_type().to_string(),
                    category: Some(Category::Medication),
                    score: ATTRIBUTE_SCORE,
                    relationship_score,
                    relationship_type: Some(c.kind.relationship_type().to_string()),
                    id: id(),
                    begin_offset: map.get(c.start),
                    end_offset: map.get(c.end),
                    text: slice(c.start, c.end),
                    traits: Vec::new(),
                })
                .collect();
            Entity {
                id: entity_id,
                category: d.category,
                entity_type: d.entity_type.to_string(),
                text: slice(d.start, d.end),
                score: DICTIONARY_SCORE,
                begin_offset: map.get(d.start),
                end_offset: map.get(d.end),
                traits: d
                    .traits
                    .iter()
                    .map(|&(name, score)| Trait { name, score })
                    .collect(),
                attributes,
            }
        })
        .collect()
}
