//! The provisioner's per-Gateway Secret access against the fake API server: a Role naming exactly
//! the Secrets the Gateway's listeners reference, in each namespace holding one, kept in step with
//! the listeners and removed with the Gateway.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_testing::{cluster, objects, until, FakeApiServer};

const LIMIT: Duration = Duration::from_secs(20);
const RBAC: &str = "rbac.authorization.k8s.io/v1";
/// Role and RoleBinding name of Gateway `demo/web`'s Secret access, in every namespace.
const ACCESS: &str = "sluice-dataplane-demo.web";

/// Gateway `demo/web` with one HTTPS listener referencing `refs` (`(namespace, name)`).
fn https_gateway(refs: &[(Option<&str>, &str)]) -> Value {
    let refs: Vec<Value> = refs
        .iter()
        .map(|(ns, name)| match ns {
            Some(ns) => json!({"name": name, "namespace": ns}),
            None => json!({"name": name}),
        })
        .collect();
    let mut gw = objects::gateway("demo", "web", 8443);
    gw["spec"]["listeners"] = json!([{
        "name": "https", "port": 8443, "protocol": "HTTPS",
        "tls": {"mode": "Terminate", "certificateRefs": refs},
    }]);
    gw
}

fn grant_from_demo() -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ReferenceGrant",
        "metadata": {"name": "demo-gateways", "namespace": "certs"},
        "spec": {
            "from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "demo"}],
            "to": [{"group": "", "kind": "Secret", "name": "shared"}],
        },
    })
}

/// The Secret names the Role in `namespace` grants, if it exists.
fn granted(server: &FakeApiServer, namespace: &str) -> Option<Vec<String>> {
    let role = server.get(RBAC, "Role", Some(namespace), ACCESS)?;
    let rules = role["rules"].as_array()?;
    assert_eq!(rules.len(), 1, "{role}");
    assert_eq!(rules[0]["resources"], json!(["secrets"]));
    assert_eq!(rules[0]["verbs"], json!(["get", "list", "watch"]));
    let names = rules[0]["resourceNames"].as_array()?;
    Some(
        names
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect(),
    )
}

fn binding_subject(server: &FakeApiServer, namespace: &str) -> Option<Value> {
    let binding = server.get(RBAC, "RoleBinding", Some(namespace), ACCESS)?;
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], ACCESS);
    Some(binding["subjects"][0].clone())
}

#[tokio::test]
async fn a_data_plane_is_granted_exactly_its_listeners_secrets_and_loses_them_with_the_gateway() {
    let server = cluster::seeded([
        objects::namespace("demo"),
        objects::namespace("certs"),
        objects::gateway_class(),
        grant_from_demo(),
        https_gateway(&[
            (None, "web-cert"),
            (Some("certs"), "shared"),
            (Some("certs"), "other"),
        ]),
    ])
    .await;
    let _tasks = cluster::leading_controller(&server, Duration::from_secs(3600));

    let demo = until("the Role in demo", LIMIT, || granted(&server, "demo")).await;
    assert_eq!(demo, ["web-cert"]);
    let certs = until("the Role in certs", LIMIT, || granted(&server, "certs")).await;
    assert_eq!(certs, ["shared"], "certs/other has no ReferenceGrant");
    for ns in ["demo", "certs"] {
        let subject = until("the RoleBinding", LIMIT, || binding_subject(&server, ns)).await;
        assert_eq!(
            subject,
            json!({"kind": "ServiceAccount", "name": "sluice-web", "namespace": "demo"})
        );
    }
    assert!(
        granted(&server, "default").is_none(),
        "no Role where no Secret is referenced"
    );

    // The listener's references change: the Role follows, and the namespace no longer referenced
    // loses its Role and RoleBinding.
    server
        .apply(https_gateway(&[(None, "web-cert"), (None, "web-cert-2")]))
        .expect("gateway update");
    until("the Role to name both", LIMIT, || {
        granted(&server, "demo").filter(|names| names == &["web-cert", "web-cert-2"])
    })
    .await;
    until("the Role in certs to go", LIMIT, || {
        granted(&server, "certs").is_none().then_some(())
    })
    .await;
    assert!(server
        .get(RBAC, "RoleBinding", Some("certs"), ACCESS)
        .is_none());

    // A Role in another namespace cannot be owned by the Gateway: the provisioner removes it.
    server
        .apply(https_gateway(&[(Some("certs"), "shared")]))
        .expect("gateway update");
    until("the Role in certs", LIMIT, || granted(&server, "certs")).await;
    server
        .delete(
            "gateway.networking.k8s.io/v1",
            "Gateway",
            Some("demo"),
            "web",
        )
        .expect("gateway deleted");
    until("every Secret Role to go", LIMIT, || {
        let left = server
            .list(RBAC, "Role")
            .into_iter()
            .chain(server.list(RBAC, "RoleBinding"))
            .filter(|o| o["metadata"]["name"] == ACCESS)
            .count();
        (left == 0).then_some(())
    })
    .await;
}
