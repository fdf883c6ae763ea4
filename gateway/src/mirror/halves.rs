//! The two halves of one mirror connection, each dressed as a Pingora stream so that a client
//! session can write the request on one while another reads the answer on the other: Pingora's
//! own session takes `&mut self` for both, so a write that blocks would stop the reading.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};

/// Splits a connection into a half that only reads and one that only writes.
pub(super) fn split(stream: Stream) -> (Reading, Writing) {
    let id = stream.id();
    let (read, write) = tokio::io::split(stream);
    (Reading { half: read, id }, Writing { half: write, id })
}

/// The read half; whatever is written to it is discarded (a session writes its request head
/// there only to learn the request's method and framing).
pub(super) struct Reading {
    half: ReadHalf<Stream>,
    id: UniqueIDType,
}

/// The write half; it never has anything to read.
pub(super) struct Writing {
    half: WriteHalf<Stream>,
    id: UniqueIDType,
}

impl fmt::Debug for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reading").field("id", &self.id).finish()
    }
}

impl fmt::Debug for Writing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writing").field("id", &self.id).finish()
    }
}

impl AsyncRead for Reading {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.half).poll_read(cx, buf)
    }
}

impl AsyncWrite for Reading {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for Writing {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Pending
    }
}

impl AsyncWrite for Writing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.half).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.half).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.half).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Reading {
    async fn shutdown(&mut self) {}
}

#[async_trait]
impl Shutdown for Writing {
    async fn shutdown(&mut self) {
        let _ = self.half.shutdown().await;
    }
}

/// The traits Pingora's sessions ask of a stream, none of which a mirror copy uses.
macro_rules! plain_stream {
    ($t:ty) => {
        impl UniqueID for $t {
            fn id(&self) -> UniqueIDType {
                self.id
            }
        }
        impl Ssl for $t {}
        #[async_trait]
        impl Peek for $t {}
        impl GetTimingDigest for $t {
            fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
                Vec::new()
            }
        }
        impl GetProxyDigest for $t {
            fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
                None
            }
        }
        impl GetSocketDigest for $t {
            fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
                None
            }
        }
    };
}

plain_stream!(Reading);
plain_stream!(Writing);
