//! Copies bytes both ways between a client and its backend until both sides are done, counting
//! them and closing a stream on which nothing moved for the idle timeout.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// What moved on one stream, shared by both directions and read when the stream ends.
#[derive(Debug)]
pub struct Traffic {
    started: Instant,
    /// Milliseconds from `started` to the last byte read or written.
    last: AtomicU64,
    /// Bytes read from the client (and the replayed ClientHello of a passthrough).
    pub upstream: AtomicU64,
    /// Bytes read from the backend.
    pub downstream: AtomicU64,
}

impl Traffic {
    pub fn new() -> Traffic {
        Traffic {
            started: Instant::now(),
            last: AtomicU64::new(0),
            upstream: AtomicU64::new(0),
            downstream: AtomicU64::new(0),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

impl Default for Traffic {
    fn default() -> Traffic {
        Traffic::new()
    }
}

/// How a splice ended.
#[derive(Debug)]
pub enum End {
    /// Both directions reached end of stream.
    Closed,
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// A read or write failed (a reset, a TLS error).
    Failed(io::Error),
}

/// Copies until both directions finish: a side's end of stream shuts down the other side's
/// write half (half-close), and the other direction keeps flowing until it ends too.
pub async fn splice<C, B>(client: &mut C, backend: &mut B, traffic: &Traffic, idle: Duration) -> End
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    traffic.touch();
    let mut client = Metered {
        inner: client,
        traffic,
        counter: &traffic.upstream,
    };
    let mut backend = Metered {
        inner: backend,
        traffic,
        counter: &traffic.downstream,
    };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut backend);
    let watchdog = async {
        loop {
            let quiet = traffic.idle_for();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };
    tokio::select! {
        done = copy => match done {
            Ok(_) => End::Closed,
            Err(e) => End::Failed(e),
        },
        () = watchdog => End::Idle,
    }
}

/// One side of the splice: counts what is read from it and notes every byte's movement.
struct Metered<'a, S: ?Sized> {
    inner: &'a mut S,
    traffic: &'a Traffic,
    counter: &'a AtomicU64,
}

impl<S: AsyncRead + Unpin + ?Sized> AsyncRead for Metered<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.counter.fetch_add(read as u64, Ordering::Relaxed);
            self.traffic.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin + ?Sized> AsyncWrite for Metered<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut *self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.traffic.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn bytes_flow_both_ways_and_a_half_close_lets_the_other_side_finish() {
        let (mut client, mut near_client) = tokio::io::duplex(64);
        let (mut near_backend, mut backend) = tokio::io::duplex(64);
        let traffic = Traffic::new();
        let splice = splice(
            &mut near_client,
            &mut near_backend,
            &traffic,
            Duration::from_secs(30),
        );
        let peers = async {
            client.write_all(b"ping").await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            backend.read_to_end(&mut got).await.unwrap();
            assert_eq!(
                got, b"ping",
                "the client's end of stream reached the backend"
            );
            backend.write_all(b"pong!").await.unwrap();
            backend.shutdown().await.unwrap();
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"pong!");
        };
        let (end, ()) = tokio::join!(splice, peers);
        assert!(matches!(end, End::Closed), "{end:?}");
        assert_eq!(traffic.upstream.load(Ordering::Relaxed), 4);
        assert_eq!(traffic.downstream.load(Ordering::Relaxed), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_ends_after_the_idle_timeout_and_traffic_resets_it() {
        let (mut client, mut near_client) = tokio::io::duplex(64);
        let (mut near_backend, _backend) = tokio::io::duplex(64);
        let traffic = Traffic::new();
        let idle = Duration::from_secs(60);
        let splice = splice(&mut near_client, &mut near_backend, &traffic, idle);
        let chatter = async {
            tokio::time::sleep(Duration::from_secs(40)).await;
            client.write_all(b"x").await.unwrap();
            client
        };
        let (end, _client) = tokio::join!(splice, chatter);
        assert!(matches!(end, End::Idle), "{end:?}");
        let lasted = traffic.elapsed();
        assert!(lasted >= Duration::from_secs(100), "{lasted:?}");
    }
}
