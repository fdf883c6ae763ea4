//! The one atomic store: every publish replaces the whole snapshot with a single swap.
//!
//! Readers call [`Store::load`] once per request and keep the `Arc` for every phase, so a request
//! never sees half of one configuration and half of another, and in-flight requests finish on the
//! snapshot they started with.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::snapshot::Snapshot;

/// The outcome of the most recent attempt to load configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Nothing has been attempted yet.
    Pending,
    /// A snapshot was published.
    Published {
        /// The generation it got.
        generation: u64,
        /// When it was published.
        at: SystemTime,
    },
    /// The configuration could not be loaded; the previous snapshot keeps serving.
    Rejected {
        /// The error, as shown on the admin status endpoint and in logs.
        error: String,
        /// When the load was rejected.
        at: SystemTime,
    },
}

/// Holds the live [`Snapshot`] and the record of publishes and rejections; shared as `Arc<Store>`.
#[derive(Debug)]
pub struct Store {
    current: ArcSwap<Snapshot>,
    ready: AtomicBool,
    published_total: AtomicU64,
    rejected_total: AtomicU64,
    last: Mutex<ReloadOutcome>,
    generation_tx: watch::Sender<u64>,
}

impl Store {
    /// An empty store: generation 0, no binds, not ready.
    pub fn new() -> Arc<Store> {
        let (generation_tx, _) = watch::channel(0);
        Arc::new(Store {
            current: ArcSwap::from_pointee(Snapshot::default()),
            ready: AtomicBool::new(false),
            published_total: AtomicU64::new(0),
            rejected_total: AtomicU64::new(0),
            last: Mutex::new(ReloadOutcome::Pending),
            generation_tx,
        })
    }

    /// The live snapshot. Load once per request and keep it.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Stamps the next generation on `snapshot`, swaps it in, and wakes subscribers. Each
    /// backend's round-robin rotation continues from the snapshot it replaces.
    pub fn publish(&self, mut snapshot: Snapshot) -> u64 {
        let previous = self.current.load();
        let generation = previous.generation + 1;
        snapshot.generation = generation;
        snapshot.resume_round_robin_from(&previous);
        drop(previous);
        self.current.store(Arc::new(snapshot));
        self.ready.store(true, Ordering::Release);
        self.published_total.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = ReloadOutcome::Published {
            generation,
            at: SystemTime::now(),
        };
        self.generation_tx.send_replace(generation);
        generation
    }

    /// Records a configuration that could not be loaded; the current snapshot stays.
    pub fn reject(&self, error: String) {
        self.rejected_total.fetch_add(1, Ordering::Relaxed);
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = ReloadOutcome::Rejected {
            error,
            at: SystemTime::now(),
        };
    }

    /// True once the first snapshot has been published.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// What happened to the most recent load: pending, published or rejected.
    pub fn last_outcome(&self) -> ReloadOutcome {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// `(published, rejected)` since start; exported as `sluice_config_reloads_total{result}`.
    pub fn reload_counts(&self) -> (u64, u64) {
        (
            self.published_total.load(Ordering::Relaxed),
            self.rejected_total.load(Ordering::Relaxed),
        )
    }

    /// Yields the generation after every publish (e.g. for the listener manager to rebind).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation_tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_bumps_generation_and_becomes_ready() {
        let store = Store::new();
        assert!(!store.is_ready());
        let before = store.load();
        assert_eq!(store.publish(Snapshot::default()), 1);
        assert_eq!(store.publish(Snapshot::default()), 2);
        assert!(store.is_ready());
        assert_eq!(
            before.generation, 0,
            "a held snapshot never changes under its reader"
        );
        assert_eq!(store.load().generation, 2);
    }

    #[test]
    fn rejected_reload_keeps_the_last_snapshot() {
        let store = Store::new();
        store.publish(Snapshot::default());
        store.reject("bad yaml".into());
        assert_eq!(store.load().generation, 1);
        assert_eq!(store.reload_counts(), (1, 1));
        assert!(matches!(
            store.last_outcome(),
            ReloadOutcome::Rejected { .. }
        ));
    }
}
