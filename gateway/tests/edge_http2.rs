//! HTTP/2 at the edge, on raw frames over h2c: the limits Sluice advertises, and that a stream
//! flood, an oversized header block and a CONTINUATION flood are refused without reaching any
//! backend.

#![allow(clippy::unwrap_used)]

use sluice_test_support::raw;

use std::net::SocketAddr;
use std::time::Duration;

use raw::{Edge, RawBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

async fn edge() -> Edge {
    Edge::start(RawBackend::start().await, |opts| {
        opts.proxy.downstream_h2c = true
    })
    .await
}

/// An edge and a connection to it past the settings exchange.
async fn connected() -> (Edge, Conn) {
    let edge = edge().await;
    let mut conn = Conn::open(edge.addr).await;
    conn.server_settings().await;
    (edge, conn)
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK for `GET /` with `:authority: a` (static-table indices, one literal).
fn get_block() -> Vec<u8> {
    vec![0x82, 0x86, 0x84, 0x41, 0x01, b'a']
}

/// `get_block` and the start of a literal `x-big` header (without indexing, new name) whose
/// value of `len` bytes the caller appends, or never sends.
fn get_block_with_big_header(len: usize) -> Vec<u8> {
    let mut block = get_block();
    block.push(0x00);
    hpack_int(0, 7, 5, &mut block);
    block.extend_from_slice(b"x-big");
    hpack_int(0, 7, len, &mut block);
    block
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `flags`.
fn hpack_int(flags: u8, n: u32, mut value: usize, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

struct Conn {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(PREFACE).await.unwrap();
        tcp.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
        Conn {
            tcp,
            buf: Vec::new(),
        }
    }

    /// The next frame as (type, flags, stream, payload); `None` once the server closed.
    async fn next(&mut self) -> Option<(u8, u8, u32, Vec<u8>)> {
        tokio::time::timeout(raw::BOUND, async {
            loop {
                if self.buf.len() >= 9 {
                    let len = (usize::from(self.buf[0]) << 16)
                        | (usize::from(self.buf[1]) << 8)
                        | usize::from(self.buf[2]);
                    if self.buf.len() >= 9 + len {
                        let head: Vec<u8> = self.buf.drain(..9).collect();
                        let payload: Vec<u8> = self.buf.drain(..len).collect();
                        let stream =
                            u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                        return Some((head[3], head[4], stream, payload));
                    }
                }
                let mut chunk = [0u8; 16384];
                match self.tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("a frame or a close within the bound")
    }

    /// The server's first SETTINGS, as (identifier, value) pairs.
    async fn server_settings(&mut self) -> Vec<(u16, u32)> {
        loop {
            let (kind, flags, _, payload) = self.next().await.expect("server SETTINGS");
            if kind == SETTINGS && flags & ACK == 0 {
                self.tcp
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))
                    .await
                    .unwrap();
                return payload
                    .chunks(6)
                    .map(|s| {
                        (
                            u16::from_be_bytes([s[0], s[1]]),
                            u32::from_be_bytes([s[2], s[3], s[4], s[5]]),
                        )
                    })
                    .collect();
            }
        }
    }

    /// Sends a GET on stream 1 and returns the payload of its response HEADERS.
    async fn get_on_stream_1(&mut self) -> Vec<u8> {
        self.tcp
            .write_all(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &get_block()))
            .await
            .unwrap();
        loop {
            let (kind, _, stream, payload) = self.next().await.expect("a response");
            if kind == HEADERS && stream == 1 {
                return payload;
            }
        }
    }

    /// Reads frames until the connection ends; returns whether a GOAWAY came.
    async fn until_closed(&mut self) -> bool {
        let mut goaway = false;
        while let Some((kind, ..)) = self.next().await {
            goaway |= kind == GOAWAY;
            if goaway {
                break;
            }
        }
        goaway
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_advertise_the_stream_and_header_list_limits() {
    let edge = edge().await;
    let mut conn = Conn::open(edge.addr).await;
    let settings = conn.server_settings().await;
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3) and SETTINGS_MAX_HEADER_LIST_SIZE (0x6).
    assert!(settings.contains(&(0x3, 100)), "{settings:?}");
    assert!(
        settings.contains(&(0x6, 64 * 1024 + 8 * 1024)),
        "{settings:?}"
    );
    // And it serves.
    let payload = conn.get_on_stream_1().await;
    assert_eq!(payload[0], 0x88, "indexed :status 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_limit_are_refused() {
    let (_edge, mut conn) = connected().await;
    // 150 requests opened at once, each waiting for its body, so none can finish early.
    let mut burst = Vec::new();
    for i in 0..150u32 {
        burst.extend(frame(HEADERS, END_HEADERS, 2 * i + 1, &get_block()));
    }
    conn.tcp.write_all(&burst).await.unwrap();
    let mut refused = 0;
    let mut goaway = false;
    while let Some((kind, _, _, payload)) = conn.next().await {
        match kind {
            // REFUSED_STREAM (0x7) or PROTOCOL_ERROR (0x1), per stream.
            RST_STREAM if matches!(payload.get(3), Some(0x7 | 0x1)) => refused += 1,
            GOAWAY => {
                goaway = true;
                break;
            }
            _ => {}
        }
        if refused >= 50 {
            break;
        }
    }
    assert!(
        refused >= 50 || goaway,
        "refused {refused}, goaway {goaway}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_header_block_never_reaches_the_backend() {
    let (edge, mut conn) = connected().await;
    let mut block = get_block_with_big_header(100 * 1024);
    block.extend(std::iter::repeat_n(b'v', 100 * 1024));
    // HEADERS then CONTINUATIONs of at most the default 16 KiB frame size.
    let mut pieces = block.chunks(16 * 1024).peekable();
    let first = pieces.next().unwrap();
    let mut out = frame(HEADERS, END_STREAM, 1, first);
    while let Some(piece) = pieces.next() {
        let flags = if pieces.peek().is_none() {
            END_HEADERS
        } else {
            0
        };
        out.extend(frame(CONTINUATION, flags, 1, piece));
    }
    let _ = conn.tcp.write_all(&out).await;
    let mut answered_ok = false;
    while let Some((kind, _, stream, payload)) = conn.next().await {
        if kind == HEADERS && stream == 1 {
            answered_ok = payload.first() == Some(&0x88);
            break;
        }
        if (kind == RST_STREAM && stream == 1) || kind == GOAWAY {
            break;
        }
    }
    assert!(!answered_ok, "an over-limit header list was proxied");
    assert!(edge.backend.seen().is_empty(), "{:?}", edge.backend.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_off() {
    let (edge, mut conn) = connected().await;
    // Announces a 16 MiB value and never ends the header block.
    let block = get_block_with_big_header(16 * 1024 * 1024);
    let writer = {
        let (_, mut write) = conn.tcp.split();
        async move {
            if write
                .write_all(&frame(HEADERS, END_STREAM, 1, &block))
                .await
                .is_err()
            {
                return 0usize;
            }
            let filler = vec![b'v'; 16 * 1024];
            let mut sent = 0;
            for _ in 0..1024 {
                if write
                    .write_all(&frame(CONTINUATION, 0, 1, &filler))
                    .await
                    .is_err()
                {
                    break;
                }
                sent += filler.len();
            }
            sent
        }
    };
    let sent = tokio::time::timeout(raw::BOUND, writer)
        .await
        .expect("the writer ends");
    assert!(
        sent < 16 * 1024 * 1024,
        "the server read the whole flood ({sent} bytes)"
    );
    assert!(conn.until_closed().await || conn.buf.is_empty());
    assert!(edge.backend.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_resets_end_in_goaway_and_sluice_keeps_serving() {
    let (edge, mut conn) = connected().await;
    let mut burst = Vec::new();
    for i in 0..2000u32 {
        let stream = 2 * i + 1;
        burst.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            stream,
            &get_block(),
        ));
        burst.extend(frame(RST_STREAM, 0, stream, &0x8u32.to_be_bytes()));
    }
    let _ = conn.tcp.write_all(&burst).await;
    assert!(conn.until_closed().await, "a GOAWAY ends the flood");
    // Sluice is still healthy for everyone else.
    let mut fresh = Conn::open(edge.addr).await;
    fresh.server_settings().await;
    fresh.get_on_stream_1().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Only the fresh client's request (and at most a few of the flood) reached the backend.
    assert!(
        edge.backend.seen().len() < 100,
        "{}",
        edge.backend.seen().len()
    );
}

/// With h2c on (the default), the first bytes are held until they are the preface or cannot be;
/// a client that stops partway through it is still held to the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_h2c_preface_is_held_to_the_header_timeout() {
    let backend = RawBackend::start().await;
    let edge = Edge::start(backend, |opts| {
        opts.proxy.edge.client_header_timeout = Duration::from_millis(500)
    })
    .await;
    let mut tcp = TcpStream::connect(edge.addr).await.unwrap();
    tcp.write_all(&PREFACE[..10]).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(raw::BOUND, tcp.read_to_end(&mut rest))
        .await
        .expect("closed within the bound")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let answer = String::from_utf8_lossy(&rest);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(edge.backend.seen().is_empty());
}

/// Only a connection's first bytes can switch it to HTTP/2: a preface after an HTTP/1 request
/// is an HTTP/1 head (refused), never a protocol switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preface_after_an_http1_request_stays_http1() {
    let edge = edge().await;
    let mut tcp = TcpStream::connect(edge.addr).await.unwrap();
    let mut request = b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
    request.extend_from_slice(PREFACE);
    tcp.write_all(&request).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(raw::BOUND, tcp.read_to_end(&mut rest))
        .await
        .expect("closed within the bound")
        .unwrap();
    let answers = String::from_utf8_lossy(&rest);
    assert!(answers.starts_with("HTTP/1.1 200"), "{answers:?}");
    let second = answers
        .match_indices("HTTP/1.1 ")
        .nth(1)
        .map(|(i, _)| &answers[i..]);
    assert!(
        second.is_some_and(|s| s.starts_with("HTTP/1.1 505") || s.starts_with("HTTP/1.1 400")),
        "{answers:?}"
    );
}
