//! The `ListenerSet` kind (`gateway.networking.k8s.io/v1`, standard channel since v1.5), written
//! by hand: the generated `sluice-gateway-api` crate does not hold it yet.
//!
//! A ListenerSet's listener entries and its per-listener status have exactly the schema of a
//! Gateway's (`spec.listeners[]`, `status.listeners[]` in the v1.6.1 CRDs), so they reuse the
//! generated Gateway types and translation validates both with the same code.

use gateway_api::apis::experimental::gateways::{GatewayListeners, GatewayStatusListeners};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// Spec of a ListenerSet: the Gateway it extends and the listeners it adds to it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "ListenerSet",
    plural = "listenersets"
)]
#[kube(namespaced)]
#[kube(status = "ListenerSetStatus")]
#[kube(schema = "disabled")]
#[kube(derive = "Default")]
#[kube(derive = "PartialEq")]
pub struct ListenerSetSpec {
    /// The Gateway the listeners are added to.
    #[serde(rename = "parentRef")]
    pub parent_ref: ListenerSetParentRef,
    /// The listeners, as a Gateway's `spec.listeners` (1 to 64 entries).
    pub listeners: Vec<GatewayListeners>,
}

/// `spec.parentRef`: a Gateway, by default in the ListenerSet's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ListenerSetParentRef {
    /// Defaults to `gateway.networking.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Defaults to `Gateway`, the only kind the CRD allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The Gateway's name.
    pub name: String,
    /// The Gateway's namespace; the ListenerSet's own when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `status`: `Accepted` and `Programmed`, and one entry per listener as a Gateway's listeners get.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct ListenerSetStatus {
    /// `Accepted` and `Programmed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// One entry per listener of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Vec<GatewayStatusListeners>>,
}
