//! A constant-rate load generator (wrk2-style): each connection sends on a fixed schedule and a
//! request's latency runs from when it was DUE, not when it was sent, so a stalled proxy cannot
//! hide its stall by delaying the requests that would have measured it (coordinated omission).
//!
//! One OS thread per connection with blocking sockets: `std::thread::sleep` wakes within tens of
//! microseconds, where a tokio timer rounds to a millisecond, which would swamp the differences
//! being measured.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// A request as bytes on the wire.
pub fn request_bytes(method: &str, host: &str, path: &str, body_len: usize) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: sluice-bench\r\n");
    if body_len > 0 || method == "POST" {
        r.push_str(&format!(
            "Content-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n"
        ));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.resize(bytes.len() + body_len, b'x');
    bytes
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("malformed response: {0}")]
    Parse(#[from] httparse::Error),
    #[error("connection closed before the response was complete")]
    Closed,
}

/// A keep-alive HTTP/1.1 client for one connection; reconnects after an error or `close`.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Client {
        Client {
            addr,
            timeout,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    /// Sends `request` and reads the whole response; returns its status code.
    pub fn send(&mut self, request: &[u8]) -> Result<u16, ClientError> {
        let result = self.exchange(request);
        if !matches!(result, Ok((_, true))) {
            self.stream = None;
        }
        result.map(|(status, _)| status)
    }

    /// `(status, connection reusable)`.
    fn exchange(&mut self, request: &[u8]) -> Result<(u16, bool), ClientError> {
        let stream = match &mut self.stream {
            Some(s) => s,
            None => {
                let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(self.timeout))?;
                s.set_write_timeout(Some(self.timeout))?;
                self.stream.insert(s)
            }
        };
        stream.write_all(request)?;
        self.buf.clear();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 48];
            let mut resp = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head_len) = resp.parse(&self.buf)? else {
                continue;
            };
            let status = resp.code.unwrap_or(0);
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(str::to_ascii_lowercase)
            };
            let keep_alive = header("connection").is_none_or(|c| !c.contains("close"));
            let chunked = header("transfer-encoding").is_some_and(|t| t.contains("chunked"));
            let length = header("content-length").and_then(|l| l.trim().parse::<usize>().ok());
            let body_start = head_len;
            if chunked {
                while !chunked_complete(self.buf.get(body_start..).unwrap_or_default()) {
                    let n = stream.read(&mut chunk)?;
                    if n == 0 {
                        return Err(ClientError::Closed);
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                return Ok((status, keep_alive));
            }
            match length {
                Some(len) => {
                    while self.buf.len() < body_start + len {
                        let n = stream.read(&mut chunk)?;
                        if n == 0 {
                            return Err(ClientError::Closed);
                        }
                        self.buf.extend_from_slice(&chunk[..n]);
                    }
                    return Ok((status, keep_alive));
                }
                // 204/304 or a bodiless error: nothing more to read on a keep-alive connection.
                None if keep_alive => return Ok((status, true)),
                None => {
                    while stream.read(&mut chunk)? > 0 {}
                    return Ok((status, false));
                }
            }
        }
    }
}

/// True once `body` holds a whole chunked body (the zero-size chunk and the final CRLF).
fn chunked_complete(mut body: &[u8]) -> bool {
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let size_field = std::str::from_utf8(&body[..line_end]).unwrap_or("");
        let size_hex = size_field.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            return false;
        };
        let rest = &body[line_end + 2..];
        if size == 0 {
            // No trailers from our backends: the body ends with one more CRLF.
            return rest.windows(2).any(|w| w == b"\r\n");
        }
        if rest.len() < size + 2 {
            return false;
        }
        body = &rest[size + 2..];
    }
}

/// One constant-rate run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: SocketAddr,
    pub request: Arc<Vec<u8>>,
    /// Requests per second over all connections.
    pub rate: f64,
    pub connections: usize,
    pub duration: Duration,
    /// Ends the run early when set.
    pub stop: Option<Arc<AtomicBool>>,
}

#[derive(Debug)]
pub struct Outcome {
    /// Microseconds from when each request was due to when its response was complete.
    pub latency_us: Histogram<u64>,
    pub ok: u64,
    pub non_2xx: u64,
    pub errors: u64,
    /// Requests that were due but never sent because the run ended first (the target was too
    /// slow to keep up with the rate); their latency is unknown, not small.
    pub missed: u64,
}

impl Outcome {
    pub fn empty() -> Outcome {
        Outcome {
            latency_us: histogram(),
            ok: 0,
            non_2xx: 0,
            errors: 0,
            missed: 0,
        }
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("1 µs..60 s at 3 digits are valid bounds")
}

/// How long past its end a run may go on sending requests that were due before the end.
const GRACE: Duration = Duration::from_secs(2);

/// Runs `plan`: connection `i` sends at `start + i/rate + k·connections/rate`.
pub fn run(plan: &Plan) -> Outcome {
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + plan.duration;
    let interval = Duration::from_secs_f64(plan.connections as f64 / plan.rate);
    let stagger = Duration::from_secs_f64(1.0 / plan.rate);
    let results: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.connections)
            .map(|i| {
                let request = Arc::clone(&plan.request);
                let target = plan.target;
                let stop = plan.stop.clone();
                scope.spawn(move || {
                    let mut client = Client::new(target, Duration::from_secs(10));
                    let mut out = Outcome::empty();
                    let mut due = start + stagger * i as u32;
                    while due < end && !stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                        // A target that fell far behind does not get to stretch the run.
                        if Instant::now() > end + GRACE {
                            out.missed +=
                                ((end - due).as_secs_f64() / interval.as_secs_f64()).ceil() as u64;
                            break;
                        }
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        match client.send(&request) {
                            Ok(status) if (200..300).contains(&status) => out.ok += 1,
                            Ok(_) => out.non_2xx += 1,
                            Err(_) => out.errors += 1,
                        }
                        let latency = Instant::now().saturating_duration_since(due);
                        out.latency_us
                            .saturating_record(latency.as_micros().try_into().unwrap_or(u64::MAX));
                        due += interval;
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut total = Outcome::empty();
    for r in results {
        // Both histograms share bounds, so adding cannot fail.
        let _ = total.latency_us.add(&r.latency_us);
        total.ok += r.ok;
        total.non_2xx += r.non_2xx;
        total.errors += r.errors;
        total.missed += r.missed;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_complete_only_after_the_last_chunk() {
        assert!(chunked_complete(b"3\r\nok\n\r\n0\r\n\r\n"));
        assert!(!chunked_complete(b"3\r\nok\n\r\n"));
        assert!(!chunked_complete(b"3\r\nok"));
    }

    #[test]
    fn paced_run_sends_at_the_requested_rate() {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let backend = rt
            .block_on(super::super::backend::start(
                super::super::backend::Behaviour::Fast,
            ))
            .expect("backend");
        let plan = Plan {
            target: backend.addr,
            request: Arc::new(request_bytes("POST", "bench.test", "/", 1024)),
            rate: 200.0,
            connections: 4,
            duration: Duration::from_millis(500),
            stop: None,
        };
        let out = run(&plan);
        assert_eq!(out.errors + out.non_2xx, 0);
        assert_eq!(out.ok, 100, "200 req/s for 0.5 s");
        assert_eq!(backend.complete(), 100);
        assert!(out.percentile_ms(0.5) < 100.0);
    }
}
