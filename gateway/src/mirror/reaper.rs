//! Closes the mirror connections that go back to no pool, one at a time, off the copies' own
//! turns.
//!
//! Closing a TCP connection is not free: the kernel sends the FIN there and then, and over
//! loopback it also runs the peer's side, about 20 µs in all (measured, perf, 1,024 copies to a
//! blackhole timing out at once). Copies that started together end together: a burst of
//! production traffic against a dead mirror fills the in-flight cap within milliseconds, and
//! its timeouts fire in the same timer tick. Closed by the copies themselves, those connections
//! took one scheduler turn of some 20 ms, and the production requests that arrived meanwhile
//! waited behind it (p99 at 2,000 req/s rose from 0.4 to 1 ms). Handed to one task per runtime
//! thread, which closes one and lets the scheduler poll for I/O before the next, the burst is
//! spread between production requests instead.

use std::cell::RefCell;
use std::io;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;

type Closing = Box<dyn Send>;

thread_local! {
    /// This thread's reaper task, started by the first connection it is handed.
    static REAPER: RefCell<Option<mpsc::UnboundedSender<Closing>>> = const { RefCell::new(None) };
}

/// A connection that is closed by the reaper when dropped, unless taken back (to be pooled).
pub(super) struct Reaped<T: Send + 'static>(Option<T>);

impl<T: Send + 'static> Reaped<T> {
    pub(super) fn new(conn: T) -> Reaped<T> {
        Reaped(Some(conn))
    }

    /// The connection itself, which this guard no longer closes.
    pub(super) fn into_inner(mut self) -> T {
        self.0
            .take()
            .unwrap_or_else(|| unreachable!("a Reaped is emptied only by into_inner or drop"))
    }
}

impl<T: Send + 'static> Deref for Reaped<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("a Reaped is emptied only by into_inner or drop"))
    }
}

impl<T: Send + 'static> DerefMut for Reaped<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("a Reaped is emptied only by into_inner or drop"))
    }
}

impl<T: Send + 'static> Drop for Reaped<T> {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            close_later(Box::new(conn));
        }
    }
}

/// Hands `conn` to this thread's reaper, starting it if needed. Outside a runtime (or while
/// the thread is exiting) it is closed here and now.
fn close_later(conn: Closing) {
    let Err(conn) = REAPER
        .try_with(|reaper| hand_over(&mut reaper.borrow_mut(), conn))
        .unwrap_or_else(|_| Err(None))
    else {
        return;
    };
    drop(conn);
}

/// `Err` with the connection when no reaper could take it.
fn hand_over(
    reaper: &mut Option<mpsc::UnboundedSender<Closing>>,
    conn: Closing,
) -> Result<(), Option<Closing>> {
    // A reaper that went with the runtime it ran on (a test's) is replaced on the current one.
    let conn = match reaper.as_ref() {
        Some(queue) => match queue.send(conn) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::SendError(conn)) => conn,
        },
        None => conn,
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        *reaper = None;
        return Err(Some(conn));
    };
    let (queue, closing) = mpsc::unbounded_channel();
    runtime.spawn(reap(closing));
    let sent = queue.send(conn).map_err(|e| Some(e.0));
    *reaper = Some(queue);
    sent
}

async fn reap(mut closing: mpsc::UnboundedReceiver<Closing>) {
    while let Some(conn) = closing.recv().await {
        drop(conn);
        if !closing.is_empty() {
            // Production requests that became ready meanwhile run before the next close.
            tokio::task::yield_now().await;
        }
    }
}

// A connection split in two (the full-duplex path) is closed when both halves are gone: the
// stream under them is the one reaped.
impl<T: AsyncRead + Unpin + Send + 'static> AsyncRead for Reaped<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut **self).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin + Send + 'static> AsyncWrite for Reaped<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        (**self).is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records its drop in a shared log and, when given one, wakes a task meanwhile (as a
    /// production request's bytes would arrive during a close).
    struct Conn(
        Arc<Mutex<Vec<&'static str>>>,
        Option<mpsc::UnboundedSender<()>>,
    );

    impl Drop for Conn {
        fn drop(&mut self) {
            self.0.lock().expect("log").push("close");
            if let Some(wake) = &self.1 {
                let _ = wake.send(());
            }
        }
    }

    fn log() -> Arc<Mutex<Vec<&'static str>>> {
        Arc::new(Mutex::new(Vec::new()))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_task_woken_during_a_burst_of_closes_runs_before_the_next_close() {
        let log = log();
        let (wake, mut woken) = mpsc::unbounded_channel();
        let other = {
            let log = log.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    woken.recv().await;
                    log.lock().expect("log").push("other");
                }
            })
        };
        let burst: Vec<_> = (0..3)
            .map(|_| Reaped::new(Conn(log.clone(), Some(wake.clone()))))
            .collect();
        drop(burst);
        assert!(
            log.lock().expect("log").is_empty(),
            "closed on the copy's turn"
        );
        other.await.expect("other task");
        while log.lock().expect("log").len() < 6 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            *log.lock().expect("log"),
            ["close", "other", "close", "other", "close", "other"]
        );
    }

    #[test]
    fn outside_a_runtime_the_connection_is_closed_at_once() {
        let log = log();
        drop(Reaped::new(Conn(log.clone(), None)));
        assert_eq!(*log.lock().expect("log"), ["close"]);
    }

    #[test]
    fn a_taken_connection_is_not_closed() {
        let log = log();
        let conn = Reaped::new(Conn(log.clone(), None)).into_inner();
        assert!(log.lock().expect("log").is_empty());
        drop(conn);
        assert_eq!(*log.lock().expect("log"), ["close"]);
    }

    #[test]
    fn a_reaper_gone_with_its_runtime_is_replaced() {
        let log = log();
        for _ in 0..2 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                drop(Reaped::new(Conn(log.clone(), None)));
                while log.lock().expect("log").is_empty() {
                    tokio::task::yield_now().await;
                }
            });
            log.lock().expect("log").clear();
        }
    }
}
