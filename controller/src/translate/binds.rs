//! Ready listeners -> one `Bind` per (address, port), each with its sorted route table.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::gateway::{GatewayState, RouteAge};
use super::hostname::specificity;
use super::verdict::Verdict;
use crate::precedence::Rank;
use crate::snapshot::{
    Bind, BindProtocol, Hostname, Listener, RouteEntry, RouteGroup, RouteTable, TlsRouteEntry,
    TlsRouteTable,
};
use crate::status::conditions::reasons;

struct PendingBind {
    protocol: BindProtocol,
    listeners: Vec<Listener>,
}

/// Gateways come oldest first, so when two Gateways share a socket and disagree (protocol, or the
/// same hostname twice) the older one keeps it and the newer listener is marked Conflicted.
pub(super) fn assemble(gateways: &mut [GatewayState<'_>]) -> Vec<Bind> {
    let mut binds: BTreeMap<SocketAddr, PendingBind> = BTreeMap::new();
    for gw in gateways.iter_mut() {
        if !gw.is_programmed() {
            continue;
        }
        let label = gw.label();
        let addresses = gw.addresses.clone();
        let set_labels: Vec<String> = gw.listener_sets.iter().map(|s| s.label()).collect();
        for l in gw.listeners.iter_mut() {
            let (Some(protocol), Some(port), true) = (l.protocol, l.port, l.is_ready()) else {
                continue;
            };
            let sockets: Vec<SocketAddr> = addresses
                .iter()
                .map(|a| SocketAddr::new(*a, port))
                .collect();
            let conflict = sockets.iter().find_map(|s| {
                let b = binds.get(s)?;
                if b.protocol != protocol {
                    Some(Verdict::no(
                        reasons::PROTOCOL_CONFLICT,
                        format!("{s} is already served with another protocol by an older Gateway"),
                    ))
                } else if b.listeners.iter().any(|o| o.hostname == l.hostname) {
                    Some(Verdict::no(
                        reasons::HOSTNAME_CONFLICT,
                        format!("{s} already serves this hostname for an older Gateway"),
                    ))
                } else {
                    None
                }
            });
            if let Some(v) = conflict {
                l.conflicted = Some(v);
                continue;
            }
            let entries = std::mem::take(&mut l.entries);
            let tls_entries = std::mem::take(&mut l.tls_entries);
            for socket in sockets {
                let listener = Listener {
                    gateway: label.clone(),
                    name: l.name().to_string(),
                    listener_set: l
                        .owner
                        .listener_set
                        .and_then(|i| set_labels.get(i).cloned()),
                    hostname: l.hostname.clone(),
                    tls: l.tls.clone(),
                    client_validation: l.client_validation.clone(),
                    kind: l.kind,
                    routes: route_table(entries.clone()),
                    tls_routes: tls_route_table(tls_entries.clone()),
                };
                binds
                    .entry(socket)
                    .or_insert_with(|| PendingBind {
                        protocol,
                        listeners: Vec::new(),
                    })
                    .listeners
                    .push(listener);
            }
        }
    }
    binds
        .into_iter()
        .map(|(address, mut b)| {
            b.listeners.sort_by(|x, y| {
                (specificity(x.hostname.as_ref()), &x.gateway, &x.name).cmp(&(
                    specificity(y.hostname.as_ref()),
                    &y.gateway,
                    &y.name,
                ))
            });
            Bind {
                address,
                protocol: b.protocol,
                listeners: b.listeners,
            }
        })
        .collect()
}

/// Groups entries by the hostname they were attached under, each group in precedence order.
fn route_table(entries: Vec<(Option<Hostname>, Rank, RouteEntry)>) -> RouteTable {
    let mut exact: BTreeMap<String, Vec<(Rank, RouteEntry)>> = BTreeMap::new();
    let mut wildcard: Vec<(Hostname, Vec<(Rank, RouteEntry)>)> = Vec::new();
    let mut any: Vec<(Rank, RouteEntry)> = Vec::new();
    for (host, rank, entry) in entries {
        match host {
            Some(Hostname::Exact(h)) => exact.entry(h).or_default().push((rank, entry)),
            Some(w @ Hostname::Wildcard(_)) => match wildcard.iter_mut().find(|(h, _)| *h == w) {
                Some((_, group)) => group.push((rank, entry)),
                None => wildcard.push((w, vec![(rank, entry)])),
            },
            None => any.push((rank, entry)),
        }
    }
    wildcard.sort_by(|(a, _), (b, _)| {
        let (a, b) = (a.to_string(), b.to_string());
        b.len().cmp(&a.len()).then(a.cmp(&b))
    });
    RouteTable {
        exact: exact.into_iter().map(|(h, g)| (h, sorted(g))).collect(),
        wildcard: wildcard.into_iter().map(|(h, g)| (h, sorted(g))).collect(),
        any: sorted(any),
    }
}

/// TLSRoutes by the hostname they were attached under; of two under the same hostname, the
/// older route keeps it (creation time, then namespace/name), as for HTTPRoute precedence.
fn tls_route_table(mut entries: Vec<(Option<Hostname>, RouteAge, TlsRouteEntry)>) -> TlsRouteTable {
    entries.sort_by(|a, b| age_order(&a.1, &b.1));
    let mut table = TlsRouteTable::default();
    for (host, _, entry) in entries {
        match host {
            Some(Hostname::Exact(h)) => {
                table.exact.entry(h).or_insert(entry);
            }
            Some(w @ Hostname::Wildcard(_)) => {
                if !table.wildcard.iter().any(|(h, _)| *h == w) {
                    table.wildcard.push((w, entry));
                }
            }
            None => {
                table.any.get_or_insert(entry);
            }
        }
    }
    table.wildcard.sort_by(|(a, _), (b, _)| {
        let (a, b) = (a.to_string(), b.to_string());
        b.len().cmp(&a.len()).then(a.cmp(&b))
    });
    table
}

/// A route without a creation time counts as the newest.
fn age_order(a: &RouteAge, b: &RouteAge) -> std::cmp::Ordering {
    let created = match (&a.0, &b.0) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    };
    created.then_with(|| (&a.1, &a.2).cmp(&(&b.1, &b.2)))
}

fn sorted(mut group: Vec<(Rank, RouteEntry)>) -> RouteGroup {
    group.sort_by(|a, b| a.0.cmp(&b.0));
    RouteGroup::new(group.into_iter().map(|(_, e)| e).collect())
}
