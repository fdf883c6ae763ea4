//! The provisioner against the fake API server: data-plane objects, ownership, knobs, and a
//! Gateway status that follows the data plane's availability.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_testing::cluster::{self, condition, set_available, set_load_balancer_ip};
use sluice_testing::{objects, until, AbortOnDrop, FakeApiServer};

const LIMIT: Duration = Duration::from_secs(20);
const GW: &str = "gateway.networking.k8s.io/v1";

async fn server_with(params: &[(&str, &str)]) -> FakeApiServer {
    let mut class = objects::gateway_class();
    class["spec"]["parametersRef"] =
        json!({"group": "", "kind": "ConfigMap", "name": "knobs", "namespace": "sluice-system"});
    let data: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut gateway = objects::gateway("demo", "web", 80);
    gateway["spec"]["infrastructure"] =
        json!({"labels": {"team": "edge"}, "annotations": {"cost-center": "42"}});
    cluster::seeded([
        objects::namespace("demo"),
        objects::namespace("sluice-system"),
        knobs(Value::Object(data)),
        class,
        gateway,
    ])
    .await
}

/// Longer than any test: whatever happens, happens because a watch noticed a change.
const NO_RESYNC: Duration = Duration::from_secs(3600);

/// A leading controller: the replica `sluice controller` runs, always holding the Lease. Only a
/// test that needs repeated reconciles of an unchanged world passes a short `resync`.
fn start_controller(server: &FakeApiServer, resync: Duration) -> AbortOnDrop {
    cluster::leading_controller(server, resync)
}

/// The provisioned Deployment of Gateway `demo/web`.
fn web_deployment(server: &FakeApiServer) -> Option<Value> {
    server.get("apps/v1", "Deployment", Some("demo"), "sluice-web")
}

/// The provisioned ClusterRoleBinding of Gateway `demo/web`.
fn web_binding(server: &FakeApiServer) -> Option<Value> {
    server.get(
        "rbac.authorization.k8s.io/v1",
        "ClusterRoleBinding",
        None,
        "sluice-dataplane-demo.web",
    )
}

/// The provisioned Service of Gateway `demo/web`.
fn web_service(server: &FakeApiServer) -> Option<Value> {
    server.get("v1", "Service", Some("demo"), "sluice-web")
}

fn programmed(server: &FakeApiServer) -> Option<(String, String)> {
    let (status, reason, _) = gateway_condition(server, "Programmed")?;
    Some((status, reason))
}

#[tokio::test]
async fn an_accepted_gateway_gets_its_data_plane_and_is_programmed_once_available() {
    let server = server_with(&[("replicas", "3"), ("serviceType", "LoadBalancer")]).await;
    let _tasks = start_controller(&server, NO_RESYNC);

    let deployment = until("the Deployment", LIMIT, || web_deployment(&server)).await;
    let gateway = server
        .get(GW, "Gateway", Some("demo"), "web")
        .expect("gateway");
    let owner = &deployment["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), &owner["uid"]),
        (Some("Gateway"), &gateway["metadata"]["uid"])
    );
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        deployment["metadata"]["labels"]["team"], "edge",
        "infrastructure labels propagate"
    );
    assert_eq!(deployment["metadata"]["annotations"]["cost-center"], "42");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "example.test/sluice:dev");
    assert!(container["args"]
        .as_array()
        .expect("args")
        .contains(&json!("--gateway=demo/web")));
    assert_eq!(
        container["securityContext"]["capabilities"]["add"],
        json!(["NET_BIND_SERVICE"]),
        "port 80"
    );

    let service = until("the Service", LIMIT, || web_service(&server)).await;
    assert_eq!(service["spec"]["type"], "LoadBalancer");
    assert_eq!(service["spec"]["ports"][0]["port"], 80);
    assert!(server
        .get("v1", "ServiceAccount", Some("demo"), "sluice-web")
        .is_some());
    assert!(server
        .get(
            "policy/v1",
            "PodDisruptionBudget",
            Some("demo"),
            "sluice-web"
        )
        .is_some());
    let binding = until("the ClusterRoleBinding", LIMIT, || web_binding(&server)).await;
    assert_eq!(binding["roleRef"]["name"], "sluice-dataplane");

    let pending = until("Programmed False", LIMIT, || {
        programmed(&server).filter(|(s, _)| s == "False")
    })
    .await;
    assert_eq!(pending.1, "Pending");

    // The Deployment controller reports a ready pod, the cloud an address.
    set_available(&server, "demo", "sluice-web", 1);
    until("AddressNotAssigned", LIMIT, || {
        programmed(&server).filter(|(_, r)| r == "AddressNotAssigned")
    })
    .await;
    set_load_balancer_ip(&server, "demo", "sluice-web", "203.0.113.7");
    until_programmed_at(&server, "203.0.113.7").await;

    let events = server.list("events.k8s.io/v1", "Event");
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(
        reasons.contains(&"Pending") && reasons.contains(&"Programmed"),
        "one Event per data-plane transition: {reasons:?}"
    );
    assert_eq!(events[0]["regarding"]["kind"], "Gateway");

    // Deleting the Gateway collects everything it owns, and the binding goes too.
    server
        .delete(GW, "Gateway", Some("demo"), "web")
        .expect("deleted");
    assert!(web_deployment(&server).is_none());
    assert!(web_service(&server).is_none());
    until("the binding to be removed", LIMIT, || {
        server
            .get(
                "rbac.authorization.k8s.io/v1",
                "ClusterRoleBinding",
                None,
                "sluice-dataplane-demo.web",
            )
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn infrastructure_labels_and_annotations_are_on_every_provisioned_object_and_pod() {
    let server = server_with(&[]).await;
    let _tasks = start_controller(&server, NO_RESYNC);

    let deployment = until("the Deployment", LIMIT, || web_deployment(&server)).await;
    let service = until("the Service", LIMIT, || web_service(&server)).await;
    let account = until("the ServiceAccount", LIMIT, || {
        server.get("v1", "ServiceAccount", Some("demo"), "sluice-web")
    })
    .await;
    let budget = until("the PodDisruptionBudget", LIMIT, || {
        server.get(
            "policy/v1",
            "PodDisruptionBudget",
            Some("demo"),
            "sluice-web",
        )
    })
    .await;
    let binding = until("the ClusterRoleBinding", LIMIT, || web_binding(&server)).await;
    let pod = deployment["spec"]["template"].clone();
    for (what, object) in [
        ("Deployment", &deployment),
        ("pod template", &pod),
        ("Service", &service),
        ("ServiceAccount", &account),
        ("PodDisruptionBudget", &budget),
        ("ClusterRoleBinding", &binding),
    ] {
        let meta = &object["metadata"];
        assert_eq!(meta["labels"]["team"], "edge", "{what} labels");
        assert_eq!(
            meta["annotations"]["cost-center"], "42",
            "{what} annotations"
        );
        assert_eq!(
            meta["labels"]["gateway.networking.k8s.io/gateway-name"], "web",
            "{what}: the Gateway API's generated-resource label"
        );
    }
}

#[tokio::test]
async fn a_gateway_parameters_ref_overrides_its_class_parameters_for_its_data_plane_only() {
    let mut class = objects::gateway_class();
    class["spec"]["parametersRef"] =
        json!({"group": "", "kind": "ConfigMap", "name": "knobs", "namespace": "sluice-system"});
    let mut gateway = objects::gateway("demo", "web", 80);
    gateway["spec"]["infrastructure"] =
        json!({"parametersRef": {"group": "", "kind": "ConfigMap", "name": "web-params"}});
    let web_params = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "web-params", "namespace": "demo"},
        "data": {"replicas": "4"}
    });
    let server = cluster::seeded([
        objects::namespace("demo"),
        objects::namespace("sluice-system"),
        knobs(json!({"replicas": "2", "serviceType": "NodePort"})),
        web_params,
        class,
        gateway,
    ])
    .await;
    let _tasks = start_controller(&server, NO_RESYNC);

    let deployment = until("the Deployment", LIMIT, || web_deployment(&server)).await;
    assert_eq!(
        deployment["spec"]["replicas"], 4,
        "the Gateway's own key wins"
    );
    let service = until("the Service", LIMIT, || web_service(&server)).await;
    assert_eq!(
        service["spec"]["type"], "NodePort",
        "the class's other keys stay"
    );
    let accepted = until("Accepted", LIMIT, || gateway_condition(&server, "Accepted")).await;
    assert_eq!(accepted.0, "True", "{accepted:?}");
}

#[tokio::test]
async fn a_daemonset_class_gets_a_daemonset_on_the_host_network() {
    let server = server_with(&[
        ("kind", "DaemonSet"),
        ("hostNetwork", "true"),
        ("serviceType", "NodePort"),
    ])
    .await;
    let _tasks = start_controller(&server, NO_RESYNC);
    let ds = until("the DaemonSet", LIMIT, || {
        server.get("apps/v1", "DaemonSet", Some("demo"), "sluice-web")
    })
    .await;
    assert_eq!(ds["spec"]["template"]["spec"]["hostNetwork"], true);
    assert!(web_deployment(&server).is_none());
    let svc = until("the Service", LIMIT, || web_service(&server)).await;
    assert_eq!(svc["spec"]["type"], "NodePort");
}

/// Waits for `Programmed: True`, then checks that the Gateway's one address is `ip`.
async fn until_programmed_at(server: &FakeApiServer, ip: &str) {
    until("Programmed True", LIMIT, || {
        programmed(server).filter(|(s, _)| s == "True")
    })
    .await;
    let gateway = server
        .get(GW, "Gateway", Some("demo"), "web")
        .expect("gateway");
    assert_eq!(
        gateway["status"]["addresses"],
        json!([{"type": "IPAddress", "value": ip}])
    );
}

/// `(status, reason, message)` of a condition in an object's status.
fn condition_of(object: Option<Value>, type_: &str) -> Option<(String, String, String)> {
    let object = object?;
    let c = condition(&object, "/status/conditions", type_)?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str().unwrap_or_default().to_string(),
    ))
}

fn class_accepted(server: &FakeApiServer) -> Option<(String, String, String)> {
    condition_of(server.get(GW, "GatewayClass", None, "sluice"), "Accepted")
}

fn gateway_condition(server: &FakeApiServer, type_: &str) -> Option<(String, String, String)> {
    condition_of(server.get(GW, "Gateway", Some("demo"), "web"), type_)
}

fn knobs(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "knobs", "namespace": "sluice-system"}, "data": data})
}

#[tokio::test]
async fn invalid_class_parameters_reject_the_class_and_its_gateways_until_fixed() {
    let server = server_with(&[("replica", "2")]).await;
    let _tasks = start_controller(&server, NO_RESYNC);
    let (status, _, message) = until("GatewayClass InvalidParameters", LIMIT, || {
        class_accepted(&server).filter(|(_, r, _)| r == "InvalidParameters")
    })
    .await;
    assert_eq!(status, "False");
    assert!(
        message.starts_with("ConfigMap sluice-system/knobs: unknown key \"replica\""),
        "{message}"
    );
    let (status, _, message) = until("Gateway InvalidParameters", LIMIT, || {
        gateway_condition(&server, "Accepted").filter(|(_, r, _)| r == "InvalidParameters")
    })
    .await;
    assert_eq!(status, "False");
    assert!(
        message.contains("GatewayClass sluice: ConfigMap"),
        "{message}"
    );
    let programmed = gateway_condition(&server, "Programmed").expect("Programmed");
    assert_eq!(
        (programmed.0.as_str(), programmed.1.as_str()),
        ("False", "Invalid")
    );
    assert!(web_deployment(&server).is_none());
    let events = server.list("events.k8s.io/v1", "Event");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "InvalidParameters" && e["type"] == "Warning"),
        "{events:?}"
    );

    // Fixing the ConfigMap accepts the class and provisions the data plane.
    server
        .apply(knobs(json!({"replicas": "2"})))
        .expect("fixed ConfigMap");
    until("GatewayClass Accepted", LIMIT, || {
        class_accepted(&server).filter(|(s, _, _)| s == "True")
    })
    .await;
    let deployment = until("the Deployment", LIMIT, || web_deployment(&server)).await;
    assert_eq!(deployment["spec"]["replicas"], 2);
    until("Gateway Accepted", LIMIT, || {
        gateway_condition(&server, "Accepted").filter(|(s, _, _)| s == "True")
    })
    .await;
}

#[tokio::test]
async fn a_missing_parameters_config_map_rejects_the_class_until_it_exists() {
    let server = server_with(&[]).await;
    server
        .delete("v1", "ConfigMap", Some("sluice-system"), "knobs")
        .expect("deleted");
    let _tasks = start_controller(&server, NO_RESYNC);
    let (_, reason, message) = until("GatewayClass not accepted", LIMIT, || {
        class_accepted(&server).filter(|(s, _, _)| s == "False")
    })
    .await;
    assert_eq!(reason, "InvalidParameters");
    assert_eq!(message, "ConfigMap sluice-system/knobs not found");

    server.create(knobs(json!({}))).expect("ConfigMap");
    until("GatewayClass Accepted", LIMIT, || {
        class_accepted(&server).filter(|(s, _, _)| s == "True")
    })
    .await;
    until("the Deployment", LIMIT, || web_deployment(&server)).await;
    until("Programmed False Pending", LIMIT, || {
        programmed(&server).filter(|(_, r)| r == "Pending")
    })
    .await;

    // Once things are quiet, only the ConfigMap watch can notice it going and coming back.
    server
        .delete("v1", "ConfigMap", Some("sluice-system"), "knobs")
        .expect("deleted again");
    until("GatewayClass not accepted again", LIMIT, || {
        class_accepted(&server).filter(|(s, _, _)| s == "False")
    })
    .await;
    server.create(knobs(json!({}))).expect("ConfigMap again");
    until("GatewayClass Accepted again", LIMIT, || {
        class_accepted(&server).filter(|(s, _, _)| s == "True")
    })
    .await;
}

#[tokio::test]
async fn a_parameters_ref_of_the_wrong_kind_rejects_the_class_and_its_gateways() {
    let server = server_with(&[]).await;
    let mut class = server
        .get(GW, "GatewayClass", None, "sluice")
        .expect("class");
    class["spec"]["parametersRef"] =
        json!({"group": "", "kind": "Secret", "name": "knobs", "namespace": "sluice-system"});
    server.apply(class).expect("class with a Secret reference");
    let _tasks = start_controller(&server, NO_RESYNC);
    // Translation rejects the class first; the provisioner's message says what to do.
    until("the provisioner's InvalidParameters", LIMIT, || {
        class_accepted(&server).filter(|(s, r, m)| {
            s == "False" && r == "InvalidParameters" && m.contains("must be a core ConfigMap")
        })
    })
    .await;
    until("Gateway InvalidParameters", LIMIT, || {
        gateway_condition(&server, "Accepted").filter(|(_, r, _)| r == "InvalidParameters")
    })
    .await;
    assert!(web_deployment(&server).is_none());
}

#[tokio::test]
async fn reconciling_an_unchanged_gateway_writes_nothing() {
    let server = server_with(&[]).await;
    let _tasks = start_controller(&server, Duration::from_millis(100));
    until("the Deployment", LIMIT, || web_deployment(&server)).await;
    let rv = |kind: &str, api: &str| {
        server
            .get(api, kind, Some("demo"), "sluice-web")
            .map(|o| o["metadata"]["resourceVersion"].clone())
    };
    let before = (rv("Deployment", "apps/v1"), rv("Service", "v1"));
    let writes_before = server.writes().len();
    // Several resync periods.
    until("more reconciles", LIMIT, || {
        (server.writes().len() > writes_before + 20).then_some(())
    })
    .await;
    assert_eq!(
        (rv("Deployment", "apps/v1"), rv("Service", "v1")),
        before,
        "applies changed nothing"
    );
}

#[tokio::test]
async fn a_deployment_becoming_available_programs_the_gateway_without_a_resync() {
    let server = server_with(&[("serviceType", "ClusterIP")]).await;
    let _tasks = start_controller(&server, NO_RESYNC);
    until("the Deployment", LIMIT, || web_deployment(&server)).await;
    until("Programmed False Pending", LIMIT, || {
        programmed(&server).filter(|(s, r)| s == "False" && r == "Pending")
    })
    .await;
    // A ClusterIP Service has its address at once (the fake API server allocates it); only an
    // available pod is missing.
    let cluster_ip = web_service(&server)
        .and_then(|s| s["spec"]["clusterIP"].as_str().map(str::to_string))
        .expect("a cluster IP");
    set_available(&server, "demo", "sluice-web", 1);
    until_programmed_at(&server, &cluster_ip).await;

    // Once things are quiet, only the Deployment watch can notice the pod going and coming back.
    for (available, wanted) in [(0, "False"), (1, "True")] {
        set_available(&server, "demo", "sluice-web", available);
        until("Programmed to follow the pod", LIMIT, || {
            programmed(&server).filter(|(s, _)| s == wanted)
        })
        .await;
    }

    // Deleting a provisioned object by hand is repaired as soon as it is noticed.
    server
        .delete("v1", "Service", Some("demo"), "sluice-web")
        .expect("deleted");
    until("the Service again", LIMIT, || web_service(&server)).await;
}

#[tokio::test]
async fn a_253_character_gateway_name_gets_short_object_names_found_by_label() {
    let server = server_with(&[]).await;
    let long = format!("edge-{}", "x".repeat(248));
    assert_eq!(long.len(), 253);
    server
        .create(objects::gateway("demo", &long, 8080))
        .expect("long-named Gateway");
    let _tasks = start_controller(&server, NO_RESYNC);
    let gateway = server
        .get(GW, "Gateway", Some("demo"), &long)
        .expect("gateway");
    let owned_by_it =
        |o: &Value| o["metadata"]["ownerReferences"][0]["uid"] == gateway["metadata"]["uid"];
    let service = until("its Service", LIMIT, || {
        server.list("v1", "Service").into_iter().find(owned_by_it)
    })
    .await;
    let name = service["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    assert!(
        name.len() <= 63 && name.starts_with("sluice-edge-x"),
        "{name}"
    );
    let label = service["metadata"]["labels"]["sluice.dev/gateway"]
        .as_str()
        .expect("gateway label")
        .to_string();
    assert!(label.len() <= 63, "{label}");
    assert_eq!(service["spec"]["selector"]["sluice.dev/gateway"], label);

    let deployment = until("its Deployment, under the same name", LIMIT, || {
        server.get("apps/v1", "Deployment", Some("demo"), &name)
    })
    .await;
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"]["sluice.dev/gateway"],
        label
    );
    assert_eq!(
        deployment["metadata"]["ownerReferences"][0]["name"], long,
        "the owner reference names the Gateway in full"
    );
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(args
        .as_array()
        .expect("args")
        .contains(&json!(format!("--gateway=demo/{long}"))));
    // The short Gateway beside it keeps its readable names.
    until("the other Gateway's Service", LIMIT, || {
        web_service(&server)
    })
    .await;
}

#[tokio::test]
async fn mirror_parameters_become_proxy_flags_and_bad_ones_reject_the_class() {
    let server = server_with(&[
        ("mirrorHostSuffix", "-shadow"),
        ("mirrorMaxInflight", "64"),
        ("mirrorTimeoutMs", "2500"),
        ("mirrorAccessLog", "true"),
    ])
    .await;
    let _tasks = start_controller(&server, NO_RESYNC);
    let deployment = until("the Deployment", LIMIT, || web_deployment(&server)).await;
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    for flag in [
        "--mirror-host-suffix=-shadow",
        "--mirror-max-inflight=64",
        "--mirror-timeout-ms=2500",
        "--mirror-access-log",
    ] {
        assert!(
            args.as_array().expect("args").contains(&json!(flag)),
            "{flag} in {args}"
        );
    }

    server
        .apply(knobs(json!({"mirrorMaxInflight": "lots"})))
        .expect("a bad value");
    let (_, _, message) = until("GatewayClass InvalidParameters", LIMIT, || {
        class_accepted(&server).filter(|(s, _, _)| s == "False")
    })
    .await;
    assert!(
        message.ends_with("mirrorMaxInflight must be a non-negative integer, not \"lots\""),
        "{message}"
    );
}
