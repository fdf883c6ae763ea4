//! The resource kinds the fake API server serves, and how request paths map onto them.

/// One served resource type.
#[derive(Debug, PartialEq, Eq)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Has a `/status` subresource: writes to the main resource keep the stored status and writes
    /// to `/status` change nothing else.
    pub status: bool,
    /// The API server maintains `metadata.generation` (bumped when anything but metadata and
    /// status changes).
    pub generation: bool,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const fn kind(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    status: bool,
    generation: bool,
) -> Kind {
    Kind {
        group,
        version,
        plural,
        kind,
        namespaced,
        status,
        generation,
    }
}

const GW: &str = "gateway.networking.k8s.io";

pub static KINDS: &[Kind] = &[
    kind("", "v1", "namespaces", "Namespace", false, true, false),
    kind("", "v1", "services", "Service", true, true, false),
    kind("", "v1", "pods", "Pod", true, true, false),
    kind("", "v1", "secrets", "Secret", true, false, false),
    kind("", "v1", "configmaps", "ConfigMap", true, false, false),
    kind(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        false,
        false,
    ),
    kind("", "v1", "events", "Event", true, false, false),
    kind("events.k8s.io", "v1", "events", "Event", true, false, false),
    kind(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        false,
        false,
    ),
    kind("apps", "v1", "deployments", "Deployment", true, true, true),
    kind("apps", "v1", "daemonsets", "DaemonSet", true, true, true),
    kind(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        true,
        true,
    ),
    kind(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
        false,
        false,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "Role",
        true,
        false,
        false,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        false,
        false,
    ),
    kind(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        false,
        false,
    ),
    kind(
        GW,
        "v1",
        "gatewayclasses",
        "GatewayClass",
        false,
        true,
        true,
    ),
    kind(GW, "v1", "gateways", "Gateway", true, true, true),
    kind(GW, "v1", "httproutes", "HTTPRoute", true, true, true),
    kind(GW, "v1", "grpcroutes", "GRPCRoute", true, true, true),
    kind(GW, "v1", "tlsroutes", "TLSRoute", true, true, true),
    kind(
        GW,
        "v1",
        "referencegrants",
        "ReferenceGrant",
        true,
        false,
        true,
    ),
    kind(GW, "v1", "listenersets", "ListenerSet", true, true, true),
    kind(
        GW,
        "v1",
        "backendtlspolicies",
        "BackendTLSPolicy",
        true,
        true,
        true,
    ),
    kind(
        "sluice.dev",
        "v1alpha1",
        "mirrorpolicies",
        "MirrorPolicy",
        true,
        true,
        true,
    ),
];

pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Kind> {
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// What a request path names.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static Kind,
    /// `None` for cluster-scoped kinds, and for a namespaced list across all namespaces.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub status: bool,
    /// `pods/NAME:PORT/proxy/PATH`: the path to forward to the pod (`name` is `NAME:PORT`).
    pub proxy: Option<String>,
}

/// Parses `/api/v1/...` and `/apis/GROUP/VERSION/...` paths; `None` for anything else.
pub fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] if *plural != "status" => (Some(*ns), {
            let mut v = vec![*plural];
            v.extend_from_slice(rest);
            v
        }),
        _ => (None, rest.to_vec()),
    };
    let (plural, name, status, proxy) = match rest.as_slice() {
        [plural] => (*plural, None, false, None),
        [plural, name] => (*plural, Some(*name), false, None),
        [plural, name, "status"] => (*plural, Some(*name), true, None),
        ["pods", name, "proxy", path @ ..] => ("pods", Some(*name), false, Some(path.join("/"))),
        _ => return None,
    };
    let kind = by_plural(group, version, plural)?;
    if kind.namespaced != namespace.is_some() && (name.is_some() || !kind.namespaced) {
        return None;
    }
    Some(Target {
        kind,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        status,
        proxy: proxy.map(|p| format!("/{p}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_kind_namespace_and_subresource() {
        let t = parse_path("/apis/gateway.networking.k8s.io/v1/namespaces/a/gateways/g/status")
            .expect("valid");
        assert_eq!(
            (
                t.kind.kind,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.status
            ),
            ("Gateway", Some("a"), Some("g"), true)
        );
        let t = parse_path("/api/v1/namespaces/default").expect("namespace get");
        assert_eq!(
            (t.kind.kind, t.name.as_deref()),
            ("Namespace", Some("default"))
        );
        let t = parse_path("/api/v1/services").expect("all-namespace list");
        assert_eq!((t.kind.kind, t.namespace), ("Service", None));
        assert!(parse_path("/api/v1/namespaces/a/gatewayclasses").is_none());
        assert!(
            parse_path("/apis/apps/v1/deployments/x").is_none(),
            "namespaced get needs a namespace"
        );
        assert!(parse_path("/healthz").is_none());
        let t = parse_path("/api/v1/namespaces/a/pods/p-1:9901/proxy/listeners").expect("proxy");
        assert_eq!(
            (t.kind.kind, t.name.as_deref(), t.proxy.as_deref()),
            ("Pod", Some("p-1:9901"), Some("/listeners"))
        );
    }
}
