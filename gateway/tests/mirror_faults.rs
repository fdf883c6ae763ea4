//! Production never notices a broken mirror: down, blackhole, slow and erroring mirrors, a client
//! aborting mid-upload, and bounded memory, all through the real proxy app.

use sluice_test_support::mirror as gateway;
use sluice_test_support::servers;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gateway::{mirror, Gateway};
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_controller::snapshot::Fraction;
use sluice_gateway::mirror::{MirrorOptions, Outcome};
use tokio::io::AsyncWriteExt;

fn body(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 13 % 241) as u8).collect::<Vec<u8>>())
}

/// Sends `n` POSTs of `body` (8 at a time) and checks every primary answer is the body's sha256.
/// Returns how long they took.
async fn primary_requests_succeed(gw: &Gateway, n: usize, body: Bytes) -> Duration {
    let client = gateway::client();
    let url = gw.url("/orders?id=1");
    let want = servers::sha256(&body);
    let started = Instant::now();
    let results: Vec<Result<String, String>> = tokio::time::timeout(
        Duration::from_secs(30),
        futures::stream::iter(0..n)
            .map(|_| {
                let req = client.post(&url).body(body.clone()).send();
                async move {
                    let resp = req.await.map_err(|e| e.to_string())?;
                    if resp.status() != 200 {
                        return Err(format!("status {}", resp.status()));
                    }
                    resp.text().await.map_err(|e| e.to_string())
                }
            })
            .buffer_unordered(8)
            .collect(),
    )
    .await
    .expect("primary requests finished within their bound");
    let elapsed = started.elapsed();
    for r in results {
        assert_eq!(r.as_deref(), Ok(want.as_str()));
    }
    elapsed
}

/// Servers a test keeps alive until it ends.
type Held = (
    servers::Server,
    tokio::sync::mpsc::UnboundedReceiver<servers::Received>,
    servers::Server,
);

/// A gateway mirroring every request, as mirror `name` with `settings`, to a backend that
/// accepts and never answers; the servers it needs are returned to be held.
async fn mirroring_to_a_blackhole(name: &str, settings: MirrorSettings) -> (Gateway, Held) {
    let (primary, primary_reports) = servers::recording(200).await;
    let hole = servers::blackhole().await;
    let options = MirrorOptions {
        settings,
        ..MirrorOptions::default()
    };
    let gw = Gateway::mirroring_all_with(primary.addr, name, hole.addr, options).await;
    (gw, (primary, primary_reports, hole))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_mirror_does_not_affect_the_primary() {
    let (primary, _p) = servers::recording(200).await;
    let gw = Gateway::mirroring_all(primary.addr, "down", servers::down().await).await;
    primary_requests_succeed(&gw, 20, body(100_000)).await;
    gw.settled("down", 20).await;
    assert_eq!(gw.count("down", Outcome::ConnectError), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_mirror_does_not_delay_the_primary_and_is_bounded() {
    let settings = MirrorSettings {
        request_buffer_bytes: 1024 * 1024,
        timeout: Duration::from_secs(1),
        ..MirrorSettings::default()
    };
    let (gw, _servers) = mirroring_to_a_blackhole("hole", settings).await;
    // Small bodies fit in socket buffers and wait for an answer (timeout); 32 MiB ones cannot
    // (the kernel takes a few MiB per connection) and overflow the 1 MiB budget.
    primary_requests_succeed(&gw, 10, body(10_000)).await;
    primary_requests_succeed(&gw, 3, body(32 * 1024 * 1024)).await;
    gw.settled("hole", 13).await;
    assert_eq!(gw.count("hole", Outcome::Timeout), 10);
    assert_eq!(gw.count("hole", Outcome::DroppedOverflow), 3);
    assert!(gw
        .metrics_text()
        .contains(r#"outcome="dropped_overflow",route="default/web"} 3"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_mirror_does_not_delay_the_primary() {
    let (primary, _p) = servers::recording(200).await;
    let slow = servers::slow().await;
    let gw = Gateway::mirroring_all(primary.addr, "slow", slow.addr).await;
    // 16 × 20 KB: each copy needs ≥ 2 s of reading at 10 KB/s and is answered after 5 s.
    let took = primary_requests_succeed(&gw, 16, body(20_000)).await;
    assert!(
        took < Duration::from_secs(3),
        "the primary finished in {took:?}, well before any slow copy could"
    );
    assert!(gw.engine.inflight() > 0, "slow copies are still in flight");
    gw.all_completed("slow", 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erroring_mirrors_do_not_affect_the_primary() {
    let (primary, _p) = servers::recording(200).await;
    let (failing, _f) = servers::recording(500).await;
    let garbage = servers::garbage().await;
    let reset = servers::reset_after(32 * 1024).await;
    let gw = Gateway::start(
        primary.addr,
        vec![
            mirror("failing", failing.addr, Fraction::ALL),
            mirror("garbage", garbage.addr, Fraction::ALL),
            mirror("reset", reset.addr, Fraction::ALL),
        ],
        MirrorOptions::default(),
    )
    .await;
    primary_requests_succeed(&gw, 12, body(256 * 1024)).await;
    gw.settled("failing", 12).await;
    gw.settled("garbage", 12).await;
    gw.settled("reset", 12).await;
    assert_eq!(gw.count("failing", Outcome::Completed), 12);
    assert_eq!(gw.count("garbage", Outcome::UpstreamError), 12);
    assert_eq!(gw.count("reset", Outcome::UpstreamError), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_cap_skips_copies_and_never_the_primary() {
    let settings = MirrorSettings {
        max_inflight: 4,
        // Long enough that the ten requests are all sent before any slot frees.
        timeout: Duration::from_secs(5),
        ..MirrorSettings::default()
    };
    let (gw, _servers) = mirroring_to_a_blackhole("capped", settings).await;
    // Sequential: the first 4 copies wait for the blackhole; the next 6 are skipped.
    for _ in 0..10 {
        primary_requests_succeed(&gw, 1, body(1000)).await;
    }
    gw.settled("capped", 10).await;
    assert_eq!(gw.count("capped", Outcome::Timeout), 4);
    assert_eq!(gw.count("capped", Outcome::SkippedCapacity), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_abort_mid_upload_aborts_the_mirror() {
    let (primary, _p) = servers::recording(200).await;
    let (shadow, mut reports) = servers::stalling(Duration::ZERO).await;
    let gw = Gateway::mirroring_all(primary.addr, "abort", shadow.addr).await;
    let mut client = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let head = "POST /upload HTTP/1.1\r\nhost: example.com\r\ncontent-length: 10000000\r\n\r\n";
    client.write_all(head.as_bytes()).await.expect("head");
    client
        .write_all(&body(1_000_000))
        .await
        .expect("part of the body");
    let seen = tokio::time::timeout(Duration::from_secs(20), reports.recv())
        .await
        .expect("the mirror got the head");
    assert_eq!(seen, Some(servers::Stalled::Head));
    drop(client);

    gw.settled("abort", 1).await;
    assert_eq!(gw.count("abort", Outcome::AbortedClient), 1);
    let done = tokio::time::timeout(Duration::from_secs(20), reports.recv())
        .await
        .expect("the mirror saw the connection end");
    let Some(servers::Stalled::Done { body, closed }) = done else {
        panic!("unexpected {done:?}");
    };
    assert!(closed);
    assert!(body < 10_000_000, "the mirror saw {body} bytes: incomplete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_mirror_task_or_connection_outlives_the_run() {
    let (primary, _p) = servers::recording(200).await;
    let (shadow, _m) = servers::recording(200).await;
    let gw = Gateway::mirroring_all(primary.addr, "pool", shadow.addr).await;
    primary_requests_succeed(&gw, 40, body(50_000)).await;
    gw.all_completed("pool", 40).await;
    // Copies reuse pooled connections. How many are open at once depends on how far copies
    // trail their primaries (8 concurrent requests), so only reuse itself is asserted.
    assert!(
        shadow.accepted() < 40,
        "{} mirror connections for 40 copies",
        shadow.accepted()
    );
}
