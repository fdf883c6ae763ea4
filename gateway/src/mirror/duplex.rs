//! The body phase of a mirror copy, full duplex: the body is written while the answer is read
//! and discarded, so a mirror that answers while it reads (an echo, a gRPC bidirectional
//! stream) keeps draining the body instead of stalling both directions until the copy's budget
//! overflows or its timeout fires.
//! - HTTP/1.1 (large or open-ended bodies): one session writes the body on the connection's
//!   write half while another reads on its read half. The connection is closed afterwards:
//!   Pingora pools a connection only through the session that both wrote and read it.
//! - h2c (every body): the stream's own sender, taken from the session, writes while the session
//!   reads, in one task; the connection stays pooled (a stream ended early is reset alone).

use bytes::Bytes;
use h2::SendStream;
use http::header::TRANSFER_ENCODING;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::HttpSession as Http1Session;
use pingora_core::protocols::Stream;
use pingora_http::RequestHeader;
use prometheus::IntCounter;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::debug;

use super::body::{end_body, send_batch, BodySink};
use super::exchange::{Chunk, ResponseSide, State, Stats};
use super::{halves, Outcome};

/// Bodies this large, or of unknown length, are written full duplex. Smaller ones are a few
/// batches, with the answer read between them, and keep their connection poolable.
const DUPLEX_BYTES: u64 = 1024 * 1024;

/// Whether a copy's body is large enough, or open-ended enough, to need full duplex.
pub(super) fn wanted(head: &RequestHeader) -> bool {
    head.headers.contains_key(TRANSFER_ENCODING)
        || super::head::declared_length(head).is_some_and(|len| len >= DUPLEX_BYTES)
}

/// Everything the body phase needs from the exchange.
pub(super) struct Body<'a> {
    pub chunks: mpsc::UnboundedReceiver<Chunk>,
    pub state: &'a watch::Receiver<State>,
    pub bytes_metric: &'a IntCounter,
    pub mirror: &'a str,
}

/// Sends `head` and the body on `stream` while reading the answer; the connection is closed.
pub(super) async fn exchange(
    stream: Stream,
    head: RequestHeader,
    body: Body<'_>,
    stats: &mut Stats,
) -> Outcome {
    let mirror = body.mirror;
    let (reading, writing) = halves::split(stream);
    let mut reader = HttpSession::H1(Http1Session::new(Box::new(reading)));
    let mut writer = Http1Session::new(Box::new(writing));
    // The reading half discards this copy of the head; its session learns the method from it
    // (the answer to a HEAD has no body).
    let heads = async {
        reader.write_request_header(Box::new(head.clone())).await?;
        writer.write_request_header(Box::new(head)).await
    };
    if let Err(e) = heads.await {
        debug!(%mirror, error = %e, "mirror request head write failed");
        return Outcome::UpstreamError;
    }
    // The answer is read on a task of its own, so reading never waits for the writer's turn
    // (an echoing mirror sends as much as it receives).
    let observed = stats.answer.take();
    let mut answer = Answer(tokio::spawn(read_answer(reader, observed)));
    // An answer complete before the body is written ends the copy as the pooled path does: the
    // rest of the body is not sent, and the connection is closed.
    let read = tokio::select! {
        read = &mut answer.0 => read,
        written = write_body(&mut writer, body, &mut stats.bytes) => match written {
            Ok(()) => (&mut answer.0).await,
            Err(outcome) => return outcome,
        },
    };
    match read {
        Ok(Ok(response)) => {
            stats.status = response.status;
            stats.answer = response.observed;
            Outcome::Completed
        }
        Ok(Err(e)) => {
            debug!(%mirror, error = %e, "mirror response read failed");
            Outcome::UpstreamError
        }
        Err(e) => {
            debug!(%mirror, error = %e, "mirror response reader failed");
            Outcome::UpstreamError
        }
    }
}

/// Sends an h2c copy's body on `sender` (taken from `session` after the head) while `session`
/// reads the answer. An answer that ends first ends the copy: the rest of the body is not sent.
pub(super) async fn exchange_h2(
    session: &mut HttpSession,
    mut sender: SendStream<Bytes>,
    body: Body<'_>,
    stats: &mut Stats,
) -> Outcome {
    let mirror = body.mirror;
    let mut response = ResponseSide::observing(stats.answer.take());
    let write = write_body(&mut sender, body, &mut stats.bytes);
    tokio::pin!(write);
    let mut written = false;
    while !(written && response.done) {
        tokio::select! {
            read = response.read(session), if !response.done => {
                if let Err(e) = read {
                    debug!(%mirror, error = %e, "mirror response read failed");
                    return Outcome::UpstreamError;
                }
                if response.done {
                    break;
                }
            }
            done = &mut write, if !written => match done {
                Ok(()) => written = true,
                Err(outcome) => return outcome,
            },
        }
    }
    stats.status = response.status;
    stats.answer = response.observed;
    Outcome::Completed
}

/// The task reading a copy's answer, stopped with the copy however it ends.
struct Answer(JoinHandle<pingora_error::Result<ResponseSide>>);

impl Drop for Answer {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the whole answer, observing it when the copy is compared.
async fn read_answer(
    mut reader: HttpSession,
    observed: Option<crate::shadow::Observation>,
) -> pingora_error::Result<ResponseSide> {
    let mut response = ResponseSide::observing(observed);
    while !response.done {
        response.read(&mut reader).await?;
    }
    Ok(response)
}

/// Writes every queued chunk and ends the body, or says why the copy stopped.
async fn write_body(
    writer: &mut impl BodySink,
    body: Body<'_>,
    bytes: &mut u64,
) -> Result<(), Outcome> {
    let Body {
        mut chunks,
        state,
        bytes_metric,
        mirror,
    } = body;
    while let Some(first) = chunks.recv().await {
        send_batch(writer, first, &mut chunks, bytes_metric, bytes, mirror).await?;
    }
    end_body(writer, state, mirror).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_with(name: &str, value: &str) -> RequestHeader {
        let mut head = RequestHeader::build("POST", b"/", None).expect("head");
        head.insert_header(name.to_owned(), value).expect("header");
        head
    }

    #[test]
    fn bodies_of_a_mebibyte_or_more_are_written_full_duplex() {
        assert!(wanted(&head_with("content-length", "1048576")));
        assert!(!wanted(&head_with("content-length", "1048575")));
    }

    #[test]
    fn bodies_of_unknown_length_are_written_full_duplex() {
        assert!(wanted(&head_with("transfer-encoding", "chunked")));
    }

    #[test]
    fn bodiless_and_unparsable_lengths_keep_the_pooled_loop() {
        assert!(!wanted(
            &RequestHeader::build("GET", b"/", None).expect("head")
        ));
        assert!(!wanted(&head_with("content-length", "lots")));
    }
}
