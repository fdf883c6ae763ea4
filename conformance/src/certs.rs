//! The TLS Secrets and CA ConfigMaps upstream generates at suite setup (FORMAT.md §1.3), made with rcgen.
//!
//! Deviation: keys are ECDSA P-256 (PKCS#8 `PRIVATE KEY`) instead of RSA-2048 PKCS#1, because rcgen's ring
//! backend cannot generate RSA keys; nothing in the suite depends on the key algorithm.

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
#[error("cannot generate test certificate {what}")]
pub struct CertError {
    what: String,
    #[source]
    source: rcgen::Error,
}

impl CertError {
    /// Wraps an rcgen failure while making certificate `what`.
    fn making(what: &str) -> impl Fn(rcgen::Error) -> CertError + Copy + '_ {
        move |source| CertError {
            what: what.to_owned(),
            source,
        }
    }
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
}

#[derive(Clone, Copy)]
enum Usage {
    Server,
    Client,
}

const INFRA: &str = "gateway-conformance-infra";
const WEB_BACKEND: &str = "gateway-conformance-web-backend";

/// Every generated object, as Kubernetes manifests.
pub fn generated_objects() -> Result<Vec<Value>, CertError> {
    let mut out = Generated::default();
    out.server(WEB_BACKEND, "certificate", &["*"], None)?;
    out.server(
        INFRA,
        "tls-validity-checks-certificate",
        &["*", "*.org", "*.wildcard.org"],
        None,
    )?;
    out.ca(WEB_BACKEND, "web-backend-cm")?;

    let ca1 = out.ca(INFRA, "tls-validity-checks-ca-certificate")?;
    out.client(INFRA, "tls-validity-checks-client-certificate", &ca1)?;

    let ca2 = out.ca(INFRA, "tls-validity-checks-per-port-ca-certificate")?;
    out.client(
        INFRA,
        "tls-validity-checks-per-port-client-certificate",
        &ca2,
    )?;

    let ca3 = out.ca(INFRA, "tls-checks-ca-certificate")?;
    out.server(
        INFRA,
        "tls-checks-certificate",
        &[
            "abc.example.com",
            "spiffe://abc.example.com/test-identity",
            "other.example.com",
        ],
        Some(&ca3),
    )?;
    out.client(INFRA, "tls-checks-client-certificate", &ca3)?;
    for namespace in [INFRA, "gateway-conformance-app-backend"] {
        out.server(
            namespace,
            "tls-passthrough-checks-certificate",
            &["abc.example.com"],
            Some(&ca3),
        )?;
    }
    out.server(
        INFRA,
        "tls-terminate-checks-certificate",
        &["tls.example.com"],
        Some(&ca3),
    )?;

    out.ca(INFRA, "mismatch-ca-certificate")?;
    Ok(out.0)
}

/// The objects generated so far, in upstream's order; each certificate is named after the
/// object that holds it.
#[derive(Default)]
struct Generated(Vec<Value>);

impl Generated {
    /// A CA and its ConfigMap `namespace/name` (`ca.crt`).
    fn ca(&mut self, namespace: &str, name: &str) -> Result<Ca, CertError> {
        let ca = ca(name)?;
        self.0.push(ca_config_map(namespace, name, &ca));
        Ok(ca)
    }

    /// A server certificate for `hosts` (self-signed without an `issuer`) in TLS Secret
    /// `namespace/name`.
    fn server(
        &mut self,
        namespace: &str,
        name: &str,
        hosts: &[&str],
        issuer: Option<&Ca>,
    ) -> Result<(), CertError> {
        let leaf = leaf(name, hosts, Usage::Server, issuer)?;
        self.0.push(tls_secret(namespace, name, &leaf));
        Ok(())
    }

    /// A client certificate signed by `issuer` in TLS Secret `namespace/name`.
    fn client(&mut self, namespace: &str, name: &str, issuer: &Ca) -> Result<(), CertError> {
        let leaf = leaf(name, &[], Usage::Client, Some(issuer))?;
        self.0.push(tls_secret(namespace, name, &leaf));
        Ok(())
    }
}

fn ca(what: &str) -> Result<Ca, CertError> {
    let err = CertError::making(what);
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&[
        (DnType::CommonName, "gatewayapi"),
        (DnType::OrganizationName, "Kubernetes Gateway API"),
        (DnType::CountryName, "US"),
    ]);
    params.serial_number = Some(SerialNumber::from(2024u64.to_be_bytes().to_vec()));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let key = KeyPair::generate().map_err(err)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(Ca { cert, key })
}

fn leaf(what: &str, hosts: &[&str], usage: Usage, issuer: Option<&Ca>) -> Result<Leaf, CertError> {
    let err = CertError::making(what);
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(&[
        (DnType::CommonName, "default"),
        (DnType::OrganizationName, "Acme Co"),
    ]);
    params.serial_number = Some(SerialNumber::from(rand::random::<[u8; 16]>().to_vec()));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![match usage {
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    for host in hosts {
        params.subject_alt_names.push(san(host).map_err(err)?);
    }
    let key = KeyPair::generate().map_err(err)?;
    let cert = match issuer {
        Some(ca) => params.signed_by(&key, &ca.cert, &ca.key).map_err(err)?,
        None => params.self_signed(&key).map_err(err)?,
    };
    Ok(Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn distinguished_name(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (kind, value) in parts {
        dn.push(kind.clone(), *value);
    }
    dn
}

/// IP literal -> IP SAN; DNS name (leading `*.` allowed) -> DNS SAN; anything else -> URI SAN.
fn san(host: &str) -> Result<SanType, rcgen::Error> {
    if let Ok(ip) = host.parse() {
        return Ok(SanType::IpAddress(ip));
    }
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.split('.').all(label_ok) {
        return Ok(SanType::DnsName(host.try_into()?));
    }
    Ok(SanType::URI(host.try_into()?))
}

fn tls_secret(namespace: &str, name: &str, leaf: &Leaf) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&leaf.cert_pem), "tls.key": b64(&leaf.key_pem)},
    })
}

fn ca_config_map(namespace: &str, name: &str, ca: &Ca) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {"ca.crt": ca.cert.pem()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn generates_every_object_of_the_table() {
        let objects = generated_objects().unwrap();
        assert_eq!(objects.len(), 14);
        let validity = objects
            .iter()
            .find(|o| o["metadata"]["name"] == "tls-validity-checks-certificate")
            .unwrap();
        assert_eq!(validity["type"], "kubernetes.io/tls");
        let pem = base64::engine::general_purpose::STANDARD
            .decode(validity["data"]["tls.crt"].as_str().unwrap())
            .unwrap();
        assert!(String::from_utf8(pem)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn san_kinds_follow_the_rule() {
        assert!(matches!(san("127.0.0.1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(san("*.wildcard.org"), Ok(SanType::DnsName(_))));
        assert!(matches!(san("*"), Ok(SanType::URI(_))));
        assert!(matches!(
            san("spiffe://abc.example.com/x"),
            Ok(SanType::URI(_))
        ));
    }
}
