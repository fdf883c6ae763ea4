//! The gRPC unary workload's two ends, on the `h2` crate directly: a backend (h2c, prior
//! knowledge) that answers every call with a small message and `grpc-status: 0` in trailers, and a
//! closed-loop generator that keeps N calls in flight multiplexed over M connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, Request, Response, StatusCode};
use tokio::net::{TcpListener, TcpStream};

use super::backend::serve_each;

/// The method every call goes to; the routes match its service.
pub const SERVICE: &str = "bench.Echo";
pub const PATH: &str = "/bench.Echo/Call";
/// The `:authority` of every call (and the GRPCRoute's hostname is left open, so any works).
pub const AUTHORITY: &str = "grpc.bench.test";
/// Protobuf for `{ field 1: "ping" }` and `{ field 1: "pong" }`: what a one-string message costs.
pub const REQUEST: &[u8] = b"\x0a\x04ping";
pub const REPLY: &[u8] = b"\x0a\x04pong";
/// gRPC's UNIMPLEMENTED, for a call to any other method.
const UNIMPLEMENTED: &str = "12";
/// The 5-byte gRPC message prefix: compressed flag, then the length (big-endian u32).
const PREFIX: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("{0} bytes is less than one gRPC message")]
    Incomplete(usize),
    #[error("compressed gRPC message (flag {0}); the benchmark never asks for compression")]
    Compressed(u8),
}

/// `message` with the gRPC length prefix (uncompressed).
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX + message.len());
    out.put_u8(0);
    // The benchmark's messages are a few bytes; saturating keeps the cast honest.
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// The first message in `buf`: its bytes and how many bytes of `buf` it took.
pub fn parse(buf: &[u8]) -> Result<(&[u8], usize), FrameError> {
    let (head, rest) = buf
        .split_first_chunk::<PREFIX>()
        .ok_or(FrameError::Incomplete(buf.len()))?;
    if head[0] != 0 {
        return Err(FrameError::Compressed(head[0]));
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let message = rest.get(..len).ok_or(FrameError::Incomplete(buf.len()))?;
    Ok((message, PREFIX + len))
}

/// `grpc-status` from trailers, or from the headers of a trailers-only answer.
pub fn status(headers: &HeaderMap) -> Option<&str> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok())
}

// === impl GrpcBackend ===

/// A running gRPC backend; it lives as long as the runtime it was started on.
#[derive(Debug, Clone)]
pub struct GrpcBackend {
    pub addr: SocketAddr,
    calls: Arc<AtomicU64>,
}

impl GrpcBackend {
    /// Calls answered with status 0.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// Binds 127.0.0.1:0 and serves h2c on the current runtime.
pub async fn start_backend() -> std::io::Result<GrpcBackend> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let backend = GrpcBackend {
        addr: listener.local_addr()?,
        calls: Arc::default(),
    };
    let calls = Arc::clone(&backend.calls);
    serve_each(listener, move |stream| {
        serve_connection(stream, Arc::clone(&calls))
    });
    Ok(backend)
}

async fn serve_connection(stream: TcpStream, calls: Arc<AtomicU64>) {
    let Ok(mut conn) = h2::server::handshake(stream).await else {
        return;
    };
    while let Some(Ok((request, respond))) = conn.accept().await {
        tokio::spawn(answer(request, respond, Arc::clone(&calls)));
    }
}

/// Reads the whole request body, then answers: headers, one message, trailers with the status.
async fn answer(
    request: Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    calls: Arc<AtomicU64>,
) {
    let known = request.uri().path() == PATH;
    let mut body = request.into_body();
    let mut received = BytesMut::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    let ok = known && parse(&received).is_ok();
    let head = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap_or_default();
    let Ok(mut send) = respond.send_response(head, false) else {
        return;
    };
    if ok && send.send_data(frame(REPLY), false).is_err() {
        return;
    }
    let mut trailers = HeaderMap::new();
    trailers.insert(
        "grpc-status",
        http::HeaderValue::from_static(if ok { "0" } else { UNIMPLEMENTED }),
    );
    if send.send_trailers(trailers).is_ok() && ok {
        calls.fetch_add(1, Ordering::Relaxed);
    }
}

// === the generator ===

/// What to run: `streams` calls in flight, spread over `connections` HTTP/2 connections.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub target: SocketAddr,
    pub connections: usize,
    pub streams: usize,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Calls that ended with `grpc-status: 0` and the expected reply.
    pub ok: u64,
    /// Calls that ended with another status (or none).
    pub non_ok: u64,
    /// Calls that failed below gRPC (connection, stream reset, malformed message).
    pub errors: u64,
}

impl Outcome {
    pub fn calls(&self) -> u64 {
        self.ok + self.non_ok + self.errors
    }
}

/// Runs `load` on a runtime of its own (one thread: the generator shares the load core).
pub fn run(load: Load) -> std::io::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(drive(load))
}

async fn drive(load: Load) -> std::io::Result<Outcome> {
    let mut senders = Vec::with_capacity(load.connections);
    for _ in 0..load.connections.max(1) {
        senders.push(connect(load.target).await?);
    }
    let deadline = Instant::now() + load.duration;
    let mut tasks = Vec::with_capacity(load.streams);
    for i in 0..load.streams.max(1) {
        let sender = senders[i % senders.len()].clone();
        tasks.push(tokio::spawn(caller(sender, deadline)));
    }
    let mut total = Outcome::default();
    for task in tasks {
        if let Ok(o) = task.await {
            total.ok += o.ok;
            total.non_ok += o.non_ok;
            total.errors += o.errors;
        }
    }
    Ok(total)
}

async fn connect(target: SocketAddr) -> std::io::Result<h2::client::SendRequest<Bytes>> {
    let tcp = TcpStream::connect(target).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = h2::client::handshake(tcp)
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One call slot: calls back to back until the deadline.
async fn caller(mut sender: h2::client::SendRequest<Bytes>, deadline: Instant) -> Outcome {
    let mut out = Outcome::default();
    while Instant::now() < deadline {
        match call(&mut sender).await {
            Ok(true) => out.ok += 1,
            Ok(false) => out.non_ok += 1,
            Err(_) => {
                out.errors += 1;
                // A dead connection fails at once; do not spin on it until the deadline.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    out
}

/// One unary call: `Ok(true)` for status 0 with the expected reply.
pub async fn call(sender: &mut h2::client::SendRequest<Bytes>) -> Result<bool, h2::Error> {
    let request = Request::post(format!("http://{AUTHORITY}{PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap_or_default();
    let mut ready = sender.clone().ready().await?;
    let (response, mut body) = ready.send_request(request, false)?;
    body.send_data(frame(REQUEST), true)?;
    let response = response.await?;
    if let Some(s) = status(response.headers()) {
        // Trailers-only: an error answered in the headers.
        return Ok(s == "0");
    }
    let mut recv = response.into_body();
    let mut received = BytesMut::new();
    while let Some(chunk) = recv.data().await {
        let chunk = chunk?;
        let _ = recv.flow_control().release_capacity(chunk.len());
        received.extend_from_slice(&chunk);
    }
    let trailers = recv.trailers().await?;
    let status_ok = trailers.as_ref().and_then(status) == Some("0");
    Ok(status_ok && parse(&received).map(|(m, _)| m == REPLY).unwrap_or(false))
}

/// One call through `target` on a fresh connection: the readiness check.
pub fn probe(target: SocketAddr) -> bool {
    super::check_once(async {
        let Ok(mut sender) = connect(target).await else {
            return false;
        };
        matches!(call(&mut sender).await, Ok(true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_message_parses_back_with_its_length() {
        let framed = frame(REQUEST);
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 6]);
        assert_eq!(parse(&framed), Ok((REQUEST, 11)));
    }

    #[test]
    fn a_short_or_compressed_message_is_refused() {
        let framed = frame(REPLY);
        assert_eq!(parse(&framed[..3]), Err(FrameError::Incomplete(3)));
        assert_eq!(parse(&framed[..8]), Err(FrameError::Incomplete(8)));
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert_eq!(parse(&compressed), Err(FrameError::Compressed(1)));
    }

    #[test]
    fn parsing_takes_only_the_first_of_two_messages() {
        let mut two = frame(REQUEST).to_vec();
        two.extend_from_slice(&frame(REPLY));
        assert_eq!(parse(&two), Ok((REQUEST, 11)));
        assert_eq!(parse(&two[11..]), Ok((REPLY, 11)));
    }

    #[test]
    fn calls_to_the_backend_end_with_status_zero_and_are_counted() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let backend = rt.block_on(start_backend()).expect("binds");
        let out = run(Load {
            target: backend.addr,
            connections: 2,
            streams: 8,
            duration: Duration::from_millis(200),
        })
        .expect("connects");
        assert!(out.ok > 0, "{out:?}");
        assert_eq!((out.non_ok, out.errors), (0, 0), "{out:?}");
        assert_eq!(backend.calls(), out.ok);
        assert!(probe(backend.addr));
    }

    #[test]
    fn a_call_to_another_method_is_not_ok() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let backend = rt.block_on(start_backend()).expect("binds");
        let status_of_other = rt.block_on(async {
            let sender = connect(backend.addr).await.expect("connects");
            let request = Request::post(format!("http://{AUTHORITY}/other.Svc/Call"))
                .body(())
                .expect("request");
            let mut ready = sender.clone().ready().await.expect("ready");
            let (response, mut body) = ready.send_request(request, false).expect("sends");
            body.send_data(frame(REQUEST), true).expect("body");
            let mut recv = response.await.expect("answers").into_body();
            while recv.data().await.is_some() {}
            let trailers = recv.trailers().await.expect("trailers");
            trailers.as_ref().and_then(status).map(str::to_string)
        });
        assert_eq!(status_of_other.as_deref(), Some(UNIMPLEMENTED));
        assert_eq!(backend.calls(), 0);
    }
}
