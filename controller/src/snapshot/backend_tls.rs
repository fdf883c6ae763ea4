//! TLS to a backend, from the BackendTLSPolicy that targets its Service port: which CAs to
//! trust, the SNI to send and which names the backend's certificate must carry.
//!
//! The verifier is built at translate time, so the data plane only hands it to a TLS client.
//! It checks exactly what the spec asks: the chain up to the policy's CAs, then either
//! `validation.hostname` (no `subjectAltNames`) or one of the `subjectAltNames` (a DNS name,
//! wildcards as RFC 6125 allows, or a URI such as a SPIFFE ID compared byte for byte).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Serialize;

/// What a backend's TLS policy asks of its connections.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendTlsMode {
    /// Connect with TLS and verify the backend as the policy says.
    Verify(Arc<BackendTls>),
    /// The policy targeting this port is not valid (no usable CA): requests get a 500 and
    /// nothing is sent to the backend, neither in clear nor over unverified TLS.
    Refuse {
        /// `namespace/name` of the policy.
        policy: String,
    },
}

/// A policy's validation settings, ready for a TLS client.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    /// `namespace/name` of the BackendTLSPolicy.
    pub policy: String,
    /// The SNI sent (`validation.hostname`).
    pub server_name: String,
    /// The names the certificate must carry one of; empty means `server_name`.
    pub subject_alt_names: Vec<SanName>,
    /// Where the trusted CAs come from.
    pub trust: Trust,
    /// Verifies the chain and names above.
    #[serde(skip)]
    pub verifier: Arc<PolicyVerifier>,
    /// Differs when any setting above (CA bytes included) differs: pooled connections made
    /// under one policy are never reused under another.
    #[serde(skip)]
    pub fingerprint: u64,
}

/// A `subjectAltNames` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SanName {
    /// `type: Hostname`: a DNS name.
    Hostname(String),
    /// `type: URI`: compared exactly with the certificate's URI SANs.
    Uri(String),
}

/// The CAs a backend's certificate must chain to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trust {
    /// `wellKnownCACertificates: System`: the platform's roots.
    System,
    /// `caCertificateRefs`: the ConfigMaps (`namespace/name`) whose `ca.crt` was loaded.
    ConfigMaps(Vec<String>),
}

/// Why a policy's settings cannot make a verifier.
#[derive(Debug, thiserror::Error)]
pub enum BackendTlsError {
    /// `validation.hostname` is not a DNS name.
    #[error("validation.hostname {0:?} is not a valid DNS name")]
    Hostname(String),
    /// No CA certificate could be added to the root store.
    #[error("no usable CA certificate")]
    NoRoots,
    /// rustls refused the roots.
    #[error("cannot build a certificate verifier: {0}")]
    Verifier(String),
}

// === impl BackendTls ===

impl BackendTls {
    /// Builds the verifier for `roots` (DER certificates); `hostname` is the SNI.
    pub fn new(
        policy: String,
        hostname: &str,
        subject_alt_names: Vec<SanName>,
        trust: Trust,
        roots: &[CertificateDer<'static>],
    ) -> Result<BackendTls, BackendTlsError> {
        let server_name = ServerName::try_from(hostname.to_string())
            .map_err(|_| BackendTlsError::Hostname(hostname.to_string()))?;
        let mut store = RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(roots.iter().cloned());
        if added == 0 {
            return Err(BackendTlsError::NoRoots);
        }
        let chain = WebPkiServerVerifier::builder_with_provider(
            Arc::new(store),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| BackendTlsError::Verifier(e.to_string()))?;
        let mut hasher = DefaultHasher::new();
        (hostname, &subject_alt_names, &trust).hash(&mut hasher);
        for r in roots {
            r.as_ref().hash(&mut hasher);
        }
        Ok(BackendTls {
            policy,
            server_name: hostname.to_string(),
            verifier: Arc::new(PolicyVerifier {
                chain,
                hostname: server_name,
                subject_alt_names: subject_alt_names.clone(),
            }),
            subject_alt_names,
            trust,
            fingerprint: hasher.finish(),
        })
    }
}

/// Checks a backend's certificate against one policy (see the module comment).
#[derive(Debug)]
pub struct PolicyVerifier {
    chain: Arc<WebPkiServerVerifier>,
    hostname: ServerName<'static>,
    subject_alt_names: Vec<SanName>,
}

// === impl PolicyVerifier ===

impl PolicyVerifier {
    /// Whether the end-entity certificate carries one of the policy's `subjectAltNames`.
    fn carries_a_san(&self, end_entity: &CertificateDer<'_>) -> Result<bool, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(self.subject_alt_names.iter().any(|san| match san {
            SanName::Hostname(h) => ServerName::try_from(h.as_str())
                .is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok()),
            SanName::Uri(u) => cert.valid_uri_names().any(|presented| presented == u),
        }))
    }
}

impl ServerCertVerifier for PolicyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let checked = self.chain.verify_server_cert(
            end_entity,
            intermediates,
            &self.hostname,
            ocsp_response,
            now,
        );
        if self.subject_alt_names.is_empty() {
            return checked;
        }
        // With subjectAltNames the hostname is only the SNI: a name mismatch is not a failure,
        // any other chain error is.
        match checked {
            Ok(_)
            | Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        if self.carries_a_san(end_entity)? {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.chain.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.chain.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ca() -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().clone()
    }

    fn build(
        hostname: &str,
        roots: &[CertificateDer<'static>],
    ) -> Result<BackendTls, BackendTlsError> {
        BackendTls::new("ns/p".into(), hostname, vec![], Trust::System, roots)
    }

    #[test]
    fn settings_without_a_usable_root_or_hostname_are_errors() {
        assert!(matches!(
            build("a.example.com", &[]),
            Err(BackendTlsError::NoRoots)
        ));
        let garbage = CertificateDer::from(vec![1u8, 2, 3]);
        assert!(matches!(
            build("a.example.com", &[garbage]),
            Err(BackendTlsError::NoRoots)
        ));
        assert!(matches!(
            build("not a name!", &[ca()]),
            Err(BackendTlsError::Hostname(_))
        ));
        assert!(build("a.example.com", &[ca()]).is_ok());
    }

    #[test]
    fn the_fingerprint_changes_with_any_setting_and_not_otherwise() {
        let root = [ca()];
        let print = |host: &str, sans: Vec<SanName>, roots: &[CertificateDer<'static>]| {
            BackendTls::new("ns/p".into(), host, sans, Trust::System, roots)
                .unwrap()
                .fingerprint
        };
        let base = print("a.example.com", vec![], &root);
        assert_eq!(base, print("a.example.com", vec![], &root));
        assert_ne!(base, print("b.example.com", vec![], &root));
        assert_ne!(
            base,
            print(
                "a.example.com",
                vec![SanName::Uri("spiffe://x".into())],
                &root
            )
        );
        assert_ne!(base, print("a.example.com", vec![], &[ca()]));
    }
}
