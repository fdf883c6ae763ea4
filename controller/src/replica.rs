//! One controller replica's work: the kube source, the provisioner and the status writer.
//!
//! Every replica watches and translates; the provisioner and the status writer act only while
//! `leader` says this replica holds the Lease. `sluice controller` and the provisioning tests
//! start exactly this set, so the tests exercise the binary's wiring.

use std::sync::Arc;

use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::provision::{Provisioner, ProvisionerConfig};
use crate::publish::Store;
use crate::sources::kube::KubeSource;
use crate::status_writer::StatusWriter;

/// Spawns the source, provisioner and status writer publishing to `store`; abort the returned
/// tasks to stop them. Electing the leader is the caller's business.
pub fn spawn(
    client: Client,
    store: Arc<Store>,
    leader: watch::Receiver<bool>,
    config: ProvisionerConfig,
) -> Vec<JoinHandle<()>> {
    let source = KubeSource::controller(client.clone(), store.clone());
    let resources = source.resources();
    let claimed = source.claimed_routes();
    let provisioner = Provisioner::new(
        client.clone(),
        config,
        leader.clone(),
        resources,
        store.clone(),
    );
    let writer = StatusWriter::new(client, store, leader, provisioner.provisioning(), claimed);
    vec![source.spawn(), provisioner.spawn(), writer.spawn()]
}
