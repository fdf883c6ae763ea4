//! End to end through `ProxyApp`: rule `retry` policies, `timeouts.backendRequest` per attempt,
//! what a retry may resend (bodies, mirrors) and how long retrying may take.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_controller::snapshot::{
    BackendProtocol, Filter, Fraction, RetryPolicy, RuleAction, Timeouts,
};
use sluice_gateway::metrics::Metrics;
use sluice_gateway::mirror::{MirrorEngine, MirrorMetrics, MirrorOptions};
use sluice_gateway::proxy::ProxySettings;
use sluice_gateway::upstream::retry::RetrySettings;
use sluice_gateway::upstream::UpstreamSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use sluice_test_support::proxy::*;

/// What one attempt of the scripted backend does once it has read the request.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Answer this status.
    Status(u16),
    /// Abort the connection with an RST, no response.
    Reset,
    /// Wait, then answer 200.
    Slow(Duration),
}

/// A backend that plays `script` one attempt after another (200 once it runs out) and records
/// the request body length of every attempt.
struct Scripted {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<usize>>>,
}

impl Scripted {
    async fn start(script: Vec<Act>) -> Scripted {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        let script = Arc::new(script);
        let addr = raw_backend(move |tcp| {
            let seen = seen.clone();
            let script = script.clone();
            async move { play(tcp, &script, &seen).await }
        })
        .await;
        Scripted { addr, bodies }
    }

    fn attempts(&self) -> usize {
        self.bodies.lock().expect("bodies").len()
    }

    fn bodies(&self) -> Vec<usize> {
        self.bodies.lock().expect("bodies").clone()
    }
}

async fn play(mut tcp: TcpStream, script: &[Act], seen: &Mutex<Vec<usize>>) {
    let head = read_head(&mut tcp).await.to_ascii_lowercase();
    if head.is_empty() {
        return;
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if tcp.read_exact(&mut body).await.is_err() {
        return;
    }
    let attempt = {
        let mut seen = seen.lock().expect("bodies");
        seen.push(length);
        seen.len() - 1
    };
    let status = match script.get(attempt).copied() {
        Some(Act::Reset) => {
            // Linger 0 makes the close a reset, not a response.
            let _ = tcp.set_zero_linger();
            return;
        }
        Some(Act::Status(code)) => code,
        Some(Act::Slow(wait)) => {
            tokio::time::sleep(wait).await;
            200
        }
        None => 200,
    };
    let body = format!("attempt {attempt}");
    let resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(resp.as_bytes()).await;
}

fn policy(codes: &[u16], attempts: u32) -> Option<RetryPolicy> {
    Some(RetryPolicy {
        codes: codes.to_vec(),
        attempts: Some(attempts),
        backoff: Some(Duration::from_millis(1)),
    })
}

fn rule(
    backend: &Scripted,
    filters: Vec<Filter>,
    timeouts: Timeouts,
    retry: Option<RetryPolicy>,
) -> Arc<RuleAction> {
    let to = service_at("default/s:80", backend.addr, BackendProtocol::Http1);
    Arc::new(RuleAction::new(filters, vec![to], timeouts).with_retry(retry))
}

fn retries(gw: &Gateway, reason: &str) -> u64 {
    gw.metrics
        .retries
        .with_label_values(&["default/r", reason])
        .get()
}

async fn text(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn retry_on_listed_code_reaches_next_attempt() {
    bounded(async {
        let b = Scripted::start(vec![Act::Status(503), Act::Status(503)]).await;
        let gw = Gateway::one_rule(rule(&b, vec![], Timeouts::default(), policy(&[503], 2))).await;
        assert_eq!(text(gw.get("/").await).await, (200, "attempt 2".into()));
        assert_eq!(b.attempts(), 3);
        assert_eq!(retries(&gw, "status"), 2);
    })
    .await;
}

/// A status not listed is answered at once; when every attempt answers a listed status, the
/// last answer is the client's.
#[tokio::test]
async fn unlisted_and_last_answers_go_to_the_client_as_they_are() {
    bounded(async {
        for (answer, answered, attempts) in [(500, "attempt 0", 1), (503, "attempt 2", 3)] {
            let b = Scripted::start(vec![Act::Status(answer); 5]).await;
            let action = rule(&b, vec![], Timeouts::default(), policy(&[503], 2));
            let gw = Gateway::one_rule(action).await;
            assert_eq!(text(gw.get("/").await).await, (answer, answered.into()));
            assert_eq!(b.attempts(), attempts);
        }
    })
    .await;
}

#[tokio::test]
async fn connection_resets_are_retried_and_exhausted_retries_answer_503() {
    bounded(async {
        let b = Scripted::start(vec![Act::Reset; 2]).await;
        let gw = Gateway::one_rule(rule(&b, vec![], Timeouts::default(), policy(&[], 2))).await;
        assert_eq!(text(gw.get("/").await).await, (200, "attempt 2".into()));
        assert_eq!(retries(&gw, "connection_error"), 2);

        let b = Scripted::start(vec![Act::Reset; 5]).await;
        let gw = Gateway::one_rule(rule(&b, vec![], Timeouts::default(), policy(&[], 2))).await;
        assert_eq!(gw.get("/").await.status().as_u16(), 503);
        assert_eq!(b.attempts(), 3);
    })
    .await;
}

/// Pingora's retry buffer (`BODY_BUF_LIMIT` in pingora-core 0.9, not configurable).
const REPLAY_BUFFER: usize = 64 * 1024;

/// POSTs `len` body bytes to a rule retrying 500 twice, at a backend answering 500 to the first
/// two attempts: the client's answer and the body length of each attempt.
async fn post_to_failing_backend(len: usize) -> ((u16, String), Vec<usize>) {
    let b = Scripted::start(vec![Act::Status(500); 2]).await;
    let gw = Gateway::one_rule(rule(&b, vec![], Timeouts::default(), policy(&[500], 2))).await;
    let resp = client()
        .post(gw.url("/"))
        .body(vec![7u8; len])
        .send()
        .await
        .expect("send");
    (text(resp).await, b.bodies())
}

#[tokio::test]
async fn bodies_that_fit_the_replay_buffer_are_replayed_whole() {
    bounded(async {
        for len in [16 * 1024, REPLAY_BUFFER] {
            let (answer, bodies) = post_to_failing_backend(len).await;
            assert_eq!(answer, (200, "attempt 2".into()), "{len}");
            assert_eq!(bodies, vec![len; 3]);
        }
    })
    .await;
}

/// A body past the replay buffer went to the backend once; its first answer stands.
#[tokio::test]
async fn retries_never_duplicate_a_non_replayable_body() {
    bounded(async {
        for len in [REPLAY_BUFFER + 1, 1024 * 1024] {
            let (answer, bodies) = post_to_failing_backend(len).await;
            assert_eq!(answer, (500, "attempt 0".into()), "{len}");
            assert_eq!(bodies, vec![len]);
        }
    })
    .await;
}

/// Sluice answers `Expect: 100-continue` itself; that interim answer does not stop a retry.
#[tokio::test]
async fn a_request_answered_100_continue_is_still_retried() {
    bounded(async {
        let b = Scripted::start(vec![Act::Status(500)]).await;
        let gw = Gateway::one_rule(rule(&b, vec![], Timeouts::default(), policy(&[500], 1))).await;
        let mut tcp = gw
            .send_raw(
                "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\
                 Connection: close\r\n\r\nhello",
            )
            .await;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.expect("read");
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.starts_with("HTTP/1.1 100"), "{raw}");
        assert!(
            raw.contains("HTTP/1.1 200") && raw.ends_with("attempt 1"),
            "{raw}"
        );
        assert_eq!(b.bodies(), vec![5, 5]);
    })
    .await;
}

#[tokio::test]
async fn mirror_is_sent_once_however_many_attempts() {
    bounded(async {
        let b = Scripted::start(vec![Act::Status(500), Act::Reset]).await;
        let m = EchoBackend::start("m").await;
        let metrics = Metrics::new().expect("metrics");
        let mirror_metrics = MirrorMetrics::register(&metrics.registry).expect("mirror metrics");
        let engine = MirrorEngine::new(MirrorOptions::default(), mirror_metrics);
        let settings = ProxySettings {
            mirror: Some(engine.clone()),
            ..ProxySettings::default()
        };
        let mirror = sluice_test_support::mirror::mirror("m", m.addr, Fraction::ALL);
        let action = rule(&b, vec![mirror], Timeouts::default(), policy(&[500], 3));
        let gw = Gateway::start_with(settings, |addr| one_rule(addr, action)).await;
        let body = "b".repeat(4096);
        let resp = client()
            .post(gw.url("/"))
            .body(body.clone())
            .send()
            .await
            .expect("send");
        assert_eq!(text(resp).await, (200, "attempt 2".into()));
        assert_eq!(b.bodies(), vec![4096; 3]);
        // Copies start in upstream_peer, before the answer: once none is in flight, every
        // copy this request caused has reached the mirror.
        let copies = m.wait_seen(1).await;
        while engine.inflight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let copies_now = m.seen.lock().expect("seen").len();
        assert_eq!(copies_now, 1);
        assert_eq!(copies[0].0["body"], body.as_str());
    })
    .await;
}

#[tokio::test]
async fn backend_request_timeout_cuts_one_attempt() {
    bounded(async {
        let timeouts = Timeouts {
            request: None,
            backend_request: Some(Duration::from_millis(200)),
        };
        let slow = Act::Slow(Duration::from_secs(5));
        let b = Scripted::start(vec![slow]).await;
        let gw = Gateway::one_rule(rule(&b, vec![], timeouts, policy(&[], 1))).await;
        let started = Instant::now();
        assert_eq!(text(gw.get("/").await).await, (200, "attempt 1".into()));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(retries(&gw, "backend_timeout"), 1);

        // Without a retry policy the timed-out attempt is the answer: 504.
        let b = Scripted::start(vec![slow]).await;
        let gw = Gateway::one_rule(rule(&b, vec![], timeouts, None)).await;
        let started = Instant::now();
        assert_eq!(gw.get("/").await.status().as_u16(), 504);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(b.attempts(), 1);
    })
    .await;
}

#[tokio::test]
async fn retries_stay_within_the_request_timeout() {
    bounded(async {
        let timeouts = Timeouts {
            request: Some(Duration::from_millis(300)),
            backend_request: None,
        };
        let b = Scripted::start(vec![Act::Status(500); 100]).await;
        let mut retry = policy(&[500], 50);
        if let Some(p) = retry.as_mut() {
            p.backoff = Some(Duration::from_millis(100));
        }
        let gw = Gateway::one_rule(rule(&b, vec![], timeouts, retry)).await;
        let started = Instant::now();
        assert_eq!(gw.get("/").await.status().as_u16(), 504);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        // Waits of 100, 200 ms: at most three attempts fit in 300 ms.
        assert!(b.attempts() <= 3, "{}", b.attempts());
    })
    .await;
}

#[tokio::test]
async fn retries_are_capped_by_the_retry_settings() {
    bounded(async {
        let b = Scripted::start(vec![Act::Status(500); 100]).await;
        let settings = ProxySettings {
            upstream: UpstreamSettings {
                retry: RetrySettings {
                    max_retries: 2,
                    ..RetrySettings::default()
                },
                ..UpstreamSettings::default()
            },
            ..ProxySettings::default()
        };
        let action = rule(&b, vec![], Timeouts::default(), policy(&[500], 40));
        let gw = Gateway::start_with(settings, |addr| one_rule(addr, action)).await;
        assert_eq!(text(gw.get("/").await).await, (500, "attempt 2".into()));
        assert_eq!(b.attempts(), 3);
    })
    .await;
}

/// An h2c backend (HTTP/2 prior knowledge) answering 503 to its first `failures` requests.
async fn h2c_failing(failures: usize) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let addr = raw_backend(move |tcp| {
        let seen = seen.clone();
        async move {
            let service = hyper::service::service_fn(move |_req| {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let status = if n < failures { 503 } else { 200 };
                async move {
                    let mut resp = http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from(format!("attempt {n}")),
                    ));
                    *resp.status_mut() =
                        http::StatusCode::from_u16(status).expect("a valid status");
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let io = hyper_util::rt::TokioIo::new(tcp);
            let executor = hyper_util::rt::TokioExecutor::new();
            let _ = hyper::server::conn::http2::Builder::new(executor)
                .serve_connection(io, service)
                .await;
        }
    })
    .await;
    (addr, count)
}

/// Pingora's HTTP/2 upstream path runs the same filters: an h2c Service is retried alike.
#[tokio::test]
async fn h2c_backends_are_retried_on_listed_codes() {
    bounded(async {
        let (addr, count) = h2c_failing(2).await;
        let to = service_at("default/h2:80", addr, BackendProtocol::H2c);
        let action = Arc::new(
            RuleAction::new(vec![], vec![to], Timeouts::default()).with_retry(policy(&[503], 2)),
        );
        let gw = Gateway::one_rule(action).await;
        assert_eq!(text(gw.get("/").await).await, (200, "attempt 2".into()));
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
    })
    .await;
}
