//! The provisioner's view ([`Provisioning`]) laid over the statuses translation computed:
//! `Accepted: False` / `InvalidParameters` on a class with unusable parameters and on its
//! Gateways, a Gateway's `addresses` and `Programmed` from its data plane, and `PortUnavailable`
//! on the listeners whose port its pods could not bind.

use gateway_api::apis::experimental::gateways::GatewayStatusAddresses;
use serde_json::{json, Value};

use crate::provision::{GatewayKey, ProvisionedDataPlane, Provisioning};
use crate::snapshot::Snapshot;
use crate::status::conditions::reasons::{self, INVALID_PARAMETERS};
use crate::status::conditions::types;
use crate::status::unbound::{with_unbound_listener_set_ports, with_unbound_ports};
use crate::status::{Kind, ObjectStatus, StatusKey};
use crate::translate::Timestamp;

/// The Gateway or ListenerSet status `key` names corrected for the ports its (Gateway's)
/// data-plane pods reported they could not bind; `None` when there is nothing to correct.
pub(super) fn unbound_in_data_plane(
    snapshot: &Snapshot,
    key: &StatusKey,
    status: &ObjectStatus,
    provisioning: &Provisioning,
) -> Option<ObjectStatus> {
    let ns = key.namespace.as_deref()?;
    let (gateway, conditions) = match status {
        ObjectStatus::Gateway(s) => (GatewayKey::new(ns, &key.name), &s.conditions),
        ObjectStatus::ListenerSet(s) => (
            listener_set_gateway(snapshot, ns, &key.name)?,
            &s.conditions,
        ),
        _ => return None,
    };
    let plane = provisioning.data_planes.get(&gateway)?;
    if plane.unbound_ports.is_empty() {
        return None;
    }
    // Translation's time, not the clock: the desired status stays the same from one sync to the
    // next, and the write stamps every condition whose status changed anyway (`merge`).
    let at = conditions
        .iter()
        .flatten()
        .map(|c| c.last_transition_time.0)
        .next()
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let names = (ns, key.name.as_str());
    let unbound = &plane.unbound_ports;
    Some(match status {
        ObjectStatus::ListenerSet(s) => ObjectStatus::ListenerSet(with_unbound_listener_set_ports(
            snapshot, names, s, unbound, at,
        )),
        ObjectStatus::Gateway(s) => {
            ObjectStatus::Gateway(with_unbound_ports(snapshot, names, s, unbound, at))
        }
        other => other.clone(),
    })
}

/// The Gateway whose data plane serves the listeners of ListenerSet `namespace/name`, as the
/// snapshot binds them; `None` when none of them is bound.
fn listener_set_gateway(snapshot: &Snapshot, namespace: &str, name: &str) -> Option<GatewayKey> {
    let label = format!("{namespace}/{name}");
    let listener = snapshot
        .binds
        .iter()
        .flat_map(|b| &b.listeners)
        .find(|l| l.listener_set.as_deref() == Some(label.as_str()))?;
    let (gw_ns, gw_name) = listener.gateway.split_once('/')?;
    Some(GatewayKey::new(gw_ns, gw_name))
}

/// Applies what the provisioner knows to the status of the object `key` names.
pub(super) fn overlay_provisioning(
    status: &mut Value,
    key: &StatusKey,
    provisioning: &Provisioning,
) {
    match (key.kind, key.namespace.as_deref()) {
        (Kind::GatewayClass, _) => {
            if let Some(message) = provisioning.invalid_classes.get(&key.name) {
                set_condition(status, types::ACCEPTED, INVALID_PARAMETERS, message);
            }
        }
        (Kind::Gateway, Some(ns)) => {
            let key = GatewayKey::new(ns, &key.name);
            if let Some(message) = provisioning.rejected_gateways.get(&key) {
                reject_gateway(status, message);
            } else if let Some(dp) = provisioning.data_planes.get(&key) {
                overlay_data_plane(status, dp);
            } else {
                // Translated before the provisioner got to it (just created): not programmed
                // yet, so that `kubectl wait --for=condition=Programmed` does not return early.
                overlay_data_plane(status, &ProvisionedDataPlane::not_yet_provisioned());
            }
        }
        _ => {}
    }
}

/// A ListenerSet whose listeners its Gateway's data plane serves is `Programmed` only while that
/// data plane is (the provisioner's view of the Gateway, as [`overlay_provisioning`] lays it
/// over the Gateway's own status). Its Gateway is the one the snapshot binds its listeners for.
pub(super) fn overlay_listener_set(
    status: &mut Value,
    key: &StatusKey,
    snapshot: &Snapshot,
    provisioning: &Provisioning,
) {
    let (Kind::ListenerSet, Some(ns)) = (key.kind, key.namespace.as_deref()) else {
        return;
    };
    let Some(gateway) = listener_set_gateway(snapshot, ns, &key.name) else {
        return;
    };
    let served = !provisioning.rejected_gateways.contains_key(&gateway)
        && provisioning
            .data_planes
            .get(&gateway)
            .is_some_and(|dp| dp.programmed);
    if !served {
        let message = format!(
            "Gateway {}/{} is not programmed",
            gateway.namespace, gateway.name
        );
        set_condition(
            status,
            types::PROGRAMMED,
            reasons::PARENT_NOT_PROGRAMMED,
            &message,
        );
    }
}

/// A Gateway of a class with unusable parameters: not accepted, not programmed (nor any of its
/// listeners), and no address.
fn reject_gateway(status: &mut Value, message: &str) {
    set_condition(status, types::ACCEPTED, INVALID_PARAMETERS, message);
    let not_accepted = "the Gateway is not accepted";
    set_condition(status, types::PROGRAMMED, reasons::INVALID, not_accepted);
    if let Some(map) = status.as_object_mut() {
        map.remove("addresses");
        if let Some(listeners) = map.get_mut("listeners").and_then(Value::as_array_mut) {
            for listener in listeners {
                set_condition(listener, types::PROGRAMMED, reasons::INVALID, not_accepted);
            }
        }
    }
}

/// Makes the condition `type_` of `status` False with this reason and message.
fn set_condition(status: &mut Value, type_: &str, reason: &str, message: &str) {
    let conditions = status
        .get_mut("conditions")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten();
    for c in conditions {
        if c.get("type").and_then(Value::as_str) == Some(type_) {
            c["status"] = json!("False");
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
    }
}

/// Sets the Gateway's addresses from its Service and, while its data plane is not available,
/// turns a `Programmed: True` from translation into `False` with the provisioner's reason.
fn overlay_data_plane(status: &mut Value, dp: &ProvisionedDataPlane) {
    let Some(map) = status.as_object_mut() else {
        return;
    };
    let addresses: Vec<GatewayStatusAddresses> = dp
        .addresses
        .iter()
        .map(|(t, v)| GatewayStatusAddresses {
            r#type: Some(t.clone()),
            value: v.clone(),
        })
        .collect();
    if addresses.is_empty() {
        map.remove("addresses");
    } else if let Ok(v) = serde_json::to_value(&addresses) {
        map.insert("addresses".into(), v);
    }
    if dp.programmed {
        return;
    }
    if let Some(conditions) = map.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions {
            let programmed_true = c.get("type").and_then(Value::as_str) == Some(types::PROGRAMMED)
                && c.get("status").and_then(Value::as_str) == Some("True");
            if programmed_true {
                c["status"] = json!("False");
                c["reason"] = json!(dp.reason);
                c["message"] = json!(dp.message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn an_unavailable_data_plane_is_not_programmed() {
        let mut status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "True", "reason": "Programmed"},
        ], "addresses": [{"type": "IPAddress", "value": "0.0.0.0"}]});
        let dp = ProvisionedDataPlane::pending("no data-plane pod is available yet".into());
        overlay_data_plane(&mut status, &dp);
        assert_eq!(status["conditions"][1]["status"], "False");
        assert_eq!(status["conditions"][1]["reason"], "Pending");
        assert_eq!(status["conditions"][0]["status"], "True");
        assert!(status.get("addresses").is_none(), "no Service address yet");
    }

    #[test]
    fn a_gateway_of_a_class_with_invalid_parameters_is_neither_accepted_nor_programmed() {
        let mut status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "True", "reason": "Programmed"},
        ], "listeners": [{"name": "http", "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "True", "reason": "Programmed"}]}],
        "addresses": [{"type": "IPAddress", "value": "10.0.0.1"}]});
        let provisioning = Provisioning {
            rejected_gateways: BTreeMap::from([(
                GatewayKey::new("demo", "web"),
                "GatewayClass sluice: ConfigMap sluice-system/knobs not found".to_string(),
            )]),
            ..Provisioning::default()
        };
        let key = StatusKey::gateway("demo", "web");
        overlay_provisioning(&mut status, &key, &provisioning);
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(status["conditions"][0]["reason"], "InvalidParameters");
        assert_eq!(
            status["conditions"][0]["message"],
            "GatewayClass sluice: ConfigMap sluice-system/knobs not found"
        );
        assert_eq!(status["conditions"][1]["reason"], "Invalid");
        assert_eq!(
            status["listeners"][0]["conditions"][1]["status"], "False",
            "listeners are not programmed either"
        );
        assert!(status.get("addresses").is_none());
    }

    #[test]
    fn a_class_with_invalid_parameters_is_not_accepted() {
        let mut status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": ""}]});
        let provisioning = Provisioning {
            invalid_classes: BTreeMap::from([("sluice".to_string(), "bad".to_string())]),
            ..Provisioning::default()
        };
        let key = StatusKey::gateway_class("sluice");
        overlay_provisioning(&mut status, &key, &provisioning);
        assert_eq!(
            status["conditions"][0],
            json!({"type": "Accepted", "status": "False", "reason": "InvalidParameters", "message": "bad"})
        );
    }

    #[test]
    fn a_gateway_the_provisioner_has_not_reached_is_not_programmed_yet() {
        let mut status = json!({"conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted"},
            {"type": "Programmed", "status": "True", "reason": "Programmed"},
        ], "addresses": [{"type": "IPAddress", "value": "0.0.0.0"}]});
        let provisioning = Provisioning {
            reconciled: true,
            ..Provisioning::default()
        };
        let key = StatusKey::gateway("demo", "new");
        overlay_provisioning(&mut status, &key, &provisioning);
        assert_eq!(status["conditions"][1]["status"], "False");
        assert_eq!(status["conditions"][1]["reason"], "Pending");
        assert!(
            status.get("addresses").is_none(),
            "translation's listen address is no Gateway address"
        );
    }
}
