//! fillEndpointSlices on an object store, without pods or Sluice.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::case::PodsOf;

fn slice(name: &str, address_type: Option<&str>) -> Value {
    let mut slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "infra",
                     "labels": {"kubernetes.io/service-name": "manual"}},
        "ports": [{"name": "first-port", "port": 3000, "protocol": "TCP"}],
    });
    if let Some(t) = address_type {
        slice["addressType"] = json!(t);
    }
    slice
}

fn store(slices: Vec<Value>) -> ObjectStore {
    let mut store = ObjectStore::default();
    for s in slices {
        store.put(ObjectKey::of(&s).unwrap(), s, "2026-01-01T00:00:00Z");
    }
    store
}

fn step(names: &[&str]) -> FillEndpointSlices {
    FillEndpointSlices {
        namespace: "infra".into(),
        endpoint_slices: names.iter().map(|n| n.to_string()).collect(),
        from_pods_of: PodsOf {
            namespace: "infra".into(),
            deployment: "infra-backend-v1".into(),
        },
    }
}

fn pod(name: &str, ips: &[&str]) -> PodAddresses {
    PodAddresses {
        name: name.into(),
        namespace: "infra".into(),
        uid: format!("uid-{name}"),
        node_name: NODE_NAME.into(),
        ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
    }
}

fn endpoints(store: &ObjectStore, name: &str) -> Option<Value> {
    store
        .get(&ObjectKey::new("EndpointSlice", Some("infra"), name))
        .unwrap()
        .get("endpoints")
        .cloned()
}

#[test]
fn each_slice_gets_one_endpoint_per_pod_address_of_its_family() {
    let mut objects = store(vec![
        slice("manual-ip4", Some("IPv4")),
        slice("manual-ip6", Some("IPv6")),
    ]);
    let pods = [
        pod("a", &["127.0.1.1", "fd00::1"]),
        pod("b", &["127.0.1.2"]),
    ];
    fill(&mut objects, &step(&["manual-ip4", "manual-ip6"]), &pods).unwrap();

    let v4 = endpoints(&objects, "manual-ip4").unwrap();
    assert_eq!(
        v4[0],
        json!({
            "addresses": ["127.0.1.1"],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": NODE_NAME,
            "targetRef": {"kind": "Pod", "name": "a", "namespace": "infra", "uid": "uid-a"},
        })
    );
    assert_eq!(v4.as_array().unwrap().len(), 2);
    let v6 = endpoints(&objects, "manual-ip6").unwrap();
    assert_eq!(v6.as_array().unwrap().len(), 1);
    assert_eq!(v6[0]["addresses"], json!(["fd00::1"]));
}

#[test]
fn a_slice_no_pod_has_an_address_for_is_left_unchanged() {
    let mut objects = store(vec![slice("manual-ip6", Some("IPv6"))]);
    fill(
        &mut objects,
        &step(&["manual-ip6"]),
        &[pod("a", &["127.0.1.1"])],
    )
    .unwrap();
    assert_eq!(endpoints(&objects, "manual-ip6"), None);
}

#[test]
fn the_name_suffix_gives_the_family_of_a_slice_without_address_type() {
    let mut objects = store(vec![slice("manual-ip4", None)]);
    let pods = [pod("a", &["127.0.1.1", "fd00::1"])];
    fill(&mut objects, &step(&["manual-ip4"]), &pods).unwrap();
    let v4 = endpoints(&objects, "manual-ip4").unwrap();
    assert_eq!(
        v4,
        json!([endpoint(&pods[0], &"127.0.1.1".parse().unwrap())])
    );
}

#[test]
fn a_missing_slice_is_an_error() {
    let mut objects = store(Vec::new());
    let err = fill(
        &mut objects,
        &step(&["absent-ip4"]),
        &[pod("a", &["127.0.1.1"])],
    )
    .unwrap_err();
    assert!(err.contains("does not exist"), "{err}");
}
