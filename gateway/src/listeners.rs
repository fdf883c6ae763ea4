//! Our own accept loops: one socket per `Snapshot.binds` address, reconciled after every publish.
//!
//! Pingora's `Server` binds its listeners once at start; Gateway listeners come and go on hot
//! reload, so Sluice owns the sockets and hands each accepted connection to the Pingora app.
//! Unchanged addresses are never touched by a reload, so their connections never notice it.

mod accept;
mod backoff;
mod connections;
mod drain;
mod https;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pingora_core::apps::ServerApp;
use serde::Serialize;
use sluice_controller::publish::Store;
use sluice_controller::snapshot::Snapshot;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use accept::{BoundSocket, Shared};
pub use backoff::BindBackoff;
use connections::Connections;
pub use drain::Drain;

use crate::edge::{EdgeLimits, EdgeMetrics};
use crate::tls_route::TlsRouteSettings;

/// What every accepted connection is held to.
#[derive(Debug, Clone, Default)]
pub struct ListenerOptions {
    pub limits: EdgeLimits,
    /// Plaintext connections may open with the HTTP/2 preface (h2c prior knowledge).
    pub h2c: bool,
    pub metrics: EdgeMetrics,
    /// How soon an address that failed to bind is tried again when no publish comes first.
    pub bind_retry: BindBackoff,
    /// Connections on `TLS` listeners: timeouts and metrics.
    pub tls_routes: TlsRouteSettings,
}

/// Which addresses are being served, and why the others are not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ListenerStatus {
    /// The snapshot generation the sockets were last reconciled with.
    pub generation: u64,
    pub serving: Vec<SocketAddr>,
    /// Addresses that could not be bound, with the error; retried on every publish and with
    /// backoff in between.
    pub failed: BTreeMap<SocketAddr, String>,
    /// A shutdown has begun: still accepting for the drain delay, but no longer ready.
    pub draining: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the listeners did not reach generation {generation} within {timeout:?} (at {reached})")]
pub struct WaitError {
    pub generation: u64,
    pub reached: u64,
    pub timeout: Duration,
}

/// Owns every listening socket of one Sluice instance.
pub struct ListenerManager {
    stop: watch::Sender<bool>,
    abort: watch::Sender<bool>,
    task: JoinHandle<()>,
    status: watch::Receiver<ListenerStatus>,
    status_tx: Arc<watch::Sender<ListenerStatus>>,
    connections: Arc<Connections>,
}

impl ListenerManager {
    /// Binds the live snapshot's addresses now and follows every later publish of `store`.
    pub fn start<A>(store: Arc<Store>, app: Arc<A>, options: ListenerOptions) -> ListenerManager
    where
        A: ServerApp + Send + Sync + 'static,
    {
        let (stop, stop_rx) = watch::channel(false);
        let (abort, abort_rx) = watch::channel(false);
        let (status_tx, status) = watch::channel(ListenerStatus::default());
        let status_tx = Arc::new(status_tx);
        let connections = Arc::new(Connections::new(options.metrics.active.clone()));
        let shared = Arc::new(Shared {
            store,
            app,
            connections: connections.clone(),
            options,
            abort: abort_rx,
        });
        let task = tokio::spawn(reconcile_loop(shared, stop_rx, status_tx.clone()));
        ListenerManager {
            stop,
            abort,
            task,
            status,
            status_tx,
            connections,
        }
    }

    pub fn status(&self) -> ListenerStatus {
        self.status.borrow().clone()
    }

    /// Changes each time the sockets are reconciled with a snapshot.
    pub fn watch_status(&self) -> watch::Receiver<ListenerStatus> {
        self.status.clone()
    }

    /// Waits until the sockets reflect snapshot `generation` (or a later one).
    pub async fn wait_for_generation(
        &self,
        generation: u64,
        timeout: Duration,
    ) -> Result<ListenerStatus, WaitError> {
        let mut rx = self.status.clone();
        let reached = tokio::time::timeout(timeout, rx.wait_for(|s| s.generation >= generation))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|s| s.clone());
        reached.ok_or_else(|| WaitError {
            generation,
            reached: self.status.borrow().generation,
            timeout,
        })
    }

    /// Connections currently being served on any socket.
    pub fn active_connections(&self) -> usize {
        self.connections.active()
    }

    /// The graceful half of a SIGTERM: `/readyz` turns 503 at once while the sockets keep
    /// accepting for `delay` (time for Kubernetes to take the pod out of its endpoints), then
    /// [`Self::shutdown`] with `grace`.
    pub async fn drain(self, delay: Duration, grace: Duration) {
        self.status_tx.send_modify(|s| s.draining = true);
        if !delay.is_zero() {
            tracing::info!(?delay, ?grace, "draining: not ready, still accepting");
            tokio::time::sleep(delay).await;
        }
        self.shutdown(grace).await;
    }

    /// Stops accepting everywhere, lets in-flight connections finish for up to `grace`, then
    /// drops whatever is left.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.send_replace(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "listener manager task failed");
        }
        if tokio::time::timeout(grace, self.connections.wait_idle())
            .await
            .is_err()
        {
            tracing::info!(
                remaining = self.connections.active(),
                "closing connections still open after the shutdown grace period"
            );
            self.abort.send_replace(true);
            // Aborted connections drop at their next poll; this wait is only for tidiness.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.connections.wait_idle()).await;
        }
    }
}

async fn reconcile_loop<A>(
    shared: Arc<Shared<A>>,
    mut stop: watch::Receiver<bool>,
    status: Arc<watch::Sender<ListenerStatus>>,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let mut published = shared.store.subscribe();
    let mut sockets: HashMap<SocketAddr, BoundSocket> = HashMap::new();
    let mut failed: BTreeMap<SocketAddr, Unbound> = BTreeMap::new();
    // A publish may have freed or moved an address: every unbound one is tried at once.
    let mut everything = true;
    loop {
        published.borrow_and_update();
        let snapshot = shared.store.load();
        reconcile(&shared, &snapshot, &mut sockets, &mut failed, everything).await;
        let mut serving: Vec<SocketAddr> = sockets.keys().copied().collect();
        serving.sort();
        let draining = status.borrow().draining;
        status.send_replace(ListenerStatus {
            generation: snapshot.generation,
            serving,
            failed: failed.iter().map(|(a, u)| (*a, u.error.clone())).collect(),
            draining,
        });
        let next_try = failed.values().map(|u| u.due).min();
        tokio::select! {
            changed = published.changed() => {
                if changed.is_err() { break }
                everything = true;
            }
            _ = stop.wait_for(|s| *s) => break,
            _ = sleep_until(next_try), if next_try.is_some() => everything = false,
        }
    }
    for (_, socket) in sockets.drain() {
        socket.close().await;
    }
    // Wakes connections idling between keep-alive requests so they close now instead of
    // holding shutdown for the whole grace period; requests in flight carry on.
    shared.app.cleanup().await;
}

/// An address that could not be bound, and when to try it again.
#[derive(Debug)]
struct Unbound {
    error: String,
    /// Failed binds in a row.
    failures: u32,
    due: Instant,
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// Closes sockets whose address left the snapshot, then binds the new ones (closing first lets
/// an address move between a wildcard and a specific bind on the same port). Addresses that
/// failed before are tried only once due, unless `everything`.
async fn reconcile<A>(
    shared: &Arc<Shared<A>>,
    snapshot: &Snapshot,
    sockets: &mut HashMap<SocketAddr, BoundSocket>,
    failed: &mut BTreeMap<SocketAddr, Unbound>,
    everything: bool,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let wanted: Vec<SocketAddr> = snapshot.binds.iter().map(|b| b.address).collect();
    let removed: Vec<SocketAddr> = sockets
        .keys()
        .filter(|a| !wanted.contains(a))
        .copied()
        .collect();
    for address in removed {
        if let Some(socket) = sockets.remove(&address) {
            tracing::info!(%address, "listener removed; no longer accepting");
            socket.close().await;
        }
    }
    failed.retain(|a, _| wanted.contains(a));
    let now = Instant::now();
    for address in wanted {
        if sockets.contains_key(&address) {
            continue;
        }
        let before = failed.get(&address);
        if !everything && before.is_some_and(|u| u.due > now) {
            continue;
        }
        match accept::bind(shared, address) {
            Ok(socket) => {
                match failed.remove(&address) {
                    Some(u) => tracing::info!(%address, failures = u.failures, "listening"),
                    None => tracing::info!(%address, "listening"),
                }
                sockets.insert(address, socket);
            }
            Err(e) => {
                let error = sluice_controller::error_chain(&e);
                let failures = before.map_or(1, |u| u.failures.saturating_add(1));
                let retry_in = shared.options.bind_retry.delay(failures);
                // The same error again is the expected state of a held port: said once.
                if before.map(|u| &u.error) != Some(&error) {
                    tracing::warn!(%address, error = %error, ?retry_in, "cannot listen; will retry");
                } else {
                    tracing::debug!(%address, failures, ?retry_in, "still cannot listen");
                }
                failed.insert(
                    address,
                    Unbound {
                        error,
                        failures,
                        due: now + retry_in,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
