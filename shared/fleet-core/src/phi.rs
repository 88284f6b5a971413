//! PHI-safe wrappers: values that must never reach a log line. `Display` and `Debug` print a
//! placeholder; correlation uses a keyed hash.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A value that may hold PHI. Formatting never shows it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Phi<T>(pub T);

impl<T> Phi<T> {
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> std::fmt::Debug for Phi<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<phi>")
    }
}

impl<T> std::fmt::Display for Phi<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<phi>")
    }
}

/// Serialising is deliberate (events, records); it is formatting for logs that must never
/// show the value. The wrapper is transparent on the wire.
impl<T: serde::Serialize> serde::Serialize for Phi<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// A keyed hash (HMAC-SHA256, first 16 hex chars) of an identifier, for correlating log lines
/// without revealing the identifier. The key comes from configuration (`FLEET_LOG_HASH_KEY`).
pub fn keyed_hash(key: &[u8], value: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(value.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_never_formats_its_value() {
        let p = Phi("DOE^JOHN".to_string());
        assert_eq!(format!("{p}"), "<phi>");
        assert_eq!(format!("{p:?}"), "<phi>");
        assert_eq!(p.expose(), "DOE^JOHN");
    }

    #[test]
    fn phi_serialises_transparently() {
        let p = Phi(Some("MRN1".to_string()));
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"MRN1\"");
        assert_eq!(
            serde_json::to_string(&Phi::<Option<String>>(None)).unwrap(),
            "null"
        );
    }

    #[test]
    fn keyed_hash_depends_on_key_and_value() {
        let a = keyed_hash(b"k1", "MRN123");
        assert_eq!(a.len(), 16);
        assert_eq!(a, keyed_hash(b"k1", "MRN123"));
        assert_ne!(a, keyed_hash(b"k2", "MRN123"));
        assert_ne!(a, keyed_hash(b"k1", "MRN124"));
        assert!(!a.contains("MRN"));
    }
}
