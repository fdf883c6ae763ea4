//! Test backends for mirroring: healthy, down, blackhole, slow, erroring, full-duplex and early
//! answering, on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A request as a backend received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// The target's authority: an HTTP/2 request's `:authority`; `None` for an origin-form target.
    pub authority: Option<String>,
    pub headers: http::HeaderMap,
    pub body_len: u64,
    pub sha256: String,
    /// False when the body ended early (connection closed or reset mid-body).
    pub complete: bool,
}

impl Received {
    fn new(parts: http::request::Parts, body_len: u64, sha256: String, complete: bool) -> Self {
        Received {
            method: parts.method.to_string(),
            path: parts
                .uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            authority: parts.uri.authority().map(|a| a.to_string()),
            headers: parts.headers,
            body_len,
            sha256,
            complete,
        }
    }
}

/// Aborts the server task when the test drops it.
pub struct Server {
    pub addr: SocketAddr,
    pub accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Server {
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// An HTTP/1.1 server that reads every request fully, reports it, and answers `status` with the
/// body's sha256 as its body.
pub async fn recording(status: u16) -> (Server, mpsc::UnboundedReceiver<Received>) {
    recording_with(Protocol::Http1, move |req, tx| async move {
        let (parts, mut body) = req.into_parts();
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let mut complete = true;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        hasher.update(data);
                        len += data.len() as u64;
                    }
                }
                Err(_) => {
                    complete = false;
                    break;
                }
            }
        }
        let sha = hex(&hasher.finalize());
        let _ = tx.send(Received::new(parts, len, sha.clone(), complete));
        http::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(sha)))
            .expect("response")
    })
    .await
}

/// Like [`recording`], speaking HTTP/2 with prior knowledge (h2c).
pub async fn recording_h2c() -> (Server, mpsc::UnboundedReceiver<Received>) {
    recording_with(Protocol::H2c, |req, tx| async move {
        let (parts, body) = req.into_parts();
        let (complete, data) = match body.collect().await {
            Ok(b) => (true, b.to_bytes()),
            Err(_) => (false, Bytes::new()),
        };
        let body_len = data.len() as u64;
        let _ = tx.send(Received::new(parts, body_len, sha256(&data), complete));
        http::Response::new(Full::new(Bytes::new()))
    })
    .await
}

#[derive(Clone, Copy)]
enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge.
    H2c,
}

/// A server whose connections outlive it, speaking `protocol`; `answer` gets each request and the
/// sender its reports go to.
async fn recording_with<F, Fut>(
    protocol: Protocol,
    answer: F,
) -> (Server, mpsc::UnboundedReceiver<Received>)
where
    F: Fn(http::Request<hyper::body::Incoming>, mpsc::UnboundedSender<Received>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = http::Response<Full<Bytes>>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let server = accepting(Conns::Outlive, move |stream| {
        let (tx, answer) = (tx.clone(), answer.clone());
        async move {
            let service = service_fn(move |req| {
                let answered = answer(req, tx.clone());
                async move { Ok::<_, Infallible>(answered.await) }
            });
            let io = TokioIo::new(stream);
            let _ = match protocol {
                Protocol::Http1 => http1::Builder::new().serve_connection(io, service).await,
                Protocol::H2c => {
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, service)
                        .await
                }
            };
        }
    })
    .await;
    (server, rx)
}

/// An address nothing listens on: connecting is refused.
pub async fn down() -> SocketAddr {
    let listener = bind().await;
    listener.local_addr().expect("addr")
}

/// Accepts connections and never reads from them nor answers.
pub async fn blackhole() -> Server {
    accepting(Conns::EndWithServer, |stream| async move {
        let _held = stream;
        std::future::pending::<()>().await;
    })
    .await
}

/// Reads 1 KiB every 100 ms (10 KB/s) and answers 200 five seconds after accepting.
pub async fn slow() -> Server {
    accepting(Conns::EndWithServer, |mut stream| async move {
        let answer_at = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(answer_at) => break,
                r = stream.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                },
            }
        }
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
    })
    .await
}

/// Reads a little, then answers bytes that are not HTTP and closes.
pub async fn garbage() -> Server {
    accepting(Conns::EndWithServer, |mut stream| async move {
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf).await;
        let _ = stream.write_all(b"this is not http\r\n\r\n").await;
    })
    .await
}

/// Reads `after` bytes, then resets the connection (RST, not FIN).
pub async fn reset_after(after: usize) -> Server {
    accepting(Conns::EndWithServer, move |mut stream| async move {
        let mut seen = 0;
        let mut buf = vec![0u8; 64 * 1024];
        while seen < after {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen += n,
            }
        }
        // Linger 0 makes the close a reset; with a zero timeout the drop does not block.
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
    })
    .await
}

/// What a stalling backend saw.
#[derive(Debug, PartialEq, Eq)]
pub enum Stalled {
    /// The request head arrived; the backend stops reading now.
    Head,
    /// After the stall it read to EOF: body bytes after the head, and whether the peer closed.
    Done { body: u64, closed: bool },
}

/// Reads the head, stalls for `stall`, then reads to EOF.
pub async fn stalling(stall: Duration) -> (Server, mpsc::UnboundedReceiver<Stalled>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = accepting(Conns::EndWithServer, move |mut stream| {
        let tx = tx.clone();
        async move {
            let mut head = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut body;
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    body = (head.len() - end - 4) as u64;
                    break;
                }
            }
            let _ = tx.send(Stalled::Head);
            tokio::time::sleep(stall).await;
            let closed = loop {
                match stream.read(&mut buf).await {
                    Ok(0) => break true,
                    Err(_) => break true,
                    Ok(n) => body += n as u64,
                }
            };
            let _ = tx.send(Stalled::Done { body, closed });
        }
    })
    .await;
    (server, rx)
}

/// Whether a server's open connections end when the test drops its [`Server`].
#[derive(Clone, Copy)]
enum Conns {
    /// Connections carry on (a recording server still reports what it was sent).
    Outlive,
    /// Connections are aborted with the accept task (a blackhole stops holding its sockets).
    EndWithServer,
}

/// Accepts on 127.0.0.1:0, counting connections, and runs `handle` on each.
async fn accepting<F, Fut>(conns: Conns, handle: F) -> Server
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = bind().await;
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let mut owned = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            match conns {
                Conns::Outlive => {
                    tokio::spawn(handle(stream));
                }
                Conns::EndWithServer => {
                    owned.spawn(handle(stream));
                }
            }
        }
    });
    Server {
        addr,
        accepted,
        task,
    }
}

/// A request head read off a raw HTTP/1.1 connection.
struct RawHead {
    method: String,
    path: String,
    headers: http::HeaderMap,
    content_length: u64,
}

impl RawHead {
    fn received(self, body: &[u8], complete: bool) -> Received {
        Received {
            method: self.method,
            path: self.path,
            authority: None,
            headers: self.headers,
            body_len: body.len() as u64,
            sha256: sha256(body),
            complete,
        }
    }
}

/// One raw HTTP/1.1 connection and the bytes read from it but not yet consumed.
struct RawConn {
    stream: TcpStream,
    pending: Vec<u8>,
    buf: Vec<u8>,
}

impl RawConn {
    /// Reads more into `pending`; false when the peer closed.
    async fn read_more(&mut self) -> bool {
        match self.stream.read(&mut self.buf).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&self.buf[..n]);
                true
            }
        }
    }

    /// Takes up to `n` bytes of what was read.
    fn take(&mut self, n: usize) -> Vec<u8> {
        // Not `drain(..).collect()`: byte by byte, that is too slow unoptimised to echo tens of
        // megabytes at the pace a copy is written.
        let rest = self.pending.split_off(n.min(self.pending.len()));
        std::mem::replace(&mut self.pending, rest)
    }
}

/// A raw HTTP/1.1 server whose connections end with it: each request head goes, with the
/// connection, to `on_request`, which hands the connection back to serve the next request on it
/// (or `None` to close it).
async fn raw_requests<F, Fut>(on_request: F) -> (Server, mpsc::UnboundedReceiver<Received>)
where
    F: Fn(RawConn, RawHead, mpsc::UnboundedSender<Received>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Option<RawConn>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let server = accepting(Conns::EndWithServer, move |stream| {
        let (tx, on_request) = (tx.clone(), on_request.clone());
        async move {
            let mut conn = RawConn {
                stream,
                pending: Vec::new(),
                buf: vec![0u8; 64 * 1024],
            };
            while let Some(head) = raw_head(&mut conn).await {
                match on_request(conn, head, tx.clone()).await {
                    Some(next) => conn = next,
                    None => return,
                }
            }
        }
    })
    .await;
    (server, rx)
}

/// Reads the next request head off `conn`, leaving what follows it (the body, or the next
/// request) pending. `None` when the peer closed first. Whatever precedes the head's end is
/// parsed as a head, garbage included, so a server fed leftover body bytes reports them as its
/// method.
async fn raw_head(conn: &mut RawConn) -> Option<RawHead> {
    let end = loop {
        if let Some(end) = conn.pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if !conn.read_more().await {
            return None;
        }
    };
    let text = String::from_utf8_lossy(&conn.pending[..end]).into_owned();
    conn.pending.drain(..end + 4);
    let mut lines = text.split("\r\n");
    let mut words = lines.next().unwrap_or("").split(' ');
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    let content_length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(RawHead {
        method,
        path,
        headers,
        content_length,
    })
}

/// A full-duplex HTTP/1.1 server: it answers 200 as soon as a head with `Content-Length` arrives
/// and echoes the body as it reads it, so it stops reading whenever its echo is not read. Reports
/// each request once its body is in.
pub async fn echoing() -> (Server, mpsc::UnboundedReceiver<Received>) {
    raw_requests(|mut conn, head, tx| async move {
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            head.content_length
        );
        conn.stream.write_all(answer.as_bytes()).await.ok()?;
        let len = usize::try_from(head.content_length).unwrap_or(usize::MAX);
        let mut body = Vec::new();
        let mut complete = true;
        while body.len() < len {
            if conn.pending.is_empty() && !conn.read_more().await {
                complete = false;
                break;
            }
            let piece = conn.take(len - body.len());
            if conn.stream.write_all(&piece).await.is_err() {
                complete = false;
                break;
            }
            body.extend_from_slice(&piece);
        }
        let _ = tx.send(head.received(&body, complete));
        complete.then_some(conn)
    })
    .await
}

/// An HTTP/1.1 server that answers `400` with an empty body, keeping the connection, as soon as a
/// head whose path starts with `/early` arrives, and never reads that request's body: its bytes
/// stay on the connection and are parsed as the next head. Other requests get their body read and
/// `200`. Reports the `/early` request (body empty, not complete) when it answers it, and every
/// other head (garbage included) once read.
pub async fn answering_early() -> (Server, mpsc::UnboundedReceiver<Received>) {
    raw_requests(|mut conn, head, tx| async move {
        if head.path.starts_with("/early") {
            let answered = conn
                .stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            let _ = tx.send(head.received(&[], false));
            return answered.is_ok().then_some(conn);
        }
        let len = usize::try_from(head.content_length).unwrap_or(usize::MAX);
        while conn.pending.len() < len {
            if !conn.read_more().await {
                return None;
            }
        }
        let body = conn.take(len);
        let answered = conn
            .stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await;
        let _ = tx.send(head.received(&body, true));
        answered.is_ok().then_some(conn)
    })
    .await
}

/// An h2c server that answers as it reads, like a gRPC bidirectional stream: the response head at
/// once, then each request body piece sent back `times` times as it arrives, with one piece in
/// flight. It reads no more of the body while its answer is not taken, so a client that reads
/// the answer only between writes can stall on HTTP/2 flow control. Reports each request once
/// its body ended.
pub async fn echoing_h2c(times: usize) -> (Server, mpsc::UnboundedReceiver<Received>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let server = accepting(Conns::Outlive, move |stream| {
        let tx = tx.clone();
        async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let tx = tx.clone();
                async move {
                    let (parts, mut body) = req.into_parts();
                    let (out, answer) = mpsc::channel(1);
                    tokio::spawn(async move {
                        let mut data = Vec::new();
                        let mut complete = true;
                        while let Some(frame) = body.frame().await {
                            let Ok(frame) = frame else {
                                complete = false;
                                break;
                            };
                            if let Ok(piece) = frame.into_data() {
                                data.extend_from_slice(&piece);
                                for _ in 0..times {
                                    if out.send(piece.clone()).await.is_err() {
                                        complete = false;
                                    }
                                }
                                if !complete {
                                    break;
                                }
                            }
                        }
                        let len = data.len() as u64;
                        let _ = tx.send(Received::new(parts, len, sha256(&data), complete));
                    });
                    Ok::<_, Infallible>(http::Response::new(Pieces(answer)))
                }
            });
            let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        }
    })
    .await;
    (server, rx)
}

/// A response body made of the pieces a channel delivers, ending when its sender is gone.
struct Pieces(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|piece| piece.map(|p| Ok(hyper::body::Frame::data(p))))
    }
}

/// Answers every bodiless request head it reads with `answer`, byte for byte, closing the
/// connection after each answer when `close` is set: the mirror side of a framing case.
pub async fn scripted(answer: &'static [u8], close: bool) -> Server {
    accepting(Conns::EndWithServer, move |mut stream| async move {
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                pending.drain(..end + 4);
                if stream.write_all(answer).await.is_err() || close {
                    return;
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
}

/// Answers bodiless requests 200 in waves: each request waits until `wave` requests are
/// waiting, across connections, so a wave holds `wave` connections busy at once.
pub async fn in_waves(wave: usize) -> Server {
    let barrier = Arc::new(tokio::sync::Barrier::new(wave));
    accepting(Conns::EndWithServer, move |mut stream| {
        let barrier = barrier.clone();
        async move {
            let mut pending = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    pending.drain(..end + 4);
                    barrier.wait().await;
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                }
            }
        }
    })
    .await
}
