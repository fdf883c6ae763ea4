//! Standalone mode: YAML files in, a serving gateway out; the `sluice` binary, the end-to-end
//! tests and the conformance harness all start Sluice through [`start`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use sluice_controller::publish::Store;
use sluice_controller::sources::file::FileSource;
use sluice_controller::translate::TranslateOptions;
use tokio::task::JoinHandle;

use crate::admin::AdminServer;
use crate::dataplane::{self, DataPlane, DataPlaneError};
use crate::listeners::{BindBackoff, ListenerManager, ListenerStatus, WaitError};
use crate::metrics::Metrics;
use crate::mirror::MirrorOptions;
use crate::proxy::ProxySettings;

/// How long `start` waits for the first snapshot's sockets before returning anyway.
const FIRST_BIND_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct StandaloneOptions {
    /// A YAML file or a directory of them; watched for changes.
    pub config_path: PathBuf,
    /// `127.0.0.1:0` picks a free port; [`Running::admin_addr`] reports it.
    pub admin_address: SocketAddr,
    /// Each Gateway gets its own address from this pool (e.g. `127.0.0.0/24` in tests).
    pub address_pool: Option<IpNet>,
    /// Where Gateways listen when there is no pool and no `spec.addresses`.
    pub listen_address: IpAddr,
    /// The proxy app's settings; `mirror: None` gets a default mirror engine.
    pub proxy: ProxySettings,
    /// How long shutdown keeps accepting, not ready, before it stops accepting.
    pub drain_delay: Duration,
    /// How long shutdown lets in-flight connections finish.
    pub shutdown_grace: Duration,
    /// Used when `proxy.mirror` is `None`: what mirror copies look like and their bounds.
    pub mirror: MirrorOptions,
    /// How often a listener port that is in use is tried again.
    pub bind_retry: BindBackoff,
}

impl StandaloneOptions {
    /// Production defaults: admin on `127.0.0.1:9901`, Gateways on `0.0.0.0`.
    pub fn new(config_path: impl Into<PathBuf>) -> StandaloneOptions {
        StandaloneOptions {
            config_path: config_path.into(),
            admin_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 9901)),
            address_pool: None,
            listen_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            proxy: ProxySettings::default(),
            drain_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(30),
            mirror: MirrorOptions::default(),
            bind_retry: BindBackoff::default(),
        }
    }

    /// For tests: admin on a free loopback port, Gateways on `127.0.0.1`, short grace.
    pub fn for_tests(config_path: impl Into<PathBuf>) -> StandaloneOptions {
        StandaloneOptions {
            admin_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            listen_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            shutdown_grace: Duration::from_secs(1),
            ..StandaloneOptions::new(config_path)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Only at start: a path that vanishes later is a rejected reload, the last snapshot serving.
    #[error("--config {}: no such file or directory", .0.display())]
    MissingConfig(PathBuf),
    #[error(transparent)]
    DataPlane(#[from] DataPlaneError),
}

/// A running Sluice instance.
pub struct Running {
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    listeners: ListenerManager,
    admin: AdminServer,
    watcher: JoinHandle<()>,
    drain_delay: Duration,
    shutdown_grace: Duration,
}

/// Starts serving `opts.config_path`, which must exist. A configuration that does not load is
/// logged and leaves Sluice running but not ready; fixing the file is picked up by the watcher.
/// When the first load succeeds, its sockets are bound before this returns.
pub async fn start(opts: StandaloneOptions) -> Result<Running, StartError> {
    if !opts.config_path.exists() {
        return Err(StartError::MissingConfig(opts.config_path));
    }
    let DataPlane {
        store,
        metrics,
        listeners,
        admin,
    } = dataplane::start(opts.admin_address, opts.proxy, opts.mirror, opts.bind_retry).await?;

    let translate = TranslateOptions {
        address_pool: opts.address_pool,
        listen_address: opts.listen_address,
        ..TranslateOptions::default()
    };
    let mut source = FileSource::new(opts.config_path.clone(), translate, store.clone());
    match source.load_once() {
        Ok(generation) => {
            if let Err(e) = listeners
                .wait_for_generation(generation, FIRST_BIND_WAIT)
                .await
            {
                tracing::warn!(error = %e, "starting before every listener is bound");
            }
        }
        Err(e) => tracing::warn!(
            path = %opts.config_path.display(),
            error = %e,
            "starting without a configuration (not ready); fix the file and it will be loaded"
        ),
    }
    let watcher = source.spawn();
    Ok(Running {
        store,
        metrics,
        listeners,
        admin,
        watcher,
        drain_delay: opts.drain_delay,
        shutdown_grace: opts.shutdown_grace,
    })
}

impl Running {
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.local_addr()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn listener_status(&self) -> ListenerStatus {
        self.listeners.status()
    }

    /// Waits until snapshot `generation` is published and its sockets are bound or failed.
    pub async fn wait_for_generation(
        &self,
        generation: u64,
        timeout: Duration,
    ) -> Result<ListenerStatus, WaitError> {
        self.listeners
            .wait_for_generation(generation, timeout)
            .await
    }

    /// Turns not ready, keeps accepting for the drain delay, stops the file watcher and
    /// accepting, lets in-flight connections finish within the shutdown grace, then stops the
    /// admin listener.
    pub async fn shutdown(self) {
        self.watcher.abort();
        if let Err(e) = self.watcher.await {
            if !e.is_cancelled() {
                tracing::error!(error = %e, "configuration watcher failed");
            }
        }
        self.listeners
            .drain(self.drain_delay, self.shutdown_grace)
            .await;
        self.admin.shutdown(Duration::from_secs(1)).await;
        tracing::info!("stopped");
    }
}
