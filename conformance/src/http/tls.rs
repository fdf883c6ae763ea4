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
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Invalid(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(go_verifier(trust_pem, &provider)?));
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

/// Verifies server certificates against exactly `trust_pem` as Go's `crypto/tls` would.
fn go_verifier(
    trust_pem: Option<&str>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<GoNames, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut trusted = Vec::new();
    if let Some(pem) = trust_pem {
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| ClientError::Invalid(format!("trust anchor PEM: {e}")))?;
            trusted.push(cert.clone());
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
    Ok(GoNames {
        inner: verifier,
        trusted,
        provider: provider.clone(),
    })
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
    /// The trusted certificates themselves: Go accepts a server certificate that is one of its
    /// roots, whoever signed it (upstream's TLSRouteHostnameIntersection trusts the backend's
    /// own CA-signed leaf); webpki only accepts chains up to a root.
    trusted: Vec<CertificateDer<'static>>,
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
        if self
            .trusted
            .iter()
            .any(|t| t.as_ref() == end_entity.as_ref())
        {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            return match rustls::client::verify_server_name(&parsed, server_name) {
                Ok(()) => Ok(ServerCertVerified::assertion()),
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForNameContext {
                        expected,
                        presented,
                    },
                )) if go_matches(&expected.to_str(), &presented) => {
                    Ok(ServerCertVerified::assertion())
                }
                Err(e) => Err(e),
            };
        }
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

    fn leaf_signed_by_a_ca(name: &str) -> String {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        leaf.signed_by(&key, &ca, &ca_key).unwrap().pem()
    }

    fn verify(trust: &str, presented: &str, name: &str) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = go_verifier(Some(trust), &provider).unwrap();
        let der = CertificateDer::pem_slice_iter(presented.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        verifier
            .verify_server_cert(&der, &[], &name, &[], UnixTime::now())
            .map(|_| ())
    }

    #[test]
    fn a_trusted_leaf_is_accepted_whoever_signed_it_as_go_does() {
        let leaf = leaf_signed_by_a_ca("abc.example.com");
        assert!(verify(&leaf, &leaf, "abc.example.com").is_ok());
        // Still only for its own names.
        assert!(verify(&leaf, &leaf, "other.example.com").is_err());
        // Another leaf of the same shape is not the trusted one.
        let other = leaf_signed_by_a_ca("abc.example.com");
        assert!(verify(&leaf, &other, "abc.example.com").is_err());
    }
}
