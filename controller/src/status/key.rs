//! Which object a status belongs to, printed `Kind/namespace/name` (`GatewayClass/name`).

use std::cmp::Ordering;
use std::fmt;

use serde::{Serialize, Serializer};

/// The kinds Sluice writes a status for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The cluster-scoped `GatewayClass`.
    GatewayClass,
    /// A `Gateway`.
    Gateway,
    /// An `HTTPRoute`.
    HttpRoute,
    /// A `GRPCRoute`.
    GrpcRoute,
    /// A `TLSRoute`.
    TlsRoute,
    /// A `ListenerSet`.
    ListenerSet,
    /// A `BackendTLSPolicy`.
    BackendTlsPolicy,
    /// A `MirrorPolicy` (sluice.dev).
    MirrorPolicy,
}

impl Kind {
    /// The Kubernetes `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::GatewayClass => "GatewayClass",
            Kind::Gateway => "Gateway",
            Kind::HttpRoute => "HTTPRoute",
            Kind::GrpcRoute => "GRPCRoute",
            Kind::TlsRoute => "TLSRoute",
            Kind::ListenerSet => "ListenerSet",
            Kind::BackendTlsPolicy => "BackendTLSPolicy",
            Kind::MirrorPolicy => "MirrorPolicy",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object with a status: its kind, namespace (none for the cluster-scoped GatewayClass) and
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatusKey {
    /// The object's kind.
    pub kind: Kind,
    /// The object's namespace; `None` only for a GatewayClass.
    pub namespace: Option<String>,
    /// The object's `metadata.name`.
    pub name: String,
}

// === impl StatusKey ===

impl StatusKey {
    /// The key of the cluster-scoped GatewayClass `name`.
    pub fn gateway_class(name: &str) -> StatusKey {
        StatusKey {
            kind: Kind::GatewayClass,
            namespace: None,
            name: name.to_string(),
        }
    }

    /// The key of Gateway `namespace/name`.
    pub fn gateway(namespace: &str, name: &str) -> StatusKey {
        StatusKey {
            kind: Kind::Gateway,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The key of HTTPRoute `namespace/name`.
    pub fn http_route(namespace: &str, name: &str) -> StatusKey {
        StatusKey {
            kind: Kind::HttpRoute,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The key of GRPCRoute `namespace/name`.
    pub fn grpc_route(namespace: &str, name: &str) -> StatusKey {
        StatusKey {
            kind: Kind::GrpcRoute,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The key of TLSRoute `namespace/name`.
    pub fn tls_route(namespace: &str, name: &str) -> StatusKey {
        StatusKey {
            kind: Kind::TlsRoute,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The key of ListenerSet `namespace/name`.
    pub fn listener_set(namespace: &str, name: &str) -> StatusKey {
        StatusKey {
            kind: Kind::ListenerSet,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The key of BackendTLSPolicy `namespace/name`.
    pub fn backend_tls_policy(namespace: &str, name: &str) -> StatusKey {
        StatusKey {
            kind: Kind::BackendTlsPolicy,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The key of MirrorPolicy `namespace/name`.
    pub fn mirror_policy(namespace: &str, name: &str) -> StatusKey {
        StatusKey {
            kind: Kind::MirrorPolicy,
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        }
    }

    /// The bytes of the printed key, without printing it.
    fn printed(&self) -> impl Iterator<Item = u8> + '_ {
        let namespace = self
            .namespace
            .iter()
            .flat_map(|ns| [ns.as_bytes(), b"/".as_slice()]);
        [self.kind.as_str().as_bytes(), b"/".as_slice()]
            .into_iter()
            .chain(namespace)
            .chain([self.name.as_bytes()])
            .flatten()
            .copied()
    }
}

impl fmt::Display for StatusKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}/{ns}/{}", self.kind, self.name),
            None => write!(f, "{}/{}", self.kind, self.name),
        }
    }
}

/// Ordered as the printed keys are: `/status` and the golden files list statuses in that order,
/// and a field-wise order would differ (`a-b/x` sorts before `a/x` as text, since `-` < `/`).
impl Ord for StatusKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.printed().cmp(other.printed())
    }
}

impl PartialOrd for StatusKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for StatusKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_print_and_sort_as_kind_namespace_name() {
        let mut keys = [
            StatusKey::gateway_class("c"),
            StatusKey::http_route("a", "x"),
            StatusKey::gateway("a", "x"),
            StatusKey::http_route("a-b", "x"),
        ];
        keys.sort();
        let printed: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            printed,
            [
                "Gateway/a/x",
                "GatewayClass/c",
                "HTTPRoute/a-b/x",
                "HTTPRoute/a/x"
            ]
        );
    }
}
