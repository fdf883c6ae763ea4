//! ListenerSets in cluster mode, against the fake API server: the kube source watches them, the
//! status writer writes their status, the Gateway's `attachedListenerSets` and the status of
//! routes attached to them, and the provisioner exposes their ports on the Gateway's data plane.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_controller::leader;
use sluice_controller::provision::{
    GatewayKey, ProvisionedDataPlane, ProvisionerConfig, Provisioning,
};
use sluice_controller::publish::Store;
use sluice_controller::replica;
use sluice_controller::sources::kube::KubeSource;
use sluice_controller::status_writer::StatusWriter;
use sluice_testing::cluster::{self, condition, fast_lease};
use sluice_testing::{objects, until, AbortOnDrop, FakeApiServer};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(20);
const GW: &str = "gateway.networking.k8s.io/v1";

/// ListenerSet `namespace/name` for Gateway `demo/web`, one HTTP listener `extra` on `port`.
fn listener_set(namespace: &str, name: &str, hostname: &str, port: u16) -> Value {
    json!({
        "apiVersion": GW,
        "kind": "ListenerSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "parentRef": {"name": "web", "namespace": "demo"},
            "listeners": [{"name": "extra", "port": port, "protocol": "HTTP", "hostname": hostname}],
        },
    })
}

/// Gateway `demo/web` (HTTP on `port`) admitting ListenerSets of its own namespace.
fn gateway_admitting_its_namespace(port: u16) -> Value {
    let mut gateway = objects::gateway("demo", "web", port);
    gateway["spec"]["allowedListeners"] = json!({"namespaces": {"from": "Same"}});
    gateway
}

/// A controller replica (source, Lease candidate, status writer) whose provisioner's view is
/// `provisioning`, with no provisioner running.
fn start_controller(server: &FakeApiServer, provisioning: Provisioning) -> AbortOnDrop {
    let client = server.client_as("controller").expect("client");
    let store = Store::new();
    let source = KubeSource::controller(client.clone(), store.clone());
    let (election, leader) = leader::spawn(client.clone(), fast_lease("controller"));
    let claimed = source.claimed_routes();
    let (_tx, rx) = watch::channel(Arc::new(provisioning));
    let writer = StatusWriter::new(client, store, leader, rx, claimed);
    AbortOnDrop(vec![source.spawn(), election, writer.spawn()])
}

/// `(status, reason)` of condition `type_` at `pointer` of the object, once it has one.
fn condition_of(object: &Value, pointer: &str, type_: &str) -> Option<(String, String)> {
    let c = condition(object, pointer, type_)?;
    Some((
        c.get("status")?.as_str()?.to_string(),
        c.get("reason")?.as_str()?.to_string(),
    ))
}

/// The provisioner's view with Gateway `demo/web`'s data plane available, or not yet provisioned.
fn web_data_plane(available: bool) -> Provisioning {
    let plane = ProvisionedDataPlane {
        programmed: available,
        ..ProvisionedDataPlane::not_yet_provisioned()
    };
    Provisioning {
        reconciled: true,
        data_planes: [(GatewayKey::new("demo", "web"), plane)].into(),
        ..Provisioning::default()
    }
}

fn pair(status: &str, reason: &str) -> (String, String) {
    (status.to_string(), reason.to_string())
}

#[tokio::test]
async fn listener_sets_admitted_by_the_gateway_get_statuses_and_carry_routes() {
    let gateway = gateway_admitting_its_namespace(8000);
    let mut route = objects::http_route("demo", "via-set", "web", "/", "echo", 8080);
    route["spec"]["parentRefs"] = json!([{"kind": "ListenerSet", "name": "extra"}]);
    let server = cluster::seeded([
        objects::namespace("demo"),
        objects::namespace("other"),
        objects::namespace("sluice-system"),
        objects::gateway_class(),
        gateway,
        objects::service("demo", "echo", 8080),
        listener_set("demo", "extra", "extra.example.com", 8000),
        listener_set("other", "elsewhere", "elsewhere.example.com", 8000),
        route,
    ])
    .await;
    let _controller = start_controller(&server, web_data_plane(true));

    let admitted = until("the admitted ListenerSet is Programmed", LIMIT, || {
        let ls = server.get(GW, "ListenerSet", Some("demo"), "extra")?;
        (condition_of(&ls, "/status/conditions", "Programmed")? == pair("True", "Programmed"))
            .then_some(ls)
    })
    .await;
    assert_eq!(
        condition_of(&admitted, "/status/conditions", "Accepted"),
        Some(pair("True", "Accepted"))
    );
    assert_eq!(admitted["status"]["listeners"][0]["name"], "extra");
    assert_eq!(admitted["status"]["listeners"][0]["attachedRoutes"], 1);

    until(
        "the other namespace's ListenerSet is NotAllowed",
        LIMIT,
        || {
            let ls = server.get(GW, "ListenerSet", Some("other"), "elsewhere")?;
            (condition_of(&ls, "/status/conditions", "Accepted")? == pair("False", "NotAllowed"))
                .then_some(())
        },
    )
    .await;
    until("the Gateway counts one attached ListenerSet", LIMIT, || {
        let gw = server.get(GW, "Gateway", Some("demo"), "web")?;
        (gw.pointer("/status/attachedListenerSets")? == 1).then_some(())
    })
    .await;
    let route = until("the route's ListenerSet parent is Accepted", LIMIT, || {
        let r = server.get(GW, "HTTPRoute", Some("demo"), "via-set")?;
        (condition_of(&r, "/status/parents/0/conditions", "Accepted")? == pair("True", "Accepted"))
            .then_some(r)
    })
    .await;
    assert_eq!(
        route["status"]["parents"][0]["parentRef"]["kind"],
        "ListenerSet"
    );
    assert_eq!(route["status"]["parents"][0]["parentRef"]["name"], "extra");
}

#[tokio::test]
async fn the_data_plane_exposes_the_ports_of_admitted_listener_sets_only() {
    let server = cluster::seeded([
        objects::namespace("demo"),
        objects::namespace("other"),
        objects::namespace("sluice-system"),
        objects::gateway_class(),
        gateway_admitting_its_namespace(80),
        listener_set("demo", "extra", "extra.example.com", 8443),
        listener_set("other", "elsewhere", "elsewhere.example.com", 9000),
    ])
    .await;
    let client = server.client_as("controller").expect("client");
    let (leader_tx, leader) = watch::channel(true);
    let config = ProvisionerConfig {
        image: "example.test/sluice:dev".into(),
        resync: Duration::from_secs(3600),
        probe: Default::default(),
    };
    let _tasks = AbortOnDrop(replica::spawn(client, Store::new(), leader, config));

    let ports = until(
        "the data-plane Service exposes the ListenerSet's port",
        LIMIT,
        || {
            let service = server.get("v1", "Service", Some("demo"), "sluice-web")?;
            let ports: Vec<i64> = service
                .pointer("/spec/ports")?
                .as_array()?
                .iter()
                .filter_map(|p| p["port"].as_i64())
                .collect();
            ports.contains(&8443).then_some(ports)
        },
    )
    .await;
    assert_eq!(
        ports,
        [80, 8443],
        "not the port of the ListenerSet it does not admit"
    );
    drop(leader_tx);
}

#[tokio::test]
async fn a_listener_set_is_not_programmed_while_its_gateways_data_plane_is_not() {
    let server = cluster::seeded([
        objects::namespace("demo"),
        objects::namespace("sluice-system"),
        objects::gateway_class(),
        gateway_admitting_its_namespace(8000),
        listener_set("demo", "extra", "extra.example.com", 8000),
    ])
    .await;
    let _controller = start_controller(&server, web_data_plane(false));
    let ls = until("the ListenerSet has a status", LIMIT, || {
        let ls = server.get(GW, "ListenerSet", Some("demo"), "extra")?;
        condition(&ls, "/status/conditions", "Programmed")?;
        Some(ls)
    })
    .await;
    assert_eq!(
        condition_of(&ls, "/status/conditions", "Programmed"),
        Some(pair("False", "ParentNotProgrammed"))
    );
    assert_eq!(
        condition_of(&ls, "/status/conditions", "Accepted"),
        Some(pair("True", "Accepted"))
    );
}
