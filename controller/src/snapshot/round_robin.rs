//! Round-robin positions carried from one snapshot to the next.
//!
//! Every publish builds new `Backend`s, and a new backend would start its rotation at the first
//! endpoint again: with frequent unrelated publishes (an EndpointSlice elsewhere, a status-only
//! change) the first endpoint of every Service would take more than its share. Carrying each
//! Service port's position across keeps the rotation going.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Backend, BackendTarget, Filter, RouteEntry, Snapshot};

impl Snapshot {
    /// Every Service backend this snapshot routes or mirrors to, once per place it is used.
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.route_entries().flat_map(entry_backends)
    }

    /// Continues each backend's rotation where the backend of the same name in `previous` left
    /// it.
    pub fn resume_round_robin_from(&self, previous: &Snapshot) {
        let positions: HashMap<&str, usize> = previous
            .backends()
            .map(|b| (b.name.as_str(), b.position()))
            .collect();
        for backend in self.backends() {
            if let Some(&at) = positions.get(backend.name.as_str()) {
                backend.resume_at(at);
            }
        }
    }
}

fn entry_backends(entry: &RouteEntry) -> impl Iterator<Item = &Arc<Backend>> {
    let action = &*entry.action;
    let routed = action.backends.iter().filter_map(|w| match &w.target {
        BackendTarget::Service(b) => Some(b),
        BackendTarget::Invalid { .. } => None,
    });
    let filters = action
        .filters
        .iter()
        .chain(action.backends.iter().flat_map(|w| &w.filters));
    let mirrored = filters.filter_map(|f| match f {
        Filter::Mirror(m) => Some(&m.backend),
        _ => None,
    });
    routed.chain(mirrored)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::snapshot::{
        test_entries, BackendProtocol, Bind, BindProtocol, Listener, PathMatch, RouteGroup,
        RouteTable, RuleAction, Timeouts, WeightedBackend,
    };

    fn endpoints() -> Vec<SocketAddr> {
        (1..=3)
            .map(|p| SocketAddr::from(([10, 0, 0, 1], p)))
            .collect()
    }

    fn snapshot_routing_to(names: &[&str]) -> Snapshot {
        let backends = names
            .iter()
            .map(|n| WeightedBackend {
                weight: 1,
                target: BackendTarget::Service(Arc::new(Backend::new(
                    (*n).into(),
                    endpoints(),
                    BackendProtocol::Http1,
                ))),
                filters: Vec::new(),
            })
            .collect();
        let action = RuleAction::new(Vec::new(), backends, Timeouts::default());
        let entry = test_entries::entry("r", PathMatch::Prefix("/".into()), Arc::new(action));
        Snapshot {
            generation: 0,
            binds: vec![Bind {
                address: SocketAddr::from(([127, 0, 0, 1], 80)),
                protocol: BindProtocol::Http,
                listeners: vec![Listener::http(
                    "default/gw",
                    "http",
                    RouteTable {
                        any: RouteGroup::new(vec![entry]),
                        ..RouteTable::default()
                    },
                )],
            }],
            statuses: Default::default(),
            backend_client_certificates: Default::default(),
        }
    }

    fn backend<'s>(snapshot: &'s Snapshot, name: &str) -> &'s Arc<Backend> {
        snapshot
            .backends()
            .find(|b| b.name == name)
            .expect("backend in snapshot")
    }

    #[test]
    fn rotation_continues_across_a_publish_for_the_same_service_port() {
        let old = snapshot_routing_to(&["default/a:80", "default/b:80"]);
        let a = backend(&old, "default/a:80");
        assert_eq!(a.pick_endpoint(), Some(endpoints()[0]));
        assert_eq!(a.pick_endpoint(), Some(endpoints()[1]));

        let new = snapshot_routing_to(&["default/a:80", "default/c:80"]);
        new.resume_round_robin_from(&old);
        assert_eq!(
            backend(&new, "default/a:80").pick_endpoint(),
            Some(endpoints()[2])
        );
        // A Service port the old snapshot did not have starts at the beginning.
        assert_eq!(
            backend(&new, "default/c:80").pick_endpoint(),
            Some(endpoints()[0])
        );
    }

    #[test]
    fn a_publish_of_unrelated_changes_keeps_each_rotation_going() {
        let store = crate::publish::Store::new();
        store.publish(snapshot_routing_to(&["default/a:80"]));
        let first = store.load();
        assert_eq!(
            backend(&first, "default/a:80").pick_endpoint(),
            Some(endpoints()[0])
        );
        store.publish(snapshot_routing_to(&["default/a:80", "default/b:80"]));
        let second = store.load();
        assert_eq!(
            backend(&second, "default/a:80").pick_endpoint(),
            Some(endpoints()[1])
        );
    }
}
