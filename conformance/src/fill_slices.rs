//! The `fillEndpointSlices` step (FORMAT.md §3): hand-made EndpointSlices of Services without a
//! selector (headless or not) get one endpoint per pod of a Deployment, per IP family.

use std::net::IpAddr;

use serde_json::{json, Value};

use crate::case::FillEndpointSlices;
use crate::objects::{ObjectKey, ObjectStore};

/// A harness pod has no node; its slices name this one.
pub const NODE_NAME: &str = "sluice-conformance-node";

/// What a slice endpoint records of a pod.
#[derive(Debug, Clone)]
pub struct PodAddresses {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub node_name: String,
    pub ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn holds(self, ip: &IpAddr) -> bool {
        match self {
            Family::V4 => ip.is_ipv4(),
            Family::V6 => ip.is_ipv6(),
        }
    }
}

/// Replaces `.endpoints` of each listed slice with the pods' addresses of the slice's family; a
/// slice no pod has an address for is left as it is. `pods` are those of `fromPodsOf`.
pub fn fill(
    store: &mut ObjectStore,
    step: &FillEndpointSlices,
    pods: &[PodAddresses],
) -> Result<(), String> {
    for name in &step.endpoint_slices {
        let key = ObjectKey::new("EndpointSlice", Some(&step.namespace), name);
        let slice = store
            .get(&key)
            .ok_or_else(|| format!("fillEndpointSlices: {key} does not exist"))?;
        let family = family_of(slice, name)
            .ok_or_else(|| format!("fillEndpointSlices: {key} is neither IPv4 nor IPv6"))?;
        let endpoints: Vec<Value> = pods
            .iter()
            .flat_map(|pod| {
                pod.ips
                    .iter()
                    .filter(move |ip| family.holds(ip))
                    .map(move |ip| endpoint(pod, ip))
            })
            .collect();
        if endpoints.is_empty() {
            continue;
        }
        store
            .merge_patch(&key, &json!({"endpoints": endpoints}))
            .map_err(|e| crate::error_chain(&e))?;
    }
    Ok(())
}

/// `addressType` first; the `-ip4`/`-ip6` name suffix for a slice without one.
fn family_of(slice: &Value, name: &str) -> Option<Family> {
    match slice.get("addressType").and_then(Value::as_str) {
        Some("IPv4") => Some(Family::V4),
        Some("IPv6") => Some(Family::V6),
        Some(_) => None,
        None if name.ends_with("-ip4") => Some(Family::V4),
        None if name.ends_with("-ip6") => Some(Family::V6),
        None => None,
    }
}

fn endpoint(pod: &PodAddresses, ip: &IpAddr) -> Value {
    json!({
        "addresses": [ip.to_string()],
        "conditions": {"ready": true, "serving": true, "terminating": false},
        "nodeName": pod.node_name,
        "targetRef": {"kind": "Pod", "name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
    })
}

#[cfg(test)]
mod tests;
