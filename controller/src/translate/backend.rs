//! backendRefs -> Services resolved to their ready endpoints (via EndpointSlices).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use gateway_api::apis::experimental::httproutes::{
    HttpRouteRulesBackendRefs, HttpRouteRulesFiltersRequestMirrorBackendRef,
};
use k8s_openapi::api::core::v1::ServicePort;

use super::index::Index;
use super::reference_grant::{self, From, To};
use super::GATEWAY_GROUP;
use crate::snapshot::{Backend, BackendProtocol, BackendTlsMode, RouteKind};
use crate::status::conditions::reasons;

/// A backendRef as written (rule backendRefs and mirror backendRefs share this shape).
pub(super) struct BackendRef<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub name: &'a str,
    pub namespace: Option<&'a str>,
    pub port: Option<i32>,
}

/// One conversion for every generated type that carries a backendRef's fields.
macro_rules! backend_ref_from {
    ($($generated:ty),+) => {$(
        impl<'a> std::convert::From<&'a $generated> for BackendRef<'a> {
            fn from(b: &'a $generated) -> Self {
                BackendRef {
                    group: b.group.as_deref(),
                    kind: b.kind.as_deref(),
                    name: &b.name,
                    namespace: b.namespace.as_deref(),
                    port: b.port,
                }
            }
        }
    )+};
}

backend_ref_from!(
    HttpRouteRulesBackendRefs,
    HttpRouteRulesFiltersRequestMirrorBackendRef
);

/// Why a backendRef did not resolve: the route's `ResolvedRefs` is False.
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum UnresolvedRef {
    #[error("backendRef {group}/{kind} {name}: only core Services are supported")]
    NotAService {
        group: String,
        kind: String,
        name: String,
    },
    #[error(
        "no ReferenceGrant allows {route_kind}s in {route_namespace} to use Service {namespace}/{name}"
    )]
    NotPermitted {
        route_kind: &'static str,
        route_namespace: String,
        namespace: String,
        name: String,
    },
    #[error("backendRef Service {namespace}/{name} needs a valid port")]
    NoPort { namespace: String, name: String },
    #[error("Service {namespace}/{name} not found")]
    ServiceNotFound { namespace: String, name: String },
    #[error("Service {namespace}/{name} has no port {port}")]
    NoSuchPort {
        namespace: String,
        name: String,
        port: u16,
    },
    #[error("Service {namespace}/{name} port {port}: appProtocol {app_protocol} is not supported")]
    UnsupportedProtocol {
        namespace: String,
        name: String,
        port: u16,
        app_protocol: String,
    },
}

// === impl UnresolvedRef ===

impl UnresolvedRef {
    /// The route's `ResolvedRefs` reason.
    pub(super) fn reason(&self) -> &'static str {
        match self {
            UnresolvedRef::NotAService { .. } => reasons::INVALID_KIND,
            UnresolvedRef::NotPermitted { .. } => reasons::REF_NOT_PERMITTED,
            UnresolvedRef::NoPort { .. } => reasons::UNSUPPORTED_VALUE,
            UnresolvedRef::ServiceNotFound { .. } | UnresolvedRef::NoSuchPort { .. } => {
                reasons::BACKEND_NOT_FOUND
            }
            UnresolvedRef::UnsupportedProtocol { .. } => reasons::UNSUPPORTED_PROTOCOL,
        }
    }
}

/// Resolves refs, sharing one `Arc<Backend>` per Service port and protocol across the whole
/// snapshot so its round-robin position is shared too. A Service port used by HTTPRoutes and
/// GRPCRoutes gets two backends: GRPCRoute backends always speak HTTP/2.
pub(super) struct Resolver<'i, 'a> {
    index: &'i Index<'a>,
    /// The kind of the route whose refs are resolved: ReferenceGrants name it, and GRPCRoute
    /// backends speak HTTP/2.
    route_kind: RouteKind,
    cache: BTreeMap<(String, String, u16, bool), Arc<Backend>>,
    /// `(namespace, Service, port name)` -> TLS settings; no port name: the whole Service.
    tls: BTreeMap<(String, String, Option<String>), BackendTlsMode>,
}

impl<'i, 'a> Resolver<'i, 'a> {
    pub(super) fn new(index: &'i Index<'a>) -> Self {
        Resolver {
            index,
            route_kind: RouteKind::Http,
            cache: BTreeMap::new(),
            tls: BTreeMap::new(),
        }
    }

    /// Backends get these TLS settings (see [`super::backend_tls`]).
    pub(super) fn with_backend_tls(
        mut self,
        tls: BTreeMap<(String, String, Option<String>), BackendTlsMode>,
    ) -> Self {
        self.tls = tls;
        self
    }

    /// Refs resolved from now on are those of a route of `kind`.
    pub(super) fn set_route_kind(&mut self, kind: RouteKind) {
        self.route_kind = kind;
    }

    /// The policy naming the port wins over the one naming the whole Service.
    fn tls_for(
        &self,
        namespace: &str,
        service: &str,
        port: &ServicePort,
    ) -> Option<BackendTlsMode> {
        let key = |section: Option<String>| (namespace.to_string(), service.to_string(), section);
        port.name
            .clone()
            .and_then(|n| self.tls.get(&key(Some(n))))
            .or_else(|| self.tls.get(&key(None)))
            .cloned()
    }

    pub(super) fn resolve(
        &mut self,
        route_namespace: &str,
        r: &BackendRef<'_>,
    ) -> Result<Arc<Backend>, UnresolvedRef> {
        let group = r.group.unwrap_or("");
        let kind = r.kind.unwrap_or("Service");
        if !group.is_empty() || kind != "Service" {
            return Err(UnresolvedRef::NotAService {
                group: group.to_string(),
                kind: kind.to_string(),
                name: r.name.to_string(),
            });
        }
        let namespace = r.namespace.unwrap_or(route_namespace);
        let permitted = reference_grant::permitted(
            &self.index.resources.reference_grants,
            &From {
                group: GATEWAY_GROUP,
                kind: self.route_kind.as_str(),
                namespace: route_namespace,
            },
            &To {
                group: "",
                kind: "Service",
                namespace,
                name: r.name,
            },
        );
        let service = || (namespace.to_string(), r.name.to_string());
        if !permitted {
            let (namespace, name) = service();
            return Err(UnresolvedRef::NotPermitted {
                route_kind: self.route_kind.as_str(),
                route_namespace: route_namespace.to_string(),
                namespace,
                name,
            });
        }
        let Some(port) = r.port.and_then(|p| u16::try_from(p).ok()) else {
            let (namespace, name) = service();
            return Err(UnresolvedRef::NoPort { namespace, name });
        };
        let grpc = self.route_kind == RouteKind::Grpc;
        let key = (namespace.to_string(), r.name.to_string(), port, grpc);
        if let Some(b) = self.cache.get(&key) {
            return Ok(b.clone());
        }
        let found = self.index.service(namespace, r.name).ok_or_else(|| {
            let (namespace, name) = service();
            UnresolvedRef::ServiceNotFound { namespace, name }
        })?;
        let service_port = found
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|ports| ports.iter().find(|p| p.port == i32::from(port)))
            .ok_or_else(|| {
                let (namespace, name) = service();
                UnresolvedRef::NoSuchPort {
                    namespace,
                    name,
                    port,
                }
            })?;
        // gRPC is HTTP/2 whatever the port's appProtocol says (GEP-1016).
        let app_protocol = if grpc {
            Some("kubernetes.io/h2c")
        } else {
            service_port.app_protocol.as_deref()
        };
        let protocol = protocol(app_protocol).map_err(|p| {
            let (namespace, name) = service();
            UnresolvedRef::UnsupportedProtocol {
                namespace,
                name,
                port,
                app_protocol: p.to_string(),
            }
        })?;
        let backend = Arc::new(
            Backend::new(
                format!("{namespace}/{}:{port}", r.name),
                self.endpoints(namespace, r.name, service_port),
                protocol,
            )
            .with_tls(self.tls_for(namespace, r.name, service_port)),
        );
        self.cache.insert(key, backend.clone());
        Ok(backend)
    }

    /// Ready endpoints (`conditions.ready` true or absent) of the slice port named like the
    /// Service port, sorted so the snapshot is deterministic.
    fn endpoints(&self, namespace: &str, service: &str, port: &ServicePort) -> Vec<SocketAddr> {
        let wanted = port.name.as_deref().unwrap_or("");
        let mut out = Vec::new();
        for slice in self.index.endpoint_slices(namespace, service) {
            let slice_port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or("") == wanted)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok());
            let Some(slice_port) = slice_port else {
                continue;
            };
            for ep in slice.endpoints.iter().flatten() {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready {
                    continue;
                }
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        out.push(SocketAddr::new(ip, slice_port));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// `Err` for the Kubernetes-defined protocols Sluice cannot speak to a backend (TLS ones).
fn protocol(app_protocol: Option<&str>) -> Result<BackendProtocol, &str> {
    match app_protocol {
        Some("kubernetes.io/h2c") => Ok(BackendProtocol::H2c),
        Some("kubernetes.io/ws") => Ok(BackendProtocol::WebSocket),
        Some(p @ "kubernetes.io/wss") => Err(p),
        _ => Ok(BackendProtocol::Http1),
    }
}
