//! A pooled HTTP/1.1 mirror connection that sends a copy's head together with its first body
//! bytes: one write, and one wake-up of the mirror, instead of two.
//!
//! Pingora's session writes and flushes a request head on its own, before any body. A copy's
//! body is usually queued already when its head goes out, so for a copy with a body the head's
//! own flush is held back, and the head goes out with the first body write (one vectored write,
//! no copy of the body), or at the next flush when the body turns out to be empty. The wrapper
//! stays on the connection in the pool; a later copy re-arms it instead of wrapping it again.

use std::any::Any;
use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora_core::protocols::http::v1::client::HttpSession as Http1Session;
use pingora_core::protocols::{Peek, Shutdown, Stream, IO};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where the head of the current copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Writes and flushes pass straight through.
    Off,
    /// Armed: writes are the head, kept until its flush.
    Collecting,
    /// The head is complete and waits for the first body write or the next flush.
    Held,
}

pub(super) struct HeadFirst {
    inner: Stream,
    hold: Hold,
    /// Head bytes not written yet.
    head: BytesMut,
}

/// Whether a copy has body bytes to carry its head: a declared length above zero. (A chunked
/// copy is written full duplex, on a connection of its own.)
pub(super) fn wanted(head: &RequestHeader) -> bool {
    super::head::declared_length(head).is_some_and(|len| len > 0)
}

/// `session`'s connection, set to hold the head of the copy it is about to carry until its
/// first body bytes: wrapped the first time, re-armed when it comes back from the pool.
pub(super) fn arm(session: Http1Session, peer: &HttpPeer) -> Http1Session {
    let stream = session.into_inner();
    let armed: Stream = if (*stream).as_any().is::<HeadFirst>() {
        match <dyn IO as IO>::into_any(stream).downcast::<HeadFirst>() {
            Ok(mut wrapped) => {
                wrapped.arm();
                wrapped
            }
            // `is` said it was one: this arm is never taken.
            Err(other) => return unreachable_stream(other),
        }
    } else {
        let mut wrapped = Box::new(HeadFirst {
            inner: stream,
            hold: Hold::Off,
            head: BytesMut::new(),
        });
        wrapped.arm();
        wrapped
    };
    Http1Session::new_with_options(armed, peer)
}

#[cold]
fn unreachable_stream(_: Box<dyn Any>) -> Http1Session {
    unreachable!("a stream that is a HeadFirst could not be downcast to one")
}

impl HeadFirst {
    fn arm(&mut self) {
        self.head.clear();
        self.hold = Hold::Collecting;
    }

    /// A copy abandoned before its body: its head never goes out.
    fn disarm(&mut self) {
        self.head.clear();
        self.hold = Hold::Off;
    }

    /// Writes what is left of the held head; `Ready` once it is all out.
    fn poll_write_head(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.head.is_empty() {
            let n = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &self.head))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.head.advance(n);
        }
        self.hold = Hold::Off;
        Poll::Ready(Ok(()))
    }
}

impl fmt::Debug for HeadFirst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeadFirst")
            .field("inner", &self.inner)
            .field("hold", &self.hold)
            .field("held", &self.head.len())
            .finish()
    }
}

impl AsyncRead for HeadFirst {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for HeadFirst {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.hold {
            Hold::Off => Pin::new(&mut this.inner).poll_write(cx, data),
            Hold::Collecting => {
                this.head.extend_from_slice(data);
                Poll::Ready(Ok(data.len()))
            }
            Hold::Held => {
                while !this.head.is_empty() {
                    let bufs = [IoSlice::new(&this.head), IoSlice::new(data)];
                    let n = std::task::ready!(
                        Pin::new(&mut this.inner).poll_write_vectored(cx, &bufs)
                    )?;
                    if n == 0 {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    if n < this.head.len() {
                        this.head.advance(n);
                        continue;
                    }
                    let body = n - this.head.len();
                    this.head.clear();
                    this.hold = Hold::Off;
                    if body > 0 {
                        return Poll::Ready(Ok(body));
                    }
                }
                this.hold = Hold::Off;
                Pin::new(&mut this.inner).poll_write(cx, data)
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match this.hold {
            // The head's own flush: held for the body.
            Hold::Collecting => {
                this.hold = Hold::Held;
                Poll::Ready(Ok(()))
            }
            Hold::Held => {
                std::task::ready!(this.poll_write_head(cx))?;
                Pin::new(&mut this.inner).poll_flush(cx)
            }
            Hold::Off => Pin::new(&mut this.inner).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.disarm();
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

// === impl Pingora's transport traits (delegated to the connection) ===

#[async_trait]
impl Shutdown for HeadFirst {
    async fn shutdown(&mut self) {
        self.disarm();
        self.inner.shutdown().await;
    }
}

crate::transport::delegate_connection_facts!(HeadFirst);

#[async_trait]
impl Peek for HeadFirst {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests;
