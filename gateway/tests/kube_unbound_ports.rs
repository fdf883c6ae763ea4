//! Cluster mode with a listener port the data plane cannot bind: a real `sluice proxy` whose
//! Gateway's port is held by the test, a real `sluice controller`, and the fake API server standing
//! in for the cluster. The pod object points at the proxy's admin listener, so the controller asks
//! the proxy itself (through the fake's `pods/proxy`) and writes `PortUnavailable`; once the port
//! is freed the proxy's bind retry succeeds and the conditions flip back.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{json, Value};
use sluice_controller::leader::LeaseConfig;
use sluice_controller::provision::probe::PodProbeConfig;
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

/// When the controller asks the unready pod again.
struct Timings {
    /// The provisioner's safety-net reconcile, which asks it.
    resync: Duration,
    /// Lease renewals (they wake nothing but the Lease task).
    renew: Duration,
    /// The probe's own bounds.
    probe: PodProbeConfig,
}

async fn start_controller(server: &FakeApiServer, timings: Timings) -> KubeRunning {
    let mut lease = LeaseConfig::new("sluice-system", "sluice-controller", "controller");
    lease.retry_period = timings.renew;
    lease.renew_deadline = lease.renew_deadline.max(timings.renew * 2);
    lease.lease_duration = lease.lease_duration.max(timings.renew * 3);
    let opts = ControllerOptions {
        admin_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        lease,
        dataplane_image: "example.test/sluice:dev".into(),
        pod_probe: timings.probe,
    };
    let client = server.client_as("controller").expect("client");
    kube_mode::start_controller(opts, client, timings.resync)
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

/// A Gateway `demo/web` whose one listener port the test holds, its proxy, a controller, and the
/// pod the Deployment would have made, pointing at the proxy's admin listener.
struct Cluster {
    server: FakeApiServer,
    blocker: TcpListener,
    proxy: KubeRunning,
    controller: KubeRunning,
}

async fn cluster(timings: Timings) -> Cluster {
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
    let controller = start_controller(&server, timings).await;
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
    Cluster {
        server,
        blocker,
        proxy,
        controller,
    }
}

impl Cluster {
    /// Waits for the listener's `PortUnavailable` and checks every condition it changes.
    async fn port_unavailable(&self) {
        let server = &self.server;
        let port = self.blocker.local_addr().expect("blocker address").port();
        let (_, reason, message) = until("the listener PortUnavailable", WAIT, || {
            condition(server, true, "Accepted").filter(|(s, ..)| s == "False")
        })
        .await;
        assert_eq!(reason, "PortUnavailable");
        assert!(
            message.starts_with(&format!("cannot listen on port {port}: pod sluice-web-0: ")),
            "names the port, the pod and the bind error: {message}"
        );
        let port_unavailable = Some(("False".to_string(), "PortUnavailable".to_string()));
        let listener_programmed = condition(server, true, "Programmed").map(|(s, r, _)| (s, r));
        assert_eq!(listener_programmed, port_unavailable);
        let gateway_programmed = condition(server, false, "Programmed").map(|(s, r, _)| (s, r));
        assert_eq!(gateway_programmed, port_unavailable);
        until("a PortUnavailable Event on the Gateway", WAIT, || {
            let events = server.list("events.k8s.io/v1", "Event");
            events
                .into_iter()
                .find(|e| e["reason"] == "PortUnavailable")
        })
        .await;
    }

    /// Wakes the provisioner once more (the Deployment's status changes, as its controller would
    /// change it; still no available pod) and waits for that reconcile, the last one anything
    /// wakes: status writes do not (the controller's Resources leave statuses out).
    async fn provisioner_woken_once_more(&self) {
        let before = self.server.writes().len();
        let status = json!({"replicas": 1, "unavailableReplicas": 1});
        self.server
            .set_status("apps/v1", "Deployment", Some("demo"), "sluice-web", status)
            .expect("deployment status");
        until("the reconcile the Deployment change woke", WAIT, || {
            let writes = self.server.writes();
            writes
                .get(before..)?
                .iter()
                .any(|w| w.path.ends_with("/deployments/sluice-web"))
                .then_some(())
        })
        .await;
    }

    /// Frees the port and waits for the listener to recover once the proxy's retry binds it.
    async fn free_the_port_and_recover(self) {
        let Cluster {
            server,
            blocker,
            proxy,
            controller,
        } = self;
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
}

#[tokio::test]
async fn a_port_the_data_plane_cannot_bind_is_port_unavailable_until_its_retry_binds_it() {
    // Every reconcile (a short resync here) asks the unready pod.
    let cluster = cluster(Timings {
        resync: Duration::from_millis(100),
        renew: Duration::from_millis(100),
        probe: PodProbeConfig::default(),
    })
    .await;
    cluster.port_unavailable().await;
    cluster.free_the_port_and_recover().await;
}

#[tokio::test]
async fn an_unready_pod_is_asked_again_every_interval_without_a_reconcile() {
    // No resync and no renewal within the test, and the port freed only after the last reconcile
    // anything wakes: the proxy's retry binds it without a word to the API server and the
    // Deployment still has no available pod, so only the probe interval notices the recovery.
    let cluster = cluster(Timings {
        resync: Duration::from_secs(3600),
        renew: Duration::from_secs(60),
        probe: PodProbeConfig {
            interval: Duration::from_millis(100),
            ..PodProbeConfig::default()
        },
    })
    .await;
    cluster.port_unavailable().await;
    cluster.provisioner_woken_once_more().await;
    cluster.free_the_port_and_recover().await;
}
