//! An upstream that answers before it has read the whole request body: the rest of the body is
//! not sent to it, and its connection is never pooled.
//!
//! Pingora 0.9 goes on writing the body after such an answer and pools the connection when the
//! body went out whole, although the upstream may read the unread body as its next request. No
//! Pingora hook sees the upstream stream, but `connected_to_upstream` names the socket's fd, and
//! `shutdown(2)` on it does both jobs (for a TLS backend the fd is the Unix socket to its relay,
//! which passes a write shutdown on as a TLS close and drops the TLS connection with the socket:
//! `relay.rs`):
//! - write side, at the answer's head: the kernel sends what is already queued, then FIN, so the
//!   upstream sees the body end short instead of a valid terminator; Pingora's next body write
//!   fails (a write blocked on a full buffer is woken) and Pingora gives the connection up,
//!   still reading the answer.
//! - read side, once the answer has been read whole: the pool's check of a released connection
//!   then reads end of stream and drops it, even if no body write followed the answer.

use std::os::unix::io::RawFd;

use nix::sys::socket::{shutdown, Shutdown};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::ResponseHeader;

/// The HTTP/1 upstream connection of the current attempt, held by this request alone from
/// `connected_to_upstream` until its response is read.
#[derive(Debug)]
pub struct UpstreamConn {
    fd: RawFd,
    answered_early: bool,
}

impl UpstreamConn {
    /// Only an HTTP/1 connection: an h2c connection carries other requests' streams too. Not an
    /// unpooled TLS connection (no relay left under the cap): its virtual socket has no fd (-1),
    /// and it is never reused anyway.
    pub fn of(peer: &HttpPeer, fd: RawFd) -> Option<UpstreamConn> {
        (fd >= 0 && peer.options.alpn.get_max_http_version() == 1).then_some(UpstreamConn {
            fd,
            answered_early: false,
        })
    }

    /// At each response head. A final answer while the request body is still arriving keeps the
    /// connection out of the pool. A refusal (3xx to 5xx: RFC 9112 §9.3 says to stop sending)
    /// also stops the body, and one with no body to read closes both sides at once. A 2xx is a
    /// full-duplex exchange (a streaming upload answered while it runs): its body goes on.
    pub fn on_response_head(&mut self, head: &ResponseHeader, is_head: bool, body_done: bool) {
        let status = head.status.as_u16();
        if self.answered_early || !answers_early(status, body_done) {
            return;
        }
        self.answered_early = true;
        tracing::debug!(status, "upstream answered before the request body was sent");
        let bodiless = bodiless(head, is_head);
        match (refuses_body(status), bodiless) {
            (true, true) => self.shut(Shutdown::Both),
            (true, false) => self.shut(Shutdown::Write),
            (false, true) => self.shut(Shutdown::Read),
            (false, false) => {}
        }
    }

    /// When the response has been read whole.
    pub fn on_response_end(&self) {
        if self.answered_early {
            self.shut(Shutdown::Read);
        }
    }

    pub fn answered_early(&self) -> bool {
        self.answered_early
    }

    fn shut(&self, how: Shutdown) {
        // Fails only if the peer already reset the connection: nothing is sent or pooled then.
        if let Err(e) = shutdown(self.fd, how) {
            tracing::debug!(error = %e, ?how, "cannot shut down the upstream connection");
        }
    }
}

/// A final answer (1xx, 101 included, are not) while the request body is still arriving.
fn answers_early(status: u16, request_body_done: bool) -> bool {
    status >= 200 && !request_body_done
}

/// An answer that says the upstream does not want the rest of the body.
fn refuses_body(status: u16) -> bool {
    status >= 300
}

/// Nothing follows this head on the wire (RFC 9112 §6.3: HEAD, 204, 304, `Content-Length: 0`).
fn bodiless(head: &ResponseHeader, is_head: bool) -> bool {
    let status = head.status.as_u16();
    is_head
        || status == 204
        || status == 304
        || head
            .headers
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::io::AsRawFd;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    fn head(status: u16, content_length: Option<&str>) -> ResponseHeader {
        let mut h = ResponseHeader::build(status, None).unwrap();
        if let Some(len) = content_length {
            h.insert_header("Content-Length", len).unwrap();
        }
        h
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (client.unwrap(), accepted.unwrap().0)
    }

    fn watching(proxy_side: &TcpStream) -> UpstreamConn {
        UpstreamConn {
            fd: proxy_side.as_raw_fd(),
            answered_early: false,
        }
    }

    #[test]
    fn only_a_final_answer_before_the_body_ends_is_early() {
        assert!(answers_early(413, false));
        assert!(answers_early(200, false));
        assert!(!answers_early(100, false));
        assert!(!answers_early(103, false));
        assert!(!answers_early(101, false));
        assert!(!answers_early(413, true));
    }

    #[test]
    fn heads_without_a_body_to_read_are_bodiless() {
        assert!(bodiless(&head(204, None), false));
        assert!(bodiless(&head(304, None), false));
        assert!(bodiless(&head(413, Some("0")), false));
        assert!(bodiless(&head(200, Some("10")), true));
        assert!(!bodiless(&head(413, Some("10")), false));
        assert!(!bodiless(&head(200, None), false));
    }

    #[test]
    fn h2c_connections_are_left_alone() {
        let mut peer = HttpPeer::new("127.0.0.1:9", false, String::new());
        peer.options.set_http_version(2, 2);
        assert!(UpstreamConn::of(&peer, 3).is_none());
        peer.options.set_http_version(1, 1);
        assert!(UpstreamConn::of(&peer, 3).is_some());
    }

    #[tokio::test]
    async fn an_early_answer_ends_the_body_and_later_writes_fail() {
        let (mut proxy_side, mut upstream) = pair().await;
        let mut conn = watching(&proxy_side);
        proxy_side.write_all(b"queued").await.unwrap();
        conn.on_response_head(&head(413, Some("4")), false, false);
        assert!(conn.answered_early());
        assert!(proxy_side.write_all(b"more body").await.is_err());
        let mut got = Vec::new();
        upstream.read_to_end(&mut got).await.unwrap();
        assert_eq!(
            got, b"queued",
            "what was queued arrives, then end of stream"
        );
        // The answer is still readable after the write side is shut.
        upstream
            .write_all(b"HTTP/1.1 413 x\r\n\r\nbig!")
            .await
            .unwrap();
        let mut answer = [0u8; 22];
        proxy_side.read_exact(&mut answer).await.unwrap();
        conn.on_response_end();
        let eof = tokio::time::timeout(Duration::from_secs(5), proxy_side.read(&mut answer));
        assert_eq!(
            eof.await.unwrap().unwrap(),
            0,
            "a read after the answer sees its end"
        );
    }

    #[test]
    fn only_a_refusal_stops_the_body() {
        assert!(refuses_body(413));
        assert!(refuses_body(307));
        assert!(refuses_body(500));
        assert!(!refuses_body(200));
        assert!(!refuses_body(206));
    }

    #[tokio::test]
    async fn an_early_2xx_lets_the_body_go_on_but_is_never_pooled() {
        let (mut proxy_side, mut upstream) = pair().await;
        let mut conn = watching(&proxy_side);
        conn.on_response_head(&head(200, None), false, false);
        assert!(conn.answered_early());
        proxy_side
            .write_all(b"rest of a streaming upload")
            .await
            .unwrap();
        let mut got = [0u8; 26];
        upstream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"rest of a streaming upload");
        conn.on_response_end();
        let mut byte = [0u8; 1];
        let eof = tokio::time::timeout(Duration::from_secs(5), proxy_side.read(&mut byte));
        assert_eq!(
            eof.await.unwrap().unwrap(),
            0,
            "the pool's check reads end of stream and drops the connection"
        );
    }

    #[tokio::test]
    async fn an_answer_after_the_body_changes_nothing() {
        let (mut proxy_side, mut upstream) = pair().await;
        let mut conn = watching(&proxy_side);
        conn.on_response_head(&head(200, Some("2")), false, true);
        conn.on_response_end();
        assert!(!conn.answered_early());
        proxy_side.write_all(b"next request").await.unwrap();
        let mut got = [0u8; 12];
        upstream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"next request");
    }
}
