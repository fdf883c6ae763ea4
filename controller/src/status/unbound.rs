//! Statuses while some listener addresses cannot be bound: what translation promised, corrected
//! by what the data plane could actually open.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

use super::conditions::{reasons, types};
use super::{condition, ObjectStatus, StatusKey, StatusReport};
use crate::snapshot::Snapshot;
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
            let key = StatusKey::gateway(namespace, name);
            let Some(ObjectStatus::Gateway(status)) = report.objects.get_mut(&key) else {
                continue;
            };
            let generation = status
                .conditions
                .iter()
                .flatten()
                .find_map(|c| c.observed_generation);
            let not = |type_: &str| {
                condition(
                    type_,
                    false,
                    reasons::PORT_UNAVAILABLE,
                    message.clone(),
                    generation,
                    now,
                )
            };
            replace(
                status.conditions.get_or_insert_with(Vec::new),
                not(types::PROGRAMMED),
            );
            for l in status
                .listeners
                .iter_mut()
                .flatten()
                .filter(|l| l.name == listener.name)
            {
                replace(&mut l.conditions, not(types::ACCEPTED));
                replace(&mut l.conditions, not(types::PROGRAMMED));
            }
        }
    }
    report
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

    #[test]
    fn a_listener_on_an_unbindable_address_is_port_unavailable_and_its_gateway_not_programmed() {
        let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n\
            metadata: {name: sluice}\nspec: {controllerName: sluice.dev/gateway-controller}\n---\n\
            apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n\
            spec:\n  gatewayClassName: sluice\n  listeners:\n  - {name: http, port: 8080, protocol: HTTP}\n";
        let loaded = Resources::from_yaml_documents(Path::new("t.yaml"), yaml).expect("valid");
        let options = TranslateOptions {
            listen_address: "127.0.0.1".parse().expect("ip"),
            ..TranslateOptions::default()
        };
        let t = translate(&loaded.resources, &options, Timestamp::UNIX_EPOCH);
        let key = StatusKey::gateway("default", "gw");
        let gateway = |report: &StatusReport| match report.get(&key) {
            Some(ObjectStatus::Gateway(s)) => s.clone(),
            other => panic!("no Gateway status: {other:?}"),
        };
        let status_of = |conds: &[Condition], t: &str| {
            conds
                .iter()
                .find(|c| c.type_ == t)
                .map(|c| (c.status.clone(), c.reason.clone()))
        };

        let untouched = with_unbound(&t.snapshot, &BTreeMap::new(), Timestamp::UNIX_EPOCH);
        let gw = gateway(&untouched);
        assert_eq!(
            status_of(gw.conditions.as_deref().unwrap_or_default(), "Programmed"),
            Some(("True".into(), "Programmed".into()))
        );

        let failed = BTreeMap::from([(
            "127.0.0.1:8080".parse().expect("addr"),
            "Address in use".to_string(),
        )]);
        let gw = gateway(&with_unbound(&t.snapshot, &failed, Timestamp::UNIX_EPOCH));
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
            status_of(&listener.conditions, "Accepted"),
            Some(("False".into(), reasons::PORT_UNAVAILABLE.into()))
        );
    }
}
