//! An accepted TCP connection whose first bytes were already read (the ClientHello, to learn
//! the SNI before choosing what to do with the connection): reads give those bytes back first,
//! then whatever the socket has, so a TLS handshake or a passthrough backend sees the client's
//! bytes exactly as sent.

use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct ReplayTcp {
    /// What was read ahead; `replayed` of it has been read again.
    prefix: Vec<u8>,
    replayed: usize,
    tcp: TcpStream,
}

impl ReplayTcp {
    pub fn new(prefix: Vec<u8>, tcp: TcpStream) -> ReplayTcp {
        ReplayTcp {
            prefix,
            replayed: 0,
            tcp,
        }
    }
}

/// A connection nothing was read from yet.
impl From<TcpStream> for ReplayTcp {
    fn from(tcp: TcpStream) -> ReplayTcp {
        ReplayTcp::new(Vec::new(), tcp)
    }
}

impl AsRawFd for ReplayTcp {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }
}

impl AsyncRead for ReplayTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(rest) = this.prefix.get(this.replayed..).filter(|r| !r.is_empty()) {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            if this.replayed == this.prefix.len() {
                // Replayed in full: the memory is not needed for the connection's lifetime.
                this.prefix = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ReplayTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn read_ahead_bytes_come_back_first_then_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let mut client = client.unwrap();
        let mut replay = ReplayTcp::new(b"hello ".to_vec(), accepted.unwrap().0);
        client.write_all(b"world").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        replay.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello world");
    }
}
