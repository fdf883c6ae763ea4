//! Bodiless HTTP/1.1 copies whose answers are not compared: the answer is skipped by its
//! framing, and the connection is pooled exactly when the exchange left it clean.

use sluice_test_support::mirror::every_request_to;
use sluice_test_support::{servers, within};

use std::time::Duration;

use pingora_http::RequestHeader;
use sluice_gateway::mirror::{MirrorEngine, MirrorMetrics, MirrorOptions, MirrorSet, Outcome};

const ROUTE: &str = "default/web";
const LIMIT: Duration = Duration::from_secs(30);
/// Copies sent one after another to each scripted mirror.
const COPIES: u64 = 3;

fn request(method: &str) -> RequestHeader {
    let mut h = RequestHeader::build(method, b"/ping", None).expect("head");
    h.append_header("host", "example.com").expect("header");
    h
}

/// Sends [`COPIES`] copies of a `method` request to a mirror answering `answer` (closing after
/// each when `close`), one after another; returns the connections it accepted.
async fn copies_to(method: &str, answer: &'static [u8], close: bool, expected: Outcome) -> usize {
    let server = servers::scripted(answer, close).await;
    let registry = prometheus::Registry::new();
    let metrics = MirrorMetrics::register(&registry).expect("register");
    let engine = MirrorEngine::new(MirrorOptions::default(), metrics);
    let mirror = every_request_to(server.addr);
    let name = mirror.backend.name.clone();
    for sent in 1..=COPIES {
        let mut set = MirrorSet::new(engine.clone());
        set.start(&mirror, &request(method), ROUTE, false);
        set.on_upstream_attempt();
        within("the copy's outcome", LIMIT, async {
            while engine.inflight() > 0 || engine.metrics().count(ROUTE, &name, expected) < sent {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }
    for outcome in Outcome::ALL {
        let want = if outcome == expected { COPIES } else { 0 };
        let counted = engine.metrics().count(ROUTE, &name, outcome);
        assert_eq!(
            counted,
            want,
            "{outcome:?} for {:?}",
            String::from_utf8_lossy(answer)
        );
    }
    server.accepted()
}

// One thread, as in mirror_engine's pooling test: Pingora 0.9 hands a pooled connection back
// by unlocking it before it drops its own handle, so on two threads a reuse can lose that race.
#[tokio::test]
async fn discarded_answers_of_every_framing_leave_the_connection_pooled() {
    let large: &'static [u8] = {
        let body = "x".repeat(200_000);
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Box::leak(answer.into_bytes().into_boxed_slice())
    };
    let cases: [(&str, &'static [u8]); 7] = [
        ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
        ("GET", large),
        (
            "GET",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
        ),
        ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
        (
            "GET",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno",
        ),
        ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
        (
            "GET",
            b"HTTP/1.0 503 Busy\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        ),
    ];
    for (method, answer) in cases {
        let accepted = copies_to(method, answer, false, Outcome::Completed).await;
        let shown = String::from_utf8_lossy(&answer[..answer.len().min(60)]);
        assert_eq!(
            accepted, 1,
            "{method} answered {shown:?}: one pooled connection"
        );
    }
}

#[tokio::test]
async fn answers_that_end_or_overrun_their_exchange_are_not_pooled() {
    let cases: [(&'static [u8], bool); 5] = [
        (
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        ),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the connection closes", true),
        // Bytes after the answer: a second answer nobody asked for would be read as the next one's.
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200",
            false,
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            false,
        ),
    ];
    for (answer, close) in cases {
        let accepted = copies_to("GET", answer, close, Outcome::Completed).await;
        let shown = String::from_utf8_lossy(answer);
        assert_eq!(accepted as u64, COPIES, "{shown:?}: a connection per copy");
    }
}

#[tokio::test]
async fn truncated_or_malformed_answers_are_upstream_errors() {
    let cases: [&'static [u8]; 5] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabc",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        b"this is not http\r\n\r\n",
    ];
    for answer in cases {
        let accepted = copies_to("GET", answer, true, Outcome::UpstreamError).await;
        assert_eq!(accepted as u64, COPIES);
    }
}
