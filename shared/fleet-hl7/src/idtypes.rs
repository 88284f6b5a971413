//! Which patient identifiers a `minimal` event carries: an allow-list of identifier type
//! codes (PID-3.5 / MRG-1.5, HL7 table 0203). Minimum necessary: the hospital's own numbers
//! (`MR` medical record, `PI` patient internal, `PN` person number) by default; an identifier
//! with another type, or none, is left out. Personal numbers issued by governments, insurers
//! and health plans ([`NEVER_MINIMAL`]) can never be allow-listed.

/// The allow-list when none is configured.
pub const DEFAULT_MINIMAL: &[&str] = &["MR", "PI", "PN"];

/// Types a `minimal` event never carries, whatever the configuration says: social security
/// (`SS`), driver's licence (`DL`), passport (`PPN`), national person ids (`NI`, `NH`, and
/// every `NN<country>`), Medicare/Medicaid (`MC`, `MA`), jurisdictional health number and
/// health card (`JHN`, `HC`), insurance subscriber and member numbers (`SN`, `MB`), military,
/// pension, tax, citizenship, visa, birth certificate, bank and workers' compensation numbers.
pub const NEVER_MINIMAL: &[&str] = &[
    "SS", "DL", "PPN", "NI", "NH", "MC", "MA", "JHN", "HC", "SN", "MB", "MI", "PEN", "TAX", "CZ",
    "VS", "BCT", "BA", "BC", "WCN",
];

/// Whether `code` (trimmed, upper case) is a personal number no `minimal` event may carry.
pub fn never_minimal(code: &str) -> bool {
    NEVER_MINIMAL.contains(&code) || (code.len() == 5 && code.starts_with("NN"))
}

/// The identifier types a `minimal` event carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifierTypes(Vec<String>);

impl Default for IdentifierTypes {
    fn default() -> Self {
        Self(DEFAULT_MINIMAL.iter().map(|s| (*s).to_string()).collect())
    }
}

impl IdentifierTypes {
    /// An allow-list of type codes (trimmed, compared in upper case). Refused: an empty
    /// entry, a code that is not 1-5 letters or digits, and any [`never_minimal`] type; the
    /// message names the code (configuration, never patient data).
    pub fn new<S: AsRef<str>>(codes: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut out = Vec::new();
        for c in codes {
            let code = c.as_ref().trim().to_ascii_uppercase();
            if code.is_empty() || code.len() > 5 || !code.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(format!(
                    "{:?} is not an identifier type code (HL7 table 0203: 1-5 letters or digits)",
                    c.as_ref()
                ));
            }
            if never_minimal(&code) {
                return Err(format!(
                    "identifier type {code} is a personal number (social security, licence, \
                     passport, national, insurance or health-plan id) and is never published \
                     under the minimal PHI policy"
                ));
            }
            if !out.contains(&code) {
                out.push(code);
            }
        }
        Ok(Self(out))
    }

    /// Whether an identifier of this type may be published in a `minimal` event.
    pub fn allows(&self, id_type: Option<&str>) -> bool {
        let Some(t) = id_type.map(str::trim) else {
            return false;
        };
        let t = t.to_ascii_uppercase();
        !never_minimal(&t) && self.0.contains(&t)
    }

    pub fn codes(&self) -> &[String] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_mr_pi_pn_and_personal_numbers_are_refused() {
        let d = IdentifierTypes::default();
        for t in ["MR", "PI", "PN", " mr "] {
            assert!(d.allows(Some(t)), "{t}");
        }
        for t in ["SS", "DL", "NI", "MC", "MA", "JHN", "HC", "XX", ""] {
            assert!(!d.allows(Some(t)), "{t}");
        }
        assert!(!d.allows(None));
        for bad in ["SS", "dl", "NNGBR", "JHN", "M R", "", "TOOLONG"] {
            assert!(IdentifierTypes::new(["MR", bad]).is_err(), "{bad}");
        }
        let custom = IdentifierTypes::new(["mr", "AN", "MR"]).unwrap();
        assert_eq!(custom.codes(), ["MR", "AN"]);
    }
}
