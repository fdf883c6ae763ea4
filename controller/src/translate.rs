//! Pure translation: resources -> Snapshot + StatusReport, following the Gateway API spec.
//!
//! No I/O and no clock: the caller passes `now` (every condition's `lastTransitionTime`) and the
//! previous pool address assignment, so the same input always gives the same output.
//!
//! The condition types and reasons statuses carry are constants in
//! [`crate::status::conditions`], which also lists which condition may carry which reason
//! (`docs/status-reasons.md` is checked against it).

mod addresses;
mod backend;
mod backend_tls;
mod binds;
pub mod duration;
mod filters;
pub mod findings;
mod frontend_tls;
mod gateway;
mod grpc;
mod hostname;
mod index;
mod listener_set;
mod matches;
mod mirror_policy;
mod reference_grant;
mod route;
mod rule;
pub mod secret_refs;
mod tls;
mod tls_route;
mod verdict;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use ipnet::IpNet;
use kube::Resource;

use crate::snapshot::{RouteKind, Snapshot};
use crate::status::{ObjectStatus, StatusKey, StatusReport};

pub use k8s_openapi::jiff::Timestamp;

/// The Gateway API group: route parents, listener route kinds, ReferenceGrant `from`s.
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

use self::gateway::GatewayState;
use self::index::Index;
use self::route::view::RouteView;

/// How translation places Gateways: addresses, the Gateway to translate, behind a Service or not.
#[derive(Debug, Clone)]
pub struct TranslateOptions {
    /// Each Gateway without `spec.addresses` gets its own address from this pool.
    pub address_pool: Option<IpNet>,
    /// Where Gateways listen when there is no pool and no `spec.addresses`.
    pub listen_address: IpAddr,
    /// `(namespace, name)`: translate only this Gateway (one `sluice proxy` per Gateway).
    pub only_gateway: Option<(String, String)>,
    /// A provisioned data plane (`sluice proxy`): its Service carries the Gateway's
    /// `spec.addresses` (as `externalIPs`), so every listener binds the listen address inside
    /// the pod instead of addresses the pod does not own.
    pub behind_service: bool,
    /// The previous translation's pool assignment (`namespace/name` -> address), so Gateways keep
    /// their address across reloads; feed back [`Translation::assigned_addresses`].
    pub assigned_addresses: BTreeMap<String, IpAddr>,
}

impl Default for TranslateOptions {
    fn default() -> Self {
        TranslateOptions {
            address_pool: None,
            listen_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            only_gateway: None,
            behind_service: false,
            assigned_addresses: BTreeMap::new(),
        }
    }
}

/// What one translation produces: the snapshot (statuses inside), warnings and pool assignments.
#[derive(Debug)]
pub struct Translation {
    /// Statuses are inside, in `snapshot.statuses`.
    pub snapshot: Snapshot,
    /// Things worth a log line that have no status to live in (e.g. a parentRef to a missing Gateway).
    pub warnings: Vec<String>,
    /// Pool addresses handed out by this translation, `namespace/name` -> address.
    pub assigned_addresses: BTreeMap<String, IpAddr>,
}

/// Translates `resources` into a snapshot and every object's status; `now` stamps new condition
/// times.
pub fn translate(
    resources: &crate::resources::Resources,
    options: &TranslateOptions,
    now: Timestamp,
) -> Translation {
    let index = Index::new(resources);
    let mut warnings = Vec::new();
    let mut report = StatusReport::default();

    let served = gateway::classes(&resources.gateway_classes, now, &mut report);

    let mut gateways: Vec<GatewayState<'_>> = resources
        .gateways
        .iter()
        .filter(|gw| served.contains_key(gw.spec.gateway_class_name.as_str()))
        .filter(|gw| match &options.only_gateway {
            Some((ns, name)) => {
                index::namespace_of(gw.meta()) == ns && gw.meta().name.as_deref() == Some(name)
            }
            None => true,
        })
        .map(|gw| {
            let class_ok = served
                .get(gw.spec.gateway_class_name.as_str())
                .copied()
                .unwrap_or(false);
            GatewayState::new(gw, class_ok, &index)
        })
        .collect();
    // Oldest first: when Gateways share a socket, the older one keeps a contested listener.
    gateways.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    listener_set::attach(
        &resources.listener_sets,
        &mut gateways,
        &index,
        &mut warnings,
    );

    let assigned = addresses::assign(&mut gateways, options);

    let policies = backend_tls::BackendTlsPolicies::new(&index);
    let mut resolver = backend::Resolver::new(&index).with_backend_tls(policies.modes());
    let mirror_policies = mirror_policy::MirrorPolicies::new(&index);
    let mirrors = &mirror_policies;
    let http = resources.http_routes.iter().map(|r| {
        let compile = move |res: &mut backend::Resolver<'_, '_>| {
            let mut compiled = rule::compile_route(r, res);
            mirrors.apply(RouteKind::Http, &r.metadata, &mut compiled);
            compiled
        };
        (RouteView::http(r), Box::new(compile) as Compile<'_>)
    });
    let grpc = resources.grpc_routes.iter().map(|r| {
        let compile = move |res: &mut backend::Resolver<'_, '_>| {
            let mut compiled = grpc::compile_route(r, res);
            mirrors.apply(RouteKind::Grpc, &r.metadata, &mut compiled);
            compiled
        };
        (RouteView::grpc(r), Box::new(compile) as Compile<'_>)
    });
    let tls = resources.tls_routes.iter().map(|r| {
        let compile = |res: &mut backend::Resolver<'_, '_>| tls_route::compile_route(r, res);
        (RouteView::tls(r), Box::new(compile) as Compile<'_>)
    });
    // Routes attach oldest first (creation time, then namespace/name), whatever their kind: of
    // an HTTPRoute and a GRPCRoute whose hostnames meet on a listener, the spec accepts the
    // older, so the newer finds it there. Warnings keep the kinds' listing order.
    let mut routes: Vec<(RouteView<'_>, Compile<'_>)> = http.chain(grpc).chain(tls).collect();
    let mut order: Vec<usize> = (0..routes.len()).collect();
    order.sort_by_key(|&i| routes.get(i).map(|(v, _)| route::age(v)));
    let mut route_warnings: Vec<Vec<String>> = vec![Vec::new(); routes.len()];
    let mut compiles: Vec<Option<Compile<'_>>> = Vec::new();
    let mut views = Vec::new();
    for (view, compile) in routes.drain(..) {
        views.push(view);
        compiles.push(Some(compile));
    }
    for i in order {
        let (Some(view), Some(Some(compile)), Some(warned)) = (
            views.get(i),
            compiles.get_mut(i).map(Option::take),
            route_warnings.get_mut(i),
        ) else {
            continue;
        };
        let parents = route::translate(
            view,
            compile,
            &mut gateways,
            &index,
            &mut resolver,
            now,
            warned,
        );
        if let Some(parents) = parents {
            let (namespace, name) = (index::namespace_of(view.meta), route_name(view));
            let (key, status) = match view.kind {
                RouteKind::Http => (
                    StatusKey::http_route(namespace, &name),
                    ObjectStatus::HttpRoute(parents.into()),
                ),
                RouteKind::Grpc => (
                    StatusKey::grpc_route(namespace, &name),
                    ObjectStatus::GrpcRoute(parents.into()),
                ),
                RouteKind::Tls => (
                    StatusKey::tls_route(namespace, &name),
                    ObjectStatus::TlsRoute(parents.into()),
                ),
            };
            report.objects.insert(key, status);
        }
    }
    warnings.extend(route_warnings.into_iter().flatten());

    let served_gateways = gateways
        .iter()
        .map(|g| (g.namespace.to_string(), g.name.to_string()))
        .collect();
    policies.statuses(&views, &served_gateways, now, &mut report);
    mirror_policies.statuses(&views, &served_gateways, now, &mut report);
    let backend_client_certificates = gateways
        .iter()
        .filter_map(|g| match &g.backend_client_certificate {
            Some(Ok(key)) => Some((g.label(), key.clone())),
            _ => None,
        })
        .collect();

    let binds = binds::assemble(&mut gateways);

    for gw in &gateways {
        report
            .objects
            .insert(gw.status_key(), ObjectStatus::Gateway(gw.status(now)));
        for (set, state) in gw.listener_sets.iter().enumerate() {
            let status = listener_set::status(gw, set, now);
            report
                .objects
                .insert(state.status_key(), ObjectStatus::ListenerSet(status));
        }
    }

    Translation {
        snapshot: Snapshot {
            generation: 0,
            binds,
            statuses: Arc::new(report),
            backend_client_certificates,
        },
        warnings,
        assigned_addresses: assigned,
    }
}

fn route_name(route: &RouteView<'_>) -> String {
    route.meta.name.clone().unwrap_or_default()
}

/// How one route's rules compile; the one step that differs between route kinds.
type Compile<'r> = Box<dyn FnOnce(&mut backend::Resolver<'_, '_>) -> rule::CompiledRoute + 'r>;
