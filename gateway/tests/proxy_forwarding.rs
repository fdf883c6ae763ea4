//! End to end through `ProxyApp`: what a proxy adds, drops and reuses, and its timeouts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_controller::snapshot::{BackendProtocol, RuleAction, Timeouts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use sluice_gateway::proxy::ProxySettings;
use sluice_gateway::upstream::UpstreamSettings;
use sluice_test_support::proxy::*;

fn with_timeouts(b: &EchoBackend, timeouts: Timeouts) -> Arc<RuleAction> {
    Arc::new(RuleAction::new(vec![], vec![to(b)], timeouts))
}

#[tokio::test]
async fn forwarded_headers_describe_the_client() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let gw = Gateway::forwarding_to(&b).await;
        let resp = gw
            .get_with(
                "/",
                &[
                    ("host", "app.example.com:8080"),
                    ("x-forwarded-for", "203.0.113.9"),
                ],
            )
            .await;
        let echoed = Echoed::from(resp).await;
        assert_eq!(echoed.header("x-forwarded-for"), ["203.0.113.9, 127.0.0.1"]);
        assert_eq!(echoed.header("x-forwarded-proto"), ["http"]);
        assert_eq!(echoed.header("x-forwarded-host"), ["app.example.com:8080"]);
        assert_eq!(echoed.header("host"), ["app.example.com:8080"]);
    })
    .await;
}

/// reqwest normalises `Connection`, so the request is written by hand.
#[tokio::test]
async fn hop_by_hop_headers_do_not_cross_the_proxy() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let gw = Gateway::forwarding_to(&b).await;
        let request = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close, x-private\r\n\
            X-Private: secret\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
            TE: gzip\r\nX-Respond-Header: keep-alive=timeout=9\r\n\
            X-Respond-Header: proxy-connection=keep-alive\r\nX-End-To-End: kept\r\n\r\n";
        let mut tcp = gw.send_raw(request).await;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.expect("read");
        let raw = String::from_utf8_lossy(&raw).to_lowercase();
        let (head, body) = raw.split_once("\r\n\r\n").expect("response head");
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("keep-alive: timeout=9"), "{head}");
        assert!(!head.contains("proxy-connection"), "{head}");
        let echoed: serde_json::Value = serde_json::from_str(body).expect("echo json");
        let seen = echoed["headers"].as_object().expect("headers");
        for gone in ["x-private", "keep-alive", "proxy-connection", "te"] {
            assert!(
                !seen.contains_key(gone),
                "{gone} reached the backend: {seen:?}"
            );
        }
        assert!(seen.contains_key("x-end-to-end"));
    })
    .await;
}

#[tokio::test]
async fn backend_connections_are_reused() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let gw = Gateway::forwarding_to(&b).await;
        let c = client();
        for _ in 0..20 {
            let resp = c.get(gw.url("/")).send().await.expect("request");
            assert_eq!(resp.status(), 200);
            resp.bytes().await.expect("body");
        }
        assert_eq!(b.connections.load(Ordering::SeqCst), 1);
    })
    .await;
}

#[tokio::test]
async fn the_backend_pool_keeps_no_more_idle_connections_than_its_size() {
    const WAVE: usize = 4;
    let default = UpstreamSettings::default().pool_size;
    for (pool_size, expected) in [(2, WAVE + 2), (default, WAVE)] {
        bounded(async {
            let backend = sluice_test_support::servers::in_waves(WAVE).await;
            let settings = ProxySettings {
                upstream: UpstreamSettings {
                    pool_size,
                    ..UpstreamSettings::default()
                },
                ..ProxySettings::default()
            };
            let service = service_at("default/waves", backend.addr, BackendProtocol::Http1);
            let gw = Gateway::start_with(settings, |addr| {
                one_rule(addr, action(vec![], vec![service]))
            })
            .await;
            // A client per request: each wave is WAVE client connections, and so WAVE backend
            // requests in flight at once.
            for _ in 0..2 {
                let requests = (0..WAVE).map(|_| async {
                    let resp = client().get(gw.url("/")).send().await.expect("request");
                    assert_eq!(resp.status(), 200);
                });
                futures::future::join_all(requests).await;
            }
            assert_eq!(
                backend.accepted(),
                expected,
                "pool of {pool_size}: the second wave reuses what the pool kept"
            );
        })
        .await;
    }
}

#[tokio::test]
async fn request_timeout_answers_504() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let timeouts = Timeouts {
            request: Some(Duration::from_millis(200)),
            backend_request: None,
        };
        let gw = Gateway::one_rule(with_timeouts(&b, timeouts)).await;
        let started = Instant::now();
        let resp = gw.get_with("/", &[("x-delay-ms", "2000")]).await;
        assert_eq!(resp.status(), 504);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
        let fast = gw.get("/").await;
        assert_eq!(fast.status(), 200, "a request within the timeout is served");
    })
    .await;
}

#[tokio::test]
async fn backend_request_timeout_answers_504() {
    bounded(async {
        let b = EchoBackend::start("b").await;
        let timeouts = Timeouts {
            request: Some(Duration::from_secs(10)),
            backend_request: Some(Duration::from_millis(200)),
        };
        let gw = Gateway::one_rule(with_timeouts(&b, timeouts)).await;
        let resp = gw.get_with("/", &[("x-delay-ms", "2000")]).await;
        assert_eq!(resp.status(), 504);
        let text = gw.metrics.encode_text().expect("metrics");
        assert!(text.contains(r#"code="504""#), "{text}");
    })
    .await;
}

#[tokio::test]
async fn in_flight_request_keeps_its_snapshot_across_a_reload() {
    bounded(async {
        let [old, new] = EchoBackend::start_each(["old", "new"]).await;
        let gw = Gateway::forwarding_to(&old).await;
        let c = client();
        let slow = tokio::spawn(c.get(gw.url("/")).header("x-delay-ms", "300").send());
        // Wait until the slow request has reached the old backend, then swap configuration.
        while old.connections.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        gw.store
            .publish(one_rule(gw.addr, action(vec![], vec![to(&new)])));
        let fresh = gw.get("/").await;
        assert_eq!(Echoed::from(fresh).await.backend(), "new");
        let slow = slow.await.expect("task").expect("request");
        assert_eq!(Echoed::from(slow).await.backend(), "old");
    })
    .await;
}

#[tokio::test]
async fn request_timeout_cuts_off_a_trickling_response() {
    trickling_response_is_cut_off(Timeouts {
        request: Some(Duration::from_millis(400)),
        backend_request: None,
    })
    .await;
}

#[tokio::test]
async fn backend_request_timeout_bounds_a_whole_attempt_not_each_read() {
    // Each byte comes well within the 400ms, the whole body does not.
    trickling_response_is_cut_off(Timeouts {
        request: Some(Duration::from_secs(10)),
        backend_request: Some(Duration::from_millis(400)),
    })
    .await;
}

/// A backend that answers a 30-byte body one byte every 100ms is cut off by `timeouts` (about
/// 400ms) long before it would finish (3s).
async fn trickling_response_is_cut_off(timeouts: Timeouts) {
    bounded(async {
        let trickle = raw_backend(|mut tcp| async move {
            read_head(&mut tcp).await;
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n";
            if tcp.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..30 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if tcp.write_all(b"x").await.is_err() {
                    return;
                }
            }
        })
        .await;
        let action = Arc::new(RuleAction::new(
            vec![],
            vec![service_at(
                "default/trickle:80",
                trickle,
                BackendProtocol::Http1,
            )],
            timeouts,
        ));
        let gw = Gateway::one_rule(action).await;
        let started = Instant::now();
        // Up to one MSS of response is held back until more follows (nginx's `postpone_output`,
        // Pingora's own listeners), so the 200 head of this trickle may still be inside the
        // gateway when the timeout fires: the client sees the connection end before the head,
        // or a head and a truncated body. Never a complete response.
        let cut_off = match client().get(gw.url("/")).send().await {
            Ok(resp) => {
                assert_eq!(resp.status(), 200);
                resp.bytes().await.is_err()
            }
            Err(e) => e.is_request() || e.is_body(),
        };
        assert!(cut_off, "the body must be cut off");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

#[tokio::test]
async fn websocket_upgrade_passes_through_both_ways() {
    bounded(async {
        let ws = raw_backend(|mut tcp| async move {
            let head = read_head(&mut tcp).await.to_ascii_lowercase();
            if !head.contains("upgrade: websocket") {
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
                return;
            }
            let answer = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                Upgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
            if tcp.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            let mut buf = [0u8; 64];
            while let Ok(n) = tcp.read(&mut buf).await {
                if n == 0 || tcp.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        })
        .await;
        let backends = vec![service_at("default/ws:80", ws, BackendProtocol::WebSocket)];
        let gw = Gateway::one_rule(action(vec![], backends)).await;
        let request = "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n\
            Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n\r\n";
        let mut tcp = gw.send_raw(request).await;
        let head = read_head(&mut tcp).await.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 101"), "{head}");
        assert!(head.contains("upgrade: websocket"), "{head}");
        tcp.write_all(b"ping").await.expect("write frame");
        let mut echoed = [0u8; 4];
        tcp.read_exact(&mut echoed).await.expect("read frame");
        assert_eq!(&echoed, b"ping");
    })
    .await;
}
