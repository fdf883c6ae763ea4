//! Shadow diff's hold on one copy. The proxy phases hand the primary's answer to the copy's
//! task without ever waiting. A small answer (a head and up to [`INLINE_BYTES`] of body, most
//! GETs) is digested where it arrives, which costs less than handing it over; a larger one goes,
//! from the chunk that outgrows that, through a bounded queue to an observer task of the copy's
//! own (a full queue makes the copy `not_compared`). Either way the complete answer reaches the
//! copy's task through a one-shot channel, and that task joins it with the mirror's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use pingora_http::RequestHeader;
use sluice_controller::snapshot::MirrorPolicy;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::{sampled, Outcome};
use crate::shadow::{compared_values, CopyLabels, Observation, Shadow, ShadowResult};

/// Parts of the primary's answer queued for its observer before the copy gives up comparing.
/// Measured (dev build, 64 KiB chunks): queueing a chunk costs 0.2 µs, digesting it in place
/// 38 µs with xxh3 and 170 µs with SHA-256; 32 chunks absorb the observer's scheduling delay.
const QUEUED_PARTS: usize = 32;

/// Body bytes of the primary's answer digested in place, on the proxy's own turn. xxh3 takes
/// 0.6 µs per KiB even on the dev build (38 µs for 64 KiB, measured) and less on a release
/// build, while handing a GET's answer to an observer task cost about 3 µs of CPU per compared
/// copy (release build: 1.13× mirroring alone's CPU before, 1.06× after). Past this the
/// answer's digest moves off the primary's path.
pub(super) const INLINE_BYTES: usize = 8 * 1024;

/// The primary's side, fed by the proxy phases. Dropped unfinished (the primary failed, or the
/// request ended), the copy's task sees the one-shot channel closed: `not_compared`.
pub(super) struct PrimaryTap {
    side: Side,
    /// Where an observer task is started, should the answer outgrow [`INLINE_BYTES`].
    runtime: Handle,
}

/// Where the primary's answer is being observed.
enum Side {
    /// Here, in place, while it is small.
    Inline {
        answer: Observation,
        done: oneshot::Sender<Observation>,
        digested: usize,
    },
    /// By an observer task, through its queue; the compared header names stay here, since a
    /// later head (a retried attempt) is reduced to their values before it is queued.
    Queued {
        parts: mpsc::Sender<Part>,
        compared: Vec<http::HeaderName>,
    },
    /// The answer is complete, or the comparison was given up.
    Gone,
}

/// One part of the primary's answer, on its way to the observer.
enum Part {
    /// The status and the compared headers' values.
    Head(u16, Vec<Vec<HeaderValue>>),
    Chunk(Bytes),
    End(Instant),
}

/// The mirror's side, carried by the copy's task.
pub(super) struct MirrorTap {
    shadow: Arc<Shadow>,
    labels: CopyLabels,
    /// The primary's complete answer; closed without one when it will not come.
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
    let (done, joined) = oneshot::channel();
    let tap = PrimaryTap {
        side: Side::Inline {
            answer: primary,
            done,
            digested: 0,
        },
        runtime: runtime.clone(),
    };
    let mirror = MirrorTap {
        shadow: shadow.clone(),
        labels,
        primary: joined,
        answer: Some(answer),
    };
    Some((tap, mirror))
}

/// Digests the rest of the primary's answer and hands it over complete. Stops when the copy's
/// task no longer waits for it, or when the primary side goes away without an end.
async fn observe(
    mut parts: mpsc::Receiver<Part>,
    mut answer: Observation,
    mut done: oneshot::Sender<Observation>,
) {
    loop {
        let part = tokio::select! {
            part = parts.recv() => part,
            () = done.closed() => return,
        };
        match part {
            Some(Part::Head(status, values)) => answer.on_compared_head(status, values),
            Some(Part::Chunk(chunk)) => answer.on_chunk(&chunk),
            Some(Part::End(at)) => {
                answer.finish_at(at);
                return deliver(answer, done);
            }
            None => return,
        }
    }
}

/// Hands a complete answer to the copy's task; an incomplete one is dropped, and the closed
/// channel makes the copy `not_compared`.
fn deliver(answer: Observation, done: oneshot::Sender<Observation>) {
    if answer.is_complete() {
        let _ = done.send(answer);
    }
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
    /// headers' values are kept.
    pub(super) fn on_head(&mut self, status: u16, headers: &HeaderMap) {
        match &mut self.side {
            Side::Inline {
                answer, digested, ..
            } => {
                answer.on_head(status, headers);
                *digested = 0;
            }
            Side::Queued { compared, .. } => {
                let values = compared_values(compared, headers);
                self.send(Part::Head(status, values));
            }
            Side::Gone => {}
        }
    }

    /// Digested here while the answer is small; past [`INLINE_BYTES`] shared (never copied)
    /// with the observer task.
    pub(super) fn on_chunk(&mut self, chunk: &Bytes) {
        if let Side::Inline {
            answer, digested, ..
        } = &mut self.side
        {
            if *digested + chunk.len() <= INLINE_BYTES {
                *digested += chunk.len();
                answer.on_chunk(chunk);
                return;
            }
            self.hand_over();
        }
        self.send(Part::Chunk(chunk.clone()));
    }

    /// The backend's response is complete.
    pub(super) fn finish(&mut self) {
        match std::mem::replace(&mut self.side, Side::Gone) {
            Side::Inline {
                mut answer, done, ..
            } => {
                answer.finish();
                deliver(answer, done);
            }
            Side::Queued { parts, .. } => {
                let _ = parts.try_send(Part::End(Instant::now()));
            }
            Side::Gone => {}
        }
    }

    /// The answer outgrew what is digested in place: an observer task takes over.
    fn hand_over(&mut self) {
        if let Side::Inline { answer, done, .. } = std::mem::replace(&mut self.side, Side::Gone) {
            let (parts, queue) = mpsc::channel(QUEUED_PARTS);
            let compared = answer.compared_headers().to_vec();
            self.runtime.spawn(observe(queue, answer, done));
            self.side = Side::Queued { parts, compared };
        }
    }

    /// Never waits: a full queue (or an observer already gone) ends the comparison, and the
    /// observer, seeing the queue closed without an end, reports `not_compared`.
    fn send(&mut self, part: Part) {
        if let Side::Queued { parts, .. } = &self.side {
            if parts.try_send(part).is_err() {
                self.side = Side::Gone;
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
        // Usually already there (a mirror rarely answers before production): no timer then.
        let joined = match primary.try_recv() {
            Ok(answer) => Some(answer),
            Err(oneshot::error::TryRecvError::Closed) => None,
            Err(oneshot::error::TryRecvError::Empty) => tokio::time::timeout(wait, primary)
                .await
                .ok()
                .and_then(Result::ok),
        };
        match joined {
            Some(primary) => shadow.conclude(&labels, &primary, &answer),
            None => shadow.record(&labels, ShadowResult::NotCompared),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderName;
    use sluice_controller::snapshot::{Comparison, CopyShape, Fraction};

    use super::*;

    fn policy() -> Arc<MirrorPolicy> {
        Arc::new(MirrorPolicy {
            name: "default/compare".to_string(),
            request: CopyShape::default(),
            compare: Some(Comparison {
                fraction: Fraction::ALL,
                status: true,
                headers: vec![HeaderName::from_static("content-type")],
                body: true,
                ignore_json_fields: Vec::new(),
                samples: 10,
            }),
        })
    }

    fn head(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", content_type.parse().expect("value"));
        headers
    }

    /// What the primary's side should have observed: this head and body, seen directly.
    fn seen(
        policy: &Arc<MirrorPolicy>,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Observation {
        let mut answer = Observation::new(policy, Instant::now()).expect("a comparison");
        answer.on_head(status, &head(content_type));
        answer.on_chunk(&Bytes::copy_from_slice(body));
        answer.finish();
        answer
    }

    /// Runs `feed` on a compared copy's primary side and compares what reached the copy's task
    /// with `expected`.
    async fn observed_as(
        feed: impl FnOnce(&mut PrimaryTap),
        expected: &Observation,
    ) -> ShadowResult {
        let policy = policy();
        let shadow = Arc::new(Shadow::register(&prometheus::Registry::new()).expect("metrics"));
        let request = RequestHeader::build("GET", b"/", None).expect("head");
        let (mut tap, mirror) = start(
            Some(&shadow),
            Some(&policy),
            &Arc::from("route"),
            &Arc::from("mirror"),
            &request,
            &Handle::current(),
        )
        .expect("compared");
        feed(&mut tap);
        let primary = mirror.primary.await.expect("a complete answer");
        shadow.conclude(&mirror.labels, &primary, expected);
        ShadowResult::ALL
            .into_iter()
            .find(|r| shadow.count("route", "mirror", *r) == 1)
            .expect("one result")
    }

    #[tokio::test]
    async fn a_small_answer_is_observed_in_place() {
        let expected = seen(&policy(), 200, "text/plain", b"v1");
        let result = observed_as(
            |tap| {
                tap.on_head(200, &head("text/plain"));
                tap.on_chunk(&Bytes::from_static(b"v1"));
                tap.finish();
                assert!(matches!(tap.side, Side::Gone));
            },
            &expected,
        )
        .await;
        assert_eq!(result, ShadowResult::Match);
    }

    #[tokio::test]
    async fn a_head_after_the_hand_over_starts_the_observation_over() {
        let expected = seen(&policy(), 503, "application/json", b"retry");
        let result = observed_as(
            |tap| {
                tap.on_head(200, &head("text/plain"));
                tap.on_chunk(&Bytes::from(vec![b'a'; INLINE_BYTES + 1]));
                assert!(matches!(tap.side, Side::Queued { .. }), "handed over");
                // A retried attempt's answer replaces the first one's head and body.
                tap.on_head(503, &head("application/json"));
                tap.on_chunk(&Bytes::from_static(b"retry"));
                tap.finish();
            },
            &expected,
        )
        .await;
        assert_eq!(result, ShadowResult::Match);
    }
}
