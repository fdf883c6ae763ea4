//! Mirroring end to end through the real proxy app: what mirrors receive, sampling, multiple
//! mirrors, and requests that must not be mirrored.

use sluice_test_support::mirror as gateway;
use sluice_test_support::servers::{self, Received};
use sluice_test_support::within;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gateway::{mirror, Gateway};
use sluice_controller::snapshot::{Filter, Fraction, HeaderModifier, Redirect};
use sluice_gateway::mirror::{MirrorOptions, Outcome};
use tokio::sync::mpsc::UnboundedReceiver;

const LIMIT: Duration = Duration::from_secs(60);

/// Sends `request` and waits (within [`LIMIT`], naming `what`) for its answer.
async fn answer(what: &str, request: reqwest::RequestBuilder) -> reqwest::Response {
    within(what, LIMIT, request.send()).await.expect("response")
}

/// The next request a recording server reports, waited for within [`LIMIT`].
async fn received(what: &str, reports: &mut UnboundedReceiver<Received>) -> Received {
    within(what, LIMIT, reports.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: the server stopped reporting"))
}

fn body(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 7 % 253) as u8).collect::<Vec<u8>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_receives_the_same_request_as_the_primary() {
    let (primary, mut at_primary) = servers::recording(200).await;
    let (shadow, mut at_mirror) = servers::recording(200).await;
    let gw = Gateway::mirroring_all(primary.addr, "pipy-mirror", shadow.addr).await;
    let data = body(8 * 1024 * 1024 + 17);
    let resp = answer(
        "the primary",
        gateway::client()
            .post(gw.url("/hello/w%C3%B6rld?a=1&b=%20"))
            .header("content-type", "application/octet-stream")
            .header("user-agent", "curl/8.5.0")
            .body(data.clone()),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let sha = servers::sha256(&data);
    assert_eq!(resp.text().await.expect("body"), sha);

    let p = received("primary record", &mut at_primary).await;
    let m = received("mirror record", &mut at_mirror).await;
    assert_eq!(m.sha256, sha);
    assert!(m.complete);
    assert_eq!(m.method, p.method);
    assert_eq!(m.path, "/hello/w%C3%B6rld?a=1&b=%20");
    assert_eq!(m.path, p.path);
    for name in [
        "host",
        "user-agent",
        "content-type",
        "content-length",
        "x-forwarded-for",
    ] {
        assert_eq!(m.headers.get(name), p.headers.get(name), "{name}");
        assert!(m.headers.contains_key(name), "{name} present");
    }
    gw.all_completed("pipy-mirror", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mirror_filter_gets_its_own_copy() {
    let (primary, _p) = servers::recording(200).await;
    let (one, mut at_one) = servers::recording(200).await;
    let (two, mut at_two) = servers::recording(200).await;
    let gw = Gateway::start(
        primary.addr,
        vec![
            mirror("one", one.addr, Fraction::ALL),
            // A header filter between the mirrors: only the second copy sees it.
            Filter::RequestHeaders(HeaderModifier {
                set: vec![(
                    http::HeaderName::from_static("x-between"),
                    http::HeaderValue::from_static("yes"),
                )],
                ..HeaderModifier::default()
            }),
            mirror("two", two.addr, Fraction::ALL),
        ],
        MirrorOptions::default(),
    )
    .await;
    let data = body(300_000);
    let resp = answer(
        "the primary",
        gateway::client().put(gw.url("/multi")).body(data.clone()),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let a = received("first mirror", &mut at_one).await;
    let b = received("second mirror", &mut at_two).await;
    for m in [&a, &b] {
        assert_eq!(m.method, "PUT");
        assert_eq!(m.sha256, servers::sha256(&data));
    }
    assert!(a.headers.get("x-between").is_none());
    assert_eq!(b.headers["x-between"], "yes");
    gw.settled("one", 1).await;
    gw.settled("two", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fraction_samples_within_four_sigma() {
    const N: u64 = 2000;
    let (primary, _p) = servers::recording(200).await;
    let (shadow, _m) = servers::recording(200).await;
    let fraction = Fraction {
        numerator: 3,
        denominator: 10,
    };
    let gw = Gateway::start(
        primary.addr,
        vec![mirror("sampled", shadow.addr, fraction)],
        MirrorOptions::default(),
    )
    .await;
    let client = gateway::client();
    let url = gw.url("/sample");
    let statuses: Vec<u16> = within(
        "2000 requests",
        LIMIT,
        futures::stream::iter(0..N)
            .map(|_| {
                let req = client.get(&url).send();
                async move { req.await.map(|r| r.status().as_u16()).unwrap_or(0) }
            })
            .buffer_unordered(16)
            .collect(),
    )
    .await;
    assert!(statuses.iter().all(|s| *s == 200));
    let p = 0.3;
    let mean = N as f64 * p;
    let sigma = (N as f64 * p * (1.0 - p)).sqrt();
    // Wait for every started copy to end, then count them all.
    let settled = within("mirrors settle", LIMIT, async {
        loop {
            if gw.engine.inflight() == 0 {
                return gw.total("sampled");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let copies = settled as f64;
    // Four sigma: a correct sampler fails this about once in 16,000 runs (three sigma was once
    // in 370, too often for CI); 25 % or 35 % sampling still falls outside the band.
    assert!(
        (copies - mean).abs() <= 4.0 * sigma,
        "{copies} copies of {N} at 30% (band {mean} ± {})",
        4.0 * sigma
    );
    assert_eq!(gw.count("sampled", Outcome::Completed), settled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_gateway_redirects_are_not_mirrored() {
    let (primary, _p) = servers::recording(200).await;
    let (shadow, _m) = servers::recording(200).await;
    let gw = Gateway::start(
        primary.addr,
        vec![
            mirror("skipped", shadow.addr, Fraction::ALL),
            Filter::Redirect(Redirect {
                scheme: None,
                hostname: Some("elsewhere.example".into()),
                path: None,
                port: None,
                status_code: 302,
            }),
        ],
        MirrorOptions::default(),
    )
    .await;
    let resp = answer("redirect", gateway::client().get(gw.url("/r"))).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(shadow.accepted(), 0);
    assert_eq!(gw.total("skipped"), 0);
    assert_eq!(gw.engine.inflight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_request_is_mirrored_even_when_the_primary_is_down() {
    let down = servers::down().await;
    let (shadow, mut at_mirror) = servers::recording(200).await;
    let gw = Gateway::mirroring_all(down, "still", shadow.addr).await;
    let resp = answer("the primary", gateway::client().get(gw.url("/down?x"))).await;
    assert_eq!(resp.status(), 502);
    let m = received("mirror record", &mut at_mirror).await;
    assert_eq!(m.method, "GET");
    assert_eq!(m.path, "/down?x");
    gw.all_completed("still", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exported_in_the_instance_registry() {
    let (primary, _p) = servers::recording(200).await;
    let (shadow, _m) = servers::recording(503).await;
    let gw = Gateway::mirroring_all(primary.addr, "observed", shadow.addr).await;
    let resp = answer(
        "the primary",
        gateway::client().post(gw.url("/m")).body("Hello world"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    gw.settled("observed", 1).await;
    let text = gw.metrics_text();
    for needle in [
        r#"sluice_mirror_requests_total{mirror="default/observed:8080",outcome="completed",route="default/web"} 1"#,
        r#"sluice_mirror_responses_total{class="5xx",mirror="default/observed:8080",route="default/web"} 1"#,
        r#"sluice_mirror_bytes_total{mirror="default/observed:8080",route="default/web"} 11"#,
        "sluice_mirror_inflight 0",
        "sluice_mirror_buffered_bytes 0",
        "sluice_mirror_duration_seconds_count",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

/// A healthy mirror as fast as the primary receives a large streamed upload intact.
async fn large_upload_is_mirrored_intact(mib: usize) {
    let (primary, mut at_primary) = servers::recording(200).await;
    let (shadow, mut at_mirror) = servers::recording(200).await;
    let gw = Gateway::mirroring_all(primary.addr, "big", shadow.addr).await;
    let len = mib * 1024 * 1024;
    let block = body(1024 * 1024);
    let chunks =
        futures::stream::iter((0..mib).map(move |_| Ok::<_, std::io::Error>(block.clone())));
    let started = Instant::now();
    let resp = tokio::time::timeout(
        Duration::from_secs(300),
        gateway::client()
            .post(gw.url("/upload"))
            .header("content-length", len.to_string())
            .body(reqwest::Body::wrap_stream(chunks))
            .send(),
    )
    .await
    .expect("upload within bound")
    .expect("response");
    assert_eq!(resp.status(), 200);
    let primary_sha = resp.text().await.expect("body");
    let elapsed = started.elapsed();
    let p = at_primary.recv().await.expect("primary");
    let m = tokio::time::timeout(Duration::from_secs(120), at_mirror.recv())
        .await
        .expect("mirror within bound")
        .expect("mirror");
    assert_eq!(p.body_len, len as u64);
    assert!(m.complete, "mirror body complete");
    assert_eq!(m.body_len, len as u64);
    assert_eq!(m.sha256, primary_sha);
    gw.all_completed("big", 1).await;
    eprintln!(
        "{mib} MiB upload mirrored intact: primary {:.2}s ({:.0} MiB/s)",
        elapsed.as_secs_f64(),
        mib as f64 / elapsed.as_secs_f64()
    );
}

/// Three times the default 8 MiB per-copy budget: the body can only arrive whole by streaming.
/// (At 48 MiB, a dev build on a loaded 2-core machine let the mirror fall a budget behind the
/// primary about once in ten runs: a speed race, not a fidelity fault.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_mirror_receives_a_large_upload_intact() {
    large_upload_is_mirrored_intact(24).await;
}

/// `cargo test -p sluice-gateway --test mirror_proxy -- --ignored --nocapture` (slow in dev).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "256 MiB through a dev build: run by hand to measure"]
async fn healthy_mirror_receives_a_256_mib_upload_intact() {
    large_upload_is_mirrored_intact(256).await;
}
