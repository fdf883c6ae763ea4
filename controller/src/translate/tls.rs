//! HTTPS listener certificates: certificateRefs -> a parsed rustls `CertifiedKey`.

use std::sync::Arc;

use gateway_api::apis::experimental::gateways::GatewayListeners;
use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::index::Index;
use super::reference_grant;
use crate::status::conditions::reasons;

const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Why a listener's certificateRefs do not resolve: its `ResolvedRefs` is False.
#[derive(Debug, thiserror::Error)]
pub(super) enum CertificateRefError {
    #[error("an HTTPS listener needs tls.certificateRefs")]
    NoRefs,
    #[error("certificateRef {group}/{kind} {name}: only core Secrets are supported")]
    NotASecret {
        group: String,
        kind: String,
        name: String,
    },
    #[error("no ReferenceGrant allows this Gateway to use Secret {namespace}/{name}")]
    NotPermitted { namespace: String, name: String },
    #[error("Secret {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    /// The Secret's problem is part of the message a status shows, so it is not also a
    /// `#[source]` (an error chain would print it twice).
    #[error("Secret {namespace}/{name}: {error}")]
    Unusable {
        namespace: String,
        name: String,
        error: TlsSecretError,
    },
}

/// Why a Secret holds no usable certificate and key.
#[derive(Debug, thiserror::Error)]
pub(super) enum TlsSecretError {
    #[error("type must be {TLS_SECRET_TYPE}")]
    WrongType,
    #[error("missing tls.crt")]
    MissingCertificate,
    #[error("missing tls.key")]
    MissingKey,
    #[error("tls.crt is not PEM: {0}")]
    CertificateNotPem(std::io::Error),
    #[error("tls.crt holds no certificate")]
    NoCertificate,
    #[error("tls.key is not PEM: {0}")]
    KeyNotPem(std::io::Error),
    #[error("tls.key holds no private key")]
    NoPrivateKey,
    #[error("unsupported private key: {0}")]
    UnsupportedKey(rustls::Error),
    #[error("tls.key does not match tls.crt: {0}")]
    KeyMismatch(rustls::Error),
}

// === impl CertificateRefError ===

impl CertificateRefError {
    /// The listener's `ResolvedRefs` reason.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            CertificateRefError::NotPermitted { .. } => reasons::REF_NOT_PERMITTED,
            _ => reasons::INVALID_CERTIFICATE_REF,
        }
    }
}

/// The certificate of the first ref; `Err` if any ref does not resolve, since the spec wants
/// every ref valid before the listener is programmed.
pub(super) fn resolve(
    gateway_namespace: &str,
    listener: &GatewayListeners,
    index: &Index<'_>,
) -> Result<Arc<CertifiedKey>, CertificateRefError> {
    let refs = listener
        .tls
        .as_ref()
        .and_then(|t| t.certificate_refs.as_deref())
        .unwrap_or(&[]);
    let mut first = None;
    for r in refs {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Secret");
        if !group.is_empty() || kind != "Secret" {
            return Err(CertificateRefError::NotASecret {
                group: group.to_string(),
                kind: kind.to_string(),
                name: r.name.clone(),
            });
        }
        let namespace = r.namespace.as_deref().unwrap_or(gateway_namespace);
        let secret = || (namespace.to_string(), r.name.clone());
        let allowed = reference_grant::gateway_may_use(
            &index.resources.reference_grants,
            gateway_namespace,
            "Secret",
            namespace,
            &r.name,
        );
        if !allowed {
            let (namespace, name) = secret();
            return Err(CertificateRefError::NotPermitted { namespace, name });
        }
        let Some(found) = index.secret(namespace, &r.name) else {
            let (namespace, name) = secret();
            return Err(CertificateRefError::NotFound { namespace, name });
        };
        let key = certified_key(found).map_err(|error| {
            let (namespace, name) = secret();
            CertificateRefError::Unusable {
                namespace,
                name,
                error,
            }
        })?;
        first.get_or_insert(key);
    }
    // Every ref either failed above or set `first`: only an empty list leaves it unset.
    first.ok_or(CertificateRefError::NoRefs)
}

/// Parses a `kubernetes.io/tls` Secret's PEM `tls.crt` chain and `tls.key`.
pub(super) fn certified_key(secret: &Secret) -> Result<Arc<CertifiedKey>, TlsSecretError> {
    if secret.type_.as_deref() != Some(TLS_SECRET_TYPE) {
        return Err(TlsSecretError::WrongType);
    }
    let data = secret.data.as_ref();
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
    let crt = get("tls.crt").ok_or(TlsSecretError::MissingCertificate)?;
    let key = get("tls.key").ok_or(TlsSecretError::MissingKey)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &crt[..])
        .collect::<Result<_, _>>()
        .map_err(TlsSecretError::CertificateNotPem)?;
    if certs.is_empty() {
        return Err(TlsSecretError::NoCertificate);
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
        .map_err(TlsSecretError::KeyNotPem)?
        .ok_or(TlsSecretError::NoPrivateKey)?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(TlsSecretError::UnsupportedKey)?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(TlsSecretError::KeyMismatch)?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn secret(type_: &str, crt: &str, key: &str) -> Secret {
        Secret {
            type_: Some(type_.into()),
            data: Some(BTreeMap::from([
                ("tls.crt".into(), ByteString(crt.as_bytes().to_vec())),
                ("tls.key".into(), ByteString(key.as_bytes().to_vec())),
            ])),
            ..Default::default()
        }
    }

    #[test]
    fn valid_tls_secret_parses() {
        let ck = rcgen::generate_simple_self_signed(vec!["example.com".into()]).expect("rcgen");
        let s = secret(
            TLS_SECRET_TYPE,
            &ck.cert.pem(),
            &ck.key_pair.serialize_pem(),
        );
        assert!(certified_key(&s).is_ok());
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let a = rcgen::generate_simple_self_signed(vec!["a.com".into()]).expect("rcgen");
        let b = rcgen::generate_simple_self_signed(vec!["b.com".into()]).expect("rcgen");
        let s = secret(TLS_SECRET_TYPE, &a.cert.pem(), &b.key_pair.serialize_pem());
        let err = certified_key(&s).expect_err("mismatch");
        assert!(matches!(err, TlsSecretError::KeyMismatch(_)), "{err}");
    }

    #[test]
    fn garbage_and_wrong_type_are_errors_not_panics() {
        assert!(certified_key(&secret(TLS_SECRET_TYPE, "garbage", "garbage")).is_err());
        assert!(certified_key(&secret("Opaque", "", "")).is_err());
        assert!(certified_key(&Secret::default()).is_err());
    }
}
