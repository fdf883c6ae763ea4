//! The kind-neutral face of a route: what attachment reads (parentRefs, hostnames, metadata) and
//! what it writes (`status.parents`), converted from and into each kind's generated types.
//!
//! HTTPRoute, GRPCRoute and TLSRoute carry these fields with the same names and meaning, in three
//! sets of generated types; one conversion per type keeps attachment and status code in one place.

use std::collections::BTreeSet;

use gateway_api::apis::experimental::grpcroutes::{
    GrpcRoute, GrpcRouteParentRefs, GrpcRouteStatus, GrpcRouteStatusParents,
    GrpcRouteStatusParentsParentRef,
};
use gateway_api::apis::experimental::httproutes::{
    HttpRoute, HttpRouteParentRefs, HttpRouteStatus, HttpRouteStatusParents,
    HttpRouteStatusParentsParentRef,
};
use gateway_api::apis::experimental::tlsroutes::{
    TlsRoute, TlsRouteParentRefs, TlsRouteStatus, TlsRouteStatusParents,
    TlsRouteStatusParentsParentRef,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};

use crate::snapshot::RouteKind;
use crate::translate::GATEWAY_GROUP;

/// A route of any kind, as attachment sees it.
pub(in crate::translate) struct RouteView<'r> {
    pub kind: RouteKind,
    pub meta: &'r ObjectMeta,
    pub parent_refs: Vec<ParentRef>,
    pub hostnames: &'r [String],
    /// Every backendRef of every rule, mirror backendRefs included (BackendTLSPolicy ancestors
    /// follow them).
    pub backend_refs: Vec<ObjectRef<'r>>,
}

/// A backendRef's object, as written: `(group, kind, namespace, name)`.
pub(in crate::translate) type ObjectRef<'r> =
    (Option<&'r str>, Option<&'r str>, Option<&'r str>, &'r str);

/// The object refs of backendRefs and of RequestMirror filters, of any kind's types.
macro_rules! object_ref {
    ($b:expr) => {
        (
            $b.group.as_deref(),
            $b.kind.as_deref(),
            $b.namespace.as_deref(),
            $b.name.as_str(),
        )
    };
}

/// A parentRef as written (the same fields in every route kind).
#[derive(Debug, Clone, PartialEq)]
pub(in crate::translate) struct ParentRef {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<i32>,
    pub section_name: Option<String>,
}

/// A route's `status.parents`, converted into its kind's status type.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::translate) struct RouteParents(pub Vec<ParentStatus>);

/// One entry of `status.parents`.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::translate) struct ParentStatus {
    pub parent_ref: ParentRef,
    pub controller_name: String,
    pub conditions: Vec<Condition>,
}

/// Each kind's parentRef type -> [`ParentRef`].
macro_rules! parent_ref_from {
    ($($generated:ty),+) => {$(
        impl From<&$generated> for ParentRef {
            fn from(p: &$generated) -> Self {
                ParentRef {
                    group: p.group.clone(),
                    kind: p.kind.clone(),
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    port: p.port,
                    section_name: p.section_name.clone(),
                }
            }
        }
    )+};
}

parent_ref_from!(HttpRouteParentRefs, GrpcRouteParentRefs, TlsRouteParentRefs);

/// [`RouteParents`] -> each kind's status type.
macro_rules! status_into {
    ($($status:ident, $parents:ident, $parent_ref:ident;)+) => {$(
        impl From<RouteParents> for $status {
            fn from(parents: RouteParents) -> Self {
                $status {
                    parents: parents
                        .0
                        .into_iter()
                        .map(|p| $parents {
                            conditions: p.conditions,
                            controller_name: p.controller_name,
                            parent_ref: $parent_ref {
                                group: p.parent_ref.group,
                                kind: p.parent_ref.kind,
                                name: p.parent_ref.name,
                                namespace: p.parent_ref.namespace,
                                port: p.parent_ref.port,
                                section_name: p.parent_ref.section_name,
                            },
                        })
                        .collect(),
                }
            }
        }
    )+};
}

status_into!(
    HttpRouteStatus, HttpRouteStatusParents, HttpRouteStatusParentsParentRef;
    GrpcRouteStatus, GrpcRouteStatusParents, GrpcRouteStatusParentsParentRef;
    TlsRouteStatus, TlsRouteStatusParents, TlsRouteStatusParentsParentRef;
);

/// HTTPRoute and GRPCRoute spell their parentRefs, hostnames, backendRefs and mirror filters
/// alike (TLSRoute has no filters and requires its lists).
macro_rules! http_like_view {
    ($kind:expr, $route:expr) => {{
        let mut backend_refs = Vec::new();
        for rule in $route.spec.rules.iter().flatten() {
            backend_refs.extend(rule.backend_refs.iter().flatten().map(|b| object_ref!(b)));
            let mirrors = rule.filters.iter().flatten();
            let mirrors = mirrors.filter_map(|f| f.request_mirror.as_ref());
            backend_refs.extend(mirrors.map(|m| object_ref!(m.backend_ref)));
        }
        RouteView {
            kind: $kind,
            meta: &$route.metadata,
            parent_refs: $route
                .spec
                .parent_refs
                .iter()
                .flatten()
                .map(Into::into)
                .collect(),
            hostnames: $route.spec.hostnames.as_deref().unwrap_or(&[]),
            backend_refs,
        }
    }};
}

// === impl RouteView ===

impl<'r> RouteView<'r> {
    pub(in crate::translate) fn http(route: &'r HttpRoute) -> Self {
        http_like_view!(RouteKind::Http, route)
    }

    pub(in crate::translate) fn grpc(route: &'r GrpcRoute) -> Self {
        http_like_view!(RouteKind::Grpc, route)
    }

    pub(in crate::translate) fn tls(route: &'r TlsRoute) -> Self {
        let backend_refs = route.spec.rules.iter().flat_map(|r| &r.backend_refs);
        RouteView {
            kind: RouteKind::Tls,
            meta: &route.metadata,
            parent_refs: route
                .spec
                .parent_refs
                .iter()
                .flatten()
                .map(Into::into)
                .collect(),
            hostnames: &route.spec.hostnames,
            backend_refs: backend_refs.map(|b| object_ref!(b)).collect(),
        }
    }

    /// The served Gateways `(namespace, name)` its parentRefs name: the ancestors of a policy
    /// that affects the route (GEP-713).
    pub(in crate::translate) fn served_gateways(
        &self,
        served: &BTreeSet<(String, String)>,
    ) -> Vec<(String, String)> {
        let namespace = self.meta.namespace.as_deref().unwrap_or("default");
        self.parent_refs
            .iter()
            .filter(|p| {
                p.group.as_deref().unwrap_or(GATEWAY_GROUP) == GATEWAY_GROUP
                    && p.kind.as_deref().unwrap_or("Gateway") == "Gateway"
            })
            .map(|p| {
                let ns = p.namespace.as_deref().unwrap_or(namespace);
                (ns.to_string(), p.name.clone())
            })
            .filter(|g| served.contains(g))
            .collect()
    }
}
