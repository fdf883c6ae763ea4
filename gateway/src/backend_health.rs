//! Routed Services without a ready endpoint: a gauge an operator can alert on, and a log line
//! when the set of such Services changes (not on every reload, which in a cluster is every
//! EndpointSlice update).

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use prometheus::{IntGaugeVec, Opts, Registry};
use sluice_controller::publish::Store;
use sluice_controller::snapshot::Snapshot;

/// `sluice_backend_ready_endpoints{backend}`: one series per routed Service, so its cardinality
/// is bounded by the configuration, never by traffic.
pub struct BackendHealth {
    ready: IntGaugeVec,
    /// Ready endpoints per routed Service in the last snapshot seen.
    last: BTreeMap<String, usize>,
}

/// What one snapshot changed: the Services that lost their last ready endpoint or got one back.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub now_empty: Vec<String>,
    pub recovered: Vec<String>,
}

impl BackendHealth {
    pub fn register(registry: &Registry) -> Result<BackendHealth, prometheus::Error> {
        let ready = IntGaugeVec::new(
            Opts::new(
                "sluice_backend_ready_endpoints",
                "Ready endpoints of each Service a route sends requests to; 0 means its \
                 requests get 503.",
            ),
            &["backend"],
        )?;
        registry.register(Box::new(ready.clone()))?;
        Ok(BackendHealth {
            ready,
            last: BTreeMap::new(),
        })
    }

    /// Sets the gauge from `snapshot` and logs what changed since the last one.
    pub fn observe(&mut self, snapshot: &Snapshot) -> Change {
        let now: BTreeMap<String, usize> = snapshot
            .routed_services()
            .into_iter()
            .map(|(name, b)| (name.to_string(), b.endpoints.len()))
            .collect();
        let mut change = Change::default();
        for (name, &count) in &now {
            let was_empty = self.last.get(name).map(|&c| c == 0);
            match (was_empty, count == 0) {
                (None | Some(false), true) => change.now_empty.push(name.clone()),
                (Some(true), false) => change.recovered.push(name.clone()),
                _ => {}
            }
            self.ready
                .with_label_values(&[name.as_str()])
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        for name in self.last.keys().filter(|n| !now.contains_key(*n)) {
            // Not routed any more: its series would otherwise report a stale count forever.
            let _ = self.ready.remove_label_values(&[name.as_str()]);
        }
        for name in &change.now_empty {
            tracing::warn!(
                backend = %name,
                "backend Service {name} has no ready endpoints: requests routed to it get 503"
            );
        }
        for name in &change.recovered {
            let ready = now.get(name).copied().unwrap_or_default();
            tracing::info!(backend = %name, ready, "backend Service {name} has ready endpoints again");
        }
        self.last = now;
        change
    }

    /// Observes every snapshot `store` publishes; ends when the store is dropped.
    pub fn spawn(mut self, store: &Arc<Store>) -> tokio::task::JoinHandle<()> {
        let mut published = store.subscribe();
        // Weak, so this task never keeps a stopped instance's store (and itself) alive.
        let store: Weak<Store> = Arc::downgrade(store);
        tokio::spawn(async move {
            loop {
                published.borrow_and_update();
                let Some(live) = store.upgrade() else { break };
                let snapshot = live.load();
                drop(live);
                // An empty store (nothing published yet) routes nothing and says nothing.
                self.observe(&snapshot);
                if published.changed().await.is_err() {
                    break;
                }
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
