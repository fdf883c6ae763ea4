//! Route attachment to Gateway listeners, and the route's `status.parents`: one code path for
//! HTTPRoute, GRPCRoute and TLSRoute, which differ only in how rules compile (see [`view`]).

pub(super) mod view;

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use self::view::{ParentRef, ParentStatus, RouteParents, RouteView};
use super::backend::Resolver;
use super::gateway::{GatewayState, ListenerState};
use super::hostname::intersect;
use super::index::{namespace_of, Index};
use super::rule::CompiledRoute;
use super::verdict::{cond, Verdict};
use super::{Timestamp, GATEWAY_GROUP};
use crate::precedence::Rank;
use crate::snapshot::{Hostname, RouteEntry, RouteId, RouteKind, TlsRouteEntry};
use crate::status::conditions::{reasons, types};
use crate::CONTROLLER_NAME;

/// Attaches `route` to the listeners its parentRefs select, its rules compiled by `compile`
/// (only when it has a parent of ours); `None` when no parentRef names one of our Gateways (the
/// route is someone else's business).
pub(super) fn translate(
    route: &RouteView<'_>,
    compile: impl FnOnce(&mut Resolver<'_, '_>) -> CompiledRoute,
    gateways: &mut [GatewayState<'_>],
    index: &Index<'_>,
    resolver: &mut Resolver<'_, '_>,
    now: Timestamp,
    warnings: &mut Vec<String>,
) -> Option<RouteParents> {
    let namespace = namespace_of(route.meta);
    let name = route.meta.name.as_deref().unwrap_or("");
    let generation = route.meta.generation;
    let route_kind = route.kind.as_str();
    let ours: Vec<(&ParentRef, Parent)> = route
        .parent_refs
        .iter()
        .filter_map(|p| {
            let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
            let kind = p.kind.as_deref().unwrap_or("Gateway");
            if group != GATEWAY_GROUP {
                return None;
            }
            let parent_ns = p.namespace.as_deref().unwrap_or(namespace);
            let (found, exists) = match kind {
                "Gateway" => (
                    gateways
                        .iter()
                        .position(|g| g.namespace == parent_ns && g.name == p.name)
                        .map(|gateway| Parent {
                            gateway,
                            listener_set: None,
                        }),
                    index.resources.gateways.iter().any(|g| {
                        namespace_of(&g.metadata) == parent_ns
                            && g.metadata.name.as_deref() == Some(&p.name)
                    }),
                ),
                "ListenerSet" => (
                    find_listener_set(gateways, parent_ns, &p.name),
                    index.resources.listener_sets.iter().any(|s| {
                        namespace_of(&s.metadata) == parent_ns
                            && s.metadata.name.as_deref() == Some(&p.name)
                    }),
                ),
                _ => return None,
            };
            // A Gateway of another class (or filtered out by only_gateway), or a ListenerSet of
            // such a Gateway, is simply not ours.
            if found.is_none() && !exists {
                warnings.push(format!(
                    "{route_kind} {namespace}/{name}: parentRef {kind} {parent_ns}/{} does not exist",
                    p.name
                ));
            }
            found.map(|parent| (p, parent))
        })
        .collect();
    if ours.is_empty() {
        return None;
    }

    resolver.set_route_kind(route.kind);
    let compiled = compile(resolver);
    let hostnames = route_hostnames(route.hostnames);
    let attachment = Attachment {
        route,
        namespace,
        name,
        compiled: &compiled,
        hostnames: &hostnames,
        rule_ids: rule_ids(route.kind, namespace, name, &compiled),
    };

    let resolved = match compiled.unresolved.first() {
        None => Verdict::yes(reasons::RESOLVED_REFS),
        Some(first) => Verdict::no(
            first.reason(),
            compiled
                .unresolved
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    let partially_invalid =
        (!compiled.invalid.is_empty() && !compiled.all_invalid()).then(|| Verdict {
            ok: true,
            reason: compiled.invalid_reason(),
            message: format!("dropped invalid rules: {}", compiled.invalid_message()),
        });

    let mut attached = BTreeSet::new();
    let mut parents: Vec<ParentStatus> = Vec::new();
    for (p, parent) in ours {
        let Some(gw) = gateways.get_mut(parent.gateway) else {
            continue;
        };
        let (kind, parent_namespace) = match parent.listener_set {
            None => ("Gateway", gw.namespace),
            Some(set) => (
                "ListenerSet",
                gw.listener_sets.get(set).map_or("", |s| s.namespace),
            ),
        };
        let parent_ref = ParentRef {
            group: Some(GATEWAY_GROUP.into()),
            kind: Some(kind.into()),
            name: p.name.clone(),
            namespace: Some(parent_namespace.to_string()),
            port: p.port,
            section_name: p.section_name.clone(),
        };
        if parents.iter().any(|s| s.parent_ref == parent_ref) {
            continue;
        }
        let accepted = attachment.attach(p, parent, gw, index, &mut attached);
        let mut conditions: Vec<Condition> =
            vec![cond(types::ACCEPTED, &accepted, generation, now)];
        if let Some(pi) = &partially_invalid {
            conditions.push(cond(types::PARTIALLY_INVALID, pi, generation, now));
        }
        conditions.push(cond(types::RESOLVED_REFS, &resolved, generation, now));
        parents.push(ParentStatus {
            conditions,
            controller_name: CONTROLLER_NAME.into(),
            parent_ref,
        });
    }
    Some(RouteParents(parents))
}

/// The order routes attach in, and precedence between routes ties on: creation time (a route
/// without one counts as newest), then namespace/name.
pub(super) fn age(route: &RouteView<'_>) -> (bool, Option<Timestamp>, String, String) {
    let created = route.meta.creation_timestamp.as_ref().map(|t| t.0);
    (
        created.is_none(),
        created,
        namespace_of(route.meta).to_string(),
        route.meta.name.clone().unwrap_or_default(),
    )
}

/// What a parentRef names: a Gateway being translated, or one of its ListenerSets.
#[derive(Debug, Clone, Copy)]
struct Parent {
    /// Index in the translated Gateways.
    gateway: usize,
    /// Index in that Gateway's `listener_sets`; `None` for the Gateway itself.
    listener_set: Option<usize>,
}

/// The ListenerSet `namespace/name` among the translated Gateways' ListenerSets.
fn find_listener_set(gateways: &[GatewayState<'_>], namespace: &str, name: &str) -> Option<Parent> {
    gateways.iter().enumerate().find_map(|(gateway, gw)| {
        gw.listener_sets
            .iter()
            .position(|s| s.namespace == namespace && s.name == name)
            .map(|set| Parent {
                gateway,
                listener_set: Some(set),
            })
    })
}

/// The older route of the other HTTP kind (HTTPRoute for a GRPCRoute and back) attached to `l`
/// under a hostname that meets one of `hosts`, as `KIND namespace/name`.
fn other_kind_rival(
    l: &ListenerState<'_>,
    kind: RouteKind,
    hosts: &[Option<Hostname>],
) -> Option<String> {
    let rival_kind = match kind {
        RouteKind::Http => RouteKind::Grpc,
        RouteKind::Grpc => RouteKind::Http,
        RouteKind::Tls => return None,
    };
    l.entries
        .iter()
        .filter(|(_, _, e)| e.route.kind == rival_kind)
        .find(|(h, _, _)| {
            hosts
                .iter()
                .any(|mine| hostnames_meet(h.as_ref(), mine.as_ref()))
        })
        .map(|(_, _, e)| format!("{} {}", rival_kind.as_str(), e.route.label))
}

/// Some host matches both (no hostname matches every host).
fn hostnames_meet(a: Option<&Hostname>, b: Option<&Hostname>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => true,
        (Some(Hostname::Exact(x)), Some(Hostname::Exact(y))) => x == y,
        (Some(Hostname::Exact(e)), Some(w @ Hostname::Wildcard(_)))
        | (Some(w @ Hostname::Wildcard(_)), Some(Hostname::Exact(e))) => w.matches(e),
        // `*.a.com` and `*.b.a.com` share `x.b.a.com`: one suffix ends with the other.
        (Some(Hostname::Wildcard(x)), Some(Hostname::Wildcard(y))) => {
            x.ends_with(y.as_str()) || y.ends_with(x.as_str())
        }
    }
}

/// `Err` holds the hostnames that are not valid.
fn route_hostnames(hostnames: &[String]) -> Result<Vec<Hostname>, Vec<String>> {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for h in hostnames {
        match super::hostname::parse(h, true) {
            Some(h) => ok.push(h),
            None => bad.push(h.clone()),
        }
    }
    if bad.is_empty() {
        Ok(ok)
    } else {
        Err(bad)
    }
}

fn rule_ids(
    kind: RouteKind,
    namespace: &str,
    name: &str,
    compiled: &CompiledRoute,
) -> Vec<Arc<RouteId>> {
    compiled
        .rules
        .iter()
        .map(|r| {
            Arc::new(RouteId {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                rule_index: r.index,
                rule_name: r.name.clone(),
                label: format!("{namespace}/{name}"),
            })
        })
        .collect()
}

struct Attachment<'r> {
    route: &'r RouteView<'r>,
    namespace: &'r str,
    name: &'r str,
    compiled: &'r CompiledRoute,
    hostnames: &'r Result<Vec<Hostname>, Vec<String>>,
    rule_ids: Vec<Arc<RouteId>>,
}

impl Attachment<'_> {
    /// Attaches to the listeners `p` selects on `gw` (its own, or those of one of its
    /// ListenerSets); returns the parent's Accepted verdict. `attached` holds (gateway,
    /// listener) pairs already counted for this route.
    fn attach(
        &self,
        p: &ParentRef,
        parent: Parent,
        gw: &mut GatewayState<'_>,
        index: &Index<'_>,
        attached: &mut BTreeSet<(usize, usize)>,
    ) -> Verdict {
        let gi = parent.gateway;
        let set = parent.listener_set.and_then(|s| gw.listener_sets.get(s));
        if let Some(rejected) = set.and_then(|s| s.rejection()) {
            return Verdict::no(
                reasons::NO_MATCHING_PARENT,
                format!(
                    "ListenerSet {} has no listener on its Gateway: {}",
                    set.map(|s| s.label()).unwrap_or_default(),
                    rejected.message
                ),
            );
        }
        let parent_label = match set {
            Some(set) => format!("ListenerSet {}", set.label()),
            None => format!("Gateway {}", gw.label()),
        };
        let candidates: Vec<usize> = gw
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| l.owner.listener_set == parent.listener_set)
            .filter(|(_, l)| p.section_name.as_deref().is_none_or(|s| s == l.name()))
            .filter(|(_, l)| {
                p.port
                    .is_none_or(|port| i32::from(l.port.unwrap_or(0)) == port)
            })
            .map(|(i, _)| i)
            .collect();
        if candidates.is_empty() {
            let mut what = Vec::new();
            if let Some(s) = &p.section_name {
                what.push(format!("named {s}"));
            }
            if let Some(port) = p.port {
                what.push(format!("on port {port}"));
            }
            return Verdict::no(
                reasons::NO_MATCHING_PARENT,
                format!("{parent_label} has no listener {}", what.join(" ")),
            );
        }
        let allowed: Vec<usize> = candidates
            .into_iter()
            .filter(|i| {
                gw.listeners.get(*i).is_some_and(|l| {
                    l.allows_kind(self.route.kind) && l.allows_namespace(self.namespace, index)
                })
            })
            .collect();
        if allowed.is_empty() {
            return Verdict::no(
                reasons::NOT_ALLOWED_BY_LISTENERS,
                format!("no listener of {parent_label} allows this route"),
            );
        }
        let hostnames = match self.hostnames {
            Ok(h) => h,
            Err(bad) => {
                return Verdict::no(
                    reasons::UNSUPPORTED_VALUE,
                    format!("invalid hostnames: {}", bad.join(", ")),
                )
            }
        };
        let matching: Vec<(usize, Vec<Option<Hostname>>)> = allowed
            .into_iter()
            .filter_map(|i| {
                let l = gw.listeners.get(i)?;
                intersect(l.hostname.as_ref(), hostnames).map(|h| (i, h))
            })
            .collect();
        if matching.is_empty() {
            return Verdict::no(
                reasons::NO_MATCHING_LISTENER_HOSTNAME,
                "no listener hostname matches the route's hostnames",
            );
        }
        if self.compiled.all_invalid() {
            return Verdict::no(
                self.compiled.invalid_reason(),
                self.compiled.invalid_message(),
            );
        }
        let created = self.route.meta.creation_timestamp.as_ref().map(|t| t.0);
        // "If a Route (A) of type HTTPRoute or GRPCRoute is attached to a Listener and that
        // listener already has another Route (B) of the other type attached and the intersection
        // of the hostnames of A and B is non-empty, then the implementation MUST accept exactly
        // one of these two routes": routes attach oldest first, so the one already there wins.
        let (matching, rivals): (Vec<_>, Vec<_>) = matching.into_iter().partition(|(li, hosts)| {
            gw.listeners
                .get(*li)
                .and_then(|l| other_kind_rival(l, self.route.kind, hosts))
                .is_none()
        });
        if matching.is_empty() {
            let rival = rivals.iter().find_map(|(li, hosts)| {
                other_kind_rival(gw.listeners.get(*li)?, self.route.kind, hosts)
            });
            return Verdict::no(
                reasons::NOT_ALLOWED_BY_LISTENERS,
                format!(
                    "its hostnames meet those of the older {} on every listener it could attach to",
                    rival.unwrap_or_default()
                ),
            );
        }
        for (li, hosts) in matching {
            if !attached.insert((gi, li)) {
                continue;
            }
            let Some(l) = gw.listeners.get_mut(li) else {
                continue;
            };
            l.attached_routes += 1;
            for host in hosts {
                for (rule, id) in self.compiled.rules.iter().zip(&self.rule_ids) {
                    if self.route.kind == RouteKind::Tls {
                        let entry = TlsRouteEntry {
                            route: id.clone(),
                            action: rule.action.clone(),
                        };
                        let age = (created, self.namespace.to_string(), self.name.to_string());
                        l.tls_entries.push((host.clone(), age, entry));
                        continue;
                    }
                    for (mi, m) in rule.matches.iter().enumerate() {
                        let rank = match rule.grpc.get(mi) {
                            Some(g) => Rank::grpc(
                                m,
                                *g,
                                created,
                                self.namespace,
                                self.name,
                                rule.index,
                                mi,
                            ),
                            None => {
                                Rank::new(m, created, self.namespace, self.name, rule.index, mi)
                            }
                        };
                        let entry = RouteEntry {
                            route: id.clone(),
                            matcher: m.clone(),
                            action: rule.action.clone(),
                        };
                        l.entries.push((host.clone(), rank, entry));
                    }
                }
            }
        }
        Verdict::yes(reasons::ACCEPTED)
    }
}
