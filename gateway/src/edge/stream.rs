//! An accepted client connection behind the edge guard: reads pass through the [`Framer`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use pingora_core::protocols::{Peek, Shutdown, Stream, ALPN};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::framing::{Framer, Step};
use super::limits::EdgeLimits;
use super::reject::{self, BodyRejected};

/// The HTTP/2 connection preface a prior-knowledge (h2c) client opens with.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes read from the socket at a time while a head is assembled.
const HEAD_READ: usize = 4096;

/// A client connection whose HTTP/1 requests reach Pingora only once proven (see [`super`]).
pub struct EdgeStream {
    inner: Stream,
    /// Off for HTTP/2 (ALPN h2 or the h2c preface): h2 frames its own messages, and its limits
    /// are Pingora's H2 options.
    gated: bool,
    allow_h2c: bool,
    framer: Framer,
    limits: EdgeLimits,
    /// Bytes read from the socket and not yet handed on; the first `proven` may be.
    buf: BytesMut,
    proven: usize,
    /// The marker request standing in for a refused head, and how much of it was handed on.
    marker: Option<(Vec<u8>, usize)>,
    /// When the head being read must be complete.
    header_deadline: Option<Pin<Box<Sleep>>>,
    /// When an idle keep-alive connection is closed; one timer per connection, reset per wait.
    keepalive: Option<Pin<Box<Sleep>>>,
    /// The waker `keepalive` was last polled with in this idle period.
    keepalive_waker: Option<Waker>,
    /// Waiting for the next request since `idle_since`.
    idle: bool,
    idle_since: Instant,
    eof: bool,
    /// A read parked until the response to an upgrade request is written.
    held: Option<Waker>,
    /// The first bytes of the response to an upgrade request.
    upgrade_status: Vec<u8>,
    /// The `proven` bytes are body bytes (not a head): once handed on, a read may top them up.
    proven_body: bool,
    /// An error met while topping up a read that already held bytes: the next read reports it.
    deferred: Option<std::io::Error>,
}

impl EdgeStream {
    /// Guards `inner`, a connection just accepted (and TLS-terminated, when it is TLS).
    pub fn new(inner: Stream, limits: EdgeLimits, allow_h2c: bool) -> EdgeStream {
        let gated = inner.selected_alpn_proto() != Some(ALPN::H2);
        EdgeStream {
            inner,
            gated,
            allow_h2c,
            framer: Framer::new(limits),
            limits,
            buf: BytesMut::new(),
            proven: 0,
            marker: None,
            // The first request's head is due client_header_timeout after accept.
            header_deadline: Some(Box::pin(tokio::time::sleep(limits.client_header_timeout))),
            keepalive: None,
            keepalive_waker: None,
            idle: false,
            idle_since: Instant::now(),
            eof: false,
            held: None,
            upgrade_status: Vec::new(),
            proven_body: false,
            deferred: None,
        }
    }

    /// Hands on proven bytes or the marker, if there are any.
    #[inline]
    fn hand_on(&mut self, out: &mut ReadBuf<'_>) -> bool {
        if let Some((marker, sent)) = self.marker.as_mut() {
            let n = (marker.len() - *sent).min(out.remaining());
            out.put_slice(&marker[*sent..*sent + n]);
            *sent += n;
            return n > 0;
        }
        if self.proven == 0 || out.remaining() == 0 {
            return false;
        }
        let n = self.proven.min(out.remaining());
        out.put_slice(&self.buf[..n]);
        self.buf.advance(n);
        self.proven -= n;
        true
    }

    /// The h2c preface turns the guard off when h2c is allowed; `None` until that is decided.
    fn h2c_decided(&mut self) -> Option<()> {
        if !self.allow_h2c || self.framer.heads() > 0 || !self.framer.at_message_start() {
            return Some(());
        }
        let n = self.buf.len().min(H2_PREFACE.len());
        if self.buf[..n] != H2_PREFACE[..n] {
            return Some(());
        }
        if n < H2_PREFACE.len() {
            return None;
        }
        self.gated = false;
        self.proven = self.buf.len();
        Some(())
    }

    /// Reads until the buffered bytes are the whole h2c preface or cannot become it, the client
    /// has stopped sending, or the header deadline has passed (then `poll_gated` answers as for
    /// any late head).
    fn poll_preface(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        loop {
            let n = self.buf.len().min(H2_PREFACE.len());
            if n == H2_PREFACE.len() || self.buf[..n] != H2_PREFACE[..n] || self.eof {
                return Poll::Ready(Ok(()));
            }
            self.buf.reserve(HEAD_READ);
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.inner), cx, &mut self.buf) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => self.eof = true,
                Poll::Ready(Ok(_)) => self.idle = false,
                Poll::Pending if self.head_deadline_passed(cx) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn refuse_head(&mut self, violation: reject::Violation) {
        tracing::debug!(reason = violation.label(), "request refused at the edge");
        self.framer.refuse(violation);
        self.marker = Some((reject::marker_request(violation), 0));
        self.buf.clear();
        self.proven = 0;
        self.proven_body = false;
        self.header_deadline = None;
    }

    fn poll_gated(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if self.hand_on(out) {
                if self.proven_body && self.proven == 0 {
                    self.top_up_body(cx, out);
                }
                return Poll::Ready(Ok(()));
            }
            if self.marker.is_some() {
                // The marker is out: the connection ends here (the proxy answers and closes).
                return Poll::Ready(Ok(()));
            }
            if !self.buf.is_empty() {
                if self.h2c_decided().is_none() {
                    // Could still be the h2c preface: read more before framing anything.
                } else if !self.gated {
                    continue;
                } else {
                    let in_body = self.framer.in_body();
                    match self.framer.advance(&self.buf) {
                        Step::Pass(n) if n > 0 => {
                            self.proven = n;
                            self.proven_body = in_body;
                            if !self.framer.in_head() || self.framer.at_message_start() {
                                self.header_deadline = None;
                            }
                            continue;
                        }
                        Step::Discard(n) => {
                            self.buf.advance(n);
                            continue;
                        }
                        Step::Pass(_) | Step::NeedMore => {}
                        Step::Hold => {
                            self.held = Some(cx.waker().clone());
                            return Poll::Pending;
                        }
                        Step::Refuse(v) if in_body => {
                            tracing::debug!(reason = v.label(), "request body refused at the edge");
                            return Poll::Ready(Err(BodyRejected::io(v)));
                        }
                        Step::Refuse(v) => {
                            self.refuse_head(v);
                            continue;
                        }
                    }
                }
            }
            if self.eof {
                // A partial head at EOF is dropped: there is no request to answer.
                return Poll::Ready(Ok(()));
            }
            if self.buf.is_empty() && self.proven == 0 && !self.framer.in_head() {
                // A body or tunnel: read straight into the caller's buffer.
                return self.poll_body_direct(cx, out);
            }
            if self.buf.is_empty() && (self.framer.heads() > 0 || !self.allow_h2c) {
                // The common case: a whole head in one read lands straight in Pingora's buffer
                // and is checked there, with no copy.
                let before = out.filled().len();
                match Pin::new(&mut self.inner).poll_read(cx, out) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) if out.filled().len() == before => {
                        self.eof = true;
                        continue;
                    }
                    Poll::Ready(Ok(())) => {
                        self.idle = false;
                        if let Some(done) = self.frame_in_place(out, before) {
                            return done;
                        }
                        continue;
                    }
                    Poll::Pending => {}
                }
            } else {
                self.buf.reserve(HEAD_READ);
                match tokio_util::io::poll_read_buf(Pin::new(&mut self.inner), cx, &mut self.buf) {
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(0)) => {
                        self.eof = true;
                        continue;
                    }
                    Poll::Ready(Ok(_)) => {
                        self.idle = false;
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            // Nothing to read: the deadlines decide how long to keep waiting. They are looked at
            // only here, so a request that is already there costs no timer.
            if self.framer.in_head() && self.head_deadline_passed(cx) {
                if self.buf.is_empty() {
                    // Nothing was sent: close quietly, as for an idle keep-alive.
                    tracing::debug!("no request within the client header timeout");
                    return Poll::Ready(Ok(()));
                }
                self.refuse_head(reject::Violation::HeaderTimeout);
                continue;
            }
            // Pingora reading for the next request (its idle probe during a response
            // reads one byte): an idle keep-alive connection.
            let idle_wait = self.framer.at_message_start()
                && self.framer.heads() > 0
                && self.buf.is_empty()
                && out.remaining() > 1;
            if idle_wait && self.keepalive_expired(cx) {
                tracing::debug!("idle keep-alive connection closed");
                self.eof = true;
                return Poll::Ready(Ok(()));
            }
            return Poll::Pending;
        }
    }

    /// Frames the bytes just read into `out` (after `before`) where they lie. A head that passed
    /// stays there (anything after it is kept back); everything else is moved to our own buffer
    /// and framed from there. `Some` is the read's result; `None` means frame again.
    fn frame_in_place(
        &mut self,
        out: &mut ReadBuf<'_>,
        before: usize,
    ) -> Option<Poll<std::io::Result<()>>> {
        let filled = out.filled().len();
        match self.framer.advance(&out.filled()[before..filled]) {
            Step::Pass(n) if n > 0 => {
                self.header_deadline = None;
                if before + n < filled {
                    self.buf
                        .extend_from_slice(&out.filled()[before + n..filled]);
                    out.set_filled(before + n);
                }
                Some(Poll::Ready(Ok(())))
            }
            Step::Refuse(v) => {
                out.set_filled(before);
                self.refuse_head(v);
                None
            }
            _ => {
                self.buf.extend_from_slice(&out.filled()[before..filled]);
                out.set_filled(before);
                None
            }
        }
    }

    /// Arms the header deadline at the first wait inside a head; true once it has passed.
    fn head_deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.buf.is_empty() && self.header_deadline.is_none() {
            let timeout = self.limits.client_header_timeout;
            self.header_deadline = Some(Box::pin(tokio::time::sleep(timeout)));
        }
        self.header_deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready())
    }

    /// Notes when an idle period began and whether it has outlasted the keep-alive timeout.
    /// One timer per connection, re-armed only when it fires: an idle period costs a clock
    /// read, not a timer registration.
    fn keepalive_expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.idle {
            self.idle = true;
            self.idle_since = Instant::now();
        } else if self.keepalive.as_ref().is_some_and(|t| !t.is_elapsed())
            && self
                .keepalive_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            // Polled already in this idle period by this task: the timer wakes it when it
            // fires, so a second wait costs a load, not another poll of the timer.
            return false;
        }
        let due = self.idle_since + self.limits.keepalive_timeout;
        let timer = self
            .keepalive
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                match &mut self.keepalive_waker {
                    Some(waker) => waker.clone_from(cx.waker()),
                    None => self.keepalive_waker = Some(cx.waker().clone()),
                }
                return false;
            }
            if Instant::now() >= due {
                return true;
            }
            // It fired for an earlier idle period: wait for the end of this one.
            timer.as_mut().reset(due);
        }
    }

    /// Reads body bytes into `out` and keeps back any past the end of the message.
    fn poll_body_direct(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = out.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, out) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        let read = out.filled().len() - before;
        match self.frame_direct(out, before) {
            Err(e) => Poll::Ready(Err(e)),
            // Nothing of this message was in the read: frame the kept bytes now.
            Ok(0) if read > 0 => self.poll_gated(cx, out),
            Ok(_) => Poll::Ready(Ok(())),
        }
    }

    /// After buffered body bytes were handed on, also reads what the socket already holds into
    /// the rest of `out`, without waiting. A client's body usually arrives partly with its head
    /// and the rest just after: read this way it reaches Pingora as one chunk, not two, so the
    /// backend and every mirror copy get it in one write, and no copy joins the two for a mirror.
    fn top_up_body(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) {
        if self.marker.is_some()
            || !self.framer.in_body()
            || !self.buf.is_empty()
            || out.remaining() == 0
        {
            return;
        }
        let before = out.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, out) {
            Poll::Ready(Ok(())) if out.filled().len() == before => self.eof = true,
            Poll::Ready(Ok(())) => {
                if let Err(e) = self.frame_direct(out, before) {
                    self.deferred = Some(e);
                }
            }
            // The bytes already in `out` go first; the error is the next read's answer.
            Poll::Ready(Err(e)) => self.deferred = Some(e),
            Poll::Pending => {}
        }
    }

    /// Frames the body bytes just read into `out` (after `before`) where they lie, keeping back
    /// any past the end of the message for the next one. Returns how many of them belong to
    /// this message; on a refusal, `out` ends where the refused bytes begin.
    fn frame_direct(&mut self, out: &mut ReadBuf<'_>, before: usize) -> std::io::Result<usize> {
        let mut at = before;
        let filled = out.filled().len();
        while at < filled {
            let in_body = self.framer.in_body();
            match self.framer.advance(&out.filled()[at..filled]) {
                Step::Pass(n) if n > 0 => at += n,
                Step::Refuse(v) if in_body => {
                    tracing::debug!(reason = v.label(), "request body refused at the edge");
                    out.set_filled(at);
                    return Err(BodyRejected::io(v));
                }
                // The message ended: what follows belongs to the next one, framed later.
                _ => break,
            }
            if self.framer.in_head() {
                break;
            }
        }
        if at < filled {
            self.buf.extend_from_slice(&out.filled()[at..filled]);
            out.set_filled(at);
        }
        Ok(at - before)
    }

    /// Watches the response to an upgrade request for its status.
    fn observe_write(&mut self, data: &[u8]) {
        if !self.framer.awaiting_upgrade() {
            return;
        }
        let want = 12 - self.upgrade_status.len().min(12);
        self.upgrade_status
            .extend_from_slice(&data[..want.min(data.len())]);
        if self.upgrade_status.len() < 12 {
            return;
        }
        let code = std::str::from_utf8(&self.upgrade_status[9..12])
            .ok()
            .and_then(|c| c.parse::<u16>().ok());
        self.upgrade_status.clear();
        match code {
            Some(101) => self.framer.upgrade_answered(true),
            Some(100..=199) => return,
            _ => self.framer.upgrade_answered(false),
        }
        if let Some(waker) = self.held.take() {
            waker.wake();
        }
    }
}

impl fmt::Debug for EdgeStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeStream")
            .field("inner", &self.inner)
            .field("gated", &self.gated)
            .finish()
    }
}

impl AsyncRead for EdgeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.deferred.take() {
            return Poll::Ready(Err(e));
        }
        if !this.gated && this.proven == 0 {
            return Pin::new(&mut this.inner).poll_read(cx, out);
        }
        if !this.gated {
            this.hand_on(out);
            return Poll::Ready(Ok(()));
        }
        this.poll_gated(cx, out)
    }
}

impl AsyncWrite for EdgeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = polled {
            this.observe_write(&data[..n]);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.framer.awaiting_upgrade() {
            // Rare (one response per upgrade request): take the plain path to see the status.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            return Pin::new(this).poll_write(cx, first);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

// === impl Pingora's transport traits (delegated to the guarded stream) ===

#[async_trait]
impl Shutdown for EdgeStream {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

crate::transport::delegate_connection_facts!(EdgeStream);

#[async_trait]
impl Peek for EdgeStream {
    /// Pingora peeks at every plaintext connection it is handed (each keep-alive request too)
    /// for the h2c preface, and takes `false` ("cannot peek") to mean HTTP/2. The inner stream's
    /// peek waits for all 24 bytes with no deadline, which would let a silent or slow client
    /// past the header timeout, so the guard answers it: only a connection's first bytes can
    /// be the preface, and they are read into the guard's own buffer (where the framer finds
    /// them) until they are the preface or cannot become it, within the header timeout. Anything
    /// else is reported as peeked bytes that are not the preface (zeros), which keeps Pingora on
    /// HTTP/1.
    async fn try_peek(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        buf.fill(0);
        if self.allow_h2c && self.gated && self.framer.heads() == 0 {
            std::future::poll_fn(|cx| self.poll_preface(cx)).await?;
            let n = buf.len().min(self.buf.len());
            buf[..n].copy_from_slice(&self.buf[..n]);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
