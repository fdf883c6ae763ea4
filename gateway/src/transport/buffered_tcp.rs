//! A plain TCP connection with Pingora's usual small write buffer, dressed in Pingora's traits.
//!
//! Pingora's own listeners give every accepted connection a write buffer of one MSS
//! (`DEFAULT_L4_WRITE_BUFFER_SIZE`) and write its HTTP/1 code around it: the response head is
//! written unflushed and goes out with the body at the next flush. `pingora_core`'s public
//! `From<TcpStream>`, which our own accept loops must use, builds an unbuffered stream, so the
//! head and body of every response went out as two `sendto`s, each a full loopback or NIC
//! delivery (a third of the proxy's CPU in the profile, docs/benchmarks.md). The buffer cannot be
//! set from outside the crate, so it lives here, in front of the stream.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncWriteExt, BufWriter};

/// Pingora's default: one Ethernet MSS, so a small response is one segment and a large write
/// bypasses the buffer.
pub const WRITE_BUFFER: usize = pingora_core::protocols::l4::stream::DEFAULT_L4_WRITE_BUFFER_SIZE;

pub struct BufferedTcp {
    inner: BufWriter<L4Stream>,
}

impl BufferedTcp {
    pub fn new(stream: L4Stream) -> BufferedTcp {
        BufferedTcp {
            inner: BufWriter::with_capacity(WRITE_BUFFER, stream),
        }
    }
}

impl fmt::Debug for BufferedTcp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BufferedTcp")
            .field(self.inner.get_ref())
            .finish()
    }
}

// === impl Pingora's transport traits (all but the write path delegate to the stream) ===

#[async_trait]
impl Shutdown for BufferedTcp {
    async fn shutdown(&mut self) {
        // BufWriter's shutdown flushes what is buffered first.
        if let Err(e) = AsyncWriteExt::shutdown(&mut self.inner).await {
            tracing::debug!(error = %e, "TCP shutdown failed");
        }
    }
}

impl UniqueID for BufferedTcp {
    fn id(&self) -> UniqueIDType {
        self.inner.get_ref().id()
    }
}

impl Ssl for BufferedTcp {}

impl GetTimingDigest for BufferedTcp {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_ref().get_timing_digest()
    }
}

impl GetProxyDigest for BufferedTcp {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_ref().get_proxy_digest()
    }
}

impl GetSocketDigest for BufferedTcp {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_ref().get_socket_digest()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.inner.get_mut().set_socket_digest(socket_digest);
    }
}

#[async_trait]
impl Peek for BufferedTcp {
    /// Pingora peeks for the h2c preface; peeking reads nothing through the write buffer.
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        self.inner.get_mut().try_peek(buf).await
    }
}

super::delegate::delegate_async_io!(BufferedTcp);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    async fn pair() -> (BufferedTcp, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let server = BufferedTcp::new(L4Stream::from(accepted.unwrap().0));
        (server, client.unwrap())
    }

    #[tokio::test]
    async fn a_response_head_waits_for_its_body_and_leaves_with_it_on_flush() {
        let (mut server, mut client) = pair().await;
        server
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 128];
        assert!(
            client.try_read(&mut buf).is_err(),
            "the head went out before the flush"
        );
        server.write_all(b"ok").await.unwrap();
        server.flush().await.unwrap();
        let mut got = Vec::new();
        while got.len() < 40 {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed early");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }

    #[tokio::test]
    async fn a_write_larger_than_the_buffer_goes_straight_out() {
        let (mut server, mut client) = pair().await;
        let big = vec![b'x'; WRITE_BUFFER * 4];
        server.write_all(&big).await.unwrap();
        let mut got = vec![0u8; big.len()];
        // No flush: BufWriter passes a write at least as large as its buffer through.
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big);
    }

    #[tokio::test]
    async fn shutdown_flushes_what_is_buffered() {
        let (mut server, mut client) = pair().await;
        server.write_all(b"last words").await.unwrap();
        Shutdown::shutdown(&mut server).await;
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"last words");
    }
}
