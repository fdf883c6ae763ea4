//! What the provisioner knows and translation cannot, for the status writer to overlay on
//! GatewayClass and Gateway statuses: classes whose parameters are unusable, and each Gateway's
//! data plane.

use std::collections::BTreeMap;
use std::fmt;

use gateway_api::apis::experimental::gateways::Gateway;
use kube::ResourceExt;

use crate::status::conditions::reasons::{self, INVALID_PARAMETERS};

/// Which Gateway: its namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayKey {
    /// The Gateway's namespace.
    pub namespace: String,
    /// The Gateway's name.
    pub name: String,
}

/// A Gateway's provisioned data plane as the provisioner sees it (the gateway crate's
/// `dataplane` module is the process that serves it, not this view).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProvisionedDataPlane {
    /// At least one data-plane pod is available and the Service has an address.
    pub programmed: bool,
    /// Why not, when not: a Gateway API `Programmed` reason and a message.
    pub reason: &'static str,
    /// Human-readable detail for the `Programmed` condition.
    pub message: String,
    /// `(type, value)` for the Gateway's `status.addresses`: external IPs and load-balancer
    /// ingress, else the cluster IP.
    pub addresses: Vec<(String, String)>,
    /// Fewer pods available than wanted: its unready pods are asked, every
    /// [`PodProbeConfig::interval`], which listener ports they could not bind.
    ///
    /// [`PodProbeConfig::interval`]: super::probe::PodProbeConfig::interval
    pub short_of_pods: bool,
    /// Listener port -> why a data-plane pod could not bind it (`pod NAME: error`), for
    /// `PortUnavailable` on the listeners of that port.
    pub unbound_ports: BTreeMap<u16, String>,
}

/// Each provisioned Gateway's data plane.
pub type DataPlanes = BTreeMap<GatewayKey, ProvisionedDataPlane>;

/// What the provisioner adds to the statuses translation computed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Provisioning {
    /// False until the provisioner's first reconcile: until then the writer leaves GatewayClasses
    /// and Gateways alone rather than write what it would take back a moment later (a new
    /// leader would otherwise flap `Programmed` and `Accepted` after a failover).
    pub reconciled: bool,
    /// GatewayClasses whose `parametersRef` cannot be used, by name: the error, for
    /// `Accepted: False` with reason `InvalidParameters`.
    pub invalid_classes: BTreeMap<String, String>,
    /// Gateways of those classes: not accepted, not provisioned.
    pub rejected_gateways: BTreeMap<GatewayKey, String>,
    /// The data plane of every provisioned Gateway.
    pub data_planes: DataPlanes,
    /// An API request of this reconcile failed (applying, deleting, reading parameters): the
    /// provisioner tries again on its retry pace, not only at the next change or resync.
    pub incomplete: bool,
}

// === impl GatewayKey ===

impl GatewayKey {
    /// The Gateway `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> GatewayKey {
        GatewayKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The key of `gateway`.
    pub fn of(gateway: &Gateway) -> GatewayKey {
        GatewayKey {
            namespace: gateway.namespace().unwrap_or_default(),
            name: gateway.name_any(),
        }
    }
}

/// `namespace/name`, as logs and messages name a Gateway.
impl fmt::Display for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

// === impl ProvisionedDataPlane ===

impl ProvisionedDataPlane {
    /// A Gateway translated before the provisioner got to it (just created).
    pub fn not_yet_provisioned() -> ProvisionedDataPlane {
        ProvisionedDataPlane::pending("waiting for the data plane to be provisioned".into())
    }

    /// Not programmed, reason `Pending`.
    pub fn pending(message: String) -> ProvisionedDataPlane {
        ProvisionedDataPlane {
            programmed: false,
            reason: reasons::PENDING,
            message,
            ..ProvisionedDataPlane::default()
        }
    }
}

// === impl Provisioning ===

impl Provisioning {
    /// Copies `previous`'s verdict on the Gateway `key`.
    pub(super) fn carry_gateway(&mut self, previous: &Provisioning, key: &GatewayKey) {
        if let Some(message) = previous.rejected_gateways.get(key) {
            self.rejected_gateways.insert(key.clone(), message.clone());
        }
        if let Some(plane) = previous.data_planes.get(key) {
            self.data_planes.insert(key.clone(), plane.clone());
        }
    }

    /// `(programmed, reason, what an Event says)` for the Gateway `key`, if it has a verdict; a
    /// port its pods could not bind comes first, as it does in the Gateway's status.
    pub(super) fn gateway_state(&self, key: &GatewayKey) -> Option<(bool, &'static str, String)> {
        if let Some(message) = self.rejected_gateways.get(key) {
            return Some((false, INVALID_PARAMETERS, message.clone()));
        }
        let plane = self.data_planes.get(key)?;
        if !plane.unbound_ports.is_empty() {
            let ports: Vec<String> = plane
                .unbound_ports
                .iter()
                .map(|(port, error)| format!("port {port}: {error}"))
                .collect();
            let note = format!("cannot listen on {}", ports.join("; "));
            return Some((false, reasons::PORT_UNAVAILABLE, note));
        }
        let note = if plane.programmed {
            let addresses: Vec<&str> = plane.addresses.iter().map(|(_, v)| v.as_str()).collect();
            format!("data plane available at {}", addresses.join(", "))
        } else {
            plane.message.clone()
        };
        Some((plane.programmed, plane.reason, note))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_the_pods_could_not_bind_is_the_gateways_state() {
        let plane = ProvisionedDataPlane {
            unbound_ports: BTreeMap::from([(80, "pod p: Address in use".to_string())]),
            short_of_pods: true,
            ..ProvisionedDataPlane::pending("waiting for an available data-plane pod".into())
        };
        let provisioning = Provisioning {
            data_planes: BTreeMap::from([(GatewayKey::new("demo", "web"), plane)]),
            ..Provisioning::default()
        };
        assert_eq!(
            provisioning.gateway_state(&GatewayKey::new("demo", "web")),
            Some((
                false,
                reasons::PORT_UNAVAILABLE,
                "cannot listen on port 80: pod p: Address in use".to_string()
            ))
        );
    }
}
