//! Set-up and probes the cluster-mode suites share: a seeded fake API server, Lease timings
//! short enough for a failover inside a test, conditions read back from objects, and what the
//! built-in controllers would write to a provisioned data plane's status.

use std::time::Duration;

use serde_json::{json, Value};
use sluice_controller::leader::LeaseConfig;

use crate::FakeApiServer;

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
