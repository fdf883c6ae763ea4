//! The edge guard end to end on raw sockets: pipelining, strict framing, limits, slow clients.
//! Each case asserts what the client got and that nothing it smuggled reached the backend.

#![allow(clippy::unwrap_used)]

use sluice_test_support::raw;
use sluice_test_support::standalone as harness;

use std::time::{Duration, Instant};

use harness::{free_port, local, ConfigDir, CLASS};
use raw::{Client, Edge, RawBackend};
use sluice_gateway::edge::EdgeLimits;
use sluice_gateway::standalone::StandaloneOptions;

async fn edge_with(limits: EdgeLimits) -> Edge {
    edge_behind(RawBackend::start().await, limits).await
}

async fn edge_behind(backend: RawBackend, limits: EdgeLimits) -> Edge {
    Edge::start(backend, |opts| opts.proxy.edge = limits).await
}

async fn edge() -> Edge {
    edge_with(EdgeLimits::default()).await
}

fn rejected(edge: &Edge, reason: &str) -> u64 {
    edge.running
        .metrics()
        .edge
        .requests_rejected
        .with_label_values(&[reason])
        .get()
}

const GET: &str = "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n";

fn get(path: &str) -> String {
    GET.replace("/{}", path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_gets_are_all_answered_in_order() {
    let edge = edge().await;
    let mut client = Client::connect(edge.addr).await;
    client
        .send(format!("{}{}{}", get("/1"), get("/2"), get("/3")).as_bytes())
        .await;
    for path in ["/1", "/2", "/3"] {
        let response = client.response().await.expect("a response per request");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.body_text(),
            path,
            "responses come in request order"
        );
    }
    assert_eq!(edge.backend.paths(), ["/1", "/2", "/3"]);
    // Still a keep-alive connection.
    client.send(get("/4").as_bytes()).await;
    assert_eq!(client.response().await.unwrap().body_text(), "/4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_pipelined_behind_a_post_body_is_answered() {
    let edge = edge().await;
    let mut client = Client::connect(edge.addr).await;
    let post = "POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    let chunked = "POST /chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    client
        .send(format!("{post}{chunked}{}", get("/after")).as_bytes())
        .await;
    for path in ["/post", "/chunked", "/after"] {
        assert_eq!(client.response().await.unwrap().body_text(), path);
    }
    let seen = edge.backend.seen();
    assert_eq!(seen[0].body, b"hello");
    assert_eq!(seen[1].body, b"abc");
    assert_eq!(seen[2].path(), "/after");
}

/// Each of these is answered with its status and the connection closed; the backend sees none
/// of it, including the request hidden behind the ambiguous one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_requests_are_refused_and_nothing_reaches_the_backend() {
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let cases: Vec<(String, u16, &str)> = vec![
        (format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"), 400, "cl_and_te"),
        (format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello{smuggled}"), 400, "bad_content_length"),
        (format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello{smuggled}"), 400, "bad_content_length"),
        (format!("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"), 400, "te_on_http10"),
        (format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{smuggled}"), 501, "unsupported_te"),
        (format!("GET / HTTP/1.1\nHost: a\n\n{smuggled}"), 400, "bare_cr_lf"),
        (format!("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n{smuggled}"), 400, "obs_fold"),
        (format!("GET / HTTP/1.1\r\nHost : a\r\n\r\n{smuggled}"), 400, "bad_header"),
        (format!("GET / HTTP/1.1\r\nX: a\0b\r\nHost: a\r\n\r\n{smuggled}"), 400, "bare_cr_lf"),
        (format!("GET / HTTP/1.1\r\n\r\n{smuggled}"), 400, "missing_host"),
        (format!("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n{smuggled}"), 400, "bad_host"),
        (format!("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n{smuggled}"), 400, "duplicate_host"),
        (format!("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n{smuggled}"), 400, "bad_request_line"),
        (format!("GET / HTTP/2.0\r\nHost: a\r\n\r\n{smuggled}"), 505, "bad_version"),
        (format!("POST / HTTP/1.1\r\nHost: a\r\nExpect: teapot\r\nContent-Length: 1\r\n\r\nx{smuggled}"), 417, "unsupported_expect"),
    ];
    let edge = edge().await;
    for (request, status, reason) in cases {
        let before = rejected(&edge, reason);
        let mut client = Client::connect(edge.addr).await;
        client.send(request.as_bytes()).await;
        let response = client
            .response()
            .await
            .unwrap_or_else(|| panic!("no answer to {request:?}"));
        assert_eq!(response.status, status, "{request:?}");
        assert_eq!(
            response.header("connection").as_deref(),
            Some("close"),
            "{request:?}"
        );
        let rest = client.closed().await;
        assert!(
            rest.is_empty(),
            "nothing after the refusal: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(rejected(&edge, reason), before + 1, "{reason} counted");
    }
    assert!(
        edge.backend.seen().is_empty(),
        "the backend saw {:?}",
        edge.backend.seen()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_behind_a_good_one_is_refused_after_the_good_one_is_answered() {
    let edge = edge().await;
    let good_then_bad = format!(
        "{}GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx{}",
        get("/ok"),
        get("/never")
    );
    let mut client = Client::connect(edge.addr).await;
    client.send(good_then_bad.as_bytes()).await;
    let first = client.response().await.unwrap();
    assert_eq!((first.status, first.body_text().as_str()), (200, "/ok"));
    assert_eq!(client.response().await.unwrap().status, 400);
    client.closed().await;
    assert_eq!(edge.backend.paths(), ["/ok"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunk_framing_mid_body_fails_the_request_with_400() {
    let edge = edge().await;
    // The first chunk-size line ends in a bare LF.
    let bad_chunk =
        b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n";
    let mut client = Client::connect(edge.addr).await;
    client.send(bad_chunk).await;
    let response = client.response().await.unwrap();
    assert_eq!(response.status, 400);
    client.closed().await;
    assert_eq!(rejected(&edge, "bad_chunk"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_414_and_431() {
    let limits = EdgeLimits {
        max_request_line: 1024,
        max_header_bytes: 4096,
        max_header_fields: 10,
        ..EdgeLimits::default()
    };
    let edge = edge_with(limits).await;
    let long_uri = get(&format!("/{}", "u".repeat(1100)));
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "h".repeat(5000)
    );
    let many: String = (0..11).map(|i| format!("X-{i}: v\r\n")).collect();
    let many = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    // 900 KiB in one header: refused at the cap, not buffered whole.
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Huge: {}",
        "z".repeat(900 * 1024)
    );
    for (request, status) in [(long_uri, 414), (big_header, 431), (many, 431), (huge, 431)] {
        let mut client = Client::connect(edge.addr).await;
        // The server may close before it has read everything: a failed write is fine.
        let _ = tokio::io::AsyncWriteExt::write_all(&mut client.tcp, request.as_bytes()).await;
        let response = client.response().await.expect("an answer");
        assert_eq!(response.status, status, "{}", &request[..40]);
    }
    assert!(edge.backend.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_by_sluice_and_not_forwarded() {
    let edge = edge().await;
    let mut client = Client::connect(edge.addr).await;
    client
        .send(b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    let interim = client.response().await.unwrap();
    assert_eq!(interim.status, 100);
    client.send(b"data").await;
    let response = client.response().await.unwrap();
    assert_eq!(response.status, 200);
    let seen = edge.backend.seen();
    assert_eq!(seen[0].body, b"data");
    assert_eq!(seen[0].header("expect"), None);
}

fn short_limits() -> EdgeLimits {
    EdgeLimits {
        client_header_timeout: Duration::from_millis(800),
        client_body_timeout: Duration::from_millis(800),
        keepalive_timeout: Duration::from_secs(1),
        ..EdgeLimits::default()
    }
}

/// A well-behaved client on its own connections while `slow` runs: every request answered.
async fn well_behaved_alongside<F: std::future::Future>(edge: &Edge, slow: F) -> F::Output {
    let addr = edge.addr;
    let good = tokio::spawn(async move {
        let mut served = 0;
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            let mut client = Client::connect(addr).await;
            client.send(get("/good").as_bytes()).await;
            let response = client
                .response()
                .await
                .expect("the good client is answered");
            assert_eq!(response.status, 200);
            served += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    });
    let out = slow.await;
    assert!(good.await.unwrap() > 5, "the good client kept being served");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_head_gets_408_within_the_header_timeout() {
    let edge = edge_with(short_limits()).await;
    let elapsed = well_behaved_alongside(&edge, async {
        let mut client = Client::connect(edge.addr).await;
        let started = Instant::now();
        let dribble = async {
            for b in b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ".iter().cycle() {
                if tokio::io::AsyncWriteExt::write_all(&mut client.tcp, &[*b])
                    .await
                    .is_err()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                if started.elapsed() > Duration::from_secs(5) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(1200), dribble).await;
        let rest = client.closed().await;
        assert!(
            String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"),
            "{rest:?}"
        );
        started.elapsed()
    })
    .await;
    assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    assert_eq!(rejected(&edge, "header_timeout"), 1);
    assert!(edge.backend.seen().iter().all(|s| s.path() == "/good"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let edge = edge_with(short_limits()).await;
    let mut client = Client::connect(edge.addr).await;
    let started = Instant::now();
    let rest = client.closed().await;
    assert!(rest.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keepalive_connection_is_closed_after_the_keepalive_timeout() {
    let edge = edge_with(short_limits()).await;
    let mut client = Client::connect(edge.addr).await;
    client.send(get("/once").as_bytes()).await;
    assert_eq!(client.response().await.unwrap().status, 200);
    let idle = Instant::now();
    client.closed().await;
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_fails_within_the_body_timeout() {
    let edge = edge_with(short_limits()).await;
    well_behaved_alongside(&edge, async {
        let mut client = Client::connect(edge.addr).await;
        client
            .send(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly a little")
            .await;
        let started = Instant::now();
        client.closed().await;
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
    assert!(edge
        .backend
        .seen()
        .iter()
        .all(|s| s.path() != "/slow" || s.body.len() < 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once_and_counted() {
    let limits = EdgeLimits {
        max_connections: 2,
        ..EdgeLimits::default()
    };
    let edge = edge_with(limits).await;
    let mut first = Client::connect(edge.addr).await;
    first.send(get("/1").as_bytes()).await;
    first.response().await.unwrap();
    let mut second = Client::connect(edge.addr).await;
    second.send(get("/2").as_bytes()).await;
    second.response().await.unwrap();

    let mut over = Client::connect(edge.addr).await;
    let started = Instant::now();
    let _ = tokio::io::AsyncWriteExt::write_all(&mut over.tcp, get("/3").as_bytes()).await;
    assert!(over.closed().await.is_empty(), "closed without an answer");
    assert!(started.elapsed() < Duration::from_secs(2));
    let metrics = &edge.running.metrics().edge;
    assert_eq!(
        metrics
            .connections_rejected
            .with_label_values(&["max_connections"])
            .get(),
        1
    );
    assert_eq!(metrics.active.get(), 2);

    drop(first);
    // Once one closes there is room again.
    harness_wait(|| metrics.active.get() < 2).await;
    let mut again = Client::connect(edge.addr).await;
    again.send(get("/4").as_bytes()).await;
    assert_eq!(again.response().await.unwrap().status, 200);
}

async fn harness_wait(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(raw::BOUND, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition within the bound");
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// 100 clients each parking 60 KiB of an unfinished head: memory stays bounded by the header
/// limit, every one of them is closed at the header timeout, and the connection count returns
/// to where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_partial_heads_cost_bounded_memory_and_are_released() {
    let edge = edge_with(short_limits()).await;
    let metrics = &edge.running.metrics().edge;
    let baseline = metrics.active.get();
    let before = rss_bytes();
    let partial = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: {}",
        "p".repeat(60 * 1024)
    );
    let mut clients = Vec::new();
    for _ in 0..100 {
        let mut client = Client::connect(edge.addr).await;
        client.send(partial.as_bytes()).await;
        clients.push(client);
    }
    harness_wait(|| metrics.active.get() >= baseline + 100).await;
    let grown = rss_bytes().saturating_sub(before);
    // 6 MiB of heads on the wire; measured ~10 MiB of growth. Unguarded, Pingora would hold
    // up to 1 MiB per connection.
    assert!(grown < 24 * 1024 * 1024, "RSS grew by {} KiB", grown / 1024);
    for client in &mut clients {
        let rest = client.closed().await;
        assert!(String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"));
    }
    harness_wait(|| metrics.active.get() == baseline).await;
    assert_eq!(rejected(&edge, "header_timeout"), 100);
    assert!(edge.backend.seen().is_empty());
}

/// An upstream whose Content-Length is invalid or conflicting gets the client a 502, and the
/// ambiguous bytes are never relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_with_bad_content_length_is_a_502() {
    for reply in [
        "HTTP/1.1 200 OK\r\ncontent-length: 5, 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\nhello",
    ] {
        let edge = edge_behind(
            RawBackend::answering(Some(reply)).await,
            EdgeLimits::default(),
        )
        .await;
        let mut client = Client::connect(edge.addr).await;
        client.send(get("/x").as_bytes()).await;
        let response = client.response().await.expect("an answer");
        assert_eq!(response.status, 502, "{reply:?}");
        assert!(!response.body_text().contains("hello"), "{reply:?}");
    }
}

/// The keep-alive timer runs only between requests: a response slower than the keep-alive
/// timeout is not cut, and the connection stays usable after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_slower_than_the_keepalive_timeout_is_not_cut() {
    let backend = harness::Backend::start("slow").await;
    let port = free_port();
    let config = ConfigDir::new(&format!(
        "{CLASS}{}{}{}",
        harness::service("slow", &backend),
        harness::gateway("gw", &[port]),
        harness::route("slow", "gw", "slow")
    ));
    let mut opts = StandaloneOptions::for_tests(config.path());
    opts.proxy.edge = short_limits();
    let _running = harness::start_with(opts).await;
    let mut client = Client::connect(local(port)).await;
    client.send(get("/?delay=2s").as_bytes()).await;
    assert_eq!(
        client.response().await.expect("the slow response").status,
        200
    );
    client.send(get("/").as_bytes()).await;
    assert_eq!(client.response().await.expect("still open").status, 200);
}
