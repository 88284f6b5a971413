//! The shipped vocabulary (`vocab/`, see its `PROVENANCE.md`), compiled into one matcher.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use fleet_docs::schema::Category;

use super::matcher::{Found, PhraseMatcher};

const GENERIC: &str = include_str!("../../vocab/medications_generic.txt");
const BRAND: &str = include_str!("../../vocab/medications_brand.tsv");
const CONDITIONS: &str = include_str!("../../vocab/conditions.txt");
const PROCEDURES: &str = include_str!("../../vocab/procedures.txt");
const TREATMENTS: &str = include_str!("../../vocab/treatments.txt");
const TESTS: &str = include_str!("../../vocab/tests.txt");
const ANATOMY: &str = include_str!("../../vocab/anatomy.txt");

/// What a dictionary term is, in Comprehend Medical's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kind {
    pub category: Category,
    pub entity_type: &'static str,
}

pub(crate) const GENERIC_NAME: Kind = Kind {
    category: Category::Medication,
    entity_type: "GENERIC_NAME",
};
pub(crate) const BRAND_NAME: Kind = Kind {
    category: Category::Medication,
    entity_type: "BRAND_NAME",
};
const DX_NAME: Kind = Kind {
    category: Category::MedicalCondition,
    entity_type: "DX_NAME",
};
const PROCEDURE_NAME: Kind = Kind {
    category: Category::TestTreatmentProcedure,
    entity_type: "PROCEDURE_NAME",
};
const TREATMENT_NAME: Kind = Kind {
    category: Category::TestTreatmentProcedure,
    entity_type: "TREATMENT_NAME",
};
const TEST_NAME: Kind = Kind {
    category: Category::TestTreatmentProcedure,
    entity_type: "TEST_NAME",
};
const SYSTEM_ORGAN_SITE: Kind = Kind {
    category: Category::Anatomy,
    entity_type: "SYSTEM_ORGAN_SITE",
};

/// The terms of a list file: trimmed, lower-cased, without blank and `#` lines.
fn terms(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// How many terms each list holds (after dropping blanks, comments and duplicates within
/// the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct VocabularySizes {
    pub generic_names: usize,
    pub brand_names: usize,
    pub conditions: usize,
    pub tests: usize,
    pub procedures: usize,
    pub treatments: usize,
    pub anatomy: usize,
}

pub(crate) struct Dictionary {
    matcher: PhraseMatcher,
    kinds: Vec<Kind>,
    brands: HashMap<String, &'static str>,
    pub sizes: VocabularySizes,
}

impl Dictionary {
    fn build() -> Self {
        let mut patterns: Vec<String> = Vec::new();
        let mut kinds = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut brands = HashMap::new();
        let mut sizes = VocabularySizes::default();
        let mut add = |term: &str, kind: Kind| -> bool {
            let term = term.to_ascii_lowercase();
            if term.is_empty() || !term.is_ascii() || !seen.insert(term.clone()) {
                return false;
            }
            patterns.push(term);
            kinds.push(kind);
            true
        };
        sizes.generic_names = terms(GENERIC).filter(|t| add(t, GENERIC_NAME)).count();
        for line in terms(BRAND) {
            let (brand, generic) = line.split_once('\t').unwrap_or((line, ""));
            if add(brand.trim(), BRAND_NAME) {
                sizes.brand_names += 1;
                brands.insert(brand.trim().to_ascii_lowercase(), generic.trim());
            }
        }
        sizes.conditions = terms(CONDITIONS).filter(|t| add(t, DX_NAME)).count();
        sizes.procedures = terms(PROCEDURES).filter(|t| add(t, PROCEDURE_NAME)).count();
        sizes.treatments = terms(TREATMENTS).filter(|t| add(t, TREATMENT_NAME)).count();
        sizes.tests = terms(TESTS).filter(|t| add(t, TEST_NAME)).count();
        sizes.anatomy = terms(ANATOMY).filter(|t| add(t, SYSTEM_ORGAN_SITE)).count();
        Self {
            matcher: PhraseMatcher::new(&patterns),
            kinds,
            brands,
            sizes,
        }
    }

    /// Dictionary terms in `text`, longest first at each start, never overlapping.
    pub fn find(&self, text: &str) -> Vec<(Found, Kind)> {
        self.matcher
            .find(text)
            .into_iter()
            .map(|f| (f, self.kinds[f.pattern]))
            .collect()
    }

    pub fn generic_of(&self, brand: &str) -> Option<&'static str> {
        self.brands
            .get(&brand.trim().to_lowercase())
            .copied()
            .filter(|g| !g.is_empty())
    }
}

pub(crate) static DICTIONARY: LazyLock<Dictionary> = LazyLock::new(Dictionary::build);
