//! ListenerSets: which Gateway admits which (`spec.allowedListeners`), their listeners merged
//! into the Gateway's in the spec's precedence order, and their statuses.
//!
//! Precedence (GEP-1713): the Gateway's own listeners first, then ListenerSets oldest first,
//! then by namespace/name. A ListenerSet listener that shares a port with a listener of higher
//! precedence and differs in protocol, or repeats its hostname, loses: `Accepted` and
//! `Programmed` False and `Conflicted` True, with the conflict as reason. The winner is untouched.

use gateway_api::apis::experimental::gateways::{
    GatewayAllowedListenersNamespacesFrom as FromNamespaces,
    GatewayAllowedListenersNamespacesSelector,
    GatewayListenersAllowedRoutesNamespacesSelector as Selector,
    GatewayListenersAllowedRoutesNamespacesSelectorMatchExpressions as Expr,
};
use kube::Resource;

use super::gateway::{listeners_verdict, selector_matches, GatewayState, ListenerState, Owner};
use super::index::{namespace_of, Index};
use super::verdict::{cond, Verdict};
use super::{Timestamp, GATEWAY_GROUP};
use crate::resources::{ListenerSet, ListenerSetStatus};
use crate::status::conditions::{reasons, types};
use crate::status::StatusKey;

/// One ListenerSet whose parent is a Gateway being translated.
pub(super) struct ListenerSetState<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    generation: Option<i64>,
    /// Why the Gateway does not admit it; `None` when its listeners were merged.
    rejection: Option<Verdict>,
}

// === impl ListenerSetState ===

impl ListenerSetState<'_> {
    pub(super) fn status_key(&self) -> StatusKey {
        StatusKey::listener_set(self.namespace, self.name)
    }

    pub(super) fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Why its Gateway does not admit it; `None` when its listeners were merged.
    pub(super) fn rejection(&self) -> Option<&Verdict> {
        self.rejection.as_ref()
    }
}

/// Hands every ListenerSet to the Gateway its `parentRef` names, when that Gateway is being
/// translated; the admitted ones add their listeners after the Gateway's. ListenerSets of other
/// Gateways get no status, as routes of other Gateways do.
pub(super) fn attach<'a>(
    sets: &'a [ListenerSet],
    gateways: &mut [GatewayState<'a>],
    index: &Index<'_>,
    warnings: &mut Vec<String>,
) {
    let mut ordered: Vec<&'a ListenerSet> = sets.iter().collect();
    ordered.sort_by_key(|ls| {
        let created = ls.meta().creation_timestamp.as_ref().map(|t| t.0);
        (
            created,
            namespace_of(ls.meta()),
            ls.meta().name.as_deref().unwrap_or(""),
        )
    });
    for ls in ordered {
        let namespace = namespace_of(&ls.metadata);
        let name = ls.metadata.name.as_deref().unwrap_or("");
        let parent = &ls.spec.parent_ref;
        let group = parent.group.as_deref().unwrap_or(GATEWAY_GROUP);
        let kind = parent.kind.as_deref().unwrap_or("Gateway");
        if group != GATEWAY_GROUP || kind != "Gateway" {
            warnings.push(format!(
                "ListenerSet {namespace}/{name}: parentRef {group}/{kind} is not a Gateway"
            ));
            continue;
        }
        let gw_namespace = parent.namespace.as_deref().unwrap_or(namespace);
        let Some(gw) = gateways
            .iter_mut()
            .find(|g| g.namespace == gw_namespace && g.name == parent.name)
        else {
            let exists = index.resources.gateways.iter().any(|g| {
                namespace_of(&g.metadata) == gw_namespace
                    && g.metadata.name.as_deref() == Some(&parent.name)
            });
            if !exists {
                warnings.push(format!(
                    "ListenerSet {namespace}/{name}: parentRef Gateway {gw_namespace}/{} does not exist",
                    parent.name
                ));
            }
            continue;
        };
        let rejection = admission(gw, namespace, index);
        let set = gw.listener_sets.len();
        gw.listener_sets.push(ListenerSetState {
            namespace,
            name,
            generation: ls.metadata.generation,
            rejection: rejection.clone(),
        });
        if rejection.is_some() {
            continue;
        }
        let owner = Owner {
            kind: "ListenerSet",
            namespace,
            listener_set: Some(set),
        };
        for spec in &ls.spec.listeners {
            let mut listener = ListenerState::new(spec, owner, index);
            if let Some(conflict) = conflict(&gw.listeners, &listener) {
                listener.accepted = Verdict::no(conflict.reason, conflict.message.clone());
                listener.conflicted = Some(conflict);
            }
            gw.listeners.push(listener);
        }
    }
}

/// `spec.allowedListeners.namespaces.from` (default `None`) admits a ListenerSet of `namespace`.
fn admission(gw: &GatewayState<'_>, namespace: &str, index: &Index<'_>) -> Option<Verdict> {
    let namespaces = gw
        .gw
        .spec
        .allowed_listeners
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    let allowed =
        match namespaces.and_then(|n| n.from.as_ref()) {
            None | Some(FromNamespaces::None) => false,
            Some(FromNamespaces::All) => true,
            Some(FromNamespaces::Same) => namespace == gw.namespace,
            Some(FromNamespaces::Selector) => namespaces
                .and_then(|n| n.selector.as_ref())
                .is_some_and(|s| {
                    selector_matches(&route_selector(s), &index.namespace_labels(namespace))
                }),
        };
    (!allowed).then(|| {
        Verdict::no(
            reasons::NOT_ALLOWED,
            format!(
                "Gateway {}'s allowedListeners does not admit ListenerSets of namespace {namespace}",
                gw.label()
            ),
        )
    })
}

/// The same label selector in the type `selector_matches` reads (the generated types give every
/// field its own copy of the Kubernetes LabelSelector).
fn route_selector(s: &GatewayAllowedListenersNamespacesSelector) -> Selector {
    Selector {
        match_labels: s.match_labels.clone(),
        match_expressions: s.match_expressions.as_ref().map(|exprs| {
            exprs
                .iter()
                .map(|e| Expr {
                    key: e.key.clone(),
                    operator: e.operator.clone(),
                    values: e.values.clone(),
                })
                .collect()
        }),
    }
}

/// The first listener of higher precedence (already in `listeners`, and accepted) that `new`
/// conflicts with: the same port with another kind of socket (HTTP against HTTPS or TLS, which
/// share TLS sockets), or the same port and hostname.
fn conflict(listeners: &[ListenerState<'_>], new: &ListenerState<'_>) -> Option<Verdict> {
    let port = new.port?;
    listeners
        .iter()
        .filter(|o| o.accepted.ok && o.port == Some(port))
        .find_map(|o| {
            if o.protocol != new.protocol {
                Some(Verdict::no(
                    reasons::PROTOCOL_CONFLICT,
                    format!(
                        "port {port} is already served with protocol {} by listener {} of higher precedence",
                        o.spec.protocol,
                        o.name()
                    ),
                ))
            } else if o.hostname == new.hostname {
                Some(Verdict::no(
                    reasons::HOSTNAME_CONFLICT,
                    format!(
                        "port {port} already serves this hostname for listener {} of higher precedence",
                        o.name()
                    ),
                ))
            } else {
                None
            }
        })
}

/// The listeners of ListenerSet `set` of `gw`.
fn listeners_of<'g, 'a>(
    gw: &'g GatewayState<'a>,
    set: usize,
) -> impl Iterator<Item = &'g ListenerState<'a>> {
    gw.listeners
        .iter()
        .filter(move |l| l.owner.listener_set == Some(set))
}

/// `Accepted` of ListenerSet `set`: admitted, its Gateway accepted, and some listener ready.
pub(super) fn accepted(gw: &GatewayState<'_>, set: usize) -> Verdict {
    let Some(state) = gw.listener_sets.get(set) else {
        return Verdict::no(reasons::INVALID, "no such ListenerSet");
    };
    if let Some(r) = &state.rejection {
        return r.clone();
    }
    if !gw.accepted().ok {
        return Verdict::no(
            reasons::PARENT_NOT_ACCEPTED,
            format!("Gateway {} is not accepted", gw.label()),
        );
    }
    // Ready, not only accepted: a ListenerSet whose only listener lacks its certificate is not
    // accepted (ListenerSetReferenceGrant), whereas a Gateway in that state is.
    let ready = listeners_of(gw, set).filter(|l| l.is_ready()).count();
    listeners_verdict(ready, listeners_of(gw, set).count())
}

fn programmed(gw: &GatewayState<'_>, set: usize) -> Verdict {
    let accepted = accepted(gw, set);
    if !accepted.ok {
        return Verdict::no(accepted.reason, accepted.message);
    }
    if !gw.is_programmed() {
        return Verdict::no(
            reasons::PARENT_NOT_PROGRAMMED,
            format!("Gateway {} is not programmed", gw.label()),
        );
    }
    Verdict::yes(reasons::PROGRAMMED)
}

/// The status of ListenerSet `set` of `gw`, once routes are attached and binds assembled.
pub(super) fn status(gw: &GatewayState<'_>, set: usize, now: Timestamp) -> ListenerSetStatus {
    let generation = gw.listener_sets.get(set).and_then(|s| s.generation);
    let admitted = gw
        .listener_sets
        .get(set)
        .is_some_and(|s| s.rejection.is_none());
    let gateway_programmed = gw.is_programmed();
    ListenerSetStatus {
        conditions: Some(vec![
            cond(types::ACCEPTED, &accepted(gw, set), generation, now),
            cond(types::PROGRAMMED, &programmed(gw, set), generation, now),
        ]),
        listeners: admitted.then(|| {
            listeners_of(gw, set)
                .map(|l| l.status(gateway_programmed, generation, now))
                .collect()
        }),
    }
}
