//! How often an entry's attempts run and what makes the entry pass, whatever the traffic kind:
//! convergence (FORMAT.md §4.2), `repeat`, and weighted distribution (§4.6).
//!
//! Each kind (HTTP, gRPC, TCP) supplies one attempt as a closure; an attempt reports its [`Verdict`], a
//! detail for the failure message and the pod that answered (empty when none did).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::case::{Distribution, RequestEntry};
use crate::http::Verdict;

const CONVERGE_WINDOW: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);

/// One attempt's result.
pub(crate) struct Outcome {
    pub verdict: Verdict,
    /// Why it failed and what was sent; empty on a pass.
    pub detail: String,
    /// The answering pod, for distributions.
    pub pod: String,
}

/// Runs an entry of a non-HTTP kind: `distribution`, else `repeat`, else convergence with `consecutive`
/// passes in a row.
pub(crate) async fn drive<F, Fut>(
    entry: &RequestEntry,
    consecutive: usize,
    attempt: F,
) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Outcome>,
{
    if let Some(distribution) = &entry.distribution {
        return weighted(distribution, &attempt).await;
    }
    if let Some(times) = entry.repeat {
        return repeat(times, || async { verdict_of(attempt().await) }).await;
    }
    converge(consecutive, || async { verdict_of(attempt().await) }).await
}

fn verdict_of(outcome: Outcome) -> (Verdict, String) {
    (outcome.verdict, outcome.detail)
}

/// `repeat: N`: N more sends, no retries, every one must pass.
pub(crate) async fn repeat<F, Fut>(times: usize, mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (Verdict, String)>,
{
    for n in 0..times {
        let (verdict, detail) = attempt().await;
        if verdict != Verdict::Pass {
            return Err(format!("repeat {}/{times}: {}", n + 1, detail));
        }
    }
    Ok(())
}

/// Retries until `consecutive` passes in a row, within [`CONVERGE_WINDOW`]; a fatal verdict ends at once.
pub(crate) async fn converge<F, Fut>(consecutive: usize, mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = (Verdict, String)>,
{
    let deadline = Instant::now() + CONVERGE_WINDOW;
    let mut streak = 0;
    let mut last_failure = String::from("no attempt finished");
    loop {
        let (verdict, detail) = attempt().await;
        match verdict {
            Verdict::Pass => {
                streak += 1;
                if streak >= consecutive {
                    return Ok(());
                }
            }
            Verdict::Fatal(_) => return Err(detail),
            Verdict::NotYet(_) => {
                streak = 0;
                last_failure = detail;
                if Instant::now() >= deadline {
                    return Err(format!("not converged within 30s: {last_failure}"));
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("not converged within 30s: {last_failure}"));
        }
    }
}

/// §4.6: any of `attempts` rounds of `requests` samples must match the weights within the tolerance.
pub(crate) async fn weighted<F, Fut>(distribution: &Distribution, attempt: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Outcome>,
{
    let mut last = String::new();
    for round in 1..=distribution.attempts.max(1) {
        let concurrency = distribution.concurrency.unwrap_or(10).max(1);
        let results: Vec<Outcome> = stream::iter(0..distribution.requests)
            .map(|_| attempt())
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut failure = None;
        for outcome in results {
            if outcome.verdict != Verdict::Pass {
                failure.get_or_insert(outcome.detail);
                continue;
            }
            *counts.entry(backend_of_pod(&outcome.pod)).or_default() += 1;
        }
        last = match failure {
            Some(detail) => format!("round {round}: a sample failed: {detail}"),
            None => match judge_distribution(distribution, &counts) {
                Ok(()) => return Ok(()),
                Err(reason) => format!("round {round}: {reason}"),
            },
        };
    }
    Err(format!("weighted distribution never matched: {last}"))
}

fn judge_distribution(
    distribution: &Distribution,
    counts: &BTreeMap<String, usize>,
) -> Result<(), String> {
    let total = distribution.requests.max(1) as f64;
    for backend in counts.keys() {
        if !distribution.weights.contains_key(backend) {
            return Err(format!(
                "unexpected backend {backend} answered (counts {counts:?})"
            ));
        }
    }
    for (backend, weight) in &distribution.weights {
        let count = counts.get(backend).copied().unwrap_or(0);
        if (*weight > 0.0) != (count > 0) {
            return Err(format!(
                "backend {backend} with weight {weight} got {count} requests (counts {counts:?})"
            ));
        }
        let share = count as f64 / total;
        if (share - weight).abs() > distribution.tolerance {
            return Err(format!(
                "backend {backend} got {share:.3} of traffic, expected {weight} ± {} (counts {counts:?})",
                distribution.tolerance
            ));
        }
    }
    Ok(())
}

/// Pod name minus its last two `-` segments (the ReplicaSet hash and the pod suffix).
fn backend_of_pod(pod: &str) -> String {
    let mut parts: Vec<&str> = pod.split('-').collect();
    if parts.len() > 2 {
        parts.truncate(parts.len() - 2);
    }
    parts.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_name_drops_the_two_pod_suffixes() {
        assert_eq!(
            backend_of_pod("infra-backend-v1-6b7d8c9f5-x2x4q"),
            "infra-backend-v1"
        );
        assert_eq!(backend_of_pod("plain"), "plain");
    }

    #[test]
    fn distribution_judgement_follows_weights_and_tolerance() {
        let distribution = Distribution {
            requests: 100,
            concurrency: None,
            tolerance: 0.05,
            attempts: 1,
            weights: [
                ("a".to_owned(), 0.7),
                ("b".to_owned(), 0.3),
                ("c".to_owned(), 0.0),
            ]
            .into(),
            backend_from: None,
        };
        let counts = |a, b, c| {
            let mut m = BTreeMap::new();
            for (k, v) in [("a", a), ("b", b), ("c", c)] {
                if v > 0 {
                    m.insert(k.to_owned(), v);
                }
            }
            m
        };
        assert!(judge_distribution(&distribution, &counts(70, 30, 0)).is_ok());
        assert!(judge_distribution(&distribution, &counts(74, 26, 0)).is_ok());
        assert!(judge_distribution(&distribution, &counts(80, 20, 0)).is_err());
        assert!(
            judge_distribution(&distribution, &counts(70, 29, 1)).is_err(),
            "weight 0 must get nothing"
        );
    }

    #[tokio::test]
    async fn convergence_needs_the_streak_and_stops_at_a_fatal_verdict() {
        let mut calls = 0;
        let result = converge(3, || {
            calls += 1;
            let verdict = if calls == 2 {
                Verdict::NotYet("blip".to_owned())
            } else {
                Verdict::Pass
            };
            async move { (verdict, String::new()) }
        })
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(calls, 5, "the failure in between resets the streak");
        let result = converge(3, || async {
            (Verdict::Fatal("no".to_owned()), "fatal detail".to_owned())
        })
        .await;
        assert_eq!(result, Err("fatal detail".to_owned()));
    }
}
