//! Byte and request budgets that bound the memory mirroring may hold, whatever the mirrors do.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus::IntGauge;

/// Engine-wide caps shared by every mirror copy.
#[derive(Debug)]
pub(super) struct GlobalBudget {
    max_inflight: usize,
    max_buffered: usize,
    inflight: AtomicUsize,
    buffered: AtomicUsize,
    /// Copies admitted so far (wrapping): each copy's ordinal, which staggers deadlines.
    admitted: AtomicU32,
    inflight_gauge: IntGauge,
    buffered_gauge: IntGauge,
}

impl GlobalBudget {
    pub(super) fn new(
        max_inflight: usize,
        max_buffered: usize,
        inflight_gauge: IntGauge,
        buffered_gauge: IntGauge,
    ) -> GlobalBudget {
        GlobalBudget {
            max_inflight,
            max_buffered,
            inflight: AtomicUsize::new(0),
            buffered: AtomicUsize::new(0),
            admitted: AtomicU32::new(0),
            inflight_gauge,
            buffered_gauge,
        }
    }

    pub(super) fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    pub(super) fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Acquire)
    }

    /// A slot for one more mirror request, or `None` at the cap.
    pub(super) fn admit(self: &Arc<Self>) -> Option<InflightSlot> {
        self.inflight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_inflight).then_some(n + 1)
            })
            .ok()?;
        self.inflight_gauge.inc();
        Some(InflightSlot {
            global: self.clone(),
            ordinal: self.admitted.fetch_add(1, Ordering::Relaxed),
        })
    }
}

/// Held by a mirror task for its whole life; frees the in-flight slot when dropped.
#[derive(Debug)]
pub(super) struct InflightSlot {
    global: Arc<GlobalBudget>,
    ordinal: u32,
}

impl InflightSlot {
    /// This copy's place in the order of admission (wrapping).
    pub(super) fn ordinal(&self) -> u32 {
        self.ordinal
    }
}

impl Drop for InflightSlot {
    fn drop(&mut self) {
        self.global.inflight.fetch_sub(1, Ordering::AcqRel);
        self.global.inflight_gauge.dec();
    }
}

/// The bytes one mirror request has queued and not yet written.
#[derive(Debug)]
pub(super) struct RequestBudget {
    max: usize,
    queued: AtomicUsize,
    global: Arc<GlobalBudget>,
}

impl RequestBudget {
    pub(super) fn new(max: usize, global: Arc<GlobalBudget>) -> Arc<RequestBudget> {
        Arc::new(RequestBudget {
            max,
            queued: AtomicUsize::new(0),
            global,
        })
    }

    pub(super) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Accounts `len` more queued bytes against this request and the engine, or `None` when
    /// either cap would be exceeded (nothing is reserved then).
    pub(super) fn reserve(self: &Arc<Self>, len: usize) -> Option<Reservation> {
        take(&self.queued, len, self.max)?;
        if take(&self.global.buffered, len, self.global.max_buffered).is_none() {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            return None;
        }
        self.global.buffered_gauge.add(gauge_value(len));
        Some(Reservation {
            budget: self.clone(),
            len,
        })
    }
}

fn take(counter: &AtomicUsize, len: usize, max: usize) -> Option<usize> {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            n.checked_add(len).filter(|total| *total <= max)
        })
        .ok()
}

fn gauge_value(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// Travels with a queued chunk and gives its bytes back when the chunk is dropped: written,
/// discarded on abort, or freed with the channel. No path can leak budget.
#[derive(Debug)]
pub(super) struct Reservation {
    budget: Arc<RequestBudget>,
    len: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.queued.fetch_sub(self.len, Ordering::AcqRel);
        self.budget
            .global
            .buffered
            .fetch_sub(self.len, Ordering::AcqRel);
        self.budget.global.buffered_gauge.sub(gauge_value(self.len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(max_inflight: usize, max_buffered: usize) -> Arc<GlobalBudget> {
        Arc::new(GlobalBudget::new(
            max_inflight,
            max_buffered,
            IntGauge::new("i", "i").expect("gauge"),
            IntGauge::new("b", "b").expect("gauge"),
        ))
    }

    #[test]
    fn inflight_slots_stop_at_the_cap_and_come_back_on_drop() {
        let g = global(2, 10);
        let a = g.admit().expect("first");
        let _b = g.admit().expect("second");
        assert!(g.admit().is_none());
        drop(a);
        assert!(g.admit().is_some());
        assert_eq!(g.inflight_gauge.get(), 1);
    }

    #[test]
    fn admitted_copies_are_numbered_in_order() {
        let g = global(3, 10);
        let a = g.admit().expect("first");
        let b = g.admit().expect("second");
        assert_eq!((a.ordinal(), b.ordinal()), (0, 1));
        drop(a);
        assert_eq!(g.admit().map(|c| c.ordinal()), Some(2));
    }

    #[test]
    fn per_request_cap_refuses_without_reserving() {
        let g = global(10, 1000);
        let r = RequestBudget::new(100, g.clone());
        let first = r.reserve(60).expect("fits");
        assert!(r.reserve(41).is_none());
        assert_eq!(g.buffered(), 60);
        let second = r.reserve(40).expect("fits exactly");
        drop(first);
        drop(second);
        assert_eq!(g.buffered(), 0);
        assert_eq!(g.buffered_gauge.get(), 0);
    }

    #[test]
    fn global_cap_is_shared_across_requests() {
        let g = global(10, 100);
        let r1 = RequestBudget::new(80, g.clone());
        let r2 = RequestBudget::new(80, g.clone());
        let _a = r1.reserve(70).expect("fits");
        assert!(r2.reserve(31).is_none());
        assert_eq!(r2.queued.load(Ordering::Acquire), 0);
        assert!(r2.reserve(30).is_some());
    }
}
