//! Shadow diff end to end through the proxy: what a mirror answered compared with what the
//! primary answered, each copy counted exactly once in the right result, the client's bytes
//! untouched, and `GET /shadow` showing mismatches without queries or credentials.

use sluice_test_support::mirror as gateway;
use sluice_test_support::proxy::{raw_backend, read_head};
use sluice_test_support::{servers, until};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use gateway::Gateway;
use http::HeaderName;
use sluice_controller::publish::Store;
use sluice_controller::snapshot::{
    BackendProtocol, Comparison, CopyShape, Filter, Fraction, Mirror, MirrorPolicy,
};
use sluice_gateway::admin::{AdminServer, AdminState};
use sluice_gateway::mirror::MirrorOptions;
use sluice_gateway::shadow::ShadowResult;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIRROR: &str = "shadow";

/// A complete HTTP/1.1 answer with these parts.
fn answer(status: u16, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A backend that reads each request (body included) and gives `answer` to every one.
async fn answering(answer: String) -> SocketAddr {
    let answer: Arc<str> = answer.into();
    raw_backend(move |mut tcp| {
        let answer = answer.clone();
        async move {
            loop {
                let head = read_head(&mut tcp).await;
                if head.is_empty() {
                    return;
                }
                let mut body = vec![0; content_length(&head)];
                if tcp.read_exact(&mut body).await.is_err() {
                    return;
                }
                if tcp.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

fn comparison() -> Comparison {
    Comparison {
        fraction: Fraction::ALL,
        status: true,
        headers: vec![HeaderName::from_static("content-type")],
        body: true,
        ignore_json_fields: Vec::new(),
        samples: 10,
    }
}

fn policy(compare: Comparison, request: CopyShape) -> Arc<MirrorPolicy> {
    Arc::new(MirrorPolicy {
        name: "default/compare-app".to_string(),
        request,
        compare: Some(compare),
    })
}

fn mirrored(at: SocketAddr, policy: Option<Arc<MirrorPolicy>>) -> Filter {
    Filter::Mirror(Mirror {
        backend: gateway::backend(MIRROR, at),
        fraction: Fraction::ALL,
        policy,
    })
}

async fn comparing(primary: SocketAddr, mirror: SocketAddr, policy: Arc<MirrorPolicy>) -> Gateway {
    let filters = vec![mirrored(mirror, Some(policy))];
    Gateway::start(primary, filters, MirrorOptions::default()).await
}

fn results(gw: &Gateway) -> Vec<(ShadowResult, u64)> {
    let label = gateway::label(MIRROR);
    ShadowResult::ALL
        .iter()
        .map(|r| (*r, gw.metrics.shadow.count(gateway::ROUTE, &label, *r)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Waits (bounded) for the one copy's result and checks it was counted once, in one result.
async fn the_one_result(gw: &Gateway) -> ShadowResult {
    until("a shadow result", Duration::from_secs(30), || {
        (!results(gw).is_empty()).then_some(())
    })
    .await;
    gw.settled(MIRROR, 1).await;
    match results(gw).as_slice() {
        [(result, 1)] => *result,
        other => panic!("one copy, one result; counted {other:?}"),
    }
}

async fn get(gw: &Gateway, path: &str) -> u16 {
    let resp = gateway::client()
        .get(gw.url(path))
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    resp.bytes().await.expect("body");
    status
}

/// One GET through a gateway whose primary and mirror give these answers.
async fn compared(primary: String, mirror: String, compare: Comparison) -> ShadowResult {
    let gw = comparing(
        answering(primary).await,
        answering(mirror).await,
        policy(compare, CopyShape::default()),
    )
    .await;
    get(&gw, "/orders").await;
    the_one_result(&gw).await
}

#[tokio::test]
async fn identical_answers_match() {
    let same = answer(200, "text/plain", "v1");
    assert_eq!(
        compared(same.clone(), same, comparison()).await,
        ShadowResult::Match
    );
}

#[tokio::test]
async fn identical_large_bodies_match() {
    let body = "0123456789abcdef".repeat(512 * 1024);
    let same = answer(200, "application/octet-stream", &body);
    assert_eq!(
        compared(same.clone(), same, comparison()).await,
        ShadowResult::Match
    );
}

/// POSTs `len` bytes through a gateway mirroring to `mirror` (an echo, like the primary) and
/// returns the one result; compared on status and body only.
async fn echoed_upload(
    mirror: Arc<sluice_controller::snapshot::Backend>,
    len: usize,
) -> ShadowResult {
    let (primary, _primary_seen) = servers::echoing().await;
    let compare = Comparison {
        headers: Vec::new(),
        ..comparison()
    };
    let filter = Filter::Mirror(Mirror {
        backend: mirror,
        fraction: Fraction::ALL,
        policy: Some(policy(compare, CopyShape::default())),
    });
    let gw = Gateway::start(primary.addr, vec![filter], MirrorOptions::default()).await;
    let body: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    let resp = gateway::client()
        .post(gw.url("/upload"))
        .body(body.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.bytes().await.expect("body").as_ref(), body.as_slice());
    the_one_result(&gw).await
}

#[tokio::test]
async fn a_large_upload_to_a_full_duplex_mirror_is_compared() {
    let (mirror, _seen) = servers::echoing().await;
    let result = echoed_upload(gateway::backend(MIRROR, mirror.addr), 3 * 1024 * 1024).await;
    assert_eq!(result, ShadowResult::Match);
}

#[tokio::test]
async fn an_h2c_mirror_is_compared() {
    let (mirror, _seen) = servers::echoing_h2c(1).await;
    let backend = gateway::backend_speaking(MIRROR, mirror.addr, BackendProtocol::H2c);
    assert_eq!(
        echoed_upload(backend, 256 * 1024).await,
        ShadowResult::Match
    );
}

#[tokio::test]
async fn identical_bodiless_answers_match() {
    let none = "HTTP/1.1 204 No Content\r\ncontent-type: text/plain\r\n\r\n".to_string();
    assert_eq!(
        compared(none.clone(), none, comparison()).await,
        ShadowResult::Match
    );
}

#[tokio::test]
async fn a_different_status_is_a_status_mismatch() {
    let primary = answer(200, "text/plain", "v1");
    let mirror = answer(500, "text/html", "oops");
    assert_eq!(
        compared(primary, mirror, comparison()).await,
        ShadowResult::StatusMismatch
    );
}

#[tokio::test]
async fn a_different_compared_header_is_a_header_mismatch() {
    let primary = answer(200, "text/plain", "v1");
    let mirror = answer(200, "text/html", "v1");
    assert_eq!(
        compared(primary, mirror, comparison()).await,
        ShadowResult::HeaderMismatch
    );
}

#[tokio::test]
async fn a_different_body_is_a_body_mismatch() {
    let primary = answer(200, "text/plain", "v1");
    let mirror = answer(200, "text/plain", "v2");
    assert_eq!(
        compared(primary, mirror, comparison()).await,
        ShadowResult::BodyMismatch
    );
}

/// The primary's first kilobytes are digested in place and the rest by an observer task: one
/// digest must cover both parts.
#[tokio::test]
async fn a_large_body_differing_only_in_its_last_byte_is_a_body_mismatch() {
    let prefix = "a".repeat(256 * 1024);
    let primary = answer(200, "text/plain", &format!("{prefix}x"));
    let mirror = answer(200, "text/plain", &format!("{prefix}y"));
    assert_eq!(
        compared(primary, mirror, comparison()).await,
        ShadowResult::BodyMismatch
    );
}

fn ignoring_ts() -> Comparison {
    Comparison {
        ignore_json_fields: vec!["/ts".to_string()],
        ..comparison()
    }
}

#[tokio::test]
async fn json_equal_but_for_an_ignored_field_matches() {
    let primary = answer(200, "application/json", r#"{"ts": 1, "items": [1, 2]}"#);
    let mirror = answer(200, "application/json", r#"{"items":[1,2],"ts":2}"#);
    assert_eq!(
        compared(primary, mirror, ignoring_ts()).await,
        ShadowResult::Match
    );
}

#[tokio::test]
async fn json_differing_beyond_the_ignored_fields_is_a_body_mismatch() {
    let primary = answer(200, "application/json", r#"{"ts": 1, "items": [1, 2]}"#);
    let mirror = answer(200, "application/json", r#"{"items":[1,3],"ts":2}"#);
    assert_eq!(
        compared(primary, mirror, ignoring_ts()).await,
        ShadowResult::BodyMismatch
    );
}

#[tokio::test]
async fn a_dead_mirror_is_a_mirror_error() {
    let primary = answering(answer(200, "text/plain", "v1")).await;
    let gw = comparing(
        primary,
        servers::down().await,
        policy(comparison(), CopyShape::default()),
    )
    .await;
    assert_eq!(get(&gw, "/").await, 200);
    assert_eq!(the_one_result(&gw).await, ShadowResult::MirrorError);
}

#[tokio::test]
async fn a_timed_out_mirror_is_a_mirror_error() {
    let primary = answering(answer(200, "text/plain", "v1")).await;
    let silent = servers::blackhole().await;
    let shape = CopyShape {
        timeout: Some(Duration::from_millis(200)),
        ..CopyShape::default()
    };
    let gw = comparing(primary, silent.addr, policy(comparison(), shape)).await;
    assert_eq!(get(&gw, "/").await, 200);
    assert_eq!(the_one_result(&gw).await, ShadowResult::MirrorError);
}

#[tokio::test]
async fn a_copy_aborted_by_its_byte_budget_is_a_mirror_error() {
    let primary = answering(answer(200, "text/plain", "stored")).await;
    let silent = servers::blackhole().await;
    let shape = CopyShape {
        max_body_bytes: Some(64 * 1024),
        ..CopyShape::default()
    };
    let gw = comparing(primary, silent.addr, policy(comparison(), shape)).await;
    let body = vec![7u8; 16 * 1024 * 1024];
    let resp = gateway::client()
        .post(gw.url("/upload"))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    assert_eq!(the_one_result(&gw).await, ShadowResult::MirrorError);
    assert_eq!(
        gw.count(MIRROR, sluice_gateway::mirror::Outcome::DroppedOverflow),
        1
    );
}

#[tokio::test]
async fn a_compare_fraction_of_zero_is_not_compared() {
    let same = answer(200, "text/plain", "v1");
    let compare = Comparison {
        fraction: Fraction {
            numerator: 0,
            denominator: 100,
        },
        ..comparison()
    };
    assert_eq!(
        compared(same.clone(), same, compare).await,
        ShadowResult::NotCompared
    );
}

/// Every byte the client receives for one request, on a connection of its own.
async fn raw_exchange(gw: &Gateway) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    tcp.write_all(b"GET /orders HTTP/1.1\r\nhost: shop.example\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut received = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), tcp.read_to_end(&mut received))
        .await
        .expect("answered in time")
        .expect("read");
    received
}

#[tokio::test]
async fn the_client_gets_the_same_bytes_with_and_without_comparison() {
    let primary = answering(answer(200, "application/json", r#"{"ts": 1}"#)).await;
    let mirror = answering(answer(500, "text/html", "different")).await;
    let plain = Gateway::start(
        primary,
        vec![mirrored(mirror, None)],
        MirrorOptions::default(),
    )
    .await;
    let compared = comparing(primary, mirror, policy(ignoring_ts(), CopyShape::default())).await;
    let without = raw_exchange(&plain).await;
    let with = raw_exchange(&compared).await;
    assert!(
        without.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&without)
    );
    assert_eq!(
        String::from_utf8_lossy(&with),
        String::from_utf8_lossy(&without)
    );
    assert_eq!(
        the_one_result(&compared).await,
        ShadowResult::StatusMismatch
    );
}

#[tokio::test]
async fn shadow_shows_a_mismatch_without_query_or_credentials() {
    let gw = comparing(
        answering(answer(200, "text/plain", "v1")).await,
        answering(answer(503, "text/plain", "v2")).await,
        policy(comparison(), CopyShape::default()),
    )
    .await;
    let resp = gateway::client()
        .get(gw.url("/orders/7?token=s3cret"))
        .header("authorization", "Bearer hunter2")
        .header("cookie", "session=c00kie")
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(the_one_result(&gw).await, ShadowResult::StatusMismatch);

    let (_tx, listeners) = tokio::sync::watch::channel(Default::default());
    let state = AdminState {
        store: Store::new(),
        metrics: gw.metrics.clone(),
        listeners,
    };
    let admin = AdminServer::start("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("admin");
    let url = format!("http://{}/shadow", admin.local_addr());
    let text = gateway::client()
        .get(url)
        .send()
        .await
        .expect("/shadow")
        .text()
        .await
        .expect("text");
    for secret in ["s3cret", "token", "hunter2", "c00kie"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let report: serde_json::Value = serde_json::from_str(&text).expect("json");
    let group = &report["samples"][0];
    assert_eq!(group["route"], gateway::ROUTE);
    assert_eq!(group["mirror"], gateway::label(MIRROR));
    let sample = &group["samples"][0];
    assert_eq!(sample["policy"], "default/compare-app");
    assert_eq!(sample["result"], "status_mismatch");
    assert_eq!(sample["method"], "GET");
    assert_eq!(sample["path"], "/orders/7");
    assert_eq!(sample["primary"]["status"], 200);
    assert_eq!(sample["mirror"]["status"], 503);
    assert_eq!(sample["primary"]["digest"].as_str().map(str::len), Some(32));
    assert_ne!(sample["primary"]["digest"], sample["mirror"]["digest"]);
    assert!(sample["mirror"]["latency_seconds"].is_f64(), "{sample}");
    assert!(
        sample["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{sample}"
    );
    admin.shutdown(Duration::from_secs(1)).await;
}
