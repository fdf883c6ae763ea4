//! The data plane every serving mode runs: store, metrics, proxy app with its mirror engine,
//! listeners that follow the store, and the admin listener. Modes differ only in what feeds the
//! store (files or the Kubernetes API). The controller, which serves no traffic, starts the
//! same store, metrics and admin listener from the two steps [`start`] is made of.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_controller::publish::Store;

use tokio::sync::watch;

use crate::admin::{AdminError, AdminServer, AdminState};
use crate::backend_health::BackendHealth;
use crate::listeners::{BindBackoff, ListenerManager, ListenerOptions, ListenerStatus};
use crate::metrics::{Metrics, MetricsError};
use crate::mirror::metrics::MirrorMetrics;
use crate::mirror::{MirrorEngine, MirrorOptions};
use crate::proxy::{self, ProxySettings};
use crate::tls_route::TlsRouteSettings;

/// A serving data plane whose store is still empty: the caller attaches a source to `store`.
pub struct DataPlane {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub listeners: ListenerManager,
    pub admin: AdminServer,
}

#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error("cannot set up metrics")]
    Metrics(#[source] MetricsError),
    #[error("cannot register the mirror metrics")]
    MirrorMetrics(#[source] prometheus::Error),
    #[error("cannot register the backend metrics")]
    BackendMetrics(#[source] prometheus::Error),
    #[error("cannot start the admin listener")]
    Admin(#[source] AdminError),
}

/// `settings.mirror`, when set, is used as is (tests share an engine); otherwise an engine with
/// `mirror` options is created, its metrics in this instance's registry.
pub async fn start(
    admin_address: SocketAddr,
    mut settings: ProxySettings,
    mut mirror: MirrorOptions,
    bind_retry: BindBackoff,
) -> Result<DataPlane, DataPlaneError> {
    let (store, metrics) = observed_store()?;
    BackendHealth::register(&metrics.registry)
        .map_err(DataPlaneError::BackendMetrics)?
        .spawn(&store);
    if settings.mirror.is_none() {
        let mirror_metrics =
            MirrorMetrics::register(&metrics.registry).map_err(DataPlaneError::MirrorMetrics)?;
        // One set of relays per process: a mirror and a backend on the same endpoint and TLS
        // settings share a relay (each leg keeps its own Pingora pool).
        mirror.tls_relays = settings.upstream.tls_relays.clone();
        settings.mirror = Some(MirrorEngine::new(mirror, mirror_metrics));
    }
    let metrics = Arc::new(metrics);
    let options = ListenerOptions {
        limits: settings.edge,
        h2c: settings.downstream_h2c,
        metrics: metrics.edge.clone(),
        bind_retry,
        tls_routes: TlsRouteSettings {
            metrics: metrics.tls_routes.clone(),
            ..settings.tls_routes.clone()
        },
    };
    let app = proxy::new_app(store.clone(), metrics.clone(), settings);
    let listeners = ListenerManager::start(store.clone(), app, options);
    match start_admin(admin_address, &store, &metrics, listeners.watch_status()).await {
        Ok(admin) => Ok(DataPlane {
            store,
            metrics,
            listeners,
            admin,
        }),
        Err(e) => {
            listeners.shutdown(Duration::ZERO).await;
            Err(e)
        }
    }
}

/// An empty store and the metrics registry that follows it.
pub fn observed_store() -> Result<(Arc<Store>, Metrics), DataPlaneError> {
    let store = Store::new();
    let metrics = Metrics::new().map_err(DataPlaneError::Metrics)?;
    metrics
        .track_store(store.clone())
        .map_err(DataPlaneError::Metrics)?;
    Ok((store, metrics))
}

/// `/status`, `/config`, `/healthz`, `/readyz` and `/metrics` for `store`.
pub async fn start_admin(
    address: SocketAddr,
    store: &Arc<Store>,
    metrics: &Arc<Metrics>,
    listeners: watch::Receiver<ListenerStatus>,
) -> Result<AdminServer, DataPlaneError> {
    AdminServer::start(
        address,
        AdminState {
            store: store.clone(),
            metrics: metrics.clone(),
            listeners,
        },
    )
    .await
    .map_err(DataPlaneError::Admin)
}
