//! `sluice controller` (two replicas, the binary's code path) against the fake API server: one
//! leader provisions and writes status, readiness and metrics are served, and the other replica
//! takes over when the leader goes away.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use sluice_gateway::kube_mode::{self, ControllerOptions, KubeRunning};
use sluice_testing::cluster::{self, condition, fast_lease, set_available, set_load_balancer_ip};
use sluice_testing::{objects, until, FakeApiServer};

const WAIT: Duration = Duration::from_secs(20);
const GW: &str = "gateway.networking.k8s.io/v1";

async fn replica(server: &FakeApiServer, identity: &str) -> KubeRunning {
    let opts = ControllerOptions {
        admin_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        lease: fast_lease(identity),
        dataplane_image: "example.test/sluice:dev".into(),
        pod_probe: Default::default(),
    };
    kube_mode::start_controller(
        opts,
        server.client_as(identity).expect("client"),
        Duration::from_millis(100),
    )
    .await
    .expect("controller starts")
}

fn gateway_condition(server: &FakeApiServer, type_: &str) -> Option<String> {
    let gw = server.get(GW, "Gateway", Some("demo"), "web")?;
    let status = condition(&gw, "/status/conditions", type_)?["status"].as_str()?;
    Some(status.to_string())
}

#[tokio::test]
async fn two_controller_replicas_provision_once_and_fail_over() {
    let server = cluster::seeded([
        objects::namespace("demo"),
        objects::namespace("sluice-system"),
        objects::gateway_class(),
        objects::gateway("demo", "web", 8000),
    ])
    .await;
    let a = replica(&server, "controller-a").await;
    let b = replica(&server, "controller-b").await;

    until("the data-plane Deployment", WAIT, || {
        server.get("apps/v1", "Deployment", Some("demo"), "sluice-web")
    })
    .await;
    until("Gateway Accepted", WAIT, || {
        (gateway_condition(&server, "Accepted")? == "True").then_some(())
    })
    .await;
    let client = reqwest::Client::new();
    for running in [&a, &b] {
        let ready = client
            .get(format!("http://{}/readyz", running.admin_addr()))
            .send()
            .await
            .expect("readyz");
        assert_eq!(
            ready.status(),
            200,
            "every replica is ready once it has listed"
        );
    }
    assert!(a.is_leader() != b.is_leader(), "exactly one leader");
    let (leader, follower, follower_name) = if a.is_leader() {
        (a, b, "controller-b")
    } else {
        (b, a, "controller-a")
    };

    // The leader goes away; the follower takes over and keeps the status current.
    leader.shutdown().await;
    until("the follower to lead", WAIT, || {
        follower.is_leader().then_some(())
    })
    .await;
    set_available(&server, "demo", "sluice-web", 1);
    set_load_balancer_ip(&server, "demo", "sluice-web", "203.0.113.9");
    until("Programmed True from the new leader", WAIT, || {
        (gateway_condition(&server, "Programmed")? == "True").then_some(())
    })
    .await;
    let last_status_writer = server
        .writes()
        .into_iter()
        .rfind(|w| w.path.ends_with("/status") && w.status == 200)
        .map(|w| w.user);
    assert_eq!(last_status_writer.as_deref(), Some(follower_name));
    let gw: Value = server
        .get(GW, "Gateway", Some("demo"), "web")
        .expect("gateway");
    assert_eq!(gw["status"]["addresses"][0]["value"], "203.0.113.9");
    follower.shutdown().await;
}
