//! The `GeneratedResources` check of GatewayInfrastructure: the ServiceAccounts, Pods and Services
//! generated for a Gateway carry its `spec.infrastructure` labels and annotations.
//!
//! The harness runs Sluice standalone: there is no cluster, so nothing is provisioned. The check
//! therefore looks at what Sluice's provisioner would create in a cluster: it renders, with the
//! provisioner's own pure function (`provision::manifests::build`, default class parameters), the
//! data-plane objects of every Gateway of a class this controller serves in the namespace, and
//! evaluates upstream's rules on them. The workload's pod template stands for its Pods (the pods
//! a Deployment or DaemonSet creates get exactly those labels and annotations).

use std::collections::BTreeMap;

use gateway_api::apis::experimental::gateways::Gateway;
use serde_json::Value;
use sluice_controller::provision::manifests::{self, Workload};
use sluice_controller::provision::params::DataPlaneParams;

use super::View;
use crate::case::StatusCheck;

/// Only labels and annotations are read; the image is never run.
const IMAGE: &str = "sluice:conformance";

/// One rendered object: its kind, labels and annotations.
struct Rendered {
    kind: &'static str,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// Upstream: wait until a ServiceAccount, Pod or Service matches `labelSelector`; then the first
/// match of each listed kind must carry `labelsSuperset` and `annotationsSuperset`.
pub(super) fn generated_resources(check: &StatusCheck, view: &View<'_>) -> Result<(), String> {
    let namespace = check.namespace.as_deref().unwrap_or("default");
    let selector = string_map(check.label_selector.as_ref(), "labelSelector")?;
    let want_labels = string_map(check.labels_superset.as_ref(), "labelsSuperset")?;
    let want_annotations = string_map(check.annotations_superset.as_ref(), "annotationsSuperset")?;
    let kinds: Vec<String> = match &check.kinds {
        Some(v) => serde_yaml_ng::from_value(v.clone()).map_err(|e| format!("kinds: {e}"))?,
        None => vec!["ServiceAccount".into(), "Pod".into(), "Service".into()],
    };
    let rendered = render_namespace(view, namespace)?;
    let matching: Vec<&Rendered> = rendered
        .iter()
        .filter(|r| selector.iter().all(|(k, v)| r.labels.get(k) == Some(v)))
        .collect();
    let mut found = false;
    for kind in &kinds {
        let Some(first) = matching.iter().find(|r| r.kind == kind) else {
            continue;
        };
        found = true;
        superset(&first.labels, &want_labels, kind, "labels")?;
        superset(&first.annotations, &want_annotations, kind, "annotations")?;
    }
    if !found {
        return Err(format!(
            "the provisioner would create no {} in {namespace} labelled {selector:?}",
            kinds.join("/")
        ));
    }
    Ok(())
}

/// The objects the provisioner would create for every served Gateway in `namespace`.
fn render_namespace(view: &View<'_>, namespace: &str) -> Result<Vec<Rendered>, String> {
    let mut out = Vec::new();
    for object in view.objects.of_kind("Gateway") {
        if object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            != Some(namespace)
            || !served(view, object)
        {
            continue;
        }
        let gateway: Gateway =
            serde_json::from_value(object.clone()).map_err(|e| format!("Gateway: {e}"))?;
        // No ListenerSet ports: they change the Service's ports, never its metadata.
        let objects = manifests::build(&gateway, &[], &DataPlaneParams::default(), IMAGE);
        let pod = match &objects.workload {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Workload::DaemonSet(d) => d.spec.as_ref().map(|s| &s.template),
        }
        .and_then(|t| t.metadata.clone())
        .unwrap_or_default();
        for (kind, meta) in [
            ("ServiceAccount", objects.service_account.metadata),
            ("Service", objects.service.metadata),
            ("Pod", pod),
        ] {
            out.push(Rendered {
                kind,
                labels: meta.labels.unwrap_or_default(),
                annotations: meta.annotations.unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

/// The Gateway's class is one this controller serves.
fn served(view: &View<'_>, gateway: &Value) -> bool {
    let class = gateway
        .pointer("/spec/gatewayClassName")
        .and_then(Value::as_str);
    view.objects.of_kind("GatewayClass").any(|c| {
        c.pointer("/metadata/name").and_then(Value::as_str) == class
            && c.pointer("/spec/controllerName").and_then(Value::as_str)
                == Some(view.controller_name)
    })
}

fn string_map(
    value: Option<&serde_yaml_ng::Value>,
    what: &str,
) -> Result<BTreeMap<String, String>, String> {
    match value {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_yaml_ng::from_value(v.clone()).map_err(|e| format!("{what}: {e}")),
    }
}

fn superset(
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
    kind: &str,
    what: &str,
) -> Result<(), String> {
    for (k, v) in want {
        if have.get(k) != Some(v) {
            return Err(format!(
                "the {kind} the provisioner would create lacks {what} {k}={v}; it has {have:?}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::ObjectStore;

    fn store(infrastructure: Value) -> ObjectStore {
        let mut store = ObjectStore::default();
        let class = serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
            "metadata": {"name": "sluice"},
            "spec": {"controllerName": "sluice.dev/gateway-controller"}
        });
        let gateway = serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": "infra"},
            "spec": {"gatewayClassName": "sluice", "infrastructure": infrastructure,
                     "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}
        });
        for object in [class, gateway] {
            let key = crate::objects::ObjectKey::of(&object).unwrap();
            store.put(key, object, "2026-01-01T00:00:00Z");
        }
        store
    }

    fn check() -> StatusCheck {
        serde_json::from_value(serde_json::json!({
            "kind": "GeneratedResources", "namespace": "infra",
            "labelSelector": {"gateway.networking.k8s.io/gateway-name": "gw"},
            "kinds": ["ServiceAccount", "Pod", "Service"],
            "labelsSuperset": {"key2": "value2"},
            "annotationsSuperset": {"key1": "value1"}
        }))
        .unwrap()
    }

    fn evaluate(objects: &ObjectStore) -> Result<(), String> {
        let statuses = Value::Null;
        let view = View {
            statuses: &statuses,
            objects,
            controller_name: "sluice.dev/gateway-controller",
            namespaces_with_pods: &[],
        };
        generated_resources(&check(), &view)
    }

    #[test]
    fn infrastructure_metadata_on_every_rendered_kind_passes() {
        let objects = store(serde_json::json!({
            "labels": {"key2": "value2"}, "annotations": {"key1": "value1"}
        }));
        evaluate(&objects).unwrap();
    }

    #[test]
    fn a_gateway_without_the_metadata_fails_and_says_what_is_missing() {
        let objects = store(serde_json::json!({"labels": {"key2": "value2"}}));
        let err = evaluate(&objects).unwrap_err();
        assert!(err.contains("annotations key1=value1"), "{err}");
    }
}
