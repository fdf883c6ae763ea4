//! Statuses while some listener addresses cannot be bound: what translation promised, corrected
//! by what the data plane could actually open. Standalone mode knows the addresses itself
//! ([`with_unbound`]); in cluster mode the controller learns the ports from the data-plane pods
//! ([`with_unbound_ports`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use gateway_api::apis::experimental::gateways::{GatewayStatus, GatewayStatusListeners};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::conditions::{reasons, types};
use super::{condition, ObjectStatus, StatusKey, StatusReport};
use crate::resources::ListenerSetStatus;
use crate::snapshot::{Listener, Snapshot};
use crate::translate::Timestamp;

/// `snapshot.statuses` with every listener bound to a `failed` address Accepted and Programmed
/// False (PortUnavailable) and its Gateway Programmed False; untouched when nothing failed.
pub fn with_unbound(
    snapshot: &Snapshot,
    failed: &BTreeMap<SocketAddr, String>,
    now: Timestamp,
) -> StatusReport {
    let mut report = (*snapshot.statuses).clone();
    for bind in snapshot
        .binds
        .iter()
        .filter(|b| failed.contains_key(&b.address))
    {
        let error = failed.get(&bind.address).map(String::as_str).unwrap_or("");
        let message = format!("cannot listen on {}: {error}; retrying", bind.address);
        for listener in &bind.listeners {
            // The snapshot names a listener's Gateway by its `namespace/name` label only.
            let Some((namespace, name)) = listener.gateway.split_once('/') else {
                continue;
            };
            // A ListenerSet's listener is marked in the ListenerSet's status, which is not
            // programmed then; the Gateway's own listeners still are.
            let set = listener
                .listener_set
                .as_deref()
                .and_then(|s| s.split_once('/'));
            let key = match set {
                Some((namespace, name)) => StatusKey::listener_set(namespace, name),
                None => StatusKey::gateway(namespace, name),
            };
            if let Some((conditions, listeners)) = report.objects.get_mut(&key).and_then(parts) {
                mark_unbound(conditions, listeners, &listener.name, &message, now);
            }
        }
    }
    report
}

/// `status` of the Gateway `namespace/name` with every listener on a port of `unbound` (listener
/// port -> bind error, as a data-plane pod reported it) Accepted and Programmed False
/// (PortUnavailable) and the Gateway Programmed False. Which listener has which port comes from
/// `snapshot`'s binds, the listeners translation found ready to serve.
pub fn with_unbound_ports(
    snapshot: &Snapshot,
    (namespace, name): (&str, &str),
    status: &GatewayStatus,
    unbound: &BTreeMap<u16, String>,
    now: Timestamp,
) -> GatewayStatus {
    let mut status = status.clone();
    let label = format!("{namespace}/{name}");
    // Only the Gateway's own listeners: a ListenerSet's may share a name with one of them.
    let own = |l: &Listener| l.gateway == label && l.listener_set.is_none();
    let parts = (&mut status.conditions, &mut status.listeners);
    mark_unbound_ports(snapshot, unbound, own, parts, now);
    status
}

/// As [`with_unbound_ports`], for the ListenerSet `namespace/name`, whose listeners the data plane
/// of its Gateway serves: they are marked in its status, which is then not programmed.
pub fn with_unbound_listener_set_ports(
    snapshot: &Snapshot,
    (namespace, name): (&str, &str),
    status: &ListenerSetStatus,
    unbound: &BTreeMap<u16, String>,
    now: Timestamp,
) -> ListenerSetStatus {
    let mut status = status.clone();
    let label = format!("{namespace}/{name}");
    let its_own = |l: &Listener| l.listener_set.as_deref() == Some(label.as_str());
    let parts = (&mut status.conditions, &mut status.listeners);
    mark_unbound_ports(snapshot, unbound, its_own, parts, now);
    status
}

/// The conditions and listener statuses of a Gateway's or a ListenerSet's status.
type Parts<'a> = (
    &'a mut Option<Vec<Condition>>,
    &'a mut Option<Vec<GatewayStatusListeners>>,
);

fn parts(status: &mut ObjectStatus) -> Option<Parts<'_>> {
    match status {
        ObjectStatus::Gateway(s) => Some((&mut s.conditions, &mut s.listeners)),
        ObjectStatus::ListenerSet(s) => Some((&mut s.conditions, &mut s.listeners)),
        _ => None,
    }
}

/// Marks in `parts` every listener `pick` selects on a port of `unbound`.
fn mark_unbound_ports(
    snapshot: &Snapshot,
    unbound: &BTreeMap<u16, String>,
    pick: impl Fn(&Listener) -> bool,
    (conditions, listeners): Parts<'_>,
    now: Timestamp,
) {
    for bind in &snapshot.binds {
        let port = bind.address.port();
        let Some(error) = unbound.get(&port) else {
            continue;
        };
        let message = format!("cannot listen on port {port}: {error}; retrying");
        for listener in bind.listeners.iter().filter(|l| pick(l)) {
            mark_unbound(conditions, listeners, &listener.name, &message, now);
        }
    }
}

/// The listener `listener` Accepted and Programmed False (PortUnavailable) with `message`, and its
/// Gateway (or ListenerSet) Programmed False: `conditions` and `listeners` are its status's.
fn mark_unbound(
    conditions: &mut Option<Vec<Condition>>,
    listeners: &mut Option<Vec<GatewayStatusListeners>>,
    listener: &str,
    message: &str,
    now: Timestamp,
) {
    let generation = conditions
        .iter()
        .flatten()
        .find_map(|c| c.observed_generation);
    let not = |type_: &str| {
        condition(
            type_,
            false,
            reasons::PORT_UNAVAILABLE,
            message,
            generation,
            now,
        )
    };
    replace(
        conditions.get_or_insert_with(Vec::new),
        not(types::PROGRAMMED),
    );
    for l in listeners
        .iter_mut()
        .flatten()
        .filter(|l| l.name == listener)
    {
        replace(&mut l.conditions, not(types::ACCEPTED));
        replace(&mut l.conditions, not(types::PROGRAMMED));
    }
}

/// Replaces the condition of the same type, keeping its transition time if the status is the same.
fn replace(conditions: &mut Vec<Condition>, new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) if old.status == new.status => {
            old.reason = new.reason;
            old.message = new.message;
        }
        Some(old) => *old = new,
        None => conditions.push(new),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::resources::Resources;
    use crate::translate::{translate, TranslateOptions};

    /// Gateway `default/gw` with the given listeners (`{name: .., port: .., protocol: HTTP}` lines).
    fn translated(listeners: &str) -> Snapshot {
        let yaml = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
            metadata: {{name: sluice}}\nspec: {{controllerName: sluice.dev/gateway-controller}}\n---\n\
            apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\n\
            spec:\n  gatewayClassName: sluice\n  listeners:\n{listeners}"
        );
        translated_yaml(&yaml)
    }

    fn translated_yaml(yaml: &str) -> Snapshot {
        let loaded = Resources::from_yaml_documents(Path::new("t.yaml"), yaml).expect("valid");
        let options = TranslateOptions {
            listen_address: "127.0.0.1".parse().expect("ip"),
            ..TranslateOptions::default()
        };
        translate(&loaded.resources, &options, Timestamp::UNIX_EPOCH).snapshot
    }

    /// `(status, reason)` of the condition `type_`.
    fn state(conditions: &[Condition], type_: &str) -> Option<(String, String)> {
        conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    }

    #[test]
    fn listeners_on_a_port_a_pod_could_not_bind_are_port_unavailable_and_the_others_untouched() {
        let snapshot = translated(
            "  - {name: http, port: 80, protocol: HTTP}\n  - {name: alt, port: 8080, protocol: HTTP}\n",
        );
        let Some(ObjectStatus::Gateway(translated)) =
            snapshot.statuses.get(&StatusKey::gateway("default", "gw"))
        else {
            panic!("no Gateway status");
        };
        let unbound = BTreeMap::from([(80, "pod sluice-gw-1: Address in use".to_string())]);
        let gw = ("default", "gw");
        let status = with_unbound_ports(&snapshot, gw, translated, &unbound, Timestamp::UNIX_EPOCH);
        let conditions = status.conditions.as_deref().unwrap_or_default();
        let programmed = conditions.iter().find(|c| c.type_ == "Programmed");
        assert_eq!(
            programmed.map(|c| (c.reason.as_str(), c.message.as_str())),
            Some((
                reasons::PORT_UNAVAILABLE,
                "cannot listen on port 80: pod sluice-gw-1: Address in use; retrying"
            ))
        );
        let listener = |name: &str| {
            status
                .listeners
                .iter()
                .flatten()
                .find(|l| l.name == name)
                .map(|l| l.conditions.clone())
                .unwrap_or_default()
        };
        let not = Some(("False".to_string(), reasons::PORT_UNAVAILABLE.to_string()));
        assert_eq!(state(&listener("http"), "Accepted"), not);
        assert_eq!(state(&listener("http"), "Programmed"), not);
        assert_eq!(
            state(&listener("alt"), "Accepted"),
            Some(("True".into(), "Accepted".into()))
        );

        let other = ("default", "other");
        let untouched = with_unbound_ports(
            &snapshot,
            other,
            translated,
            &unbound,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(&untouched, translated, "only the named Gateway's listeners");
    }

    #[test]
    fn a_listener_on_an_unbindable_address_is_port_unavailable_and_its_gateway_not_programmed() {
        let snapshot = translated("  - {name: http, port: 8080, protocol: HTTP}\n");
        let key = StatusKey::gateway("default", "gw");
        let gateway = |report: &StatusReport| match report.get(&key) {
            Some(ObjectStatus::Gateway(s)) => s.clone(),
            other => panic!("no Gateway status: {other:?}"),
        };
        let untouched = with_unbound(&snapshot, &BTreeMap::new(), Timestamp::UNIX_EPOCH);
        let gw = gateway(&untouched);
        assert_eq!(
            state(gw.conditions.as_deref().unwrap_or_default(), "Programmed"),
            Some(("True".into(), "Programmed".into()))
        );

        let failed = BTreeMap::from([(
            "127.0.0.1:8080".parse().expect("addr"),
            "Address in use".to_string(),
        )]);
        let gw = gateway(&with_unbound(&snapshot, &failed, Timestamp::UNIX_EPOCH));
        let programmed = gw
            .conditions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|c| c.type_ == "Programmed")
            .cloned()
            .expect("Programmed");
        assert_eq!(
            (programmed.status.as_str(), programmed.reason.as_str()),
            ("False", reasons::PORT_UNAVAILABLE)
        );
        assert_eq!(
            programmed.message,
            "cannot listen on 127.0.0.1:8080: Address in use; retrying"
        );
        let listener = gw
            .listeners
            .as_deref()
            .unwrap_or_default()
            .first()
            .cloned()
            .expect("listener");
        assert_eq!(
            state(&listener.conditions, "Accepted"),
            Some(("False".into(), reasons::PORT_UNAVAILABLE.into()))
        );
    }

    #[test]
    fn an_unbound_listener_set_listener_is_marked_in_the_listener_set_not_in_the_gateway() {
        // The ListenerSet's listener has the name of one of the Gateway's, on another port.
        let snapshot = translated(
            "  - {name: http, port: 80, protocol: HTTP}\n  allowedListeners: {namespaces: {from: Same}}\n\
             ---\napiVersion: gateway.networking.k8s.io/v1\nkind: ListenerSet\nmetadata: {name: extra}\n\
             spec:\n  parentRef: {name: gw}\n  listeners:\n  - {name: http, port: 8080, protocol: HTTP}\n",
        );
        let gateway_key = StatusKey::gateway("default", "gw");
        let set_key = StatusKey::listener_set("default", "extra");
        let failed = BTreeMap::from([(
            "127.0.0.1:8080".parse().expect("addr"),
            "Address in use".to_string(),
        )]);
        let report = with_unbound(&snapshot, &failed, Timestamp::UNIX_EPOCH);
        let Some(ObjectStatus::ListenerSet(set)) = report.get(&set_key) else {
            panic!("no ListenerSet status");
        };
        let not = Some(("False".to_string(), reasons::PORT_UNAVAILABLE.to_string()));
        assert_eq!(
            state(set.conditions.as_deref().unwrap_or_default(), "Programmed"),
            not
        );
        let listener = set.listeners.as_deref().unwrap_or_default().first();
        let conditions = listener.map(|l| l.conditions.clone()).unwrap_or_default();
        assert_eq!(state(&conditions, "Accepted"), not);
        assert_eq!(
            report.get(&gateway_key),
            snapshot.statuses.get(&gateway_key),
            "the Gateway's own listener http is served"
        );

        // In a cluster the pod reports ports: 8080 is no listener of the Gateway's own.
        let Some(ObjectStatus::Gateway(translated)) = snapshot.statuses.get(&gateway_key) else {
            panic!("no Gateway status");
        };
        let unbound = BTreeMap::from([(8080, "Address in use".to_string())]);
        let gw = ("default", "gw");
        let status = with_unbound_ports(&snapshot, gw, translated, &unbound, Timestamp::UNIX_EPOCH);
        assert_eq!(&status, translated);
        let Some(ObjectStatus::ListenerSet(translated)) = snapshot.statuses.get(&set_key) else {
            panic!("no ListenerSet status");
        };
        let set = ("default", "extra");
        let status = with_unbound_listener_set_ports(
            &snapshot,
            set,
            translated,
            &unbound,
            Timestamp::UNIX_EPOCH,
        );
        let listener = status.listeners.as_deref().unwrap_or_default().first();
        let conditions = listener.map(|l| l.conditions.clone()).unwrap_or_default();
        assert_eq!(state(&conditions, "Programmed"), not);
        assert_eq!(
            state(
                status.conditions.as_deref().unwrap_or_default(),
                "Programmed"
            ),
            not
        );
    }
}
