//! Cluster mode: `sluice proxy --gateway NS/NAME` (a data plane fed by the kube watcher) and
//! `sluice controller` (status writer and provisioner under a Lease).
//!
//! Both run the controller crate's kube source and the same pure `translate` as standalone
//! mode, and both start from [`dataplane`]: the proxy serves exactly like standalone mode (same
//! proxy app, listener manager and admin listener) but never writes to the API server; the
//! controller has the same store, metrics and admin listener, and binds no Gateway sockets. The
//! flags that fill these options are in `cli::kube_args`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sluice_controller::leader::{self, LeaseConfig};
use sluice_controller::provision::probe::PodProbeConfig;
use sluice_controller::provision::ProvisionerConfig;
use sluice_controller::publish::Store;
use sluice_controller::replica;
use sluice_controller::sources::kube::{KubeSource, Mode};
use sluice_controller::translate::TranslateOptions;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::AdminServer;
use crate::dataplane::{self, DataPlane, DataPlaneError};
use crate::listeners::{BindBackoff, Drain, ListenerManager, ListenerStatus};
use crate::mirror::MirrorOptions;
use crate::proxy::ProxySettings;

/// The data plane of one Gateway.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// `(namespace, name)` of the Gateway to serve.
    pub gateway: (String, String),
    pub admin_address: SocketAddr,
    /// Where the Gateway's listeners bind inside the pod.
    pub listen_address: IpAddr,
    pub proxy: ProxySettings,
    pub mirror: MirrorOptions,
    pub drain: Drain,
    pub bind_retry: BindBackoff,
}

/// One controller replica.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    pub admin_address: SocketAddr,
    pub lease: LeaseConfig,
    /// The image provisioned data planes run.
    pub dataplane_image: String,
    /// How unready data-plane pods are asked which listener ports they could not bind.
    pub pod_probe: PodProbeConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum KubeModeError {
    #[error("no Kubernetes client configuration (in-cluster or KUBECONFIG)")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    DataPlane(#[from] DataPlaneError),
}

/// A running `sluice proxy` or `sluice controller`.
pub struct KubeRunning {
    store: Arc<Store>,
    admin: AdminServer,
    listeners: Option<ListenerManager>,
    tasks: Vec<JoinHandle<()>>,
    leader: Option<watch::Receiver<bool>>,
    drain: Drain,
}

impl KubeRunning {
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// For the controller: whether this replica leads right now.
    pub fn is_leader(&self) -> bool {
        self.leader.as_ref().is_some_and(|l| *l.borrow())
    }

    /// For a data plane: not ready at once, accepting for the drain delay, then requests in
    /// flight get the shutdown grace (both from `--drain-delay` / `--shutdown-grace`).
    pub async fn shutdown(self) {
        if let Some(listeners) = self.listeners {
            listeners.drain(self.drain.delay, self.drain.grace).await;
        }
        for t in &self.tasks {
            t.abort();
        }
        self.admin.shutdown(Duration::from_secs(1)).await;
    }
}

/// Starts a data plane for `opts.gateway`; it is ready once its first snapshot is live.
pub async fn start_proxy(
    opts: ProxyOptions,
    client: kube::Client,
) -> Result<KubeRunning, KubeModeError> {
    let DataPlane {
        store,
        listeners,
        admin,
        ..
    } = dataplane::start(opts.admin_address, opts.proxy, opts.mirror, opts.bind_retry).await?;
    let options = TranslateOptions {
        listen_address: opts.listen_address,
        only_gateway: Some(opts.gateway),
        behind_service: true,
        ..TranslateOptions::default()
    };
    let source = KubeSource::new(client, options, store.clone(), Mode::DataPlane);
    Ok(KubeRunning {
        store,
        admin,
        listeners: Some(listeners),
        tasks: vec![source.spawn()],
        leader: None,
        drain: opts.drain,
    })
}

/// Starts a controller replica: every replica watches and translates; the Lease holder writes
/// statuses and provisions data planes. `resync` is the provisioner's safety-net period.
pub async fn start_controller(
    opts: ControllerOptions,
    client: kube::Client,
    resync: Duration,
) -> Result<KubeRunning, KubeModeError> {
    let (store, metrics) = dataplane::observed_store()?;
    // The controller binds no Gateway sockets: its listener status never changes.
    let (_, no_listeners) = watch::channel(ListenerStatus::default());
    let admin =
        dataplane::start_admin(opts.admin_address, &store, &Arc::new(metrics), no_listeners)
            .await?;
    let (election, leader) = leader::spawn(client.clone(), opts.lease);
    let config = ProvisionerConfig {
        image: opts.dataplane_image,
        resync,
        probe: opts.pod_probe,
    };
    let mut tasks = replica::spawn(client, store.clone(), leader.clone(), config);
    tasks.push(election);
    Ok(KubeRunning {
        store,
        admin,
        listeners: None,
        tasks,
        leader: Some(leader),
        drain: Drain::default(),
    })
}

/// `sluice proxy`: the client from the pod's service account or `KUBECONFIG`.
pub async fn run_proxy(opts: ProxyOptions) -> Result<KubeRunning, KubeModeError> {
    start_proxy(opts, client().await?).await
}

/// `sluice controller`, with client-go's Lease timings. Provisioning is watch-driven; its resync
/// is only a safety net, so it is slow.
pub async fn run_controller(opts: ControllerOptions) -> Result<KubeRunning, KubeModeError> {
    start_controller(opts, client().await?, PROVISIONING_RESYNC).await
}

async fn client() -> Result<kube::Client, KubeModeError> {
    kube::Client::try_default()
        .await
        .map_err(KubeModeError::Client)
}

/// Reconciles every data plane this often even when no watch reported a change.
const PROVISIONING_RESYNC: Duration = Duration::from_secs(300);
