//! One mirror request on the wire: connect from the pool, stream the head and body while reading
//! the answer (observed for shadow diff when compared, otherwise discarded), give the connection
//! back only after a clean exchange.

use std::future::{pending, Future};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use sluice_controller::snapshot::MirrorPolicy;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::access;
use super::budget::{InflightSlot, Reservation};
use super::deadline::{deadline, staggered};
use super::tap::MirrorTap;
use super::{
    body, discard, duplex, head_first, pool, AbortReason, MirrorEngine as Engine, Outcome,
};
use crate::access_log;
use crate::shadow::Observation;

/// Queued chunks are written in batches of up to this many bytes: one syscall (and one chunk
/// frame when chunked) per batch instead of per 16–64 KiB read from the client.
const BATCH_BYTES: usize = 256 * 1024;

/// A body chunk waiting for the mirror; its reservation frees the budget when it is dropped.
pub(super) struct Chunk {
    pub data: Bytes,
    pub reservation: Reservation,
}

/// Where the primary's side of one mirror copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Streaming,
    /// Every body byte has been queued; the per-mirror timeout starts now.
    BodyComplete,
    Aborted(AbortReason),
}

pub(super) struct Job {
    pub engine: Arc<Engine>,
    pub peer: HttpPeer,
    pub head: RequestHeader,
    /// A body follows the head through `chunks`.
    pub has_body: bool,
    pub chunks: mpsc::UnboundedReceiver<Chunk>,
    pub state: watch::Receiver<State>,
    pub route: Arc<str>,
    pub mirror: Arc<str>,
    pub slot: InflightSlot,
    pub policy: Option<Arc<MirrorPolicy>>,
    /// The mirror's side of a compared copy.
    pub tap: Option<MirrorTap>,
    pub log: super::CopyLog,
}

/// What the exchange learnt, for metrics and the access log.
#[derive(Default)]
pub(super) struct Stats {
    pub status: Option<u16>,
    pub bytes: u64,
    /// A compared copy's answer: handed to the response reader, and back once it is read.
    pub answer: Option<Observation>,
}

/// One copy, start to end: the task's future.
// Written out by hand on purpose; see the comment inside.
#[allow(clippy::manual_async_fn)]
pub(super) fn run(mut job: Job) -> impl Future<Output = ()> + Send {
    // A plain fn around an `async move` block, whose body uses the job's fields where they lie:
    // an `async fn` copies its argument into a local of its body (and destructuring copies each
    // field), so the task's future held the job twice, 1.4 KB more for every copy in flight.
    async move {
        let timeout = job
            .policy
            .as_ref()
            .and_then(|p| p.request.timeout)
            .unwrap_or(job.engine.options.settings.timeout);
        let started = Instant::now();
        // Only the access log needs them; copying them for every mirrored request would not be free.
        let logged = (job.engine.options.settings.access_log && access_log::enabled())
            .then(|| access::request_fields(&job.head, &job.log));
        let mut stats = Stats {
            answer: job.tap.as_mut().and_then(|t| t.answer.take()),
            ..Stats::default()
        };
        let mut abort_watch = job.state.clone();
        let mut deadline_watch = job.state.clone();
        let outcome = tokio::select! {
            biased;
            reason = aborted(&mut abort_watch) => Outcome::from(reason),
            () = deadline(&mut deadline_watch, staggered(timeout, job.slot.ordinal())) => {
                Outcome::Timeout
            }
            outcome = exchange(
                &job.engine,
                &job.peer,
                job.head,
                job.has_body,
                job.chunks,
                &job.state,
                &job.route,
                &job.mirror,
                &mut stats,
            ) => outcome,
        };
        let elapsed = started.elapsed();
        let (route, mirror) = (&job.route, &job.mirror);
        let metrics = &job.engine.metrics;
        metrics.outcome(route, mirror, outcome);
        metrics
            .duration
            .with_label_values(&[route, mirror])
            .observe(elapsed.as_secs_f64());
        if let Some(status) = stats.status {
            metrics
                .responses
                .with_label_values(&[route, mirror, status_class(status)])
                .inc();
        }
        if let Some(request) = logged {
            let copy = access::Copy {
                log: &job.log,
                route,
                mirror,
                peer: &job.peer,
            };
            copy.emit(&request, &stats, elapsed, outcome);
        }
        if let Some(tap) = job.tap {
            tap.conclude(outcome, stats.answer.take(), timeout).await;
        }
        // Held until the comparison is done: conclude may hold both sides' JSON bodies and waits for
        // the primary's observer, so --mirror-max-inflight bounds comparisons as well as copies.
        drop(job.slot);
    }
}

#[allow(clippy::too_many_arguments)]
async fn exchange(
    engine: &Engine,
    peer: &HttpPeer,
    head: RequestHeader,
    has_body: bool,
    mut chunks: mpsc::UnboundedReceiver<Chunk>,
    state: &watch::Receiver<State>,
    route: &str,
    mirror: &str,
    stats: &mut Stats,
) -> Outcome {
    if !has_body && stats.answer.is_none() && pool::speaks_h1_only(peer) {
        return discarding(engine, peer, &head, mirror, stats).await;
    }
    let mut session = match engine.pool.session(peer).await {
        Ok(s) => s,
        Err(e) => {
            debug!(%mirror, error = %e, "mirror connect failed");
            return Outcome::ConnectError;
        }
    };
    let bytes_metric = engine.metrics.bytes.with_label_values(&[route, mirror]);
    // A large HTTP/1.1 body is written while the answer is read, not between writes (below):
    // a mirror answering as it reads could otherwise fill both directions and stall.
    session = match session {
        HttpSession::H1(h1) if duplex::wanted(&head) => {
            let body = duplex::Body {
                chunks,
                state,
                bytes_metric: &bytes_metric,
                mirror,
            };
            return duplex::exchange(h1.into_inner(), head, body, stats).await;
        }
        HttpSession::H1(h1) if head_first::wanted(&head) => {
            HttpSession::H1(head_first::arm(h1, peer))
        }
        other => other,
    };
    if let Err(e) = session.write_request_header(Box::new(head)).await {
        debug!(%mirror, error = %e, "mirror request head write failed");
        return Outcome::UpstreamError;
    }
    // An h2c copy's body goes on the stream's own sender while the session reads the answer:
    // a mirror answering as it reads would otherwise hold a write on flow control.
    if let Some(sender) = match &mut session {
        HttpSession::H2(h2) => h2.take_request_body_writer(),
        HttpSession::H1(_) | HttpSession::Custom(_) => None,
    } {
        let body = duplex::Body {
            chunks,
            state,
            bytes_metric: &bytes_metric,
            mirror,
        };
        let outcome = duplex::exchange_h2(&mut session, sender, body, stats).await;
        if outcome == Outcome::Completed {
            engine
                .pool
                .release(session, peer, engine.options.pool_idle_timeout)
                .await;
        }
        return outcome;
    }
    let mut response = ResponseSide::observing(stats.answer.take());
    // Every byte was written and the body finished.
    let mut request_done = false;
    // The answer is read as it arrives, between two writes, not only after the body: an answer
    // that is complete while the body is still being written is seen as early. Reads go first,
    // so whatever the mirror has already answered is drained before the next write. (A write
    // that blocks still blocks reading: Pingora's session cannot do both at once.)
    while !(request_done && response.done) {
        let step = tokio::select! {
            biased;
            read = response.read(&mut session), if !response.done => Step::Read(read),
            next = chunks.recv(), if !request_done => Step::Write(next),
        };
        match step {
            Step::Read(Err(e)) => {
                debug!(%mirror, error = %e, "mirror response read failed");
                return Outcome::UpstreamError;
            }
            Step::Read(Ok(())) => {
                if response.done && !request_done {
                    if !body_fully_queued(&chunks, state) {
                        // The mirror answered before it had the whole body: the rest would be
                        // unread bytes on the connection, read as the next copy's request.
                        // Stop here and close the connection instead of pooling it.
                        stats.status = response.status;
                        stats.answer = response.observed.take();
                        session.shutdown().await;
                        return Outcome::Completed;
                    }
                    // Everything was written (a bodiless copy's answer can beat the loop's
                    // turn that notices the closed queue): end the body and pool as usual.
                    if let Err(e) = session.finish_request_body().await {
                        debug!(%mirror, error = %e, "mirror request body finish failed");
                        return Outcome::UpstreamError;
                    }
                    request_done = true;
                }
            }
            Step::Write(Some(first)) => {
                let written = body::send_batch(
                    &mut session,
                    first,
                    &mut chunks,
                    &bytes_metric,
                    &mut stats.bytes,
                    mirror,
                )
                .await;
                if let Err(outcome) = written {
                    return outcome;
                }
            }
            Step::Write(None) => {
                // The sender is gone: either the body is complete or the copy was abandoned.
                if let Err(outcome) = body::end_body(&mut session, state, mirror).await {
                    return outcome;
                }
                request_done = true;
            }
        }
    }
    stats.status = response.status;
    stats.answer = response.observed.take();
    engine
        .pool
        .release(session, peer, engine.options.pool_idle_timeout)
        .await;
    Outcome::Completed
}

/// A bodiless HTTP/1.1 copy whose answer is not compared: its answer is skipped, not parsed
/// into a session's header maps (see [`discard`]).
async fn discarding(
    engine: &Engine,
    peer: &HttpPeer,
    head: &RequestHeader,
    mirror: &str,
    stats: &mut Stats,
) -> Outcome {
    let stream = match engine.pool.stream(peer).await {
        Ok(s) => s,
        Err(e) => {
            debug!(%mirror, error = %e, "mirror connect failed");
            return Outcome::ConnectError;
        }
    };
    match discard::exchange(stream, head).await {
        Ok(answered) => {
            stats.status = Some(answered.status);
            if let Some(stream) = answered.reusable {
                engine
                    .pool
                    .release_stream(stream, peer, engine.options.pool_idle_timeout);
            }
            Outcome::Completed
        }
        Err(e) => {
            debug!(%mirror, error = %e, "mirror exchange failed");
            Outcome::UpstreamError
        }
    }
}

/// Every chunk of a complete body has been written: none is queued and no more will come.
fn body_fully_queued(
    chunks: &mpsc::UnboundedReceiver<Chunk>,
    state: &watch::Receiver<State>,
) -> bool {
    chunks.is_closed() && chunks.is_empty() && matches!(*state.borrow(), State::BodyComplete)
}

/// What one turn of the exchange loop did.
enum Step {
    Read(pingora_error::Result<()>),
    /// The next queued chunk, or `None` once the queue is closed.
    Write(Option<Chunk>),
}

/// The mirror's answer, read as it arrives: observed when the copy is compared, otherwise
/// discarded.
#[derive(Default)]
pub(super) struct ResponseSide {
    pub status: Option<u16>,
    pub done: bool,
    pub observed: Option<Observation>,
}

impl ResponseSide {
    pub(super) fn observing(observed: Option<Observation>) -> ResponseSide {
        ResponseSide {
            observed,
            ..ResponseSide::default()
        }
    }

    /// Reads the next part of the answer: the head (informational ones skipped), then body
    /// pieces until the end. Cancel-safe, as Pingora's own duplex proxy loop relies on.
    pub(super) async fn read(&mut self, session: &mut HttpSession) -> pingora_error::Result<()> {
        if self.status.is_none() {
            session.read_response_header().await?;
            let Some(head) = session.response_header() else {
                return Err(pingora_error::Error::explain(
                    pingora_error::ErrorType::InvalidHTTPHeader,
                    "mirror answered without a head",
                ));
            };
            let status = head.status.as_u16();
            // Informational answers are followed by the real one (101 never is: not mirrored).
            if !(100..200).contains(&status) || status == 101 {
                if let Some(observed) = self.observed.as_mut() {
                    observed.on_head(status, &head.headers);
                }
                self.status = Some(status);
                self.set_done(session.response_done());
            }
            return Ok(());
        }
        let chunk = session.read_response_body().await?;
        if let (Some(observed), Some(chunk)) = (self.observed.as_mut(), chunk.as_ref()) {
            observed.on_chunk(chunk);
        }
        self.set_done(chunk.is_none() || session.response_done());
        Ok(())
    }

    fn set_done(&mut self, done: bool) {
        self.done = done;
        if let Some(observed) = self.observed.as_mut().filter(|_| done) {
            observed.finish();
        }
    }
}

/// Joins whatever is already queued behind `first`, up to [`BATCH_BYTES`].
pub(super) fn gather(
    first: Chunk,
    chunks: &mut mpsc::UnboundedReceiver<Chunk>,
) -> (Bytes, Vec<Reservation>) {
    let mut reservations = vec![first.reservation];
    let data = first.data;
    let mut batch: Option<BytesMut> = None;
    loop {
        let size = batch.as_ref().map_or(data.len(), |b| b.len());
        if size >= BATCH_BYTES {
            break;
        }
        let Ok(next) = chunks.try_recv() else { break };
        let buf = batch.get_or_insert_with(|| {
            let mut b = BytesMut::with_capacity(BATCH_BYTES + next.data.len());
            b.extend_from_slice(&data);
            b
        });
        buf.extend_from_slice(&next.data);
        reservations.push(next.reservation);
    }
    match batch {
        Some(buf) => (buf.freeze(), reservations),
        None => (data, reservations),
    }
}

async fn aborted(state: &mut watch::Receiver<State>) -> AbortReason {
    if let Ok(s) = state.wait_for(|s| matches!(s, State::Aborted(_))).await {
        if let State::Aborted(reason) = *s {
            return reason;
        }
    }
    pending().await
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
