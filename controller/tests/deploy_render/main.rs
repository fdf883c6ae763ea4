//! Every kustomization under deploy/ rendered as `kubectl apply -k` would, and what an install
//! relies on checked on the result: each object decodes into its Kubernetes type, the base needs
//! no CRD but the Gateway API's, one image everywhere, namespaces where they belong, and the
//! data plane's RBAC grants no Secret.
//!
//! Rendering uses the small in-test kustomize in `kustomize.rs` (the features deploy/ uses, and
//! a loud failure on any other), so the checks run without a cluster tool; where `kubectl` is on
//! PATH, `the_in_test_renderer_agrees_with_kubectl_kustomize` checks it against the real one.

mod kustomize;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use gateway_api::apis::experimental::gatewayclasses::GatewayClass;
use gateway_api::apis::experimental::gateways::Gateway;
use gateway_api::apis::experimental::httproutes::HttpRoute;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sluice_controller::provision::params::{DataPlaneParams, WorkloadKind};
use sluice_testing::files::files_under;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// Every directory whose kustomization.yaml is a Kustomization (components are rendered through
/// the kustomizations that include them), relative to deploy/.
fn kustomizations() -> Vec<String> {
    let is_kustomization = |p: &Path| p.file_name().is_some_and(|n| n == "kustomization.yaml");
    files_under(&deploy_dir(), &is_kustomization)
        .into_iter()
        .filter(|file| {
            let text = std::fs::read_to_string(file).expect("readable");
            let doc: Value = serde_yaml_ng::from_str(&text).expect("YAML");
            doc["kind"] == "Kustomization"
        })
        .map(|file| {
            let dir = file.parent().expect("a directory");
            let rel = dir.strip_prefix(deploy_dir()).expect("under deploy/");
            rel.to_string_lossy().replace('\\', "/")
        })
        .collect()
}

/// The objects `dir` (relative to deploy/) renders to, sorted by kind, namespace and name.
fn render(dir: &str) -> Vec<Value> {
    let mut objects = kustomize::build(&deploy_dir().join(dir))
        .unwrap_or_else(|e| panic!("rendering {dir}: {e}"));
    objects.sort_by_key(sort_key);
    objects
}

fn sort_key(o: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&o["kind"]),
        s(&o["metadata"]["namespace"]),
        s(&o["metadata"]["name"]),
    )
}

/// `kubectl kustomize` on PATH, if there is one.
fn kubectl() -> Option<Command> {
    let works = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    works.then(|| {
        let mut c = Command::new("kubectl");
        c.arg("kustomize");
        c
    })
}

/// What `kubectl kustomize` renders `dir` to, sorted as [`render`] sorts.
fn render_with(mut kubectl: Command, dir: &str) -> Vec<Value> {
    let out = kubectl
        .arg(deploy_dir().join(dir))
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut objects: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| {
            let v: Value = serde::Deserialize::deserialize(d)
                .unwrap_or_else(|e| panic!("{dir}: kubectl rendered invalid YAML: {e}"));
            v
        })
        .filter(|v| !v.is_null())
        .collect();
    objects.sort_by_key(sort_key);
    objects
}

#[test]
fn the_in_test_renderer_agrees_with_kubectl_kustomize() {
    let Some(_) = kubectl() else {
        eprintln!("kubectl is not on PATH: the in-test kustomize is not cross-checked here");
        return;
    };
    for dir in kustomizations() {
        let real = render_with(kubectl().expect("kubectl"), &dir);
        assert_eq!(
            integral_numbers(render(&dir)),
            integral_numbers(real),
            "{dir}: the in-test kustomize differs from kubectl's"
        );
    }
}

/// kubectl prints a float with no fraction (`minimum: 0.0` in a generated CRD) as `0`; the value
/// is the same, so both sides are compared with such numbers as integers.
fn integral_numbers(objects: Vec<Value>) -> Vec<Value> {
    fn walk(v: Value) -> Value {
        match v {
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    #[allow(clippy::cast_possible_truncation)]
                    let i = f as i64;
                    Value::from(i)
                }
                _ => Value::Number(n),
            },
            Value::Array(a) => Value::Array(a.into_iter().map(walk).collect()),
            Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, walk(v))).collect()),
            other => other,
        }
    }
    objects.into_iter().map(walk).collect()
}

#[test]
fn the_in_test_renderer_refuses_what_it_does_not_know() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamePrefix: x-\n",
    )
    .expect("written");
    let err = kustomize::build(dir.path()).expect_err("namePrefix is not implemented");
    assert!(err.contains("namePrefix"), "{err}");
}

fn kind_of(o: &Value) -> (&str, &str) {
    (
        o["apiVersion"].as_str().unwrap_or_default(),
        o["kind"].as_str().unwrap_or_default(),
    )
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn typed<T: DeserializeOwned>(o: &Value) -> T {
    serde_json::from_value(o.clone())
        .unwrap_or_else(|e| panic!("{:?} {}: {e}", kind_of(o), name_of(o)))
}

/// Decodes `o` into its type; an object of a kind not listed here fails (add its type).
fn decode(o: &Value) {
    match kind_of(o) {
        ("v1", "Namespace") => drop(typed::<Namespace>(o)),
        ("v1", "ServiceAccount") => drop(typed::<ServiceAccount>(o)),
        ("v1", "ConfigMap") => drop(typed::<ConfigMap>(o)),
        ("v1", "Service") => drop(typed::<Service>(o)),
        ("apps/v1", "Deployment") => drop(typed::<Deployment>(o)),
        ("apps/v1", "DaemonSet") => drop(typed::<DaemonSet>(o)),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => drop(typed::<ClusterRole>(o)),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
            drop(typed::<ClusterRoleBinding>(o))
        }
        ("rbac.authorization.k8s.io/v1", "Role") => drop(typed::<Role>(o)),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => drop(typed::<RoleBinding>(o)),
        ("gateway.networking.k8s.io/v1", "GatewayClass") => drop(typed::<GatewayClass>(o)),
        ("gateway.networking.k8s.io/v1", "Gateway") => drop(typed::<Gateway>(o)),
        ("gateway.networking.k8s.io/v1", "HTTPRoute") => drop(typed::<HttpRoute>(o)),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => {
            drop(typed::<CustomResourceDefinition>(o))
        }
        // No Rust types: deploy_manifests.rs checks their fields in the source files.
        ("monitoring.coreos.com/v1", "PodMonitor" | "PrometheusRule") => {}
        (api_version, kind) => panic!("{api_version} {kind} has no type here: add one"),
    }
}

/// Kinds that are cluster-scoped; every other rendered object must name its namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "CustomResourceDefinition",
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "GatewayClass",
];

/// Every pod spec's container images, and the image the controller hands its data planes.
fn images(o: &Value) -> Vec<String> {
    let pod: Option<PodSpec> = match kind_of(o).1 {
        "Deployment" => typed::<Deployment>(o).spec.and_then(|s| s.template.spec),
        "DaemonSet" => typed::<DaemonSet>(o).spec.and_then(|s| s.template.spec),
        _ => None,
    };
    let containers = pod.map(|p| p.containers).unwrap_or_default();
    let mut out: Vec<String> = containers.iter().filter_map(|c| c.image.clone()).collect();
    out.extend(
        containers
            .iter()
            .flat_map(|c| c.env.iter().flatten())
            .filter(|e| e.name == "SLUICE_DATAPLANE_IMAGE")
            .filter_map(|e| e.value.clone()),
    );
    out
}

fn cluster_role<'a>(objects: &'a [Value], name: &str) -> ClusterRole {
    let found: Vec<&'a Value> = objects
        .iter()
        .filter(|o| kind_of(o).1 == "ClusterRole" && name_of(o) == name)
        .collect();
    assert_eq!(found.len(), 1, "one ClusterRole {name}");
    typed(found[0])
}

fn grants(rule: &PolicyRule, resource: &str) -> bool {
    rule.resources
        .iter()
        .flatten()
        .any(|r| r == resource || r == "*")
}

#[test]
fn every_kustomization_renders_and_every_object_decodes_into_its_type() {
    let dirs = kustomizations();
    for expected in [
        "base",
        "overlays/daemonset",
        "overlays/prometheus-operator",
        "examples/mirror",
    ] {
        assert!(dirs.iter().any(|d| d == expected), "{expected} in {dirs:?}");
    }
    for dir in &dirs {
        let objects = render(dir);
        assert!(!objects.is_empty(), "{dir} renders nothing");
        for o in &objects {
            decode(o);
            let namespace = o["metadata"]["namespace"].as_str();
            let kind = kind_of(o).1;
            if CLUSTER_SCOPED.contains(&kind) {
                assert_eq!(
                    namespace,
                    None,
                    "{dir}: {kind} {} is cluster-scoped",
                    name_of(o)
                );
            } else {
                assert!(
                    namespace.is_some(),
                    "{dir}: {kind} {} has no namespace",
                    name_of(o)
                );
            }
        }
    }
}

#[test]
fn the_base_installs_on_a_cluster_with_only_the_gateway_api_crds() {
    let objects = render("base");
    // Built-in groups plus the Gateway API's; nothing of another operator's CRDs. Sluice may
    // install CRDs of its own (they need nothing installed first).
    let allowed = [
        "v1",
        "apps/v1",
        "rbac.authorization.k8s.io/v1",
        "apiextensions.k8s.io/v1",
        "gateway.networking.k8s.io/v1",
    ];
    for o in &objects {
        let (api_version, kind) = kind_of(o);
        assert!(
            allowed.contains(&api_version),
            "base has {api_version} {kind}"
        );
        if let Some(ns) = o["metadata"]["namespace"].as_str() {
            assert_eq!(ns, "sluice-system", "{kind} {}", name_of(o));
        }
    }
    let operator = render("overlays/prometheus-operator");
    assert!(
        operator
            .iter()
            .any(|o| kind_of(o) == ("monitoring.coreos.com/v1", "PodMonitor")),
        "the PodMonitor lives in the prometheus-operator overlay"
    );
    assert_eq!(
        operator.len() - objects.len(),
        operator
            .iter()
            .filter(|o| kind_of(o).0 == "monitoring.coreos.com/v1")
            .count(),
        "the overlay adds the operator's objects to the base and nothing else"
    );
}

#[test]
fn one_image_is_set_in_one_place_and_used_everywhere() {
    let component =
        std::fs::read_to_string(deploy_dir().join("components/image/kustomization.yaml"))
            .expect("the image component");
    let component: Value = serde_yaml_ng::from_str(&component).expect("YAML");
    let image = &component["images"][0];
    let expected = format!(
        "{}:{}",
        image["newName"].as_str().expect("newName"),
        image["newTag"].as_str().expect("newTag")
    );
    let mut seen = BTreeSet::new();
    for dir in kustomizations() {
        for o in render(&dir) {
            seen.extend(images(&o).into_iter().map(|i| (dir.clone(), i)));
        }
    }
    let distinct: BTreeSet<&String> = seen.iter().map(|(_, i)| i).collect();
    assert_eq!(distinct, BTreeSet::from([&expected]), "{seen:?}");
    assert!(
        seen.iter().any(|(dir, _)| dir == "base"),
        "the controller's image, and its data planes'"
    );
}

#[test]
fn the_data_plane_role_reads_no_secret_and_writes_nothing() {
    let objects = render("base");
    let dataplane = cluster_role(&objects, "sluice-dataplane");
    for rule in dataplane.rules.iter().flatten() {
        assert!(!grants(rule, "secrets"), "{rule:?}");
        assert!(
            rule.verbs
                .iter()
                .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
            "read-only: {rule:?}"
        );
        assert_eq!(rule.resource_names, None);
    }
    // It still reads what translating its Gateway needs.
    for needed in [
        "gateways",
        "httproutes",
        "services",
        "endpointslices",
        "namespaces",
        "configmaps",
    ] {
        assert!(
            dataplane.rules.iter().flatten().any(|r| grants(r, needed)),
            "the data plane reads {needed}"
        );
    }
}

#[test]
fn the_controller_may_grant_secret_reads_only_because_it_holds_them() {
    let objects = render("base");
    let controller = cluster_role(&objects, "sluice-controller");
    let rules: Vec<&PolicyRule> = controller.rules.iter().flatten().collect();
    assert!(
        rules
            .iter()
            .all(|r| !r.verbs.iter().any(|v| v == "*" || v == "escalate")),
        "no wildcard verbs, no escalate"
    );
    let secrets: Vec<&&PolicyRule> = rules.iter().filter(|r| grants(r, "secrets")).collect();
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].verbs, ["get", "list", "watch"]);
    assert!(rules
        .iter()
        .any(|r| grants(r, "roles") && grants(r, "rolebindings")));
    let bind: Vec<&&PolicyRule> = rules
        .iter()
        .filter(|r| r.verbs.iter().any(|v| v == "bind"))
        .collect();
    assert_eq!(bind.len(), 1);
    assert_eq!(
        bind[0].resource_names,
        Some(vec!["sluice-dataplane".to_string()])
    );
}

/// The data-plane parameters the class of `dir` gets.
fn class_params(dir: &str) -> DataPlaneParams {
    let objects = render(dir);
    let cm = objects
        .iter()
        .find(|o| kind_of(o).1 == "ConfigMap" && name_of(o) == "sluice-dataplane-defaults")
        .expect("the class parameters");
    DataPlaneParams::from_config_map(&typed(cm)).expect("valid parameters")
}

#[test]
fn the_daemonset_overlay_gives_every_gateway_a_daemonset_data_plane() {
    assert_eq!(class_params("base").kind, WorkloadKind::Deployment);
    assert_eq!(
        class_params("overlays/daemonset").kind,
        WorkloadKind::DaemonSet
    );
}
