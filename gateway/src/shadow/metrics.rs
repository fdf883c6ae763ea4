//! Prometheus metrics of shadow diff, registered into a Sluice instance's own registry.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::ShadowResult;

/// Mirror minus primary, in seconds: one histogram whose negative buckets count a mirror that
/// was faster and whose positive ones count a slower mirror (`le="0"` splits them).
const DELTA_BUCKETS: &[f64] = &[
    -10.0, -5.0, -2.5, -1.0, -0.5, -0.25, -0.1, -0.05, -0.025, -0.01, -0.005, -0.001, 0.0, 0.001,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The shadow diff families; cheap to clone.
#[derive(Clone)]
pub struct ShadowMetrics {
    /// `sluice_shadow_comparisons_total{route,mirror,result}`: one per copy under a `compare`.
    pub comparisons: IntCounterVec,
    /// `sluice_shadow_latency_delta_seconds{route,mirror}`: mirror minus primary, each to the
    /// end of its response, for copies whose two answers were compared.
    pub latency_delta: HistogramVec,
}

impl ShadowMetrics {
    pub fn register(registry: &Registry) -> Result<ShadowMetrics, prometheus::Error> {
        let comparisons = IntCounterVec::new(
            Opts::new(
                "sluice_shadow_comparisons_total",
                "Mirror answers compared with production's, by result.",
            ),
            &["route", "mirror", "result"],
        )?;
        let latency_delta = HistogramVec::new(
            HistogramOpts::new(
                "sluice_shadow_latency_delta_seconds",
                "Mirror latency minus production latency, each to the end of its response.",
            )
            .buckets(DELTA_BUCKETS.to_vec()),
            &["route", "mirror"],
        )?;
        registry.register(Box::new(comparisons.clone()))?;
        registry.register(Box::new(latency_delta.clone()))?;
        Ok(ShadowMetrics {
            comparisons,
            latency_delta,
        })
    }

    pub(super) fn count(&self, route: &str, mirror: &str, result: ShadowResult) {
        self.comparisons
            .with_label_values(&[route, mirror, result.as_str()])
            .inc();
    }

    pub(super) fn delta(&self, route: &str, mirror: &str, seconds: f64) {
        self.latency_delta
            .with_label_values(&[route, mirror])
            .observe(seconds);
    }

    pub(super) fn get(&self, route: &str, mirror: &str, result: ShadowResult) -> u64 {
        self.comparisons
            .get_metric_with_label_values(&[route, mirror, result.as_str()])
            .map(|c| c.get())
            .unwrap_or(0)
    }
}
