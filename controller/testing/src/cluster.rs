//! Set-up and probes the cluster-mode suites share: a seeded fake API server, Lease timings
//! short enough for a failover inside a test, conditions read back from objects, and what the
//! built-in controllers would write to a provisioned data plane's status.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_controller::leader::LeaseConfig;
use sluice_controller::provision::ProvisionerConfig;
use sluice_controller::publish::Store;
use sluice_controller::replica;
use tokio::sync::watch;

use crate::{AbortOnDrop, FakeApiServer};

/// Starts a fake API server holding `objects`, created in order.
pub async fn seeded(objects: impl IntoIterator<Item = Value>) -> FakeApiServer {
    let server = FakeApiServer::start().await.expect("fake API server");
    for object in objects {
        server.create(object).expect("seed object");
    }
    server
}

/// The controller Lease in `sluice-system` for `identity`, with timings that let the other
/// replica take over within seconds.
pub fn fast_lease(identity: &str) -> LeaseConfig {
    let mut lease = LeaseConfig::new("sluice-system", "sluice-controller", identity);
    lease.lease_duration = Duration::from_secs(3);
    lease.renew_deadline = Duration::from_secs(2);
    lease.retry_period = Duration::from_millis(100);
    lease
}

/// The condition of type `type_` in the array at `pointer` (e.g. `/status/conditions`).
pub fn condition<'a>(object: &'a Value, pointer: &str, type_: &str) -> Option<&'a Value> {
    object
        .pointer(pointer)?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// As the Deployment controller would: `available` pods of Deployment `namespace/name` ready.
pub fn set_available(server: &FakeApiServer, namespace: &str, name: &str, available: u32) {
    server
        .set_status(
            "apps/v1",
            "Deployment",
            Some(namespace),
            name,
            json!({ "availableReplicas": available }),
        )
        .expect("deployment status");
}

/// As a cloud load-balancer controller would: Service `namespace/name` reachable at `ip`.
pub fn set_load_balancer_ip(server: &FakeApiServer, namespace: &str, name: &str, ip: &str) {
    server
        .set_status(
            "v1",
            "Service",
            Some(namespace),
            name,
            json!({"loadBalancer": {"ingress": [{ "ip": ip }]}}),
        )
        .expect("service status");
}

/// The replica `sluice controller` runs, always holding the Lease, as user `controller`: data
/// planes run `example.test/sluice:dev`, and the provisioner's safety-net reconcile comes every
/// `resync` (a test relying on watches passes more than its own length).
pub fn leading_controller(server: &FakeApiServer, resync: Duration) -> AbortOnDrop {
    let client = server.client_as("controller").expect("client");
    let (leader_tx, leader) = watch::channel(true);
    let config = ProvisionerConfig {
        image: "example.test/sluice:dev".into(),
        resync,
        probe: Default::default(),
    };
    let mut tasks = replica::spawn(client, Store::new(), leader, config);
    // Keeps the leader channel open for as long as the tasks run.
    tasks.push(tokio::spawn(async move {
        leader_tx.closed().await;
    }));
    AbortOnDrop(tasks)
}
