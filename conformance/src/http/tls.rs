//! The client TLS configuration of a request: only the case's trust anchor, and Go's host-name rules.
//!
//! Upstream's client is Go, whose `crypto/x509` lets `*.org` match `example.org`; webpki refuses wildcards
//! directly under a top-level domain. The verifier below keeps webpki's chain validation and falls back to
//! Go's name matching when webpki's only objection is the name.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::ClientError;

/// `alpn`: `http/1.1` for HTTPS, `h2` for H2. `requested` is set once a server asks for a client
/// certificate (`clientCertRequested`, FORMAT.md §4.4), whether or not there is one to give.
pub(crate) fn client_config(
    trust_pem: Option<&str>,
    client_identity: Option<(&str, &str)>,
    alpn: &[u8],
    requested: Arc<AtomicBool>,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if let Some(pem) = trust_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| ClientError::Invalid(format!("trust anchor PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| ClientError::Invalid(format!("trust anchor: {e}")))?;
        }
    }
    let verifier = if roots.is_empty() {
        None
    } else {
        Some(
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| ClientError::Invalid(format!("trust anchor: {e}")))?,
        )
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Invalid(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(GoNames {
            inner: verifier,
            provider: provider.clone(),
        }));
    let key = match client_identity {
        None => None,
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ClientError::Invalid(format!("client certificate PEM: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                .map_err(|e| ClientError::Invalid(format!("client key PEM: {e}")))?;
            let signer = provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| ClientError::Invalid(format!("client identity: {e}")))?;
            Some(Arc::new(CertifiedKey::new(certs, signer)))
        }
    };
    let mut config =
        builder.with_client_cert_resolver(Arc::new(RecordingIdentity { key, requested }));
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// Presents the configured identity (if any) and notes that the server asked for one.
#[derive(Debug)]
struct RecordingIdentity {
    key: Option<Arc<CertifiedKey>>,
    requested: Arc<AtomicBool>,
}

impl ResolvesClientCert for RecordingIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        // rustls calls this only when the server sent a CertificateRequest.
        self.requested.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    // True even without an identity, so rustls asks `resolve` and the request is recorded.
    fn has_certs(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct GoNames {
    /// `None`: no trust anchor configured, so every certificate is rejected.
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for GoNames {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(inner) = &self.inner else {
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ));
        };
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the name only after the chain verified, so the chain is good here.
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected,
                presented,
            })) if go_matches(&expected.to_str(), &presented) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Go's `matchHostnames` over the DNS names webpki reports as `DnsName("...")`.
fn go_matches(host: &str, presented: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    presented
        .iter()
        .filter_map(|p| p.strip_prefix("DnsName(\"")?.strip_suffix("\")"))
        .any(|pattern| {
            let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
            let (p_labels, h_labels): (Vec<&str>, Vec<&str>) =
                (pattern.split('.').collect(), host.split('.').collect());
            p_labels.len() == h_labels.len()
                && !host.is_empty()
                && p_labels
                    .iter()
                    .zip(&h_labels)
                    .enumerate()
                    .all(|(i, (p, h))| (i == 0 && *p == "*" && !h.is_empty()) || p == h)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_wildcards_match_one_leftmost_label() {
        let presented = vec![
            "UniformResourceIdentifier(\"*\")".to_owned(),
            "DnsName(\"*.org\")".to_owned(),
        ];
        assert!(go_matches("example.org", &presented));
        assert!(go_matches("Example.ORG", &presented));
        assert!(!go_matches("a.example.org", &presented));
        assert!(!go_matches("org", &presented));
        assert!(!go_matches("example.com", &presented));
    }
}
