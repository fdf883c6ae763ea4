//! Shadow diff: what a mirror answered compared with what production answered, per the
//! `compare` section of the MirrorPolicy on the rule, counted in metrics and sampled for
//! `GET /shadow`.
//!
//! Each side of a compared copy fills an [`Observation`] as its answer streams (status, the
//! compared headers, a digest of the body, a bounded JSON copy when JSON fields are ignored);
//! `crate::mirror` joins the two on the copy's own task, never on the primary's, and hands them
//! to [`Shadow::conclude`]. See `docs/shadow-diff.md` for the semantics and every bound.

mod compare;
mod json;
mod metrics;
mod observe;
mod samples;

use std::sync::Arc;

use http::Method;
use sluice_controller::snapshot::MirrorPolicy;

pub use compare::Verdict;
pub use metrics::ShadowMetrics;
pub use observe::{compared_values, Observation, JSON_CAP_BYTES};
pub use samples::{SampleLog, ShadowReport, MAX_SAMPLES, PATH_CAP_BYTES};

/// The result of one compared copy (the `result` label of `sluice_shadow_comparisons_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShadowResult {
    Match,
    StatusMismatch,
    HeaderMismatch,
    BodyMismatch,
    /// The copy failed, timed out or was aborted by its byte budget.
    MirrorError,
    /// The primary failed, the copy was not sampled by `compare.fraction`, a JSON body was over
    /// [`JSON_CAP_BYTES`], or the copy was never sent (the in-flight cap).
    NotCompared,
}

impl ShadowResult {
    pub const ALL: [ShadowResult; 6] = [
        ShadowResult::Match,
        ShadowResult::StatusMismatch,
        ShadowResult::HeaderMismatch,
        ShadowResult::BodyMismatch,
        ShadowResult::MirrorError,
        ShadowResult::NotCompared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShadowResult::Match => "match",
            ShadowResult::StatusMismatch => "status_mismatch",
            ShadowResult::HeaderMismatch => "header_mismatch",
            ShadowResult::BodyMismatch => "body_mismatch",
            ShadowResult::MirrorError => "mirror_error",
            ShadowResult::NotCompared => "not_compared",
        }
    }

    fn is_mismatch(self) -> bool {
        matches!(
            self,
            ShadowResult::StatusMismatch
                | ShadowResult::HeaderMismatch
                | ShadowResult::BodyMismatch
        )
    }
}

/// The copy a comparison is about: where it went and what of the request may be kept.
pub struct CopyLabels {
    pub route: Arc<str>,
    pub mirror: Arc<str>,
    pub policy: Arc<MirrorPolicy>,
    pub method: Method,
    /// The copy's path, without its query (queries may carry credentials).
    pub path: String,
}

// === impl Shadow ===

/// Everything shadow diff shares across requests: its metrics and the mismatch samples. One per
/// Sluice instance, owned by its [`crate::metrics::Metrics`] so the admin listener sees it.
pub struct Shadow {
    pub metrics: ShadowMetrics,
    pub samples: SampleLog,
}

impl Shadow {
    pub fn register(registry: &prometheus::Registry) -> Result<Shadow, prometheus::Error> {
        Ok(Shadow {
            metrics: ShadowMetrics::register(registry)?,
            samples: SampleLog::default(),
        })
    }

    /// Counts a copy that ended without a comparison (`mirror_error` or `not_compared`).
    pub fn record(&self, copy: &CopyLabels, result: ShadowResult) {
        self.metrics.count(&copy.route, &copy.mirror, result);
    }

    /// Compares the two answers, counts the result and keeps a sample of a mismatch.
    pub fn conclude(&self, copy: &CopyLabels, primary: &Observation, mirror: &Observation) {
        let Some(comparison) = copy.policy.compare.as_ref() else {
            return;
        };
        let verdict = compare::compare(comparison, primary, mirror);
        self.metrics
            .count(&copy.route, &copy.mirror, verdict.result);
        if verdict.result == ShadowResult::NotCompared {
            return;
        }
        if let (Some(p), Some(m)) = (primary.latency(), mirror.latency()) {
            self.metrics
                .delta(&copy.route, &copy.mirror, m.as_secs_f64() - p.as_secs_f64());
        }
        if verdict.result.is_mismatch() {
            self.samples
                .keep(copy, comparison.samples, &verdict, primary, mirror);
        }
    }

    /// How many copies of `route` → `mirror` ended with `result`; for tests.
    pub fn count(&self, route: &str, mirror: &str, result: ShadowResult) -> u64 {
        self.metrics.get(route, mirror, result)
    }
}
