#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::objects::ApplyRules;

/// HTTPRoute `ns/r` and Gateway `ns/gw`, then `more` (YAML, may be empty).
fn store(more: &str) -> ObjectStore {
    let mut store = ObjectStore::default();
    let rules = ApplyRules {
        gateway_class_name: "sluice".into(),
        controller_name: None,
        usable_addresses: vec![],
        unusable_addresses: vec![],
    };
    let yaml = format!(
        "kind: HTTPRoute\nmetadata: {{name: r, namespace: ns}}\nspec: {{}}\n---\n\
         kind: Gateway\nmetadata: {{name: gw, namespace: ns}}\nspec: {{listeners: []}}\n{more}"
    );
    store
        .apply_yaml(&yaml, &rules, "t", &|s| s.to_owned())
        .unwrap();
    store
}

fn view<'a>(statuses: &'a Value, objects: &'a ObjectStore, controller_name: &'a str) -> View<'a> {
    View {
        statuses,
        objects,
        controller_name,
        namespaces_with_pods: &[],
    }
}

fn check(yaml: &str) -> StatusCheck {
    serde_yaml_ng::from_str(yaml).unwrap()
}

#[test]
fn route_parent_conditions_need_latest_generation() {
    let objects = store("");
    let statuses = json!({"HTTPRoute/ns/r": {"parents": [{
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"},
        "controllerName": "sluice.dev/gateway-controller",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1}]
    }]}});
    let view = view(&statuses, &objects, "sluice.dev/gateway-controller");
    let parent = check("{kind: HTTPRoute, namespace: ns, name: r, parent: {name: gw, namespace: ns}, conditions: {Accepted: True/Accepted}}");
    assert_eq!(evaluate(&parent, &view), Ok(()));
    let parents = check(
        "{kind: HTTPRoute, namespace: ns, name: r, namespaceRequired: false, parents: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, namespace: ns, conditions: {Accepted: 'True'}}]}",
    );
    assert_eq!(evaluate(&parents, &view), Ok(()));
    let strict = check(
        "{kind: HTTPRoute, namespace: ns, name: r, namespaceRequired: true, parents: [{group: gateway.networking.k8s.io, kind: Gateway, name: gw, namespace: ns, conditions: {Accepted: 'True'}}]}",
    );
    assert!(
        evaluate(&strict, &view).is_err(),
        "an unset parentRef.namespace fails when required"
    );
    let wrong = check("{kind: HTTPRoute, namespace: ns, name: r, parent: {name: gw, namespace: ns}, conditions: {ResolvedRefs: 'True'}}");
    assert!(evaluate(&wrong, &view)
        .unwrap_err()
        .contains("missing ResolvedRefs=True"));

    let stale = json!({"HTTPRoute/ns/r": {"parents": [{
        "parentRef": {"name": "gw"},
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 0}]
    }]}});
    let view = View {
        statuses: &stale,
        ..view
    };
    assert!(evaluate(&parent, &view)
        .unwrap_err()
        .contains("observedGeneration"));
}

#[test]
fn gateway_listener_checks() {
    let objects = store("");
    let statuses = json!({"Gateway/ns/gw": {
        "addresses": [{"type": "IPAddress", "value": "127.0.0.1"}],
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1}],
        "listeners": [{"name": "http", "attachedRoutes": 1,
            "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
            "conditions": [{"type": "Programmed", "status": "True", "reason": "Programmed", "observedGeneration": 1}]}]
    }});
    let view = view(&statuses, &objects, "c");
    let ok = check(
        "{kind: Gateway, namespace: ns, name: gw, address: true, listenerConditions: {listeners: '*', conditions: {Programmed: 'True'}}, \
         listeners: [{name: http, attachedRoutes: 1, supportedKinds: [{kind: HTTPRoute}], conditions: {Programmed: 'True'}}]}",
    );
    assert_eq!(evaluate(&ok, &view), Ok(()));
    let two_routes = check(
        "{kind: Gateway, namespace: ns, name: gw, listeners: [{name: http, attachedRoutes: 2}]}",
    );
    assert!(evaluate(&two_routes, &view)
        .unwrap_err()
        .contains("attachedRoutes"));
    let unknown = check("{kind: XMesh, namespace: ns, name: p}");
    assert!(evaluate(&unknown, &view)
        .unwrap_err()
        .contains("not supported"));
}

#[test]
fn policy_ancestor_conditions() {
    let objects =
        store("---\nkind: BackendTLSPolicy\nmetadata: {name: p, namespace: ns}\nspec: {}\n");
    let statuses = json!({"BackendTLSPolicy/ns/p": {"ancestors": [{
        "ancestorRef": {"name": "gw", "namespace": "ns"},
        "controllerName": "c",
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "observedGeneration": 1}]
    }]}});
    let view = view(&statuses, &objects, "c");
    let ok = check("{kind: BackendTLSPolicy, namespace: ns, name: p, ancestor: {name: gw, namespace: ns}, conditions: {Accepted: True/Accepted}}");
    assert_eq!(evaluate(&ok, &view), Ok(()));
    let other = check("{kind: BackendTLSPolicy, namespace: ns, name: p, ancestor: {name: other, namespace: ns}, conditions: {Accepted: 'True'}}");
    assert!(evaluate(&other, &view)
        .unwrap_err()
        .contains("no status.ancestors entry"));
}
