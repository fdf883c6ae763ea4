//! Cluster mode with a listener port the data plane cannot bind: a real `sluice proxy` whose
//! Gateway's port is held by the test, a real `sluice controller`, and the fake API server standing
//! in for the cluster. The pod object points at the proxy's admin listener, so the controller asks
//! the proxy itself (through the fake's `pods/proxy`) and writes `PortUnavailable`; once the port
//! is freed the proxy's bind retry succeeds and the conditions flip back.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{json, Value};
use sluice_controller::leader::LeaseConfig;
use sluice_gateway::kube_mode::{self, ControllerOptions, KubeRunning, ProxyOptions};
use sluice_gateway::listeners::{BindBackoff, Drain};
use sluice_gateway::mirror::MirrorOptions;
use sluice_gateway::proxy::ProxySettings;
use sluice_testing::{objects, until, FakeApiServer};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);
const GW: &str = "gateway.networking.k8s.io/v1";

async fn start_proxy(server: &FakeApiServer) -> KubeRunning {
    let opts = ProxyOptions {
        gateway: ("demo".into(), "web".into()),
        admin_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        listen_address: Ipv4Addr::LOCALHOST.into(),
        proxy: ProxySettings::default(),
        mirror: MirrorOptions::default(),
        drain: Drain {
            delay: Duration::ZERO,
            grace: Duration::from_millis(200),
        },
        // Retries stay frequent however long the port was held, so the flip back is quick.
        bind_retry: BindBackoff {
            cap: Duration::from_millis(500),
            ..BindBackoff::default()
        },
    };
    let client = server.client_as("proxy").expect("client");
    kube_mode::start_proxy(opts, client)
        .await
        .expect("proxy starts")
}

async fn start_controller(server: &FakeApiServer) -> KubeRunning {
    let mut lease = LeaseConfig::new("sluice-system", "sluice-controller", "controller");
    lease.retry_period = Duration::from_millis(100);
    let opts = ControllerOptions {
        admin_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        lease,
        dataplane_image: "example.test/sluice:dev".into(),
    };
    let client = server.client_as("controller").expect("client");
    // A short resync: every reconcile asks the unready pod again.
    kube_mode::start_controller(opts, client, Duration::from_millis(100))
        .await
        .expect("controller starts")
}

/// The data-plane pod the Deployment would have made: running, not ready, its `admin` port the
/// proxy's admin listener on 127.0.0.1.
fn pod(labels: &Value, admin: SocketAddr) -> (Value, Value) {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sluice-web-0", "namespace": "demo", "labels": labels},
        "spec": {"containers": [{"name": "proxy",
            "ports": [{"name": "admin", "containerPort": admin.port()}]}]},
    });
    let status = json!({"phase": "Running", "podIP": admin.ip().to_string(),
        "conditions": [{"type": "Ready", "status": "False"}]});
    (pod, status)
}

/// `(status, reason, message)` of the condition `type_` of the Gateway, or of its listener `http`.
fn condition(
    server: &FakeApiServer,
    listener: bool,
    type_: &str,
) -> Option<(String, String, String)> {
    let gw = server.get(GW, "Gateway", Some("demo"), "web")?;
    let conditions = if listener {
        gw.pointer("/status/listeners")?
            .as_array()?
            .iter()
            .find(|l| l["name"] == "http")?
            .get("conditions")?
            .clone()
    } else {
        gw.pointer("/status/conditions")?.clone()
    };
    let c = conditions.as_array()?.iter().find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}

#[tokio::test]
async fn a_port_the_data_plane_cannot_bind_is_port_unavailable_until_its_retry_binds_it() {
    let blocker = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("blocker");
    let port = blocker.local_addr().expect("blocker address").port();
    let server = FakeApiServer::start().await.expect("fake API server");
    for object in [
        objects::namespace("demo"),
        objects::namespace("sluice-system"),
        objects::gateway_class(),
        objects::gateway("demo", "web", port),
    ] {
        server.create(object).expect("seed");
    }
    let proxy = start_proxy(&server).await;
    let controller = start_controller(&server).await;

    let deployment = until("the data-plane Deployment", WAIT, || {
        server.get("apps/v1", "Deployment", Some("demo"), "sluice-web")
    })
    .await;
    let (object, status) = pod(
        &deployment["spec"]["selector"]["matchLabels"],
        proxy.admin_addr(),
    );
    server.create(object).expect("pod");
    server
        .set_status("v1", "Pod", Some("demo"), "sluice-web-0", status)
        .expect("pod status");

    let (_, reason, message) = until("the listener PortUnavailable", WAIT, || {
        condition(&server, true, "Accepted").filter(|(s, ..)| s == "False")
    })
    .await;
    assert_eq!(reason, "PortUnavailable");
    assert!(
        message.starts_with(&format!("cannot listen on port {port}: pod sluice-web-0: ")),
        "names the port, the pod and the bind error: {message}"
    );
    assert_eq!(
        condition(&server, true, "Programmed").map(|(s, r, _)| (s, r)),
        Some(("False".into(), "PortUnavailable".into()))
    );
    assert_eq!(
        condition(&server, false, "Programmed").map(|(s, r, _)| (s, r)),
        Some(("False".into(), "PortUnavailable".into()))
    );

    // The port is freed: the proxy's retry binds it, its report turns empty, the listener recovers.
    drop(blocker);
    until("the listener Accepted again", WAIT, || {
        condition(&server, true, "Accepted").filter(|(s, ..)| s == "True")
    })
    .await;
    let (status, reason, _) = condition(&server, false, "Programmed").expect("Programmed");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "Pending"),
        "the Deployment has no available pod yet: the provisioner's reason again"
    );
    proxy.shutdown().await;
    controller.shutdown().await;
}
