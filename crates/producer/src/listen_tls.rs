//! Whom `crm-events listen` trusts over TLS: the built-in roots (the
//! webpki-roots set reqwest's rustls uses too) plus the certificate
//! authorities of `--ca-file`, for a daemon or receiver behind HTTPS with a
//! private CA. The same trust serves the WebSocket to `--api` and the POSTs
//! to `--forward-to`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// The extra certificate authorities; none without `--ca-file`.
#[derive(Clone, Default)]
pub(crate) struct Trust {
    extra: Vec<CertificateDer<'static>>,
}

impl Trust {
    /// Reads every certificate of the PEM file at `path`; the message names
    /// the file and what is wrong with it.
    pub(crate) fn from_pem_file(path: &Path) -> Result<Trust, String> {
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("--ca-file {shown}: {e}"))?;
        let extra = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--ca-file {shown}: not PEM certificates: {e}"))?;
        if extra.is_empty() {
            return Err(format!(
                "--ca-file {shown}: no certificate in it (expected -----BEGIN CERTIFICATE-----)"
            ));
        }
        let trust = Trust { extra };
        // Refused now rather than at the first connection.
        trust.roots()?;
        Ok(trust)
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for cert in &self.extra {
            roots
                .add(cert.clone())
                .map_err(|e| format!("--ca-file: a certificate cannot be a root: {e}"))?;
        }
        Ok(roots)
    }

    /// The WebSocket's TLS client configuration.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(self.roots()?)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// The forwarding client trusts the same authorities.
    pub(crate) fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        self.extra.iter().fold(builder, |builder, cert| {
            match reqwest::Certificate::from_der(cert) {
                Ok(cert) => builder.add_root_certificate(cert),
                // Parsed as a root above already; reqwest reads it alike.
                Err(_) => builder,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused_naming_it() {
        let dir = std::env::temp_dir().join(format!("listen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = Trust::from_pem_file(&empty).err().unwrap();
        assert!(
            error.contains("empty.pem") && error.contains("no certificate"),
            "{error}"
        );
        let missing = dir.join("missing.pem");
        let error = Trust::from_pem_file(&missing).err().unwrap();
        assert!(error.contains("missing.pem"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_file_the_built_in_roots_are_trusted() {
        assert!(Trust::default().roots().unwrap().len() > 100);
        assert!(Trust::default().client_config().is_ok());
    }
}
