//! Gateway `spec.tls.frontend`: the client-certificate validation of each HTTPS port, with the
//! listener conditions the spec asks for when a CA reference does not resolve.

use std::sync::Arc;

use gateway_api::apis::experimental::gateways::{
    Gateway, GatewayTlsFrontendDefaultValidationMode as DefaultMode,
    GatewayTlsFrontendPerPortTlsValidationMode as PerPortMode,
};
use k8s_openapi::api::core::v1::ConfigMap;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::index::Index;
use super::reference_grant;
use super::verdict::Verdict;
use crate::snapshot::{ClientValidation, ClientValidationMode, InsecureFallback};
use crate::status::conditions::reasons;

/// The key of a CA ConfigMap that holds the PEM bundle (the spec's Core support).
const CA_KEY: &str = "ca.crt";

/// A port's validation settings could not be built: the listener's conditions say why.
#[derive(Debug)]
pub(super) struct FrontendError {
    /// `ResolvedRefs: False`, for the first reference that failed.
    pub resolved: Verdict,
    /// `Accepted: False` when no reference at all is usable.
    pub accepted: Option<Verdict>,
}

/// Why one `caCertificateRefs` entry is unusable.
#[derive(Debug, thiserror::Error)]
enum CaRefError {
    #[error("caCertificateRef {kind} {name}: only core ConfigMaps are supported")]
    Kind {
        /// `group/Kind`, or `Kind` for the core group.
        kind: String,
        name: String,
    },
    #[error("no ReferenceGrant allows this Gateway to use ConfigMap {0}")]
    NotPermitted(String),
    #[error("ConfigMap {0} not found")]
    NotFound(String),
    #[error("ConfigMap {0} has no key {CA_KEY}")]
    NoKey(String),
    #[error("ConfigMap {0}: {CA_KEY} is not a PEM certificate bundle: {1}")]
    NotPem(String, String),
    #[error("ConfigMap {0}: {CA_KEY} holds no certificate")]
    Empty(String),
}

impl CaRefError {
    fn reason(&self) -> &'static str {
        match self {
            CaRefError::Kind { .. } => reasons::INVALID_CA_CERTIFICATE_KIND,
            CaRefError::NotPermitted(_) => reasons::REF_NOT_PERMITTED,
            _ => reasons::INVALID_CA_CERTIFICATE_REF,
        }
    }
}

/// One `caCertificateRefs` entry; the default and per-port settings are distinct generated types.
struct CaRef<'a> {
    group: &'a str,
    kind: &'a str,
    name: &'a str,
    namespace: Option<&'a str>,
}

/// The refs and mode of a `validation` of either generated type (default and perPort are distinct
/// types of the same shape).
macro_rules! settings_of {
    ($validation:expr, $mode:ident) => {{
        let v = $validation;
        let refs = v.ca_certificate_refs.iter().map(|r| CaRef {
            group: &r.group,
            kind: &r.kind,
            name: &r.name,
            namespace: r.namespace.as_deref(),
        });
        let mode = match v.mode {
            Some($mode::AllowInsecureFallback) => ClientValidationMode::AllowInsecureFallback,
            _ => ClientValidationMode::AllowValidOnly,
        };
        (refs.collect(), mode)
    }};
}

/// The validation that applies to `port`: its `perPort` entry if one names it (an entry without
/// `validation` turns it off), else `default`.
fn settings_for(gw: &Gateway, port: u16) -> Option<(Vec<CaRef<'_>>, ClientValidationMode)> {
    let frontend = gw.spec.tls.as_ref()?.frontend.as_ref()?;
    let per_port = frontend
        .per_port
        .iter()
        .flatten()
        .find(|p| p.port == i32::from(port));
    Some(match per_port {
        Some(entry) => settings_of!(entry.tls.validation.as_ref()?, PerPortMode),
        None => settings_of!(frontend.default.validation.as_ref()?, DefaultMode),
    })
}

/// The ports whose client validation is `AllowInsecureFallback` (`None` for the default), as
/// the Gateway's `InsecureFrontendValidationMode` condition reports them.
pub(super) fn insecure_fallbacks(gw: &Gateway) -> Vec<Option<i32>> {
    let Some(frontend) = gw.spec.tls.as_ref().and_then(|t| t.frontend.as_ref()) else {
        return Vec::new();
    };
    let default = frontend
        .default
        .validation
        .as_ref()
        .is_some_and(|v| matches!(v.mode, Some(DefaultMode::AllowInsecureFallback)));
    let per_port = frontend.per_port.iter().flatten().filter(|p| {
        p.tls
            .validation
            .as_ref()
            .is_some_and(|v| matches!(v.mode, Some(PerPortMode::AllowInsecureFallback)))
    });
    default
        .then_some(None)
        .into_iter()
        .chain(per_port.map(|p| Some(p.port)))
        .collect()
}

/// The client validation of an HTTPS listener on `port`: `Ok(None)` when the Gateway asks for
/// none. Any unusable reference fails the listener's `ResolvedRefs`, since serving with fewer
/// anchors than configured would refuse clients the user meant to admit.
pub(super) fn resolve(
    gw: &Gateway,
    gateway_namespace: &str,
    port: u16,
    index: &Index<'_>,
) -> Result<Option<Arc<ClientValidation>>, FrontendError> {
    let Some((refs, mode)) = settings_for(gw, port) else {
        return Ok(None);
    };
    let mut roots = RootCertStore::empty();
    let mut names = Vec::new();
    let mut first_error = None;
    for r in &refs {
        match anchors(gateway_namespace, r, index) {
            Ok((name, store)) => {
                roots.roots.extend(store.roots);
                names.push(name);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        let accepted = names.is_empty().then(|| {
            Verdict::no(
                reasons::NO_VALID_CA_CERTIFICATE,
                "no caCertificateRef of the client certificate validation is usable",
            )
        });
        return Err(FrontendError {
            resolved: Verdict::no(e.reason(), e.to_string()),
            accepted,
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let strict = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| FrontendError {
            resolved: Verdict::no(
                reasons::INVALID_CA_CERTIFICATE_REF,
                format!("the CA certificates cannot verify clients: {e}"),
            ),
            accepted: Some(Verdict::no(
                reasons::NO_VALID_CA_CERTIFICATE,
                "no usable CA certificate",
            )),
        })?;
    let verifier = match mode {
        ClientValidationMode::AllowValidOnly => strict,
        ClientValidationMode::AllowInsecureFallback => Arc::new(InsecureFallback(strict)),
    };
    Ok(Some(Arc::new(ClientValidation {
        mode,
        ca_config_maps: names,
        verifier,
    })))
}

/// The trust anchors of one reference, with the ConfigMap's `namespace/name`.
fn anchors(
    gateway_namespace: &str,
    r: &CaRef<'_>,
    index: &Index<'_>,
) -> Result<(String, RootCertStore), CaRefError> {
    if !r.group.is_empty() || r.kind != "ConfigMap" {
        let kind = match r.group {
            "" => r.kind.to_string(),
            group => format!("{group}/{}", r.kind),
        };
        return Err(CaRefError::Kind {
            kind,
            name: r.name.to_string(),
        });
    }
    let namespace = r.namespace.unwrap_or(gateway_namespace);
    let label = format!("{namespace}/{}", r.name);
    let allowed = reference_grant::gateway_may_use(
        &index.resources.reference_grants,
        gateway_namespace,
        "ConfigMap",
        namespace,
        r.name,
    );
    if !allowed {
        return Err(CaRefError::NotPermitted(label));
    }
    let config_map = index
        .config_map(namespace, r.name)
        .ok_or_else(|| CaRefError::NotFound(label.clone()))?;
    let store = parse_bundle(config_map).map_err(|e| match e {
        BundleError::NoKey => CaRefError::NoKey(label.clone()),
        BundleError::Empty => CaRefError::Empty(label.clone()),
        BundleError::Invalid(why) => CaRefError::NotPem(label.clone(), why),
    })?;
    Ok((label, store))
}

enum BundleError {
    NoKey,
    Empty,
    Invalid(String),
}

/// Every certificate of the ConfigMap's `ca.crt` (in `data`, or `binaryData`) as an anchor.
fn parse_bundle(config_map: &ConfigMap) -> Result<RootCertStore, BundleError> {
    let pem: &[u8] = match (
        config_map.data.as_ref().and_then(|d| d.get(CA_KEY)),
        config_map.binary_data.as_ref().and_then(|d| d.get(CA_KEY)),
    ) {
        (Some(text), _) => text.as_bytes(),
        (None, Some(bytes)) => &bytes.0,
        (None, None) => return Err(BundleError::NoKey),
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<_, _>>()
        .map_err(|e| BundleError::Invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(BundleError::Empty);
    }
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert)
            .map_err(|e| BundleError::Invalid(e.to_string()))?;
    }
    Ok(store)
}
