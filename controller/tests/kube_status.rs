//! Status writing and leader election against the fake API server.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use sluice_controller::leader;
use sluice_controller::provision::Provisioning;
use sluice_controller::publish::Store;
use sluice_controller::sources::kube::{ClaimedRoutes, KubeSource};
use sluice_controller::status_writer::StatusWriter;
use sluice_controller::CONTROLLER_NAME;
use sluice_controller::FIELD_MANAGER;
use sluice_testing::cluster::{self, condition, fast_lease};
use sluice_testing::{objects, until, AbortOnDrop, FakeApiServer};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(20);
const GW: &str = "gateway.networking.k8s.io/v1";

/// A provisioner's view that has reconciled and provisioned nothing (these tests run none).
fn no_data_planes() -> Provisioning {
    Provisioning {
        reconciled: true,
        ..Provisioning::default()
    }
}

async fn seeded_server() -> FakeApiServer {
    cluster::seeded([
        objects::namespace("demo"),
        objects::namespace("sluice-system"),
        objects::gateway_class(),
        objects::gateway("demo", "web", 8000),
        objects::service("demo", "echo", 8080),
        objects::endpoint_slice(
            "demo",
            "echo",
            "http",
            &["127.0.0.1:9".parse().expect("addr")],
        ),
        objects::http_route("demo", "echo", "web", "/", "echo", 8080),
    ])
    .await
}

/// One controller replica: its own client, source, store, Lease candidate and status writer.
struct Replica {
    _tasks: AbortOnDrop,
    leader: watch::Receiver<bool>,
}

impl Replica {
    fn start(server: &FakeApiServer, identity: &str) -> Replica {
        let client = server.client_as(identity).expect("client");
        let store = Store::new();
        let source = KubeSource::controller(client.clone(), store.clone());
        let (election, leader) = leader::spawn(client.clone(), fast_lease(identity));
        let claimed = source.claimed_routes();
        let (_dp_tx, dp_rx) = watch::channel(Arc::new(no_data_planes()));
        let writer = StatusWriter::new(client, store, leader.clone(), dp_rx, claimed);
        Replica {
            _tasks: AbortOnDrop(vec![source.spawn(), election, writer.spawn()]),
            leader,
        }
    }
}

fn route_parent_condition(
    server: &FakeApiServer,
    name: &str,
    type_: &str,
) -> Option<(String, String)> {
    let route = server.get(GW, "HTTPRoute", Some("demo"), name)?;
    let c = condition(&route, "/status/parents/0/conditions", type_)?;
    Some((
        c.get("status")?.as_str()?.to_string(),
        c.get("reason")?.as_str()?.to_string(),
    ))
}

/// Creates route `name` (prefix `/name`, to `echo`) and waits for its Accepted condition.
async fn new_route_gets_status(server: &FakeApiServer, name: &str, what: &str) {
    let route = objects::http_route("demo", name, "web", &format!("/{name}"), "echo", 8080);
    server.create(route).expect("route");
    until(what, LIMIT, || {
        route_parent_condition(server, name, "Accepted")
    })
    .await;
}

fn successful_status_writes(server: &FakeApiServer) -> Vec<String> {
    server
        .writes()
        .into_iter()
        .filter(|w| w.path.ends_with("/status") && w.status == 200)
        .map(|w| w.user)
        .collect()
}

#[tokio::test]
async fn the_leader_writes_statuses_with_server_side_apply() {
    let server = seeded_server().await;
    let _replica = Replica::start(&server, "controller-a");
    let class = until("GatewayClass Accepted", LIMIT, || {
        let c = server.get(GW, "GatewayClass", None, "sluice")?;
        let accepted = condition(&c, "/status/conditions", "Accepted")?;
        (accepted["status"] == "True").then_some(c)
    })
    .await;
    assert!(class.pointer("/status/supportedFeatures").is_some());
    let gateway = until("Gateway Accepted", LIMIT, || {
        let g = server.get(GW, "Gateway", Some("demo"), "web")?;
        (condition(&g, "/status/conditions", "Accepted")?["status"] == "True").then_some(g)
    })
    .await;
    assert_eq!(
        condition(&gateway, "/status/conditions", "Accepted").expect("accepted")
            ["observedGeneration"],
        1
    );
    let listener = gateway
        .pointer("/status/listeners/0")
        .expect("listener status");
    assert_eq!(listener["attachedRoutes"], 1);
    until("route Accepted", LIMIT, || {
        (route_parent_condition(&server, "echo", "Accepted")? == ("True".into(), "Accepted".into()))
            .then_some(())
    })
    .await;
    let managers: Vec<Value> = gateway["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        managers.iter().any(|m| m["manager"] == FIELD_MANAGER
            && m["operation"] == "Apply"
            && m["subresource"] == "status"),
        "{managers:?}"
    );
}

#[tokio::test]
async fn only_real_changes_are_written_even_by_a_new_leader() {
    let server = seeded_server().await;
    let client = server.client_as("controller-a").expect("client");
    let store = Store::new();
    let source = KubeSource::controller(client.clone(), store.clone()).spawn();
    let mut generations = store.subscribe();
    tokio::time::timeout(LIMIT, generations.changed())
        .await
        .expect("first snapshot")
        .expect("store alive");
    let (_leader_tx, leader) = watch::channel(true);
    let (_dp_tx, dp) = watch::channel(Arc::new(no_data_planes()));
    let (_claimed_tx, claimed) = watch::channel(Arc::new(ClaimedRoutes::new()));
    let mut writer = StatusWriter::new(
        client.clone(),
        store.clone(),
        leader.clone(),
        dp.clone(),
        claimed.clone(),
    );
    let first = writer.sync().await.expect("first sync");
    assert_eq!(first, 3, "GatewayClass, Gateway and HTTPRoute");
    assert_eq!(
        writer.sync().await.expect("second sync"),
        0,
        "nothing changed"
    );

    // A fresh writer (a new leader after failover) finds every status already right.
    let mut successor = StatusWriter::new(client, store, leader, dp, claimed);
    assert_eq!(successor.sync().await.expect("successor sync"), 0);
    source.abort();
}

#[tokio::test]
async fn a_route_to_a_missing_service_gets_a_resolved_refs_condition() {
    let server = seeded_server().await;
    server
        .create(objects::http_route(
            "demo",
            "broken",
            "web",
            "/broken",
            "no-such-service",
            80,
        ))
        .expect("route");
    let _replica = Replica::start(&server, "controller-a");
    let (status, reason) = until("ResolvedRefs on the broken route", LIMIT, || {
        route_parent_condition(&server, "broken", "ResolvedRefs")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "BackendNotFound")
    );
}

#[tokio::test]
async fn leader_failover_keeps_a_single_writer() {
    let server = seeded_server().await;
    let a = Replica::start(&server, "controller-a");
    let b = Replica::start(&server, "controller-b");
    let (first, second, first_name, second_name) = until("a leader", LIMIT, || {
        match (*a.leader.borrow(), *b.leader.borrow()) {
            (true, false) => Some((&a, &b, "controller-a", "controller-b")),
            (false, true) => Some((&b, &a, "controller-b", "controller-a")),
            (true, true) => panic!("two leaders at once"),
            (false, false) => None,
        }
    })
    .await;
    until("the leader's first statuses", LIMIT, || {
        route_parent_condition(&server, "echo", "Accepted")
    })
    .await;

    // Partition the leader from the API server: it must step down before the other takes over.
    server.block(first_name);
    until("the other replica to lead", LIMIT, || {
        assert!(
            !(*first.leader.borrow() && *second.leader.borrow()),
            "two leaders at once"
        );
        second.leader.borrow().then_some(())
    })
    .await;
    assert!(
        !*first.leader.borrow(),
        "the partitioned leader stepped down"
    );
    new_route_gets_status(&server, "late", "the new leader's status on the new route").await;

    // Healing the partition does not make the old leader write again.
    server.unblock(first_name);
    new_route_gets_status(
        &server,
        "later",
        "the status of the route made after healing",
    )
    .await;
    let writers = successful_status_writes(&server);
    let handover = writers
        .iter()
        .position(|u| u == second_name)
        .expect("the second leader wrote");
    assert!(
        writers[handover..].iter().all(|u| u == second_name),
        "after the handover only the new leader writes: {writers:?}"
    );
    assert!(writers[..handover].iter().all(|u| u == first_name));
}

const OTHER_CONTROLLER: &str = "example.net/other-controller";

/// `(controllerName, parentRef.name)` of every `status.parents` entry of the route.
fn route_parents(server: &FakeApiServer, name: &str) -> Vec<(String, String)> {
    let Some(route) = server.get(GW, "HTTPRoute", Some("demo"), name) else {
        return Vec::new();
    };
    route
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let field = |pointer: &str| {
                p.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            (field("/controllerName"), field("/parentRef/name"))
        })
        .collect()
}

fn parent_entry(controller: &str, gateway: &str) -> Value {
    json!({
        "controllerName": controller,
        "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
            "namespace": "demo", "name": gateway},
        "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    })
}

fn ours(gateway: &str) -> (String, String) {
    (CONTROLLER_NAME.to_string(), gateway.to_string())
}

fn theirs(gateway: &str) -> (String, String) {
    (OTHER_CONTROLLER.to_string(), gateway.to_string())
}

#[tokio::test]
async fn a_removed_parent_ref_drops_our_route_status_entry_and_keeps_other_controllers() {
    let server = seeded_server().await;
    let mut route = objects::http_route("demo", "echo", "web", "/", "echo", 8080);
    route["spec"]["parentRefs"] = json!([{"name": "web"}, {"name": "elsewhere"}]);
    server.apply(route.clone()).expect("route with two parents");
    server
        .set_status(
            GW,
            "HTTPRoute",
            Some("demo"),
            "echo",
            json!({"parents": [parent_entry(OTHER_CONTROLLER, "elsewhere")]}),
        )
        .expect("the other controller's status");
    let _replica = Replica::start(&server, "controller-a");
    until("our entry beside theirs", LIMIT, || {
        let parents = route_parents(&server, "echo");
        (parents == [theirs("elsewhere"), ours("web")]).then_some(())
    })
    .await;

    route["spec"]["parentRefs"] = json!([{"name": "elsewhere"}]);
    server.apply(route).expect("route without our Gateway");
    until("our entry gone, theirs kept", LIMIT, || {
        (route_parents(&server, "echo") == [theirs("elsewhere")]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_gateway_removes_our_entry_from_its_routes() {
    let server = seeded_server().await;
    let _replica = Replica::start(&server, "controller-a");
    until("our entry", LIMIT, || {
        (route_parents(&server, "echo") == [ours("web")]).then_some(())
    })
    .await;
    server
        .delete(GW, "Gateway", Some("demo"), "web")
        .expect("deleted");
    until("no entry left", LIMIT, || {
        route_parents(&server, "echo").is_empty().then_some(())
    })
    .await;
    let route = server
        .get(GW, "HTTPRoute", Some("demo"), "echo")
        .expect("route");
    assert_eq!(
        route.pointer("/status/parents"),
        Some(&json!([])),
        "parents is required"
    );
}

#[tokio::test]
async fn a_stale_entry_left_while_no_controller_ran_is_removed_by_the_next_leader() {
    let server = seeded_server().await;
    server
        .create(objects::http_route(
            "demo", "orphan", "gone", "/orphan", "echo", 8080,
        ))
        .expect("route to a Gateway that is gone");
    server
        .set_status(
            GW,
            "HTTPRoute",
            Some("demo"),
            "orphan",
            json!({"parents": [parent_entry(CONTROLLER_NAME, "gone"), parent_entry(OTHER_CONTROLLER, "gone")]}),
        )
        .expect("status left behind");
    let _replica = Replica::start(&server, "controller-a");
    until("the stale entry removed", LIMIT, || {
        (route_parents(&server, "orphan") == [theirs("gone")]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_refused_status_write_is_retried_without_another_change() {
    let server = seeded_server().await;
    // A leader that never renews (no Lease task) and nothing else changing: only the writer's
    // own retry can bring the statuses once the API server lets its writes through.
    let store = Store::new();
    let source = KubeSource::controller(server.client_as("source").expect("client"), store.clone());
    let claimed = source.claimed_routes();
    let (_leader_tx, leader) = watch::channel(true);
    let (_dp_tx, dp_rx) = watch::channel(Arc::new(no_data_planes()));
    server.forbid("writer");
    let writer = StatusWriter::new(
        server.client_as("writer").expect("client"),
        store,
        leader,
        dp_rx,
        claimed,
    );
    let _tasks = AbortOnDrop(vec![source.spawn(), writer.spawn()]);
    until("a refused status write", LIMIT, || {
        (server.refused_requests("writer") > 0).then_some(())
    })
    .await;
    server.permit("writer");
    until("route Accepted after the retry", LIMIT, || {
        route_parent_condition(&server, "echo", "Accepted")
    })
    .await;
}

#[tokio::test]
async fn a_backend_tls_policy_gets_an_ancestor_status_for_the_gateway_using_its_service() {
    let server = seeded_server().await;
    server
        .create(json!({
            "apiVersion": GW,
            "kind": "BackendTLSPolicy",
            "metadata": {"name": "echo-tls", "namespace": "demo", "generation": 1},
            "spec": {
                "targetRefs": [{"group": "", "kind": "Service", "name": "echo"}],
                "validation": {
                    "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "missing-ca"}],
                    "hostname": "echo.demo"
                }
            }
        }))
        .expect("policy");
    let _replica = Replica::start(&server, "controller-a");
    let policy = until("the policy's ancestor status", LIMIT, || {
        let p = server.get(GW, "BackendTLSPolicy", Some("demo"), "echo-tls")?;
        condition(&p, "/status/ancestors/0/conditions", "Accepted")?;
        Some(p)
    })
    .await;
    let ancestor = policy.pointer("/status/ancestors/0").expect("ancestor");
    assert_eq!(ancestor["ancestorRef"]["name"], "web");
    assert_eq!(ancestor["controllerName"], CONTROLLER_NAME);
    let accepted =
        condition(&policy, "/status/ancestors/0/conditions", "Accepted").expect("Accepted");
    assert_eq!(
        (accepted["status"].as_str(), accepted["reason"].as_str()),
        (Some("False"), Some("NoValidCACertificate"))
    );
    let resolved =
        condition(&policy, "/status/ancestors/0/conditions", "ResolvedRefs").expect("ResolvedRefs");
    assert_eq!(resolved["reason"], "InvalidCACertificateRef");
}

#[tokio::test]
async fn a_mirror_policy_gets_an_ancestor_status_for_the_gateway_of_its_route() {
    let server = seeded_server().await;
    server
        .create(json!({
            "apiVersion": "sluice.dev/v1alpha1",
            "kind": "MirrorPolicy",
            "metadata": {"name": "shadow", "namespace": "demo", "generation": 1},
            "spec": {
                "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "echo"}],
                "request": {"stripCredentials": true}
            }
        }))
        .expect("policy");
    let _replica = Replica::start(&server, "controller-a");
    let policy = until("the policy's ancestor status", LIMIT, || {
        let p = server.get(
            "sluice.dev/v1alpha1",
            "MirrorPolicy",
            Some("demo"),
            "shadow",
        )?;
        condition(&p, "/status/ancestors/0/conditions", "Accepted")?;
        Some(p)
    })
    .await;
    let ancestor = policy.pointer("/status/ancestors/0").expect("ancestor");
    assert_eq!(ancestor["ancestorRef"]["kind"], "Gateway");
    assert_eq!(ancestor["ancestorRef"]["name"], "web");
    assert_eq!(ancestor["controllerName"], CONTROLLER_NAME);
    let accepted =
        condition(&policy, "/status/ancestors/0/conditions", "Accepted").expect("Accepted");
    // The seeded route has no RequestMirror filter: accepted, and the message says so.
    assert_eq!(accepted["status"], "True");
    let message = accepted["message"].as_str().unwrap_or("");
    assert!(message.contains("no RequestMirror filter"), "{message}");
}

#[tokio::test]
async fn grpc_and_tls_routes_get_their_route_status_written() {
    let server = seeded_server().await;
    // The seeded HTTPRoute has no hostnames: a GRPCRoute on its listener would meet it there.
    server
        .delete(GW, "HTTPRoute", Some("demo"), "echo")
        .expect("seeded route");
    server
        .create(json!({
            "apiVersion": GW,
            "kind": "GRPCRoute",
            "metadata": {"name": "grpc", "namespace": "demo", "generation": 1},
            "spec": {
                "parentRefs": [{"name": "web"}],
                "rules": [{"backendRefs": [{"name": "echo", "port": 8080}]}]
            }
        }))
        .expect("grpc route");
    // The seeded Gateway has only an HTTP listener: a TLSRoute is not allowed there.
    server
        .create(json!({
            "apiVersion": GW,
            "kind": "TLSRoute",
            "metadata": {"name": "tls", "namespace": "demo", "generation": 1},
            "spec": {
                "parentRefs": [{"name": "web"}],
                "hostnames": ["tls.example.com"],
                "rules": [{"backendRefs": [{"name": "echo", "port": 8080}]}]
            }
        }))
        .expect("tls route");
    let _replica = Replica::start(&server, "controller-a");
    let accepted = |kind: &'static str, name: &'static str| {
        let server = &server;
        move || {
            let route = server.get(GW, kind, Some("demo"), name)?;
            let c = condition(&route, "/status/parents/0/conditions", "Accepted")?;
            Some((
                c["status"].as_str()?.to_string(),
                c["reason"].as_str()?.to_string(),
            ))
        }
    };
    let grpc = until(
        "the GRPCRoute's status",
        LIMIT,
        accepted("GRPCRoute", "grpc"),
    )
    .await;
    assert_eq!(grpc, ("True".to_string(), "Accepted".to_string()));
    let tls = until("the TLSRoute's status", LIMIT, accepted("TLSRoute", "tls")).await;
    assert_eq!(
        tls,
        ("False".to_string(), "NotAllowedByListeners".to_string())
    );
}
