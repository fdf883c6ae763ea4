//! gRPC-framed streams over HTTP/2 for the streaming suites: a backend that records every message
//! with its arrival time and answers as it reads, and a client that streams messages and times
//! each answer. Framing only (`application/grpc`, 5-byte length prefixes, `grpc-status`
//! trailers): the messages are opaque bytes, no protobuf.

use std::future::pending;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Request, Response};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Bidirectional: every message is answered with itself as soon as it arrives.
pub const ECHO: &str = "/sluice.test.Stream/Echo";
/// Client streaming: one answer after the client's end of stream, the number of messages.
pub const COLLECT: &str = "/sluice.test.Stream/Collect";
/// Server streaming: every message is answered with itself three times.
pub const REPEAT: &str = "/sluice.test.Stream/Repeat";

/// Any other path is not a method of the backend: it answers trailers-only (the status in the
/// response head, no body), `grpc-status: 12` (UNIMPLEMENTED), as gRPC servers do.
pub const UNIMPLEMENTED: &str = "/sluice.test.Stream/Missing";

/// Request metadata naming the `grpc-status` the backend ends the call with (default 0).
pub const WANT_STATUS: &str = "x-want-status";
/// Request metadata naming the `grpc-message` the backend ends the call with.
pub const WANT_MESSAGE: &str = "x-want-message";
/// The custom trailer the backend adds: how many messages it received.
pub const MESSAGES_TRAILER: &str = "x-messages-received";

/// `message` with its gRPC prefix: not compressed, 4-byte big-endian length.
pub fn frame(message: &[u8]) -> Bytes {
    let len = u32::try_from(message.len()).expect("message under 4 GiB");
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    out.freeze()
}

/// Splits a DATA stream into gRPC messages, whatever the frame boundaries.
#[derive(Default)]
pub struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    /// The messages `data` completes, in order.
    pub fn push(&mut self, data: &[u8]) -> Vec<Bytes> {
        self.buf.extend_from_slice(data);
        let mut messages = Vec::new();
        while self.buf.len() >= 5 {
            let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
            let len = len as usize;
            if self.buf.len() < 5 + len {
                break;
            }
            self.buf.advance(5);
            messages.push(self.buf.split_to(len).freeze());
        }
        messages
    }
}

// === backend ===

/// How a [`Backend`] treats each call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers every message as it arrives (by path), within the client's HTTP/2 window, and
    /// ends with the trailers asked for.
    Answer,
    /// Records the call's head, then never reads its body nor answers: HTTP/2 flow control
    /// stops the sender once the stream's window is full.
    Stall,
    /// Answers like [`Behaviour::Answer`], and resets the stream after this many messages.
    ResetAfter(usize),
}

/// One call as the backend saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub headers: HeaderMap,
    /// Each message with the moment the backend had all of it.
    pub messages: Vec<(Bytes, Instant)>,
    /// `None` while the request stream is open; `Some(true)` after the client's end of stream,
    /// `Some(false)` after a reset or an error.
    pub ended: Option<bool>,
}

impl Call {
    pub fn message_bytes(&self) -> Vec<Bytes> {
        self.messages.iter().map(|(m, _)| m.clone()).collect()
    }
}

type Calls = Arc<Mutex<Vec<Call>>>;

/// An h2c (prior knowledge) gRPC backend on 127.0.0.1:0; dropping it stops every connection.
pub struct Backend {
    pub addr: SocketAddr,
    calls: Calls,
    _tasks: JoinSet<()>,
}

impl Backend {
    pub async fn start(behaviour: Behaviour) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let calls = Calls::default();
        let mut tasks = JoinSet::new();
        let recorded = calls.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                conns.spawn(serve_connection(tcp, behaviour, recorded.clone()));
            }
        });
        Backend {
            addr,
            calls,
            _tasks: tasks,
        }
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// Waits (bounded) for the first call that satisfies `done`.
    pub async fn call_where(&self, what: &str, done: impl Fn(&Call) -> bool) -> Call {
        crate::until(what, Duration::from_secs(20), || {
            self.calls().into_iter().find(|c| done(c))
        })
        .await
    }
}

async fn serve_connection(tcp: TcpStream, behaviour: Behaviour, calls: Calls) {
    // Small messages answered one by one: Nagle's algorithm would add delayed-ACK waits (40 ms
    // seen) to round trips the tests compare.
    let _ = tcp.set_nodelay(true);
    let Ok(mut conn) = h2::server::handshake(tcp).await else {
        return;
    };
    // The streams live as long as the connection task: a stalled one is dropped with it.
    let mut streams = JoinSet::new();
    while let Some(Ok((request, respond))) = conn.accept().await {
        streams.spawn(serve_call(request, respond, behaviour, calls.clone()));
    }
    // The connection is gone: each call still records how it ended (a reset, or the closed
    // connection) before its task goes.
    while streams.join_next().await.is_some() {}
}

async fn serve_call(
    request: Request<RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    behaviour: Behaviour,
    calls: Calls,
) {
    let (parts, mut body) = request.into_parts();
    let index = {
        let mut calls = calls.lock().expect("calls");
        calls.push(Call {
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
            messages: Vec::new(),
            ended: None,
        });
        calls.len() - 1
    };
    let record = |update: &dyn Fn(&mut Call)| {
        if let Some(call) = calls.lock().expect("calls").get_mut(index) {
            update(call);
        }
    };
    if behaviour == Behaviour::Stall {
        let _held = (body, respond);
        return pending().await;
    }
    let path = parts.uri.path();
    let head = Response::builder()
        .status(200)
        .header("content-type", "application/grpc");
    if ![ECHO, COLLECT, REPEAT].contains(&path) {
        let head = head
            .header("grpc-status", "12")
            .header("grpc-message", "unknown method")
            .body(())
            .expect("trailers-only head");
        let _ = respond.send_response(head, true);
        record(&|c| c.ended = Some(true));
        return;
    }
    let head = head.body(()).expect("response head");
    let Ok(mut send) = respond.send_response(head, false) else {
        return;
    };
    let mut deframer = Deframer::default();
    let mut received = 0usize;
    while let Some(data) = body.data().await {
        let Ok(data) = data else {
            record(&|c| c.ended = Some(false));
            return;
        };
        let _ = body.flow_control().release_capacity(data.len());
        for message in deframer.push(&data) {
            let at = Instant::now();
            record(&|c| c.messages.push((message.clone(), at)));
            received += 1;
            if behaviour == Behaviour::ResetAfter(received) {
                send.send_reset(h2::Reason::INTERNAL_ERROR);
                record(&|c| c.ended = Some(false));
                return;
            }
            let times = match path {
                ECHO => 1,
                REPEAT => 3,
                _ => 0,
            };
            for _ in 0..times {
                if !send_within_window(&mut send, frame(&message)).await {
                    record(&|c| c.ended = Some(false));
                    return;
                }
            }
        }
    }
    record(&|c| c.ended = Some(true));
    if path == COLLECT {
        let _ = send.send_data(frame(received.to_string().as_bytes()), false);
    }
    let _ = send.send_trailers(trailers(&parts.headers, received));
}

/// Sends `data` only as the peer's HTTP/2 window allows, as a gRPC server does: the call reads
/// no further message while an answer waits for window, so a client that does not read the
/// answers stalls its own request stream. False once the stream is gone.
async fn send_within_window(send: &mut SendStream<Bytes>, mut data: Bytes) -> bool {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(granted)) => granted,
            Some(Err(_)) | None => return false,
        };
        let piece = data.split_to(granted.min(data.len()));
        if !piece.is_empty() && send.send_data(piece, false).is_err() {
            return false;
        }
    }
    true
}

/// `grpc-status` and `grpc-message` as the request asked, and [`MESSAGES_TRAILER`].
fn trailers(request: &HeaderMap, received: usize) -> HeaderMap {
    let mut out = HeaderMap::new();
    let status = request
        .get(WANT_STATUS)
        .cloned()
        .unwrap_or(HeaderValue::from_static("0"));
    out.insert("grpc-status", status);
    if let Some(message) = request.get(WANT_MESSAGE) {
        out.insert("grpc-message", message.clone());
    }
    out.insert(MESSAGES_TRAILER, HeaderValue::from(received));
    out
}

// === client ===

/// An HTTP/2 client connection (h2c prior knowledge) for gRPC calls.
pub struct Client {
    requests: h2::client::SendRequest<Bytes>,
    _conn: JoinSet<()>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        // As the backend: no Nagle delays in the round trips.
        let _ = tcp.set_nodelay(true);
        Client::over(tcp).await
    }

    /// HTTP/2 over TLS to `addr`, negotiated by ALPN, trusting only the certificate `trusted`
    /// (DER) for `name`.
    pub async fn connect_tls(addr: SocketAddr, name: &str, trusted: &[u8]) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from(trusted.to_vec()))
            .expect("trusted certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string()).expect("name");
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(server_name, tcp)
            .await
            .expect("TLS handshake");
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "ALPN chose h2"
        );
        Client::over(tls).await
    }

    async fn over<S>(io: S) -> Client
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (requests, conn) = h2::client::handshake(io).await.expect("h2 handshake");
        let mut driver = JoinSet::new();
        driver.spawn(async move {
            let _ = conn.await;
        });
        Client {
            requests,
            _conn: driver,
        }
    }

    /// Opens a call to `path` (`te: trailers` and `content-type: application/grpc`, as every
    /// gRPC client sends them) with `metadata` as extra request headers.
    pub async fn open(&self, path: &str, metadata: &[(&str, &str)]) -> Stream {
        let mut request = Request::builder()
            .method("POST")
            .uri(format!("http://sluice.test{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in metadata {
            request = request.header(*name, *value);
        }
        let request = request.body(()).expect("request");
        let mut requests = self.requests.clone().ready().await.expect("h2 ready");
        let (response, send) = requests.send_request(request, false).expect("send request");
        Stream {
            send,
            response: Some(response),
            head: None,
            body: None,
            deframer: Deframer::default(),
            ready: Default::default(),
        }
    }
}

/// One call in progress, seen from the client.
pub struct Stream {
    send: SendStream<Bytes>,
    response: Option<h2::client::ResponseFuture>,
    head: Option<http::response::Parts>,
    body: Option<RecvStream>,
    deframer: Deframer,
    ready: std::collections::VecDeque<Bytes>,
}

impl Stream {
    /// Queues one message on the request stream.
    pub fn send(&mut self, message: &[u8]) {
        self.send
            .send_data(frame(message), false)
            .expect("send message");
    }

    /// Ends the request stream (the client's half-close).
    pub fn finish(&mut self) {
        self.send.send_data(Bytes::new(), true).expect("end stream");
    }

    /// Cancels the call: resets the stream, as a gRPC client does on cancellation.
    pub fn cancel(&mut self) {
        self.send.send_reset(h2::Reason::CANCEL);
    }

    /// The response head, once it arrived.
    pub async fn head(&mut self) -> &http::response::Parts {
        if self.head.is_none() {
            let response = self.response.take().expect("response awaited once");
            let (head, body) = response.await.expect("response head").into_parts();
            self.head = Some(head);
            self.body = Some(body);
        }
        self.head.as_ref().expect("head")
    }

    /// The next answer message; `None` once the response stream ended.
    pub async fn next_message(&mut self) -> Option<Bytes> {
        self.head().await;
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Some(message);
            }
            let body = self.body.as_mut().expect("body");
            let data = body.data().await?.expect("response data");
            let _ = body.flow_control().release_capacity(data.len());
            self.ready.extend(self.deframer.push(&data));
        }
    }

    /// Every answer message left, then the trailers.
    pub async fn rest(&mut self) -> (Vec<Bytes>, HeaderMap) {
        let mut messages = Vec::new();
        while let Some(m) = self.next_message().await {
            messages.push(m);
        }
        let body = self.body.as_mut().expect("body");
        let trailers = body.trailers().await.expect("trailers").unwrap_or_default();
        (messages, trailers)
    }
}

/// `n` distinct messages of `size` bytes each (their index leads, so reordering shows).
pub fn messages(n: usize, size: usize) -> Vec<Bytes> {
    (0..n)
        .map(|i| {
            let mut m = format!("message {i:04} ").into_bytes();
            m.resize(size.max(m.len()), b'a' + (i % 26) as u8);
            Bytes::from(m)
        })
        .collect()
}

/// A bidirectional call's timeline: each message sent, then its answer awaited, `pause` between
/// answer and next message. The round trip of every message, and the moment each was sent.
pub async fn round_trips(
    stream: &mut Stream,
    messages: &[Bytes],
    pause: Duration,
) -> (Vec<Duration>, Vec<Instant>) {
    let mut rtts = Vec::new();
    let mut sent = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let at = Instant::now();
        stream.send(message);
        let answer = stream.next_message().await.expect("an answer per message");
        rtts.push(at.elapsed());
        sent.push(at);
        assert_eq!(&answer, message, "answer {i} echoes message {i}");
    }
    (rtts, sent)
}
