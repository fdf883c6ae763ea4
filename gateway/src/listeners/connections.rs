//! Counts live connections so shutdown can wait for in-flight requests to finish.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::IntGauge;
use tokio::sync::Notify;

#[derive(Debug)]
pub(super) struct Connections {
    active: AtomicUsize,
    idle: Notify,
    /// `sluice_downstream_connections_active`, kept equal to `active`.
    gauge: IntGauge,
}

impl Connections {
    pub(super) fn new(gauge: IntGauge) -> Connections {
        Connections {
            active: AtomicUsize::new(0),
            idle: Notify::new(),
            gauge,
        }
    }

    /// `listener` is the `sluice_downstream_connections` series of the accepting socket.
    pub(super) fn open(self: &Arc<Self>, listener: IntGauge) -> ConnectionGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.gauge.inc();
        listener.inc();
        ConnectionGuard(self.clone(), listener)
    }

    pub(super) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    pub(super) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Register before checking, so a close between the check and the await is not missed.
            notified.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Held by a connection's task for as long as it runs.
pub(super) struct ConnectionGuard(Arc<Connections>, IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.1.dec();
        self.0.gauge.dec();
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn wait_idle_returns_once_the_last_connection_closes() {
        let metrics = crate::edge::EdgeMetrics::default();
        let connections = Arc::new(Connections::new(metrics.active.clone()));
        let listener = metrics.by_listener.with_label_values(&["127.0.0.1:80"]);
        let first = connections.open(listener.clone());
        let second = connections.open(listener.clone());
        assert_eq!(listener.get(), 2);
        assert_eq!(connections.active(), 2);
        let waiter = tokio::spawn({
            let connections = connections.clone();
            async move { connections.wait_idle().await }
        });
        drop(first);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one connection is still open");
        drop(second);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("wait_idle returns after the last close")
            .expect("waiter task");
        assert_eq!(connections.active(), 0);
        assert_eq!(listener.get(), 0);
    }
}
