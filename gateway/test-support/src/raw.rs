//! Raw-socket tools for the edge tests: a backend that records every request it is sent, and a
//! client that reads HTTP/1.1 responses off a socket as they arrive.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::within;

pub const BOUND: Duration = Duration::from_secs(15);

/// One request as the backend received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.head.split(' ').nth(1).unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// An HTTP/1.1 backend that answers each request `200` with its path as the body.
pub struct RawBackend {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl RawBackend {
    pub async fn start() -> RawBackend {
        RawBackend::answering(None).await
    }

    /// Answers every request with exactly `reply` (to test how bad upstream framing is handled).
    pub async fn answering(reply: Option<&'static str>) -> RawBackend {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    tokio::spawn(serve(tcp, seen.clone(), reply));
                }
            }
        });
        RawBackend { port, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The paths of the requests received, in order.
    pub fn paths(&self) -> Vec<String> {
        self.seen().iter().map(|s| s.path().to_string()).collect()
    }

    /// The Service `name` (port 8080) and its EndpointSlice, pointing at this backend.
    pub fn service(&self, name: &str) -> String {
        crate::standalone::service_at(name, self.port)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut tcp: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, reply: Option<&'static str>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_until_head_end(&mut tcp, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let seen_req = Seen {
            head: head.clone(),
            body: Vec::new(),
        };
        let body = if let Some(len) = seen_req.header("content-length") {
            let len: usize = len.parse().unwrap_or(0);
            while buf.len() < len {
                if !read_more(&mut tcp, &mut buf).await {
                    return;
                }
            }
            buf.drain(..len).collect()
        } else if seen_req
            .header("transfer-encoding")
            .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
        {
            match read_chunked(&mut tcp, &mut buf).await {
                Some(body) => body,
                None => return,
            }
        } else {
            Vec::new()
        };
        let path = seen_req.path().to_string();
        seen.lock().unwrap().push(Seen { head, body });
        let response = reply.map(str::to_string).unwrap_or_else(|| {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
                path.len()
            )
        });
        if tcp.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 8192];
    match tcp.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

async fn read_until_head_end(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(i + 4);
        }
        if !read_more(tcp, buf).await {
            return None;
        }
    }
}

async fn read_chunked(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if !read_more(tcp, buf).await {
                return None;
            }
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers until the empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return Some(body);
                    }
                } else if !read_more(tcp, buf).await {
                    return None;
                }
            }
        }
        while buf.len() < size + 2 {
            if !read_more(tcp, buf).await {
                return None;
            }
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
    }
}

/// A raw client connection.
pub struct Client {
    pub tcp: TcpStream,
    buf: Vec<u8>,
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            tcp: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// The next response, or `None` if the connection closed first.
    pub async fn response(&mut self) -> Option<Response> {
        within("a response or a close", BOUND, self.read_response()).await
    }

    async fn read_response(&mut self) -> Option<Response> {
        let end = read_until_head_end(&mut self.tcp, &mut self.buf).await?;
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        self.buf.drain(..end);
        let status = head.get(9..12)?.parse().ok()?;
        let mut response = Response {
            status,
            head,
            body: Vec::new(),
        };
        if (100..200).contains(&status) {
            return Some(response);
        }
        let len: usize = response
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < len {
            if !read_more(&mut self.tcp, &mut self.buf).await {
                return None;
            }
        }
        response.body = self.buf.drain(..len).collect();
        Some(response)
    }

    /// Waits until the server closes the connection; returns what it sent before.
    pub async fn closed(&mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf);
        within("the server to close the connection", BOUND, async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => rest.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        rest
    }
}

/// Sluice in standalone mode on a free port, with one route to `backend`.
pub struct Edge {
    pub running: sluice_gateway::standalone::Running,
    pub backend: RawBackend,
    pub addr: SocketAddr,
    _config: crate::standalone::ConfigDir,
}

impl Edge {
    /// `tune` adjusts the standalone options (limits, h2c) before start.
    pub async fn start(
        backend: RawBackend,
        tune: impl FnOnce(&mut sluice_gateway::standalone::StandaloneOptions),
    ) -> Edge {
        use crate::standalone as harness;
        let port = harness::free_port();
        let config = harness::ConfigDir::new(&format!(
            "{}{}{}{}",
            harness::CLASS,
            backend.service("app"),
            harness::gateway("gw", &[port]),
            harness::route("app", "gw", "app")
        ));
        let mut opts = sluice_gateway::standalone::StandaloneOptions::for_tests(config.path());
        tune(&mut opts);
        let running = harness::start_with(opts).await;
        Edge {
            running,
            backend,
            addr: harness::local(port),
            _config: config,
        }
    }
}
