//! HTTPS listener certificates: certificateRefs -> a parsed rustls `CertifiedKey`.

use std::sync::Arc;

use gateway_api::apis::experimental::gateways::GatewayListeners;
use k8s_openapi::api::core::v1::Secret;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::gateway::{Verdict, GATEWAY_GROUP};
use super::index::Index;
use super::reference_grant::{self, From, To};
use crate::status::conditions::reasons;

const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// The certificate of the first ref; `Err` (ResolvedRefs=False) if any ref does not resolve, since
/// the spec wants every ref valid before the listener is programmed.
pub(super) fn resolve(
    gateway_namespace: &str,
    listener: &GatewayListeners,
    index: &Index<'_>,
) -> Result<Arc<CertifiedKey>, Verdict> {
    let refs = listener
        .tls
        .as_ref()
        .and_then(|t| t.certificate_refs.as_deref())
        .unwrap_or(&[]);
    if refs.is_empty() {
        return Err(invalid_ref("an HTTPS listener needs tls.certificateRefs"));
    }
    let mut first = None;
    for r in refs {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("Secret");
        if !group.is_empty() || kind != "Secret" {
            return Err(invalid_ref(format!(
                "certificateRef {group}/{kind} {}: only core Secrets are supported",
                r.name
            )));
        }
        let namespace = r.namespace.as_deref().unwrap_or(gateway_namespace);
        let allowed = reference_grant::permitted(
            &index.resources.reference_grants,
            &From {
                group: GATEWAY_GROUP,
                kind: "Gateway",
                namespace: gateway_namespace,
            },
            &To {
                group: "",
                kind: "Secret",
                namespace,
                name: &r.name,
            },
        );
        if !allowed {
            return Err(Verdict::no(
                reasons::REF_NOT_PERMITTED,
                format!(
                    "no ReferenceGrant allows this Gateway to use Secret {namespace}/{}",
                    r.name
                ),
            ));
        }
        let Some(secret) = index.secret(namespace, &r.name) else {
            return Err(invalid_ref(format!(
                "Secret {namespace}/{} not found",
                r.name
            )));
        };
        let key = certified_key(secret)
            .map_err(|e| invalid_ref(format!("Secret {namespace}/{}: {e}", r.name)))?;
        first.get_or_insert(key);
    }
    first.ok_or_else(|| invalid_ref("no certificate"))
}

fn invalid_ref(message: impl Into<String>) -> Verdict {
    Verdict::no(reasons::INVALID_CERTIFICATE_REF, message)
}

/// Parses a `kubernetes.io/tls` Secret's PEM `tls.crt` chain and `tls.key`.
pub(super) fn certified_key(secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
    if secret.type_.as_deref() != Some(TLS_SECRET_TYPE) {
        return Err(format!("type must be {TLS_SECRET_TYPE}"));
    }
    let data = secret.data.as_ref();
    let get = |k: &str| data.and_then(|d| d.get(k)).map(|b| b.0.as_slice());
    let crt = get("tls.crt").ok_or("missing tls.crt")?;
    let key = get("tls.key").ok_or("missing tls.key")?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &crt[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
        .map_err(|e| format!("tls.key is not PEM: {e}"))?
        .ok_or("tls.key holds no private key")?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    let certified = CertifiedKey::new(certs, signing);
    certified
        .keys_match()
        .map_err(|e| format!("tls.key does not match tls.crt: {e}"))?;
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
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn garbage_and_wrong_type_are_errors_not_panics() {
        assert!(certified_key(&secret(TLS_SECRET_TYPE, "garbage", "garbage")).is_err());
        assert!(certified_key(&secret("Opaque", "", "")).is_err());
        assert!(certified_key(&Secret::default()).is_err());
    }
}
