//! `sluice_downstream_*`: what clients cost and what the edge refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::reject::Violation;

/// The edge's counters; clones share them. Unregistered until [`EdgeMetrics::register`].
#[derive(Clone)]
pub struct EdgeMetrics {
    /// `sluice_downstream_connections_accepted_total`
    pub accepted: IntCounter,
    /// `sluice_downstream_connections_active`
    pub active: IntGauge,
    /// `sluice_downstream_connections{listener}`: the same, by listening address; a series goes
    /// when its socket closes, so the set follows the configuration.
    pub by_listener: IntGaugeVec,
    /// `sluice_downstream_connections_rejected_total{reason}`: closed at accept
    /// (`max_connections`), failing the TLS handshake in time (`tls_handshake`), or naming in
    /// their ClientHello no listener of the port (`tls_unknown_sni`).
    pub connections_rejected: IntCounterVec,
    /// `sluice_downstream_requests_rejected_total{reason}`: requests answered 4xx/5xx by the
    /// edge guard, by [`Violation::label`].
    pub requests_rejected: IntCounterVec,
    /// `sluice_downstream_client_aborts_total`: requests the client abandoned (closed or reset)
    /// before the response was complete; logged at debug only.
    pub client_aborts: IntCounter,
    warned: std::sync::Arc<RateLimit>,
}

impl std::fmt::Debug for EdgeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeMetrics").finish_non_exhaustive()
    }
}

impl Default for EdgeMetrics {
    fn default() -> EdgeMetrics {
        // Constant, valid definitions: these constructors cannot fail.
        #[allow(clippy::expect_used)]
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("metric");
        #[allow(clippy::expect_used)]
        let by_reason = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["reason"]).expect("metric")
        };
        #[allow(clippy::expect_used)]
        let active = IntGauge::new(
            "sluice_downstream_connections_active",
            "Client connections open now.",
        )
        .expect("metric");
        #[allow(clippy::expect_used)]
        let by_listener = IntGaugeVec::new(
            Opts::new(
                "sluice_downstream_connections",
                "Client connections open now, by listening address.",
            ),
            &["listener"],
        )
        .expect("metric");
        let requests_rejected = by_reason(
            "sluice_downstream_requests_rejected_total",
            "Client requests refused by the edge guard, by reason.",
        );
        for v in Violation::ALL {
            requests_rejected.with_label_values(&[v.label()]);
        }
        let connections_rejected = by_reason(
            "sluice_downstream_connections_rejected_total",
            "Client connections closed at accept, by reason.",
        );
        for reason in ["max_connections", "tls_handshake", "tls_unknown_sni"] {
            connections_rejected.with_label_values(&[reason]);
        }
        EdgeMetrics {
            accepted: counter(
                "sluice_downstream_connections_accepted_total",
                "Client connections accepted.",
            ),
            active,
            by_listener,
            connections_rejected,
            requests_rejected,
            client_aborts: counter(
                "sluice_downstream_client_aborts_total",
                "Requests the client abandoned before the response was complete.",
            ),
            warned: Default::default(),
        }
    }
}

impl EdgeMetrics {
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.accepted.clone()))?;
        registry.register(Box::new(self.active.clone()))?;
        registry.register(Box::new(self.by_listener.clone()))?;
        registry.register(Box::new(self.connections_rejected.clone()))?;
        registry.register(Box::new(self.requests_rejected.clone()))?;
        registry.register(Box::new(self.client_aborts.clone()))
    }

    pub fn request_rejected(&self, violation: Violation) {
        self.requests_rejected
            .with_label_values(&[violation.label()])
            .inc();
    }

    /// A warning that a client flood could repeat thousands of times a second: logged at most
    /// once per [`RateLimit::PERIOD_SECS`], with how many were held back.
    pub fn warn_limited(&self, message: &str) {
        if let Some(suppressed) = self.warned.allow() {
            tracing::warn!(suppressed, "{message}");
        }
    }
}

/// Lets one event through per period.
#[derive(Debug, Default)]
struct RateLimit {
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    const PERIOD_SECS: u64 = 10;

    /// `Some(events held back since the last one let through)` when this one may be logged.
    fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last.load(Ordering::Relaxed);
        if now >= last + Self::PERIOD_SECS
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_warnings_logs_once_per_period() {
        let limit = RateLimit::default();
        assert_eq!(limit.allow(), Some(0));
        for _ in 0..1000 {
            assert_eq!(limit.allow(), None);
        }
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn every_metric_registers_once() {
        let registry = Registry::new();
        EdgeMetrics::default()
            .register(&registry)
            .expect("registers");
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        assert!(names.contains(&"sluice_downstream_requests_rejected_total".to_string()));
        // Six families; `sluice_downstream_connections{listener}` has no series before a bind.
        assert_eq!(names.len(), 5);
    }
}
