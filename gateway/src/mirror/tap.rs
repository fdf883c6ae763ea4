//! Shadow diff's hold on one copy. The proxy phases hand the primary's answer (the compared
//! header values, then each body chunk as a shared `Bytes`) to a task of the copy's own through
//! a bounded queue, never waiting: a full queue makes the copy `not_compared`. That task
//! digests it; the copy's task digests the mirror's answer and joins the two, whichever
//! finishes last.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use pingora_http::RequestHeader;
use sluice_controller::snapshot::MirrorPolicy;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{sampled, Outcome};
use crate::shadow::{CopyLabels, Observation, Shadow, ShadowResult};

/// Parts of the primary's answer queued for its observer before the copy gives up comparing.
/// Measured (dev build, 64 KiB chunks): queueing a chunk costs 0.2 µs, digesting it in place
/// 38 µs with xxh3 and 170 µs with SHA-256; 32 chunks absorb the observer's scheduling delay.
const QUEUED_PARTS: usize = 32;

/// The primary's side, fed by the proxy phases. Dropped unfinished (the primary failed, or the
/// request ended), it tells the observer so: `not_compared`.
pub(super) struct PrimaryTap {
    /// `None` once the answer is complete or the queue overflowed.
    parts: Option<mpsc::Sender<Part>>,
    /// The compared header names.
    headers: Vec<http::HeaderName>,
}

/// One part of the primary's answer, on its way to the observer.
enum Part {
    /// The status and only the compared headers.
    Head(u16, HeaderMap),
    Chunk(Bytes),
    End(Instant),
}

/// The mirror's side, carried by the copy's task.
pub(super) struct MirrorTap {
    shadow: Arc<Shadow>,
    labels: CopyLabels,
    primary: Observer,
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
    runtime: &Handle,
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
    let (tx, rx) = mpsc::channel(QUEUED_PARTS);
    let tap = PrimaryTap {
        parts: Some(tx),
        headers: primary.compared_headers().to_vec(),
    };
    let observer = Observer(runtime.spawn(observe(rx, primary)));
    let mirror = MirrorTap {
        shadow: shadow.clone(),
        labels,
        primary: observer,
        answer: Some(answer),
    };
    Some((tap, mirror))
}

/// The task digesting the primary's answer; stopped with the copy however it ends.
struct Observer(JoinHandle<Option<Observation>>);

impl Drop for Observer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The primary's answer, once complete; `None` when the primary side went away without an end.
async fn observe(mut parts: mpsc::Receiver<Part>, mut answer: Observation) -> Option<Observation> {
    while let Some(part) = parts.recv().await {
        match part {
            Part::Head(status, headers) => answer.on_head(status, &headers),
            Part::Chunk(chunk) => answer.on_chunk(&chunk),
            Part::End(at) => {
                answer.finish_at(at);
                return answer.is_complete().then_some(answer);
            }
        }
    }
    None
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
    /// The backend's response head, before Sluice's response filters: only the compared
    /// headers' values are copied.
    pub(super) fn on_head(&mut self, status: u16, headers: &HeaderMap) {
        let mut compared = HeaderMap::new();
        for name in &self.headers {
            for value in headers.get_all(name) {
                compared.append(name.clone(), value.clone());
            }
        }
        self.send(Part::Head(status, compared));
    }

    /// O(1): the chunk is shared, never copied or hashed here.
    pub(super) fn on_chunk(&mut self, chunk: &Bytes) {
        self.send(Part::Chunk(chunk.clone()));
    }

    /// The backend's response is complete.
    pub(super) fn finish(&mut self) {
        self.send(Part::End(Instant::now()));
        self.parts = None;
    }

    /// Never waits: a full queue (or an observer already gone) ends the comparison, and the
    /// observer, seeing the queue closed without an end, reports `not_compared`.
    fn send(&mut self, part: Part) {
        if let Some(parts) = &self.parts {
            if parts.try_send(part).is_err() {
                self.parts = None;
            }
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
        let mut primary = primary;
        match tokio::time::timeout(wait, &mut primary.0).await {
            Ok(Ok(Some(primary))) => shadow.conclude(&labels, &primary, &answer),
            Ok(Ok(None) | Err(_)) | Err(_) => shadow.record(&labels, ShadowResult::NotCompared),
        }
    }
}
