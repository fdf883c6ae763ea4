//! Prometheus metrics of request mirroring, registered into a Sluice instance's own registry.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

use super::Outcome;

/// The mirror families; cheap to clone (every field is an `Arc` inside).
#[derive(Clone)]
pub struct MirrorMetrics {
    /// `sluice_mirror_requests_total{route,mirror,outcome}`: one increment per mirror decision
    /// that was not "not sampled".
    pub requests: IntCounterVec,
    /// `sluice_mirror_responses_total{route,mirror,class}`: the mirror's answers by status class.
    pub responses: IntCounterVec,
    /// `sluice_mirror_duration_seconds{route,mirror}`: from the copy's start to its outcome.
    pub duration: HistogramVec,
    /// `sluice_mirror_inflight`: mirror requests started and not yet finished, all routes.
    pub inflight: IntGauge,
    /// `sluice_mirror_bytes_total{route,mirror}`: request body bytes written to mirrors.
    pub bytes: IntCounterVec,
    /// `sluice_mirror_buffered_bytes`: body bytes queued for mirrors and not yet written.
    pub buffered: IntGauge,
}

impl MirrorMetrics {
    pub fn register(registry: &Registry) -> Result<MirrorMetrics, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "sluice_mirror_requests_total",
                "Mirror copies by route, mirror backend and outcome.",
            ),
            &["route", "mirror", "outcome"],
        )?;
        let responses = IntCounterVec::new(
            Opts::new(
                "sluice_mirror_responses_total",
                "Responses received from mirror backends, by status class.",
            ),
            &["route", "mirror", "class"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "sluice_mirror_duration_seconds",
                "Time from the start of a mirror copy to its outcome.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["route", "mirror"],
        )?;
        let inflight = IntGauge::new(
            "sluice_mirror_inflight",
            "Mirror requests started and not yet finished.",
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "sluice_mirror_bytes_total",
                "Request body bytes written to mirror backends.",
            ),
            &["route", "mirror"],
        )?;
        let buffered = IntGauge::new(
            "sluice_mirror_buffered_bytes",
            "Request body bytes queued for mirror backends and not yet written.",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(responses.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(buffered.clone()))?;
        Ok(MirrorMetrics {
            requests,
            responses,
            duration,
            inflight,
            bytes,
            buffered,
        })
    }

    pub(crate) fn outcome(&self, route: &str, mirror: &str, outcome: Outcome) {
        self.requests
            .with_label_values(&[route, mirror, outcome.as_str()])
            .inc();
    }

    /// The number of copies of `route` → `mirror` that ended with `outcome`; for tests and logs.
    pub fn count(&self, route: &str, mirror: &str, outcome: Outcome) -> u64 {
        self.requests
            .get_metric_with_label_values(&[route, mirror, outcome.as_str()])
            .map(|c| c.get())
            .unwrap_or(0)
    }
}
