//! The backends behind the proxies: fast, answering after a delay, or a blackhole that accepts and
//! never reads. Each counts what it received, so mirrored % comes from the receiving end.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Fast,
    /// Answers each request after this long.
    Delayed(Duration),
    /// Accepts connections and never reads from them.
    Blackhole,
}

/// A running backend. It lives as long as the runtime it was started on.
#[derive(Debug, Clone)]
pub struct Backend {
    pub addr: SocketAddr,
    pub behaviour: Behaviour,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    /// Request heads received (for a blackhole: connections accepted).
    requests: AtomicU64,
    /// Requests whose whole body arrived.
    complete: AtomicU64,
}

impl Backend {
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    pub fn complete(&self) -> u64 {
        self.counters.complete.load(Ordering::Relaxed)
    }
}

/// Binds 127.0.0.1:0 and serves on the current runtime.
pub async fn start(behaviour: Behaviour) -> std::io::Result<Backend> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend = Backend {
        addr: listener.local_addr()?,
        behaviour,
        counters: Arc::default(),
    };
    let counters = Arc::clone(&backend.counters);
    tokio::spawn(async move {
        // A blackhole keeps every socket open, unread, until the benchmark exits.
        let mut held: Vec<TcpStream> = Vec::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            match behaviour {
                Behaviour::Blackhole => {
                    counters.requests.fetch_add(1, Ordering::Relaxed);
                    held.push(stream);
                }
                Behaviour::Fast | Behaviour::Delayed(_) => {
                    let counters = Arc::clone(&counters);
                    tokio::spawn(serve(stream, behaviour, counters));
                }
            }
        }
    });
    Ok(backend)
}

/// Accepts on `listener` for as long as the runtime runs, each connection (no delay) served by
/// `serve` on a task of its own: the gRPC and TLS backends' accept loop.
pub fn serve_each<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream));
        }
    });
}

async fn serve(stream: TcpStream, behaviour: Behaviour, counters: Arc<Counters>) {
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let counters = Arc::clone(&counters);
        async move {
            counters.requests.fetch_add(1, Ordering::Relaxed);
            if req.into_body().collect().await.is_ok() {
                counters.complete.fetch_add(1, Ordering::Relaxed);
            }
            if let Behaviour::Delayed(d) = behaviour {
                tokio::time::sleep(d).await;
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
        }
    });
    // A proxy closing its connection mid-request is normal here (blackholed or aborted mirrors).
    let _ = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn fast_backend_counts_requests_and_whole_bodies() {
        let backend = start(Behaviour::Fast).await.expect("binds");
        let mut s = TcpStream::connect(backend.addr).await.expect("connects");
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
            .await
            .expect("writes");
        let mut buf = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answers in time")
            .expect("reads");
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        assert_eq!(backend.requests(), 1);
        assert_eq!(backend.complete(), 1);
    }

    #[tokio::test]
    async fn blackhole_accepts_and_counts_connections() {
        let backend = start(Behaviour::Blackhole).await.expect("binds");
        let _s = TcpStream::connect(backend.addr).await.expect("connects");
        tokio::time::timeout(Duration::from_secs(5), async {
            while backend.requests() == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .expect("the accept is counted");
        assert_eq!(backend.complete(), 0);
    }
}
