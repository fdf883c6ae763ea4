//! GatewayClasses and Gateways: which are served, listener validation, and their statuses.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use gateway_api::apis::experimental::gatewayclasses::{
    GatewayClass, GatewayClassStatus, GatewayClassStatusSupportedFeatures,
};
use gateway_api::apis::experimental::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom as From,
    GatewayListenersAllowedRoutesNamespacesSelector as Selector,
    GatewayListenersTlsMode as TlsMode, GatewayStatus, GatewayStatusAddresses,
    GatewayStatusListeners, GatewayStatusListenersSupportedKinds,
};
use kube::Resource;
use rustls::sign::CertifiedKey;

use super::index::{namespace_of, Index};
use super::listener_set::ListenerSetState;
use super::verdict::{cond, Verdict};
use super::{Timestamp, GATEWAY_GROUP};
use crate::features::SUPPORTED_FEATURES;
use crate::precedence::Rank;
use crate::provision::gateway_params;
use crate::provision::params::DataPlaneParams;
use crate::snapshot::{
    BindProtocol, ClientValidation, Hostname, ListenerKind, RouteEntry, RouteKind, TlsRouteEntry,
};
use crate::status::conditions::{reasons, types};
use crate::status::{ObjectStatus, StatusKey, StatusReport};
use crate::CONTROLLER_NAME;

/// Statuses for our GatewayClasses; returns each served class name -> accepted.
pub(super) fn classes<'a>(
    classes: &'a [GatewayClass],
    now: Timestamp,
    report: &mut StatusReport,
) -> BTreeMap<&'a str, bool> {
    let mut served = BTreeMap::new();
    for class in classes
        .iter()
        .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
    {
        let Some(name) = class.metadata.name.as_deref() else {
            continue;
        };
        let verdict = match &class.spec.parameters_ref {
            // A core ConfigMap holds cluster mode's data-plane knobs (docs/kubernetes.md); the
            // provisioner reads and validates it.
            Some(p) if !(p.group.is_empty() && p.kind == "ConfigMap") => Verdict::no(
                reasons::INVALID_PARAMETERS,
                format!(
                    "parametersRef {}/{} {}: Sluice's class parameters are a core ConfigMap",
                    p.group, p.kind, p.name
                ),
            ),
            _ => Verdict::yes(reasons::ACCEPTED),
        };
        served.insert(name, verdict.ok);
        let status = GatewayClassStatus {
            conditions: Some(vec![cond(
                types::ACCEPTED,
                &verdict,
                class.metadata.generation,
                now,
            )]),
            supported_features: Some(
                SUPPORTED_FEATURES
                    .iter()
                    .map(|f| GatewayClassStatusSupportedFeatures {
                        name: (*f).to_string(),
                    })
                    .collect(),
            ),
        };
        report.objects.insert(
            StatusKey::gateway_class(name),
            ObjectStatus::GatewayClass(status),
        );
    }
    served
}

// === impl GatewayState ===

pub(super) struct GatewayState<'a> {
    pub gw: &'a Gateway,
    pub namespace: &'a str,
    pub name: &'a str,
    generation: Option<i64>,
    /// A reason the whole Gateway is not accepted (class, parameters, addresses).
    pub rejection: Option<Verdict>,
    pub addresses: Vec<IpAddr>,
    /// A reason the Gateway is accepted but cannot be programmed (addresses).
    pub unprogrammable: Option<Verdict>,
    /// The Gateway's own listeners, then those of each attached ListenerSet in precedence
    /// order (their `origin` says which).
    pub listeners: Vec<ListenerState<'a>>,
    /// The ListenerSets naming this Gateway as parent, attached or not, in precedence order.
    pub listener_sets: Vec<ListenerSetState<'a>>,
    /// `tls.backend.clientCertificateRef`, when set: the certificate presented to TLS backends,
    /// or why the Gateway's `ResolvedRefs` is False.
    pub backend_client_certificate: Option<Result<Arc<CertifiedKey>, Verdict>>,
}

/// Who declares a listener: the namespace its `allowedRoutes: Same` and certificateRefs are
/// relative to, and the kind a ReferenceGrant must name.
#[derive(Debug, Clone, Copy)]
pub(super) struct Owner<'a> {
    pub kind: &'static str,
    pub namespace: &'a str,
    /// `None` for the Gateway itself; else the index in `GatewayState::listener_sets`.
    pub listener_set: Option<usize>,
}

pub(super) struct ListenerState<'a> {
    pub spec: &'a GatewayListeners,
    pub owner: Owner<'a>,
    pub protocol: Option<BindProtocol>,
    pub port: Option<u16>,
    pub hostname: Option<Hostname>,
    /// HTTP (for `HTTP` and `HTTPS` listeners), or a `TLS` listener's mode.
    pub kind: ListenerKind,
    /// The route kinds the listener accepts (its `supportedKinds`).
    route_kinds: Vec<RouteKind>,
    supported_kinds: Vec<GatewayStatusListenersSupportedKinds>,
    pub(super) accepted: Verdict,
    resolved: Verdict,
    pub conflicted: Option<Verdict>,
    pub tls: Option<Arc<CertifiedKey>>,
    /// HTTPS only: the client-certificate validation `spec.tls.frontend` gives its port.
    pub client_validation: Option<Arc<ClientValidation>>,
    pub attached_routes: i32,
    /// Entries attached by routes, with the hostname they were attached under.
    pub entries: Vec<(Option<Hostname>, Rank, RouteEntry)>,
    /// `TLS` listeners: TLSRoutes attached, with the hostname they were attached under and the
    /// route's age (creation time, namespace, name), which decides hostname conflicts.
    pub tls_entries: Vec<(Option<Hostname>, RouteAge, TlsRouteEntry)>,
}

/// Oldest first: creation time (none sorts last), then namespace, then name.
pub(super) type RouteAge = (Option<Timestamp>, String, String);

impl<'a> GatewayState<'a> {
    pub(super) fn new(gw: &'a Gateway, class_ok: bool, index: &Index<'_>) -> Self {
        let namespace = namespace_of(&gw.metadata);
        let rejection = if !class_ok {
            Some(Verdict::no(
                reasons::INVALID,
                format!(
                    "GatewayClass {} is not accepted",
                    gw.spec.gateway_class_name
                ),
            ))
        } else {
            infrastructure_parameters(gw, index)
        };
        let owner = Owner {
            kind: "Gateway",
            namespace,
            listener_set: None,
        };
        let mut listeners: Vec<ListenerState<'a>> = gw
            .spec
            .listeners
            .iter()
            .map(|l| ListenerState::new(l, owner, index))
            .collect();
        for l in &mut listeners {
            l.frontend_validation(gw, namespace, index);
        }
        mark_conflicts(&mut listeners);
        let backend_client_certificate = gw
            .spec
            .tls
            .as_ref()
            .and_then(|t| t.backend.as_ref())
            .and_then(|b| b.client_certificate_ref.as_ref())
            .map(|r| {
                let r = super::tls::SecretRef {
                    group: r.group.as_deref(),
                    kind: r.kind.as_deref(),
                    name: &r.name,
                    namespace: r.namespace.as_deref(),
                };
                super::tls::secret_ref("Gateway", namespace, &r, index).map_err(|e| {
                    let reason = match e.reason() {
                        reasons::REF_NOT_PERMITTED => reasons::REF_NOT_PERMITTED,
                        _ => reasons::INVALID_CLIENT_CERTIFICATE_REF,
                    };
                    Verdict::no(reason, format!("tls.backend.clientCertificateRef: {e}"))
                })
            });
        GatewayState {
            backend_client_certificate,
            gw,
            namespace,
            name: gw.metadata.name.as_deref().unwrap_or(""),
            generation: gw.metadata.generation,
            rejection,
            addresses: Vec::new(),
            unprogrammable: None,
            listeners,
            listener_sets: Vec::new(),
        }
    }

    /// The Gateway's own listeners, without those of ListenerSets.
    pub(super) fn own_listeners(&self) -> impl Iterator<Item = &ListenerState<'a>> {
        self.listeners
            .iter()
            .filter(|l| l.owner.listener_set.is_none())
    }

    /// Oldest first, then by namespace/name.
    pub(super) fn order_key(&self) -> (Option<Timestamp>, &str, &str) {
        let created = self.gw.meta().creation_timestamp.as_ref().map(|t| t.0);
        (created, self.namespace, self.name)
    }

    pub(super) fn status_key(&self) -> StatusKey {
        StatusKey::gateway(self.namespace, self.name)
    }

    pub(super) fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub(super) fn accepted(&self) -> Verdict {
        if let Some(r) = &self.rejection {
            return r.clone();
        }
        let valid = self.own_listeners().filter(|l| l.accepted.ok).count();
        listeners_verdict(valid, self.own_listeners().count())
    }

    pub(super) fn is_programmed(&self) -> bool {
        self.programmed().ok
    }

    fn programmed(&self) -> Verdict {
        let accepted = self.accepted();
        if !accepted.ok {
            return Verdict::no(reasons::INVALID, "the Gateway is not accepted");
        }
        if let Some(p) = &self.unprogrammable {
            return p.clone();
        }
        Verdict::yes(reasons::PROGRAMMED)
    }

    pub(super) fn status(&self, now: Timestamp) -> GatewayStatus {
        let generation = self.generation;
        let programmed = self.is_programmed();
        let listeners = self
            .own_listeners()
            .map(|l| l.status(programmed, generation, now))
            .collect();
        let attached_sets = (0..self.listener_sets.len())
            .filter(|set| super::listener_set::accepted(self, *set).ok)
            .count();
        GatewayStatus {
            addresses: (!self.addresses.is_empty()).then(|| {
                self.addresses
                    .iter()
                    .map(|a| GatewayStatusAddresses {
                        r#type: Some("IPAddress".into()),
                        value: a.to_string(),
                    })
                    .collect()
            }),
            // Only a Gateway that admits ListenerSets reports how many it has.
            attached_listener_sets: self
                .gw
                .spec
                .allowed_listeners
                .is_some()
                .then(|| i32::try_from(attached_sets).unwrap_or(i32::MAX)),
            conditions: Some({
                let mut c = vec![
                    cond(types::ACCEPTED, &self.accepted(), generation, now),
                    cond(types::PROGRAMMED, &self.programmed(), generation, now),
                ];
                if let Some(client) = &self.backend_client_certificate {
                    let resolved = match client {
                        Ok(_) => Verdict::yes(reasons::RESOLVED_REFS),
                        Err(v) => v.clone(),
                    };
                    c.push(cond(types::RESOLVED_REFS, &resolved, generation, now));
                }
                let insecure = super::frontend_tls::insecure_fallbacks(self.gw);
                if !insecure.is_empty() {
                    let ports: Vec<String> = insecure
                        .iter()
                        .map(|p| p.map_or("default".to_string(), |p| format!("port {p}")))
                        .collect();
                    let verdict = Verdict {
                        ok: true,
                        reason: reasons::CONFIGURATION_CHANGED,
                        message: format!(
                            "client certificates are validated with AllowInsecureFallback ({}): \
                             clients without a valid certificate are admitted",
                            ports.join(", ")
                        ),
                    };
                    c.push(cond(
                        types::INSECURE_FRONTEND_VALIDATION_MODE,
                        &verdict,
                        generation,
                        now,
                    ));
                }
                c
            }),
            listeners: Some(listeners),
        }
    }
}

/// `infrastructure.parametersRef`: a ConfigMap of the Gateway's namespace with data-plane
/// parameter keys (docs/kubernetes.md); anything else rejects the Gateway. What the keys do
/// together with the class's is the provisioner's to check.
fn infrastructure_parameters(gw: &Gateway, index: &Index<'_>) -> Option<Verdict> {
    let invalid = |e: &dyn std::error::Error| {
        Verdict::no(
            reasons::INVALID_PARAMETERS,
            format!("infrastructure.parametersRef: {}", crate::error_chain(e)),
        )
    };
    let cm = match gateway_params::config_map(gw, &index.resources.config_maps) {
        Ok(cm) => cm?,
        Err(e) => return Some(invalid(&e)),
    };
    DataPlaneParams::default()
        .with_keys_of(cm)
        .err()
        .map(|e| invalid(&e))
}

// === impl ListenerState ===

impl<'a> ListenerState<'a> {
    pub(super) fn new(spec: &'a GatewayListeners, owner: Owner<'a>, index: &Index<'_>) -> Self {
        // `TLS` listeners share the TLS socket of `HTTPS` ones: the SNI selects the listener.
        let (protocol, kind) = match spec.protocol.as_str() {
            "HTTP" => (Some(BindProtocol::Http), ListenerKind::Http),
            "HTTPS" => (Some(BindProtocol::Https), ListenerKind::Http),
            "TLS" => match spec.tls.as_ref().and_then(|t| t.mode.as_ref()) {
                Some(TlsMode::Passthrough) => {
                    (Some(BindProtocol::Https), ListenerKind::TlsPassthrough)
                }
                // The CRD's default mode.
                Some(TlsMode::Terminate) | None => {
                    (Some(BindProtocol::Https), ListenerKind::TlsTerminate)
                }
            },
            _ => (None, ListenerKind::Http),
        };
        let offered: &[RouteKind] = match kind {
            ListenerKind::Http => &[RouteKind::Http, RouteKind::Grpc],
            ListenerKind::TlsPassthrough | ListenerKind::TlsTerminate => &[RouteKind::Tls],
        };
        let port = u16::try_from(spec.port).ok().filter(|p| *p != 0);
        let hostname = spec
            .hostname
            .as_deref()
            .map(|h| super::hostname::parse(h, true));
        let mut accepted = Verdict::yes(reasons::ACCEPTED);
        if protocol.is_none() {
            accepted = Verdict::no(
                reasons::UNSUPPORTED_PROTOCOL,
                format!(
                    "protocol {} is not supported; use HTTP, HTTPS or TLS",
                    spec.protocol
                ),
            );
        } else if port.is_none() {
            accepted = Verdict::no(
                reasons::PORT_UNAVAILABLE,
                format!("port {} is not valid", spec.port),
            );
        } else if let Some(None) = hostname {
            accepted = Verdict::no(
                reasons::UNSUPPORTED_VALUE,
                "hostname is not a valid hostname",
            );
        }

        let mut resolved = Verdict::yes(reasons::RESOLVED_REFS);
        let mut route_kinds: Vec<RouteKind> = Vec::new();
        let requested = spec
            .allowed_routes
            .as_ref()
            .and_then(|a| a.kinds.as_deref())
            .unwrap_or(&[]);
        if protocol.is_some() {
            if requested.is_empty() {
                route_kinds.extend(offered);
            }
            for k in requested {
                let group = k.group.as_deref().unwrap_or(GATEWAY_GROUP);
                let known = offered
                    .iter()
                    .find(|o| group == GATEWAY_GROUP && o.as_str() == k.kind);
                if let Some(known) = known {
                    if !route_kinds.contains(known) {
                        route_kinds.push(*known);
                    }
                } else if resolved.ok {
                    resolved = Verdict::no(
                        reasons::INVALID_ROUTE_KINDS,
                        format!("route kind {group}/{} is not supported", k.kind),
                    );
                }
            }
        }

        let mut tls = None;
        if protocol == Some(BindProtocol::Https) && kind != ListenerKind::TlsPassthrough {
            match super::tls::resolve(owner.kind, owner.namespace, spec, index) {
                Ok(key) => tls = Some(key),
                Err(e) if resolved.ok => resolved = Verdict::no(e.reason(), e.to_string()),
                Err(_) => {}
            }
        }

        ListenerState {
            spec,
            owner,
            protocol,
            port,
            hostname: hostname.flatten(),
            kind,
            supported_kinds: route_kinds.iter().map(|k| supported_kind(*k)).collect(),
            route_kinds,
            accepted,
            resolved,
            conflicted: None,
            tls,
            client_validation: None,
            attached_routes: 0,
            entries: Vec::new(),
            tls_entries: Vec::new(),
        }
    }

    /// Routes of `kind` may attach (they are among its `supportedKinds`).
    pub(super) fn allows_kind(&self, kind: RouteKind) -> bool {
        self.route_kinds.contains(&kind)
    }

    /// The Gateway's `spec.tls.frontend` validation for this HTTPS or TLS-Terminate listener's
    /// port; a reference that does not resolve makes the listener unready, so no client gets in
    /// unchecked.
    fn frontend_validation(&mut self, gw: &Gateway, gateway_namespace: &str, index: &Index<'_>) {
        let (Some(BindProtocol::Https), Some(port)) = (self.protocol, self.port) else {
            return;
        };
        // A passthrough listener never sees the handshake it would check.
        if self.kind == ListenerKind::TlsPassthrough {
            return;
        }
        match super::frontend_tls::resolve(gw, gateway_namespace, port, index) {
            Ok(validation) => self.client_validation = validation,
            Err(e) => {
                if self.resolved.ok {
                    self.resolved = e.resolved;
                }
                if let Some(accepted) = e.accepted.filter(|_| self.accepted.ok) {
                    self.accepted = accepted;
                }
            }
        }
    }

    /// Accepted, resolved and unconflicted: traffic may be served.
    pub(super) fn is_ready(&self) -> bool {
        self.accepted.ok && self.resolved.ok && self.conflicted.is_none()
    }

    pub(super) fn name(&self) -> &str {
        &self.spec.name
    }

    /// `allowedRoutes.namespaces` (default `Same`: the namespace of the Gateway or ListenerSet
    /// declaring the listener) admits routes from `route_namespace`.
    pub(super) fn allows_namespace(&self, route_namespace: &str, index: &Index<'_>) -> bool {
        let namespaces = self
            .spec
            .allowed_routes
            .as_ref()
            .and_then(|a| a.namespaces.as_ref());
        let from = namespaces
            .and_then(|n| n.from.as_ref())
            .unwrap_or(&From::Same);
        match from {
            From::All => true,
            From::Same => self.owner.namespace == route_namespace,
            From::Selector => match namespaces.and_then(|n| n.selector.as_ref()) {
                Some(selector) => {
                    selector_matches(selector, &index.namespace_labels(route_namespace))
                }
                None => false,
            },
        }
    }

    pub(super) fn status(
        &self,
        gateway_programmed: bool,
        generation: Option<i64>,
        now: Timestamp,
    ) -> GatewayStatusListeners {
        let conflicted = match &self.conflicted {
            Some(v) => Verdict {
                ok: true,
                reason: v.reason,
                message: v.message.clone(),
            },
            None => Verdict {
                ok: false,
                reason: reasons::NO_CONFLICTS,
                message: String::new(),
            },
        };
        let programmed = match &self.conflicted {
            _ if gateway_programmed && self.is_ready() => Verdict::yes(reasons::PROGRAMMED),
            // A ListenerSet's listener that lost to one of higher precedence says why.
            Some(c) if self.owner.listener_set.is_some() => {
                Verdict::no(c.reason, c.message.clone())
            }
            _ => Verdict::no(
                reasons::INVALID,
                "the listener is not ready to serve traffic",
            ),
        };
        GatewayStatusListeners {
            attached_routes: self.attached_routes,
            conditions: vec![
                cond(types::ACCEPTED, &self.accepted, generation, now),
                cond(types::CONFLICTED, &conflicted, generation, now),
                cond(types::PROGRAMMED, &programmed, generation, now),
                cond(types::RESOLVED_REFS, &self.resolved, generation, now),
            ],
            name: self.spec.name.clone(),
            supported_kinds: Some(self.supported_kinds.clone()),
        }
    }
}

/// `Accepted` of a Gateway or ListenerSet with `valid` of its `total` listeners valid: True while
/// one is, with reason `ListenersNotValid` unless all are.
pub(super) fn listeners_verdict(valid: usize, total: usize) -> Verdict {
    if valid == 0 {
        Verdict::no(reasons::LISTENERS_NOT_VALID, "no listener is valid")
    } else if valid < total {
        Verdict {
            ok: true,
            reason: reasons::LISTENERS_NOT_VALID,
            message: "some listeners are not valid".into(),
        }
    } else {
        Verdict::yes(reasons::ACCEPTED)
    }
}

fn supported_kind(kind: RouteKind) -> GatewayStatusListenersSupportedKinds {
    GatewayStatusListenersSupportedKinds {
        group: Some(GATEWAY_GROUP.into()),
        kind: kind.as_str().into(),
    }
}

/// Listeners of one Gateway on the same port must agree on the protocol and differ in hostname.
fn mark_conflicts(listeners: &mut [ListenerState<'_>]) {
    let n = listeners.len();
    for i in 0..n {
        for j in 0..n {
            if i == j {
                continue;
            }
            let (a, b) = (&listeners[i], &listeners[j]);
            if !a.accepted.ok || !b.accepted.ok || a.port != b.port {
                continue;
            }
            let verdict = if a.protocol != b.protocol {
                Some(Verdict::no(
                    reasons::PROTOCOL_CONFLICT,
                    format!(
                        "listener {} uses the same port with another protocol",
                        b.spec.name
                    ),
                ))
            } else if a.hostname == b.hostname {
                Some(Verdict::no(
                    reasons::HOSTNAME_CONFLICT,
                    format!("listener {} uses the same port and hostname", b.spec.name),
                ))
            } else {
                None
            };
            if let Some(v) = verdict {
                if listeners[i].conflicted.is_none() {
                    listeners[i].conflicted = Some(v);
                }
            }
        }
    }
}

/// Label selector semantics (matchLabels AND matchExpressions).
pub(super) fn selector_matches(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or(&[]);
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_api::apis::experimental::gateways::GatewayListenersAllowedRoutesNamespacesSelectorMatchExpressions as Expr;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_uses_match_labels_and_expressions() {
        let s = Selector {
            match_labels: Some(labels(&[("team", "a")])),
            match_expressions: Some(vec![Expr {
                key: "env".into(),
                operator: "In".into(),
                values: Some(vec!["prod".into(), "stage".into()]),
            }]),
        };
        assert!(selector_matches(
            &s,
            &labels(&[("team", "a"), ("env", "prod")])
        ));
        assert!(!selector_matches(
            &s,
            &labels(&[("team", "a"), ("env", "dev")])
        ));
        assert!(!selector_matches(&s, &labels(&[("env", "prod")])));
    }

    #[test]
    fn unknown_selector_operator_matches_nothing() {
        let s = Selector {
            match_labels: None,
            match_expressions: Some(vec![Expr {
                key: "env".into(),
                operator: "Sometimes".into(),
                values: None,
            }]),
        };
        assert!(!selector_matches(&s, &labels(&[("env", "prod")])));
    }
}
