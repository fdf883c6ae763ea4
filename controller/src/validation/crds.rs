//! The upstream Gateway API CRDs (experimental channel, a superset of standard), embedded
//! verbatim from `controller/crds/`, and Sluice's own (MirrorPolicy, generated into `deploy/`),
//! each parsed on first use of its kind.

use std::sync::OnceLock;

use serde_json::Value as Json;

/// The Gateway API release Sluice targets: the CRDs here, the conformance data, `deploy/`.
pub const GATEWAY_API_VERSION: &str = "v1.6.1";

/// The API group of the upstream CRDs.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The API group of Sluice's own CRDs.
pub const SLUICE_GROUP: &str = crate::resources::mirror_policy::GROUP;

/// Kinds translation reads; the other CRDs' objects are validated, then ignored with a warning.
const USED: &[&str] = &[
    "GatewayClass",
    "Gateway",
    "HTTPRoute",
    "GRPCRoute",
    "TLSRoute",
    "ReferenceGrant",
    "ListenerSet",
    "BackendTLSPolicy",
    "MirrorPolicy",
];

struct Embedded {
    group: &'static str,
    kind: &'static str,
    yaml: &'static str,
    parsed: OnceLock<Result<Crd, CrdError>>,
}

macro_rules! embedded {
    ($kind:literal, $file:literal) => {
        Embedded {
            group: GROUP,
            kind: $kind,
            yaml: include_str!(concat!(
                "../../crds/gateway.networking.k8s.io_",
                $file,
                ".yaml"
            )),
            parsed: OnceLock::new(),
        }
    };
}

static CRDS: [Embedded; 11] = [
    embedded!("GatewayClass", "gatewayclasses"),
    embedded!("Gateway", "gateways"),
    embedded!("HTTPRoute", "httproutes"),
    embedded!("GRPCRoute", "grpcroutes"),
    embedded!("ReferenceGrant", "referencegrants"),
    embedded!("TLSRoute", "tlsroutes"),
    embedded!("TCPRoute", "tcproutes"),
    embedded!("UDPRoute", "udproutes"),
    embedded!("BackendTLSPolicy", "backendtlspolicies"),
    embedded!("ListenerSet", "listenersets"),
    // The file the types generate (a test keeps them equal), so admission here is the cluster's.
    Embedded {
        group: SLUICE_GROUP,
        kind: "MirrorPolicy",
        yaml: include_str!("../../../deploy/base/crd-mirrorpolicy.yaml"),
        parsed: OnceLock::new(),
    },
];

/// An embedded CRD that does not parse: a broken build, reported per object rather than a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CrdError {
    /// The YAML does not parse, or lacks a field validation needs.
    #[error("the embedded CRD of {kind} does not parse: {message}")]
    Parse {
        /// The kind the CRD is embedded as.
        kind: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The CRD parsed but defines another kind than the one it is embedded as.
    #[error("the embedded CRD of {kind} declares kind {declared}")]
    WrongKind {
        /// The kind it is embedded as.
        kind: &'static str,
        /// The `spec.names.kind` it declares.
        declared: String,
    },
}

/// What validation needs of one CRD.
#[derive(Debug)]
pub struct Crd {
    /// The kind the CRD defines (`spec.names.kind`).
    pub kind: &'static str,
    /// Whether objects of the kind live in a namespace (`spec.scope: Namespaced`).
    pub namespaced: bool,
    /// `gateway.networking.k8s.io/bundle-version`.
    pub bundle_version: String,
    /// `gateway.networking.k8s.io/channel`.
    pub channel: String,
    versions: Vec<CrdVersion>,
}

#[derive(Debug)]
struct CrdVersion {
    name: String,
    served: bool,
    schema: Json,
}

/// The CRD of `kind` in `group`: `None` when no embedded CRD defines it.
pub fn find(group: &str, kind: &str) -> Option<Result<&'static Crd, &'static CrdError>> {
    let embedded = CRDS.iter().find(|e| e.group == group && e.kind == kind)?;
    Some(
        embedded
            .parsed
            .get_or_init(|| Crd::parse(embedded.kind, embedded.yaml))
            .as_ref(),
    )
}

impl Crd {
    /// Every kind an embedded CRD defines.
    pub fn kinds() -> impl Iterator<Item = &'static str> {
        CRDS.iter().map(|e| e.kind)
    }

    /// The OpenAPI schema of `version`; `None` when the CRD does not serve that version.
    pub fn served_schema(&self, version: &str) -> Option<&Json> {
        self.versions
            .iter()
            .find(|v| v.served && v.name == version)
            .map(|v| &v.schema)
    }

    /// The versions the CRD serves, in CRD order, for error messages.
    pub fn served_versions(&self) -> Vec<&str> {
        self.versions
            .iter()
            .filter(|v| v.served)
            .map(|v| v.name.as_str())
            .collect()
    }

    /// Whether translation reads this kind; objects of other kinds are validated, then ignored.
    pub fn used_by_sluice(&self) -> bool {
        USED.contains(&self.kind)
    }

    fn parse(kind: &'static str, yaml: &str) -> Result<Crd, CrdError> {
        let parse_error = |message: String| CrdError::Parse { kind, message };
        let doc: Json = serde_yaml_ng::from_str(yaml).map_err(|e| parse_error(e.to_string()))?;
        let declared = doc
            .pointer("/spec/names/kind")
            .and_then(Json::as_str)
            .unwrap_or("");
        if declared != kind {
            return Err(CrdError::WrongKind {
                kind,
                declared: declared.into(),
            });
        }
        let annotation = |name: &str| {
            doc.pointer("/metadata/annotations")
                .and_then(|a| a.get(name))
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string()
        };
        let versions = doc
            .pointer("/spec/versions")
            .and_then(Json::as_array)
            .ok_or_else(|| parse_error("no spec.versions".into()))?
            .iter()
            .map(|v| CrdVersion {
                name: v
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .to_string(),
                served: v.get("served").and_then(Json::as_bool).unwrap_or(false),
                schema: v
                    .pointer("/schema/openAPIV3Schema")
                    .cloned()
                    .unwrap_or(Json::Null),
            })
            .collect();
        Ok(Crd {
            kind,
            namespaced: doc.pointer("/spec/scope").and_then(Json::as_str) == Some("Namespaced"),
            bundle_version: annotation("gateway.networking.k8s.io/bundle-version"),
            channel: annotation("gateway.networking.k8s.io/channel"),
            versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_crd_is_the_targeted_release_on_the_experimental_channel() {
        for kind in CRDS.iter().filter(|e| e.group == GROUP).map(|e| e.kind) {
            let crd = find(GROUP, kind).expect("embedded").expect("parses");
            assert_eq!(crd.bundle_version, GATEWAY_API_VERSION, "{kind}");
            assert_eq!(crd.channel, "experimental", "{kind}");
            assert!(!crd.served_versions().is_empty(), "{kind}");
        }
    }

    #[test]
    fn sluice_crds_are_found_in_their_own_group_only() {
        let crd = find(SLUICE_GROUP, "MirrorPolicy")
            .expect("embedded")
            .expect("parses");
        assert!(crd.namespaced);
        assert_eq!(crd.served_versions(), ["v1alpha1"]);
        assert!(find(GROUP, "MirrorPolicy").is_none());
    }

    #[test]
    fn other_groups_and_kinds_are_not_found() {
        assert!(find("example.com", "Gateway").is_none());
        assert!(find(GROUP, "HTTPRoutes").is_none());
    }
}
