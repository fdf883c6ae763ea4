//! Every manifest under deploy/ decodes into its Kubernetes type with no field left over.
//!
//! k8s-openapi types ignore unknown fields, so a misspelt key would decode silently. Each object is
//! therefore decoded into its type, encoded again, and compared with the original: a key the type
//! does not know is missing from the round trip and fails the test with its path.

use std::path::{Path, PathBuf};

use gateway_api::apis::experimental::{
    gatewayclasses::GatewayClass, gateways::Gateway, httproutes::HttpRoute,
    referencegrants::ReferenceGrant,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sluice_controller::resources::mirror_policy::MirrorPolicy;
use sluice_testing::files::files_under;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

/// The first difference between what was written and what the type kept, as a JSON path.
fn first_difference(path: &str, written: &Value, kept: &Value) -> Option<String> {
    match (written, kept) {
        (Value::Object(w), Value::Object(k)) => {
            for (key, wv) in w {
                let kv = k.get(key).unwrap_or(&Value::Null);
                if wv.is_null() && kv.is_null() {
                    continue;
                }
                if let Some(d) = first_difference(&format!("{path}.{key}"), wv, kv) {
                    return Some(d);
                }
            }
            k.keys()
                .find(|key| !w.contains_key(*key))
                .map(|key| format!("{path}.{key}: added by the type"))
        }
        (Value::Array(w), Value::Array(k)) if w.len() == k.len() => w
            .iter()
            .zip(k)
            .enumerate()
            .find_map(|(i, (wv, kv))| first_difference(&format!("{path}[{i}]"), wv, kv)),
        (w, k) if w == k => None,
        (w, k) => Some(format!("{path}: written {w}, decoded as {k}")),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let kept = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_difference("", doc, &kept) {
        None => Ok(()),
        Some(d) => Err(format!("unknown or misspelt field: {d}")),
    }
}

fn str_at<'a>(doc: &'a Value, pointer: &str) -> Option<&'a str> {
    doc.pointer(pointer).and_then(Value::as_str)
}

/// The kustomize features deploy/ uses (deploy_render/kustomize.rs renders them).
const KUSTOMIZE_KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "namespace",
    "labels",
    "resources",
    "components",
    "images",
    "patches",
    "replacements",
];

/// kustomization.yaml has no Rust type: check its shape and that every file or directory it
/// lists (resources, components, patches) exists.
fn check_kustomization(file: &Path, doc: &Value) -> Result<(), String> {
    let map = doc.as_object().ok_or("not a map")?;
    if let Some(key) = map.keys().find(|k| !KUSTOMIZE_KEYS.contains(&k.as_str())) {
        return Err(format!("unexpected key {key}"));
    }
    let dir = file.parent().ok_or("no parent directory")?;
    for name in listed_paths(doc)? {
        if !dir.join(&name).exists() {
            return Err(format!("lists {name}, which does not exist"));
        }
    }
    Ok(())
}

/// The paths a kustomization lists: `resources`, `components` and `patches[].path`.
fn listed_paths(doc: &Value) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for key in ["resources", "components"] {
        for r in doc.get(key).and_then(Value::as_array).into_iter().flatten() {
            out.push(r.as_str().ok_or("entries are strings")?.to_string());
        }
    }
    for p in doc
        .get("patches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(str_at(p, "/path").ok_or("patches name a path")?.to_string());
    }
    Ok(out)
}

/// Files a kustomization names as a patch: partial objects, checked once rendered
/// (deploy_render/).
fn patch_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in files.iter().filter(|f| f.ends_with("kustomization.yaml")) {
        let dir = file.parent().expect("a directory");
        for doc in documents(file) {
            if let Ok(paths) = listed_paths(&json!({"patches": doc.get("patches")})) {
                out.extend(paths.iter().map(|p| dir.join(p)));
            }
        }
    }
    out
}

/// PodMonitor's CRD is not in k8s-openapi: check the fields Prometheus Operator requires.
fn check_pod_monitor(doc: &Value) -> Result<(), String> {
    if str_at(doc, "/apiVersion") != Some("monitoring.coreos.com/v1") {
        return Err("apiVersion must be monitoring.coreos.com/v1".into());
    }
    let labels = doc
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or("spec.selector.matchLabels must select something")?;
    if labels.get("app.kubernetes.io/name").and_then(Value::as_str) != Some("sluice") {
        return Err(
            "must select app.kubernetes.io/name=sluice, the label every Sluice pod has".into(),
        );
    }
    let endpoints = doc
        .pointer("/spec/podMetricsEndpoints")
        .and_then(Value::as_array)
        .filter(|e| !e.is_empty())
        .ok_or("spec.podMetricsEndpoints must not be empty")?;
    for e in endpoints {
        if str_at(e, "/port") != Some("admin") || str_at(e, "/path") != Some("/metrics") {
            return Err("endpoints scrape the `admin` port at /metrics".into());
        }
    }
    Ok(())
}

/// The alert rules as the Prometheus Operator takes them; their expressions are parsed and their
/// metric names checked against what Sluice registers in gateway/tests/monitoring.rs.
fn check_prometheus_rule(doc: &Value) -> Result<(), String> {
    let groups = doc
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .filter(|g| !g.is_empty())
        .ok_or("spec.groups must not be empty")?;
    for group in groups {
        let rules = group
            .pointer("/rules")
            .and_then(Value::as_array)
            .filter(|r| !r.is_empty())
            .ok_or("every group has rules")?;
        for rule in rules {
            if str_at(rule, "/alert").is_none() || str_at(rule, "/expr").is_none() {
                return Err("every rule has an alert name and an expr".into());
            }
        }
    }
    Ok(())
}

fn check(file: &Path, doc: &Value) -> Result<String, String> {
    let api_version = str_at(doc, "/apiVersion").ok_or("no apiVersion")?;
    let kind = str_at(doc, "/kind").ok_or("no kind")?;
    let checked = match (api_version, kind) {
        ("kustomize.config.k8s.io/v1beta1", "Kustomization")
        | ("kustomize.config.k8s.io/v1alpha1", "Component") => check_kustomization(file, doc),
        ("monitoring.coreos.com/v1", "PodMonitor") => check_pod_monitor(doc),
        ("monitoring.coreos.com/v1", "PrometheusRule") => check_prometheus_rule(doc),
        ("v1", "Namespace") => round_trip::<Namespace>(doc),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("discovery.k8s.io/v1", "EndpointSlice") => round_trip::<EndpointSlice>(doc),
        ("sluice.dev/v1alpha1", "MirrorPolicy") => round_trip::<MirrorPolicy>(doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("apps/v1", "DaemonSet") => round_trip::<DaemonSet>(doc),
        ("policy/v1", "PodDisruptionBudget") => round_trip::<PodDisruptionBudget>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            round_trip::<ClusterRoleBinding>(doc)
        }
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        ("gateway.networking.k8s.io/v1", "GatewayClass") => round_trip::<GatewayClass>(doc),
        ("gateway.networking.k8s.io/v1", "Gateway") => round_trip::<Gateway>(doc),
        ("gateway.networking.k8s.io/v1", "HTTPRoute") => round_trip::<HttpRoute>(doc),
        ("gateway.networking.k8s.io/v1", "ReferenceGrant") => round_trip::<ReferenceGrant>(doc),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            round_trip::<CustomResourceDefinition>(doc)
        }
        _ => Err(format!("{api_version} {kind} has no check: add one here")),
    };
    checked.map(|()| kind.to_string())
}

fn documents(file: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(file).expect("manifest is readable");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let v: Value = serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{}: invalid YAML: {e}", file.display()));
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

#[test]
fn every_deploy_manifest_decodes_into_its_type() {
    let files = files_under(&deploy_dir(), &is_yaml);
    assert!(files.len() >= 10, "deploy/ holds the base and examples");
    let mut failures = Vec::new();
    let mut kinds = Vec::new();
    let patches = patch_files(&files);
    // deploy/prometheus/ holds Prometheus's own configuration (a rules file, a scrape_config),
    // not Kubernetes objects: gateway/tests/monitoring.rs checks those.
    let prometheus = deploy_dir().join("prometheus");
    for file in files
        .iter()
        .filter(|f| !patches.contains(f) && !f.starts_with(&prometheus))
    {
        for (i, doc) in documents(file).iter().enumerate() {
            match check(file, doc) {
                Ok(kind) => kinds.push(kind),
                Err(e) => failures.push(format!("{} (document {i}): {e}", file.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for expected in [
        "Deployment",
        "ClusterRole",
        "GatewayClass",
        "HTTPRoute",
        "PodMonitor",
    ] {
        assert!(kinds.iter().any(|k| k == expected), "no {expected} found");
    }
}

#[test]
fn a_misspelt_field_is_caught() {
    let doc: Value = serde_yaml_ng::from_str(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n  selector: {}\n  template: {}\n",
    )
    .expect("valid YAML");
    let err = check(Path::new("inline.yaml"), &doc).expect_err("replica is not a field");
    assert!(err.contains(".spec.replica"), "{err}");
}

#[test]
fn the_controller_deployment_is_hardened() {
    let docs = documents(&deploy_dir().join("base/deployment.yaml"));
    let d: Deployment = serde_json::from_value(docs[0].clone()).expect("a Deployment");
    let spec = d.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.expect("pod spec");
    assert_eq!(
        pod.security_context.and_then(|s| s.run_as_non_root),
        Some(true)
    );
    let c = &pod.containers[0];
    let sc = c
        .security_context
        .clone()
        .expect("container securityContext");
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    let probe_path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        p.as_ref()
            .and_then(|p| p.http_get.as_ref())
            .and_then(|h| h.path.clone())
    };
    assert_eq!(probe_path(&c.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(probe_path(&c.readiness_probe).as_deref(), Some("/readyz"));
    assert!(c
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .is_some());
}

#[test]
fn the_gateway_class_names_the_sluice_controller() {
    let docs = documents(&deploy_dir().join("base/gatewayclass.yaml"));
    let class: GatewayClass = serde_json::from_value(docs[0].clone()).expect("a GatewayClass");
    assert_eq!(
        class.spec.controller_name,
        sluice_controller::CONTROLLER_NAME
    );
}

/// The Dockerfile's stages as `(name, instructions)`, comments and continuations joined.
fn docker_stages(text: &str) -> Vec<(String, Vec<String>)> {
    let joined = text.replace("\\\n", " ");
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(from) = line.strip_prefix("FROM ") {
            let name = from.split(" AS ").nth(1).unwrap_or("").trim().to_string();
            stages.push((name, vec![line.to_string()]));
        } else if let Some((_, instructions)) = stages.last_mut() {
            instructions.push(line.to_string());
        }
    }
    stages
}

#[test]
fn the_image_caches_dependencies_apart_from_sources_and_runs_as_non_root() {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("Dockerfile");
    let stages = docker_stages(&text);
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["chef", "planner", "build", "runtime"]);
    let (_, build) = &stages[2];
    let position = |needle: &str| {
        build
            .iter()
            .position(|i| i.contains(needle))
            .unwrap_or_else(|| panic!("build stage lacks {needle}: {build:?}"))
    };
    assert!(
        position("cargo chef cook") < position("COPY . ."),
        "dependencies are built before the sources are copied, so their layer survives a source edit"
    );
    assert!(position("COPY . .") < position("cargo build --release --locked"));
    let (_, runtime) = &stages[3];
    assert!(runtime[0].contains("distroless"), "{runtime:?}");
    assert!(
        runtime.iter().any(|i| i == "USER 65532:65532"),
        "{runtime:?}"
    );

    let ignore =
        std::fs::read_to_string(deploy_dir().join("../.dockerignore")).expect(".dockerignore");
    let ignored: Vec<&str> = ignore.lines().map(str::trim).collect();
    for needed in ["target/", ".git/"] {
        assert!(ignored.contains(&needed), ".dockerignore lacks {needed}");
    }
}
