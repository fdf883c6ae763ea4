//! The most recent mismatches per route and mirror, for `GET /shadow`: bounded in count and
//! size, and never holding a query string, a header value or a body.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;

use super::compare::Verdict;
use super::observe::Observation;
use super::{CopyLabels, ShadowResult};

/// Samples kept across every route and mirror; a policy's `samples` applies per route and mirror
/// within it. A full log drops the new sample (counted in `dropped`) unless its own route and
/// mirror has one to give up.
pub const MAX_SAMPLES: usize = 4096;
/// A longer path is cut here (on a character boundary) in a sample.
pub const PATH_CAP_BYTES: usize = 512;
/// Differing header names kept per sample.
const MAX_HEADER_NAMES: usize = 16;

/// One mismatch, as `/shadow` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub time: String,
    pub policy: String,
    pub result: ShadowResult,
    pub method: String,
    pub path: String,
    pub headers: Vec<String>,
    pub primary: Side,
    pub mirror: Side,
}

/// One side of a sample.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub status: Option<u16>,
    /// xxh3-128 of the body, hex; absent when bodies are not compared.
    pub digest: Option<String>,
    pub latency_seconds: Option<f64>,
}

impl Side {
    fn of(observation: &Observation) -> Side {
        Side {
            status: observation.status,
            digest: observation.digest().map(|d| format!("{d:032x}")),
            latency_seconds: observation.latency().map(|l| l.as_secs_f64()),
        }
    }
}

/// `GET /shadow`.
#[derive(Debug, Serialize)]
pub struct ShadowReport {
    /// Newest first within each route and mirror.
    pub samples: Vec<RouteSamples>,
    /// Samples refused because the log was full.
    pub dropped: u64,
}

#[derive(Debug, Serialize)]
pub struct RouteSamples {
    pub route: String,
    pub mirror: String,
    pub samples: Vec<Sample>,
}

#[derive(Default)]
struct Log {
    rings: BTreeMap<(String, String), VecDeque<Sample>>,
    total: usize,
    dropped: u64,
}

/// The ring buffers behind `/shadow`.
#[derive(Default)]
pub struct SampleLog {
    log: Mutex<Log>,
}

impl SampleLog {
    pub(super) fn keep(
        &self,
        copy: &CopyLabels,
        per_route: usize,
        verdict: &Verdict,
        primary: &Observation,
        mirror: &Observation,
    ) {
        if per_route == 0 {
            return;
        }
        let sample = Sample {
            time: now(),
            policy: copy.policy.name.clone(),
            result: verdict.result,
            method: copy.method.as_str().to_string(),
            path: cut(&copy.path, PATH_CAP_BYTES),
            headers: verdict
                .headers
                .iter()
                .take(MAX_HEADER_NAMES)
                .map(|h| h.as_str().to_string())
                .collect(),
            primary: Side::of(primary),
            mirror: Side::of(mirror),
        };
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let Log {
            rings,
            total,
            dropped,
        } = &mut *log;
        let key = (copy.route.to_string(), copy.mirror.to_string());
        let limit = per_route.min(MAX_SAMPLES);
        let ring_len = rings.get(&key).map_or(0, VecDeque::len);
        if ring_len >= limit || (*total >= MAX_SAMPLES && ring_len > 0) {
            // The oldest of this route and mirror make room; a policy whose `samples` was lowered
            // trims its ring to the new limit at once rather than one entry per new sample.
            if let Some(ring) = rings.get_mut(&key) {
                // At least one, so a full log recycles this ring's oldest.
                let excess = (ring.len() + 1).saturating_sub(limit).clamp(1, ring.len());
                ring.drain(..excess);
                *total -= excess;
            }
        } else if *total >= MAX_SAMPLES {
            *dropped += 1;
            return;
        }
        rings.entry(key).or_default().push_back(sample);
        *total += 1;
    }

    pub fn report(&self) -> ShadowReport {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        ShadowReport {
            samples: log
                .rings
                .iter()
                .map(|((route, mirror), ring)| RouteSamples {
                    route: route.clone(),
                    mirror: mirror.clone(),
                    samples: ring.iter().rev().cloned().collect(),
                })
                .collect(),
            dropped: log.dropped,
        }
    }
}

fn now() -> String {
    jiff::Timestamp::try_from(SystemTime::now())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn cut(s: &str, cap: usize) -> String {
    if s.len() <= cap {
        return s.to_string();
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use http::{HeaderMap, Method};
    use sluice_controller::snapshot::{Comparison, CopyShape, Fraction, MirrorPolicy};

    use super::*;

    fn policy(samples: usize) -> Arc<MirrorPolicy> {
        Arc::new(MirrorPolicy {
            name: "default/p".to_string(),
            request: CopyShape::default(),
            compare: Some(Comparison {
                fraction: Fraction::ALL,
                status: true,
                headers: Vec::new(),
                body: true,
                ignore_json_fields: Vec::new(),
                samples,
            }),
        })
    }

    fn keep_one(log: &SampleLog, policy: &Arc<MirrorPolicy>, route: &str, path: &str) {
        let copy = CopyLabels {
            route: route.into(),
            mirror: "default/v2:8080".into(),
            policy: policy.clone(),
            method: Method::GET,
            path: path.to_string(),
        };
        let mut side = Observation::new(policy, Instant::now()).expect("compares");
        side.on_head(200, &HeaderMap::new());
        side.finish();
        let verdict = Verdict {
            result: ShadowResult::BodyMismatch,
            headers: Vec::new(),
        };
        log.keep(
            &copy,
            policy.compare.as_ref().map_or(0, |c| c.samples),
            &verdict,
            &side,
            &side,
        );
    }

    fn paths(report: &ShadowReport) -> Vec<Vec<&str>> {
        report
            .samples
            .iter()
            .map(|g| g.samples.iter().map(|s| s.path.as_str()).collect())
            .collect()
    }

    #[test]
    fn each_route_keeps_its_newest_samples_first() {
        let log = SampleLog::default();
        let two = policy(2);
        for path in ["/1", "/2", "/3"] {
            keep_one(&log, &two, "default/a", path);
        }
        keep_one(&log, &two, "default/b", "/x");
        assert_eq!(paths(&log.report()), vec![vec!["/3", "/2"], vec!["/x"]]);
    }

    #[test]
    fn a_full_log_drops_new_routes_and_recycles_old_ones() {
        let log = SampleLog::default();
        let many = policy(MAX_SAMPLES);
        for i in 0..MAX_SAMPLES {
            keep_one(&log, &many, "default/a", &format!("/{i}"));
        }
        keep_one(&log, &many, "default/b", "/refused");
        keep_one(&log, &many, "default/a", "/newest");
        let report = log.report();
        assert_eq!(report.dropped, 1);
        assert_eq!(report.samples.len(), 1);
        assert_eq!(report.samples[0].samples.len(), MAX_SAMPLES);
        assert_eq!(report.samples[0].samples[0].path, "/newest");
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let long = "é".repeat(PATH_CAP_BYTES);
        let cut = cut(&long, PATH_CAP_BYTES);
        assert!(cut.len() <= PATH_CAP_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn lowering_samples_trims_the_ring_to_the_new_limit() {
        let log = SampleLog::default();
        let five = policy(5);
        for path in ["/1", "/2", "/3", "/4", "/5"] {
            keep_one(&log, &five, "default/a", path);
        }
        keep_one(&log, &policy(2), "default/a", "/6");
        assert_eq!(paths(&log.report()), vec![vec!["/6", "/5"]]);
    }
}
