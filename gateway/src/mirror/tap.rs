//! Shadow diff's hold on one copy: the primary's answer observed in the proxy phases, the
//! mirror's in the copy's task, joined on the copy's task (never the primary's) whichever
//! finishes last.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use pingora_http::RequestHeader;
use sluice_controller::snapshot::MirrorPolicy;
use tokio::sync::oneshot;

use super::{sampled, Outcome};
use crate::shadow::{CopyLabels, Observation, Shadow, ShadowResult};

/// The primary's side, fed by the proxy phases. Dropped unfinished (the primary failed, or the
/// request ended), it tells the copy's task so: `not_compared`.
pub(super) struct PrimaryTap {
    observing: Option<(Observation, oneshot::Sender<Observation>)>,
}

/// The mirror's side, carried by the copy's task.
pub(super) struct MirrorTap {
    shadow: Arc<Shadow>,
    labels: CopyLabels,
    primary: oneshot::Receiver<Observation>,
    /// Taken by the exchange, which fills it as the answer streams.
    pub answer: Option<Observation>,
}

/// Starts comparing the copy of `head` to `mirror`, when its policy compares and samples it:
/// one side for the proxy phases, one for the copy's task. `None` when the copy is not
/// compared (a copy the policy's fraction leaves out is counted `not_compared` here).
pub(super) fn start(
    shadow: Option<&Arc<Shadow>>,
    policy: Option<&Arc<MirrorPolicy>>,
    route: &Arc<str>,
    mirror: &Arc<str>,
    head: &RequestHeader,
) -> Option<(PrimaryTap, MirrorTap)> {
    let (shadow, policy, labels) = labels(shadow, policy, route, mirror, head)?;
    let fraction = policy.compare.as_ref().map(|c| c.fraction);
    if !fraction.is_some_and(sampled) {
        shadow.record(&labels, ShadowResult::NotCompared);
        return None;
    }
    let origin = Instant::now();
    let primary = Observation::new(policy, origin)?;
    let answer = Observation::new(policy, origin)?;
    let (tx, rx) = oneshot::channel();
    let primary = PrimaryTap {
        observing: Some((primary, tx)),
    };
    let mirror = MirrorTap {
        shadow: shadow.clone(),
        labels,
        primary: rx,
        answer: Some(answer),
    };
    Some((primary, mirror))
}

/// Counts a copy that was never sent, when its policy compares.
pub(super) fn skipped(
    shadow: Option<&Arc<Shadow>>,
    policy: Option<&Arc<MirrorPolicy>>,
    route: &Arc<str>,
    mirror: &Arc<str>,
    head: &RequestHeader,
    outcome: Outcome,
) {
    if let Some((shadow, _, labels)) = labels(shadow, policy, route, mirror, head) {
        shadow.record(&labels, result_of_failed(outcome));
    }
}

fn labels<'a>(
    shadow: Option<&'a Arc<Shadow>>,
    policy: Option<&'a Arc<MirrorPolicy>>,
    route: &Arc<str>,
    mirror: &Arc<str>,
    head: &RequestHeader,
) -> Option<(&'a Arc<Shadow>, &'a Arc<MirrorPolicy>, CopyLabels)> {
    let (shadow, policy) = (shadow?, policy?);
    policy.compare.as_ref()?;
    let labels = CopyLabels {
        route: route.clone(),
        mirror: mirror.clone(),
        policy: policy.clone(),
        method: head.method.clone(),
        // Never the query: it may carry credentials.
        path: head.uri.path().to_string(),
    };
    Some((shadow, policy, labels))
}

/// A copy that did not complete: its own failure, unless the primary's ended it.
fn result_of_failed(outcome: Outcome) -> ShadowResult {
    match outcome {
        Outcome::AbortedClient | Outcome::SkippedCapacity | Outcome::SkippedUpgrade => {
            ShadowResult::NotCompared
        }
        Outcome::Completed
        | Outcome::DroppedOverflow
        | Outcome::ConnectError
        | Outcome::Timeout
        | Outcome::UpstreamError => ShadowResult::MirrorError,
    }
}

// === impl PrimaryTap ===

impl PrimaryTap {
    /// The backend's response head, before Sluice's response filters.
    pub(super) fn on_head(&mut self, status: u16, headers: &HeaderMap) {
        if let Some((observation, _)) = self.observing.as_mut() {
            observation.on_head(status, headers);
        }
    }

    /// O(1) allocations: a hash update, and a reference-counted clone when JSON is kept.
    pub(super) fn on_chunk(&mut self, chunk: &Bytes) {
        if let Some((observation, _)) = self.observing.as_mut() {
            observation.on_chunk(chunk);
        }
    }

    /// The backend's response is complete: handed to the copy's task.
    pub(super) fn finish(&mut self) {
        let Some((mut observation, tx)) = self.observing.take() else {
            return;
        };
        observation.finish();
        if observation.is_complete() {
            // The copy's task may have given up waiting; nothing to do then.
            let _ = tx.send(observation);
        }
    }
}

// === impl MirrorTap ===

impl MirrorTap {
    /// Counts the copy's result. A completed copy waits for the primary's answer at most
    /// `wait` (the mirror timeout): a primary that streams on does not pin the comparison.
    pub(super) async fn conclude(
        self,
        outcome: Outcome,
        answer: Option<Observation>,
        wait: Duration,
    ) {
        let MirrorTap {
            shadow,
            labels,
            primary,
            ..
        } = self;
        let answer = answer.filter(Observation::is_complete);
        let (Outcome::Completed, Some(answer)) = (outcome, answer) else {
            let result = match outcome {
                // An answer cut short by its own end (closed early) is the mirror's failure.
                Outcome::Completed => ShadowResult::MirrorError,
                other => result_of_failed(other),
            };
            shadow.record(&labels, result);
            return;
        };
        match tokio::time::timeout(wait, primary).await {
            Ok(Ok(primary)) => shadow.conclude(&labels, &primary, &answer),
            Ok(Err(_)) | Err(_) => shadow.record(&labels, ShadowResult::NotCompared),
        }
    }
}
