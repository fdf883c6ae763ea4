//! Writing a copy's body, the same way whichever connection carries it: batches of what is
//! queued, each freeing its budget once written, then the end of the body or why there is none.

use bytes::Bytes;
use h2::SendStream;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::HttpSession as Http1Session;
use pingora_core::protocols::http::v2;
use prometheus::IntCounter;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use super::exchange::{gather, Chunk, State};
use super::Outcome;

/// Where a copy's body goes: a pooled session (the between-writes loop), an HTTP/1.1 session's
/// writer or an HTTP/2 stream's sender (full duplex).
pub(super) trait BodySink {
    async fn send(&mut self, batch: Bytes) -> pingora_error::Result<()>;
    async fn finish(&mut self) -> pingora_error::Result<()>;
}

impl BodySink for HttpSession {
    async fn send(&mut self, batch: Bytes) -> pingora_error::Result<()> {
        self.write_request_body(batch, false).await
    }

    async fn finish(&mut self) -> pingora_error::Result<()> {
        self.finish_request_body().await
    }
}

impl BodySink for Http1Session {
    async fn send(&mut self, batch: Bytes) -> pingora_error::Result<()> {
        self.write_body(&batch).await.map(drop)
    }

    async fn finish(&mut self) -> pingora_error::Result<()> {
        self.finish_body().await.map(drop)
    }
}

impl BodySink for SendStream<Bytes> {
    // The engine's mirror timeout bounds the whole exchange, flow-control waits included.
    async fn send(&mut self, batch: Bytes) -> pingora_error::Result<()> {
        v2::write_body(self, batch, false, None).await
    }

    async fn finish(&mut self) -> pingora_error::Result<()> {
        v2::write_body(self, Bytes::new(), true, None).await
    }
}

/// Writes `first` and whatever is queued behind it as one batch, then frees their budget.
pub(super) async fn send_batch(
    writer: &mut impl BodySink,
    first: Chunk,
    chunks: &mut mpsc::UnboundedReceiver<Chunk>,
    bytes_metric: &IntCounter,
    bytes: &mut u64,
    mirror: &str,
) -> Result<(), Outcome> {
    let (batch, reservations) = gather(first, chunks);
    let len = batch.len() as u64;
    if let Err(e) = writer.send(batch).await {
        debug!(%mirror, error = %e, "mirror request body write failed");
        return Err(Outcome::UpstreamError);
    }
    drop(reservations);
    bytes_metric.inc_by(len);
    *bytes += len;
    Ok(())
}

/// The queue is closed: ends the body if the primary's was complete, or says why the copy was
/// abandoned.
pub(super) async fn end_body(
    writer: &mut impl BodySink,
    state: &watch::Receiver<State>,
    mirror: &str,
) -> Result<(), Outcome> {
    let current = *state.borrow();
    match current {
        State::BodyComplete => {}
        State::Aborted(reason) => return Err(Outcome::from(reason)),
        State::Streaming => return Err(Outcome::AbortedClient),
    }
    if let Err(e) = writer.finish().await {
        debug!(%mirror, error = %e, "mirror request body finish failed");
        return Err(Outcome::UpstreamError);
    }
    Ok(())
}
