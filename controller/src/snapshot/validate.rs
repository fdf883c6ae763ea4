//! The invariants of a [`Snapshot`] that the data plane relies on without checking again.
//!
//! `translate` builds snapshots that hold them; [`Snapshot::validate`] says so independently, so
//! a translation bug surfaces as a named broken invariant (the golden tests call it on every
//! case) rather than as a request served wrongly. One pass over the snapshot, no allocation
//! unless something is wrong, no Pingora.

use std::net::SocketAddr;

use super::{
    BackendTarget, Bind, BindProtocol, Filter, Hostname, Listener, ListenerKind, PathModifier,
    RouteEntry, Snapshot,
};
use crate::status::{ObjectStatus, StatusKey};

/// A broken invariant, naming where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Binds out of address order, or two binds on one address.
    #[error("binds are not sorted by address, or list {0} twice")]
    BindOrder(SocketAddr),
    /// A bind with no listener.
    #[error("bind {0} has no listener")]
    EmptyBind(SocketAddr),
    /// A listener breaks an invariant (its hostname, certificate, Gateway or status).
    #[error("bind {bind}: listener {listener} {problem}")]
    Listener {
        /// The listener's bind.
        bind: SocketAddr,
        /// `gateway-namespace/gateway-name/listener-name`.
        listener: String,
        /// Which invariant is broken.
        problem: &'static str,
    },
    /// A route entry breaks an invariant (a header value, a filter, a backend).
    #[error("bind {bind}: route {route}: {problem}")]
    Route {
        /// The bind the entry is under.
        bind: SocketAddr,
        /// `namespace/name rule N` of the HTTPRoute rule.
        route: String,
        /// Which invariant is broken, with the offending value.
        problem: String,
    },
}

/// CR, LF and NUL end or split a header line: none may reach one from configuration.
fn has_line_break_or_nul(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))
}

fn hostname_ok(h: &Hostname) -> bool {
    let (Hostname::Exact(s) | Hostname::Wildcard(s)) = h;
    !s.is_empty() && !has_line_break_or_nul(s) && !s.bytes().any(|b| b.is_ascii_uppercase())
}

// === impl Snapshot ===

impl Snapshot {
    /// `Ok` when every invariant the data plane relies on holds; otherwise the first broken one.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        for pair in self.binds.windows(2) {
            if let [a, b] = pair {
                if a.address >= b.address {
                    return Err(SnapshotError::BindOrder(b.address));
                }
            }
        }
        for bind in &self.binds {
            if bind.listeners.is_empty() {
                return Err(SnapshotError::EmptyBind(bind.address));
            }
            for listener in &bind.listeners {
                self.validate_listener(bind, listener)?;
            }
        }
        Ok(())
    }

    fn validate_listener(&self, bind: &Bind, listener: &Listener) -> Result<(), SnapshotError> {
        let broken = |problem| SnapshotError::Listener {
            bind: bind.address,
            listener: format!("{}/{}", listener.gateway, listener.name),
            problem,
        };
        if listener.hostname.as_ref().is_some_and(|h| !hostname_ok(h)) {
            return Err(broken("has an empty, upper-case or CR/LF/NUL hostname"));
        }
        // A TLS-Passthrough listener never completes a handshake, so it has no certificate.
        let passthrough = listener.kind == ListenerKind::TlsPassthrough;
        match (bind.protocol, listener.tls.is_some(), passthrough) {
            (BindProtocol::Https, false, false) => {
                return Err(broken("is HTTPS without a certificate"))
            }
            (BindProtocol::Https, true, true) => {
                return Err(broken("is TLS Passthrough with a certificate"))
            }
            (BindProtocol::Http, true, _) => {
                return Err(broken("is plain HTTP with a certificate"))
            }
            (BindProtocol::Http, _, _) if listener.kind != ListenerKind::Http => {
                return Err(broken("is a TLS listener on a plain HTTP socket"))
            }
            _ => {}
        }
        // The unbound-port correction finds the listener's Gateway status by this label.
        let Some((namespace, name)) = listener.gateway.split_once('/') else {
            return Err(broken("does not name its Gateway as namespace/name"));
        };
        let status = self.statuses.get(&StatusKey::gateway(namespace, name));
        let Some(ObjectStatus::Gateway(status)) = status else {
            return Err(broken("names a Gateway without a status"));
        };
        // A ListenerSet's listener is listed in the ListenerSet's status, the Gateway's own in
        // the Gateway's.
        let listeners = match &listener.listener_set {
            None => status.listeners.as_deref(),
            Some(set) => {
                let Some((namespace, name)) = set.split_once('/') else {
                    return Err(broken("does not name its ListenerSet as namespace/name"));
                };
                match self.statuses.get(&StatusKey::listener_set(namespace, name)) {
                    Some(ObjectStatus::ListenerSet(status)) => status.listeners.as_deref(),
                    _ => return Err(broken("names a ListenerSet without a status")),
                }
            }
        };
        let listed = listeners
            .into_iter()
            .flatten()
            .any(|l| l.name == listener.name);
        if !listed {
            return Err(broken(
                "is not among its Gateway's or ListenerSet's status listeners",
            ));
        }
        let table = &listener.routes;
        for (host, entries) in &table.exact {
            if host.is_empty() || has_line_break_or_nul(host) {
                return Err(broken("has a route table keyed by an invalid hostname"));
            }
            validate_entries(bind, entries.entries())?;
        }
        for pair in table.wildcard.windows(2) {
            if let [(Hostname::Wildcard(a), _), (Hostname::Wildcard(b), _)] = pair {
                if a.len() < b.len() {
                    return Err(broken("has wildcard groups not sorted longest first"));
                }
            }
        }
        for (host, entries) in &table.wildcard {
            if !matches!(host, Hostname::Wildcard(_)) || !hostname_ok(host) {
                return Err(broken("has a wildcard group under an invalid hostname"));
            }
            validate_entries(bind, entries.entries())?;
        }
        validate_entries(bind, table.any.entries())
    }
}

fn validate_entries(bind: &Bind, entries: &[RouteEntry]) -> Result<(), SnapshotError> {
    for entry in entries {
        if let Err(problem) = validate_entry(entry) {
            return Err(SnapshotError::Route {
                bind: bind.address,
                route: format!("{} rule {}", entry.route.label, entry.route.rule_index),
                problem,
            });
        }
    }
    Ok(())
}

fn validate_entry(entry: &RouteEntry) -> Result<(), String> {
    let action = &entry.action;
    let sum = action
        .backends
        .iter()
        .fold(0u32, |sum, b| sum.saturating_add(b.weight));
    if sum != action.total_weight {
        return Err(format!(
            "total weight {} is not the sum of its backends' weights, {sum}",
            action.total_weight
        ));
    }
    let filters = action
        .filters
        .iter()
        .chain(action.backends.iter().flat_map(|b| &b.filters));
    for filter in filters {
        validate_filter(filter)?;
    }
    for weighted in &action.backends {
        if let BackendTarget::Service(backend) = &weighted.target {
            if backend.endpoints.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!(
                    "backend {} has endpoints not sorted or repeated",
                    backend.name
                ));
            }
        }
    }
    Ok(())
}

fn validate_filter(filter: &Filter) -> Result<(), String> {
    let path_ok = |p: Option<&PathModifier>| match p {
        Some(PathModifier::ReplaceFullPath(s) | PathModifier::ReplacePrefixMatch(s)) => {
            !has_line_break_or_nul(s)
        }
        None => true,
    };
    let host_ok = |h: Option<&String>| h.is_none_or(|h| !h.is_empty() && !has_line_break_or_nul(h));
    match filter {
        Filter::RequestHeaders(m) | Filter::ResponseHeaders(m) => {
            let values = m.set.iter().chain(&m.add).map(|(_, v)| v.as_bytes());
            for value in values {
                if value.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    return Err("a header value holds CR, LF or NUL".into());
                }
            }
        }
        Filter::Redirect(r) => {
            if !matches!(r.status_code, 301 | 302 | 303 | 307 | 308) {
                return Err(format!(
                    "redirect status {} is not a redirect",
                    r.status_code
                ));
            }
            if !host_ok(r.hostname.as_ref()) || !path_ok(r.path.as_ref()) {
                return Err("a redirect hostname or path holds CR, LF or NUL".into());
            }
        }
        Filter::UrlRewrite(r) => {
            if !host_ok(r.hostname.as_ref()) || !path_ok(r.path.as_ref()) {
                return Err("a rewrite hostname or path holds CR, LF or NUL".into());
            }
        }
        Filter::Mirror(m) => {
            let f = m.fraction;
            if f.denominator == 0 || f.numerator > f.denominator {
                return Err(format!(
                    "mirror fraction {}/{} is not a share",
                    f.numerator, f.denominator
                ));
            }
        }
        // Parsed into methods, header names and origin patterns: nothing left to check.
        Filter::Cors(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gateway_api::apis::experimental::gateways::{GatewayStatus, GatewayStatusListeners};

    use super::*;
    use crate::snapshot::{RouteGroup, RouteTable, RuleAction, Timeouts, WeightedBackend};
    use crate::status::StatusReport;

    /// One HTTP bind with `listener`, which belongs to Gateway `default/gw`'s listener `http`.
    fn bind_with(listener: Listener) -> Snapshot {
        let gateway = GatewayStatus {
            listeners: Some(vec![GatewayStatusListeners {
                name: "http".into(),
                ..GatewayStatusListeners::default()
            }]),
            ..GatewayStatus::default()
        };
        let mut statuses = StatusReport::default();
        statuses.objects.insert(
            StatusKey::gateway("default", "gw"),
            ObjectStatus::Gateway(gateway),
        );
        Snapshot {
            binds: vec![Bind {
                address: "127.0.0.1:80".parse().expect("address"),
                protocol: BindProtocol::Http,
                listeners: vec![listener],
            }],
            statuses: Arc::new(statuses),
            ..Snapshot::default()
        }
    }

    fn listener(routes: RouteTable) -> Listener {
        Listener::http("default/gw", "http", routes)
    }

    #[test]
    fn an_empty_snapshot_is_valid() {
        assert_eq!(Snapshot::default().validate(), Ok(()));
    }

    #[test]
    fn a_listener_of_a_gateway_without_a_status_is_named() {
        let mut l = listener(RouteTable::default());
        l.gateway = "default/other".into();
        let err = bind_with(l).validate().expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "bind 127.0.0.1:80: listener default/other/http names a Gateway without a status"
        );
    }

    #[test]
    fn a_hostname_with_a_line_break_is_named() {
        let mut l = listener(RouteTable::default());
        l.hostname = Some(Hostname::Exact("a.example\r\nx: y".into()));
        let err = bind_with(l).validate().expect_err("invalid");
        assert!(matches!(err, SnapshotError::Listener { .. }), "{err}");
    }

    #[test]
    fn a_total_weight_other_than_the_sum_is_named() {
        let action = Arc::new(RuleAction {
            filters: Vec::new(),
            backends: vec![WeightedBackend {
                weight: 2,
                target: BackendTarget::Invalid {
                    reason: "none".into(),
                },
                filters: Vec::new(),
            }],
            total_weight: 3,
            retry: None,
            timeouts: Timeouts::default(),
        });
        let prefix = crate::snapshot::PathMatch::Prefix("/".into());
        let entry = crate::snapshot::test_entries::entry("r", prefix, action);
        let routes = RouteTable {
            any: RouteGroup::new(vec![entry]),
            ..RouteTable::default()
        };
        let err = bind_with(listener(routes)).validate().expect_err("invalid");
        assert_eq!(
            err.to_string(),
            "bind 127.0.0.1:80: route default/r rule 0: total weight 3 is not the sum of its \
             backends' weights, 2"
        );
    }
}
