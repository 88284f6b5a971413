//! TLS for MLLP with rustls (on aws-lc-rs, the provider the AWS SDKs already build): the
//! server's PEM certificate and key, optionally client certificates verified against a CA
//! bundle (refused at the handshake otherwise), and the client's identity: its certificate's
//! subject common name, which the facility mapping is keyed by.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Where PEM text comes from: a file, or the text itself given in place of a path. Containers
/// get secrets as environment values (ECS `Secrets`), so `FLEET_MLLP_TLS_CERT` may hold the
/// PEM text: a value starting with `-----BEGIN` is read as PEM, anything else as a path. The
/// text is never quoted in an error (it may be a private key).
enum Pem<'a> {
    File(&'a Path),
    Inline(&'a [u8]),
}

impl<'a> Pem<'a> {
    fn of(path: &'a Path) -> Self {
        match path.to_str() {
            Some(text) if text.trim_start().starts_with("-----BEGIN") => {
                Pem::Inline(text.trim_start().as_bytes())
            }
            _ => Pem::File(path),
        }
    }

    fn describe(&self) -> String {
        match self {
            Pem::File(p) => p.display().to_string(),
            Pem::Inline(_) => "the PEM text given in place of a path".to_string(),
        }
    }
}

/// Every certificate in a PEM file (or PEM text, see [`Pem`]).
pub fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = Pem::of(path);
    let certs = match &pem {
        Pem::File(p) => CertificateDer::pem_file_iter(p)
            .with_context(|| format!("reading certificates from {}", pem.describe()))?
            .collect::<Result<Vec<_>, _>>(),
        Pem::Inline(text) => CertificateDer::pem_slice_iter(text).collect::<Result<Vec<_>, _>>(),
    }
    .with_context(|| format!("{} holds a malformed PEM certificate", pem.describe()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", pem.describe());
    }
    Ok(certs)
}

/// The private key in a PEM file or PEM text (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let pem = Pem::of(path);
    match &pem {
        Pem::File(p) => PrivateKeyDer::from_pem_file(p),
        Pem::Inline(text) => PrivateKeyDer::from_pem_slice(text),
    }
    .with_context(|| format!("reading a PEM private key from {}", pem.describe()))
}

/// A root store of every certificate in `path`.
pub fn read_roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).with_context(|| {
            format!(
                "{} holds a certificate that is not a usable CA",
                Pem::of(path).describe()
            )
        })?;
    }
    Ok(roots)
}

/// The server configuration: `cert` and `key`, and with `client_ca` client certificates
/// required and verified against it.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> anyhow::Result<rustls::ServerConfig> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(read_roots(ca)?), provider())
                    .build()
                    .context("client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(read_certs(cert)?, read_key(key)?)
        .context("the TLS certificate and key do not form a usable pair")
}

/// A client configuration trusting `ca` (the system has no store here: a feed's CA is always
/// named), presenting `identity` (certificate and key files) when given.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(read_roots(ca)?);
    match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .context("the client certificate and key do not form a usable pair"),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// The subject common name of a DER certificate (the first CN, as UTF-8).
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn pem_text_in_place_of_a_path_reads_like_the_file() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();

        let inline_cert = PathBuf::from(cert.pem());
        let inline_key = PathBuf::from(key.serialize_pem());
        assert_eq!(
            read_certs(&inline_cert).unwrap(),
            read_certs(&cert_file).unwrap()
        );
        assert_eq!(
            read_key(&inline_key).unwrap().secret_der(),
            read_key(&key_file).unwrap().secret_der()
        );
        assert!(server_config(&inline_cert, &inline_key, None).is_ok());

        // A damaged key given as text: the error says so without quoting the text.
        let broken = key.serialize_pem().replace("-----END", "garbage-----END");
        let e = format!("{:#}", read_key(Path::new(&broken)).unwrap_err());
        assert!(e.contains("the PEM text given in place of a path"), "{e}");
        assert!(!e.contains("garbage") && !e.contains("MII"), "{e}");
    }
}
