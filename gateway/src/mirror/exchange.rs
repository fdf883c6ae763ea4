//! One mirror request on the wire: connect from the pool, stream the head and body, read and
//! discard the answer, give the connection back only after a clean exchange.

use std::future::pending;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use super::budget::{InflightSlot, Reservation};
use super::{AbortReason, MirrorEngine as Engine, Outcome};

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
    pub chunks: mpsc::UnboundedReceiver<Chunk>,
    pub state: watch::Receiver<State>,
    pub route: Arc<str>,
    pub mirror: Arc<str>,
    pub slot: InflightSlot,
}

/// What the exchange learnt, for metrics and the access log.
#[derive(Default)]
struct Stats {
    status: Option<u16>,
    bytes: u64,
}

pub(super) async fn run(job: Job) {
    let Job {
        engine,
        peer,
        head,
        chunks,
        state,
        route,
        mirror,
        slot,
    } = job;
    let started = Instant::now();
    // Only the access log needs them; copying them for every mirrored request would not be free.
    let logged = engine.options.settings.access_log.then(|| {
        (
            head.method.clone(),
            String::from_utf8_lossy(head.raw_path()).into_owned(),
        )
    });
    let mut stats = Stats::default();
    let mut abort_watch = state.clone();
    let mut deadline_watch = state.clone();
    let outcome = tokio::select! {
        biased;
        reason = aborted(&mut abort_watch) => Outcome::from(reason),
        () = deadline(&mut deadline_watch, engine.options.settings.timeout) => Outcome::Timeout,
        outcome = exchange(&engine, &peer, head, chunks, &state, &route, &mirror, &mut stats) => outcome,
    };
    let elapsed = started.elapsed();
    let metrics = &engine.metrics;
    metrics.outcome(&route, &mirror, outcome);
    metrics
        .duration
        .with_label_values(&[&route, &mirror])
        .observe(elapsed.as_secs_f64());
    if let Some(status) = stats.status {
        metrics
            .responses
            .with_label_values(&[&route, &mirror, status_class(status)])
            .inc();
    }
    if let Some((method, path)) = logged {
        info!(
            target: "sluice::access",
            mirror = true,
            route = &*route,
            backend = &*mirror,
            method = %method,
            path = %path,
            status = stats.status,
            outcome = outcome.as_str(),
            body_bytes = stats.bytes,
            duration_ms = elapsed.as_millis() as u64,
        );
    }
    drop(slot);
}

#[allow(clippy::too_many_arguments)]
async fn exchange(
    engine: &Engine,
    peer: &HttpPeer,
    head: RequestHeader,
    mut chunks: mpsc::UnboundedReceiver<Chunk>,
    state: &watch::Receiver<State>,
    route: &str,
    mirror: &str,
    stats: &mut Stats,
) -> Outcome {
    let (mut session, _reused) = match engine.connector.get_http_session(peer).await {
        Ok(s) => s,
        Err(e) => {
            debug!(%mirror, error = %e, "mirror connect failed");
            return Outcome::ConnectError;
        }
    };
    if let Err(e) = session.write_request_header(Box::new(head)).await {
        debug!(%mirror, error = %e, "mirror request head write failed");
        return Outcome::UpstreamError;
    }
    let bytes_metric = engine.metrics.bytes.with_label_values(&[route, mirror]);
    while let Some(first) = chunks.recv().await {
        let (batch, reservations) = gather(first, &mut chunks);
        let len = batch.len() as u64;
        if let Err(e) = session.write_request_body(batch, false).await {
            debug!(%mirror, error = %e, "mirror request body write failed");
            return Outcome::UpstreamError;
        }
        drop(reservations);
        bytes_metric.inc_by(len);
        stats.bytes += len;
    }
    // The sender is gone: either the body is complete or the copy was abandoned.
    let current = *state.borrow();
    match current {
        State::BodyComplete => {}
        State::Aborted(reason) => return Outcome::from(reason),
        State::Streaming => return Outcome::AbortedClient,
    }
    if let Err(e) = session.finish_request_body().await {
        debug!(%mirror, error = %e, "mirror request body finish failed");
        return Outcome::UpstreamError;
    }
    let status = loop {
        if let Err(e) = session.read_response_header().await {
            debug!(%mirror, error = %e, "mirror response head read failed");
            return Outcome::UpstreamError;
        }
        let Some(status) = session.response_header().map(|h| h.status.as_u16()) else {
            return Outcome::UpstreamError;
        };
        // Informational answers are followed by the real one (101 never is: not mirrored).
        if !(100..200).contains(&status) || status == 101 {
            break status;
        }
    };
    stats.status = Some(status);
    loop {
        match session.read_response_body().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) => {
                debug!(%mirror, error = %e, "mirror response body read failed");
                return Outcome::UpstreamError;
            }
        }
    }
    engine
        .connector
        .release_http_session(session, peer, Some(engine.options.pool_idle_timeout))
        .await;
    Outcome::Completed
}

/// Joins whatever is already queued behind `first`, up to [`BATCH_BYTES`].
fn gather(first: Chunk, chunks: &mut mpsc::UnboundedReceiver<Chunk>) -> (Bytes, Vec<Reservation>) {
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

async fn deadline(state: &mut watch::Receiver<State>, timeout: Duration) {
    if state.wait_for(|s| *s == State::BodyComplete).await.is_err() {
        pending::<()>().await;
    }
    tokio::time::sleep(timeout).await;
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
