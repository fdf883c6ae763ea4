//! The mirror engine on its own, driven the way the proxy phases drive it, against real sockets.

use sluice_test_support::mirror::every_request_to;
use sluice_test_support::{servers, within};

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora_http::RequestHeader;
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_controller::snapshot::{Backend, BackendProtocol, Fraction, Mirror};
use sluice_gateway::mirror::{
    Decision, MirrorEngine, MirrorMetrics, MirrorOptions, MirrorSet, Outcome, Pace,
};
use tokio::sync::mpsc::UnboundedReceiver;

const ROUTE: &str = "default/web";
const LIMIT: Duration = Duration::from_secs(30);

fn engine(options: MirrorOptions) -> Arc<MirrorEngine> {
    let registry = prometheus::Registry::new();
    let metrics = MirrorMetrics::register(&registry).expect("register");
    MirrorEngine::new(options, metrics)
}

fn post(len: Option<usize>) -> RequestHeader {
    let mut h = RequestHeader::build("POST", b"/upload/a%20b?x=1&y=2", None).expect("head");
    h.append_header("host", "example.com").expect("header");
    h.append_header("user-agent", "curl/8").expect("header");
    h.append_header("connection", "keep-alive").expect("header");
    h.append_header("expect", "100-continue").expect("header");
    match len {
        Some(n) => h
            .append_header("content-length", n.to_string())
            .expect("header"),
        None => h
            .append_header("transfer-encoding", "chunked")
            .expect("header"),
    };
    h
}

fn get() -> RequestHeader {
    let mut h = RequestHeader::build("GET", b"/ping", None).expect("head");
    h.append_header("host", "example.com").expect("header");
    h
}

/// A set that has started a copy of `head` to `mirror` and seen the first upstream attempt.
fn attempting(
    engine: &Arc<MirrorEngine>,
    mirror: &Mirror,
    head: &RequestHeader,
    has_body: bool,
) -> MirrorSet {
    let mut set = MirrorSet::new(engine.clone());
    set.start(mirror, head, ROUTE, has_body);
    set.on_upstream_attempt();
    set
}

/// The next request the recording mirror reports, waited for within [`LIMIT`].
async fn mirrored(received: &mut UnboundedReceiver<servers::Received>) -> servers::Received {
    within("the mirrored request", LIMIT, received.recv())
        .await
        .expect("request")
}

fn body(len: usize) -> Bytes {
    Bytes::from((0..len).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>())
}

/// Feeds the whole body at once, as fast as the caller can; returns how often it was told to yield.
fn feed(set: &mut MirrorSet, data: &Bytes, chunk: usize) -> usize {
    let mut yields = 0;
    let mut at = 0;
    while at < data.len() {
        let end = (at + chunk).min(data.len());
        if set.on_body_chunk(Some(&data.slice(at..end)), false) == Pace::Yield {
            yields += 1;
        }
        at = end;
    }
    let _ = set.on_body_chunk(None, true);
    yields
}

/// Feeds like a primary exactly as fast as the mirror: never more than 1 MiB ahead of it.
async fn feed_paced(engine: &MirrorEngine, set: &mut MirrorSet, data: &Bytes, chunk: usize) {
    let mut at = 0;
    while at < data.len() {
        let end = (at + chunk).min(data.len());
        let _ = set.on_body_chunk(Some(&data.slice(at..end)), false);
        at = end;
        while engine.buffered_bytes() > 1024 * 1024 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let _ = set.on_body_chunk(None, true);
}

/// Waits until the engine has no copy in flight and `outcome` was counted `n` times.
async fn settled(engine: &MirrorEngine, mirror: &Mirror, outcome: Outcome, n: u64) {
    let name = mirror.backend.name.clone();
    within("the mirror outcome", LIMIT, async {
        loop {
            if engine.inflight() == 0 && engine.metrics().count(ROUTE, &name, outcome) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(engine.metrics().count(ROUTE, &name, outcome), n);
    assert_eq!(engine.buffered_bytes(), 0, "no body bytes left queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_mirror_receives_the_request_intact() {
    let (server, mut received) = servers::recording(200).await;
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(server.addr);
    let data = body(8 * 1024 * 1024 + 123);
    let mut set = MirrorSet::new(engine.clone());
    let head = post(Some(data.len()));
    assert_eq!(set.start(&mirror, &head, ROUTE, true), Decision::Queued);
    set.launch(|h| {
        h.insert_header("x-forwarded-for", "10.1.2.3")
            .expect("header");
    });
    within(
        "feeding",
        LIMIT,
        feed_paced(&engine, &mut set, &data, 64 * 1024),
    )
    .await;

    let got = mirrored(&mut received).await;
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/upload/a%20b?x=1&y=2");
    assert_eq!(got.headers["host"], "example.com");
    assert_eq!(got.headers["user-agent"], "curl/8");
    assert_eq!(got.headers["x-forwarded-for"], "10.1.2.3");
    assert_eq!(
        got.headers["content-length"],
        data.len().to_string().as_str()
    );
    assert!(got.headers.get("expect").is_none());
    assert!(got.complete);
    assert_eq!(got.body_len, data.len() as u64);
    assert_eq!(got.sha256, servers::sha256(&data));
    settled(&engine, &mirror, Outcome::Completed, 1).await;
    let bytes = engine
        .metrics()
        .bytes
        .with_label_values(&[ROUTE, &mirror.backend.name])
        .get();
    assert_eq!(bytes, data.len() as u64);
    assert_eq!(
        engine
            .metrics()
            .responses
            .with_label_values(&[ROUTE, &mirror.backend.name, "2xx"])
            .get(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_of_unknown_length_is_streamed_chunked() {
    let (server, mut received) = servers::recording(200).await;
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(server.addr);
    let data = body(300_000);
    let mut set = attempting(&engine, &mirror, &post(None), true);
    let _ = feed(&mut set, &data, 7_000);

    let got = mirrored(&mut received).await;
    assert_eq!(got.headers["transfer-encoding"], "chunked");
    assert!(got.complete);
    assert_eq!(got.sha256, servers::sha256(&data));
    settled(&engine, &mirror, Outcome::Completed, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodiless_request_is_sent_without_any_body_event() {
    let (server, mut received) = servers::recording(204).await;
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(server.addr);
    let set = attempting(&engine, &mirror, &get(), false);
    // The primary may fail to connect: request_body_filter never runs, the set is dropped.
    drop(set);

    let got = mirrored(&mut received).await;
    assert_eq!(got.method, "GET");
    assert_eq!(got.path, "/ping");
    assert_eq!(got.body_len, 0);
    settled(&engine, &mirror, Outcome::Completed, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_replay_of_the_body_is_not_sent_twice() {
    let (server, mut received) = servers::recording(200).await;
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(server.addr);
    let data = body(200_000);
    let mut set = attempting(&engine, &mirror, &post(Some(data.len())), true);
    let _ = set.on_body_chunk(Some(&data.slice(0..30_000)), false);
    let _ = set.on_body_chunk(Some(&data.slice(30_000..50_000)), false);
    // The first attempt failed; Pingora replays its retry buffer in one piece, then continues.
    set.on_upstream_attempt();
    let _ = set.on_body_chunk(Some(&data.slice(0..50_000)), false);
    let _ = set.on_body_chunk(Some(&data.slice(50_000..)), true);

    let got = mirrored(&mut received).await;
    assert!(got.complete);
    assert_eq!(got.body_len, data.len() as u64);
    assert_eq!(got.sha256, servers::sha256(&data));
    settled(&engine, &mirror, Outcome::Completed, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_that_falls_behind_is_aborted_and_sees_an_incomplete_body() {
    let (server, mut reports) = servers::stalling(Duration::from_millis(500)).await;
    let engine = engine(MirrorOptions {
        settings: MirrorSettings {
            request_buffer_bytes: 256 * 1024,
            ..MirrorSettings::default()
        },
        ..MirrorOptions::default()
    });
    let mirror = every_request_to(server.addr);
    let data = body(64 * 1024 * 1024);
    let mut set = attempting(&engine, &mirror, &post(Some(data.len())), true);
    let head = within("the head", LIMIT, reports.recv()).await;
    assert_eq!(head, Some(servers::Stalled::Head));
    let started = Instant::now();
    let yields = feed(&mut set, &data, 64 * 1024);
    // Feeding never waits for the mirror; it is told to yield while the copy lags.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(yields > 0);
    assert_eq!(set.streaming(), 0);

    settled(&engine, &mirror, Outcome::DroppedOverflow, 1).await;
    let report = within("the stalled mirror's report", LIMIT, reports.recv()).await;
    let Some(servers::Stalled::Done { body: got, closed }) = report else {
        panic!("unexpected report {report:?}");
    };
    assert!(closed, "the mirror connection is closed");
    assert!(
        got < data.len() as u64,
        "the mirror saw {got} bytes: incomplete"
    );
    assert!(engine.buffered_bytes() <= 256 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_byte_cap_bounds_all_copies_together() {
    let hole = servers::blackhole().await;
    let engine = engine(MirrorOptions {
        settings: MirrorSettings {
            request_buffer_bytes: 1024 * 1024,
            max_buffered_bytes: 1024 * 1024 + 512 * 1024,
            ..MirrorSettings::default()
        },
        ..MirrorOptions::default()
    });
    let mirror = every_request_to(hole.addr);
    let data = body(64 * 1024 * 1024);
    let mut sets = Vec::new();
    for _ in 0..3 {
        let mut set = attempting(&engine, &mirror, &post(Some(data.len())), true);
        let _ = feed(&mut set, &data, 64 * 1024);
        assert!(engine.buffered_bytes() <= 1024 * 1024 + 512 * 1024);
        sets.push(set);
    }
    settled(&engine, &mirror, Outcome::DroppedOverflow, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inflight_cap_skips_new_copies() {
    let hole = servers::blackhole().await;
    let engine = engine(MirrorOptions {
        settings: MirrorSettings {
            max_inflight: 2,
            timeout: Duration::from_millis(300),
            ..MirrorSettings::default()
        },
        ..MirrorOptions::default()
    });
    let mirror = every_request_to(hole.addr);
    let mut sets: Vec<MirrorSet> = (0..3).map(|_| MirrorSet::new(engine.clone())).collect();
    for set in &mut sets {
        assert_eq!(set.start(&mirror, &get(), ROUTE, false), Decision::Queued);
        set.on_upstream_attempt();
    }
    assert_eq!(engine.metrics().inflight.get(), 2);
    let name = &mirror.backend.name;
    assert_eq!(
        engine
            .metrics()
            .count(ROUTE, name, Outcome::SkippedCapacity),
        1
    );
    // The blackhole never answers: both copies time out and free their slots.
    settled(&engine, &mirror, Outcome::Timeout, 2).await;
    assert_eq!(engine.metrics().inflight.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_abort_aborts_the_copy_mid_body() {
    let (server, mut reports) = servers::stalling(Duration::ZERO).await;
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(server.addr);
    let data = body(1024 * 1024);
    let mut set = attempting(&engine, &mirror, &post(Some(data.len())), true);
    let head = within("the head", LIMIT, reports.recv()).await;
    assert_eq!(head, Some(servers::Stalled::Head));
    let _ = set.on_body_chunk(Some(&data.slice(..100_000)), false);
    drop(set);

    settled(&engine, &mirror, Outcome::AbortedClient, 1).await;
    let report = within("the mirror's report", LIMIT, reports.recv()).await;
    let Some(servers::Stalled::Done { body: got, closed }) = report else {
        panic!("unexpected report {report:?}");
    };
    assert!(closed);
    assert!(
        got < data.len() as u64,
        "the mirror must not see a complete body"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_mirror_is_a_connect_error() {
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(servers::down().await);
    let mut set = attempting(&engine, &mirror, &post(Some(5)), true);
    let _ = set.on_body_chunk(Some(&Bytes::from_static(b"hello")), true);
    settled(&engine, &mirror, Outcome::ConnectError, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_without_endpoints_is_a_connect_error() {
    let engine = engine(MirrorOptions::default());
    let mirror = Mirror {
        backend: Arc::new(Backend::new(
            "default/empty:80".into(),
            vec![],
            BackendProtocol::Http1,
        )),
        fraction: Fraction::ALL,
        policy: None,
    };
    let mut set = MirrorSet::new(engine.clone());
    assert_eq!(set.start(&mirror, &get(), ROUTE, false), Decision::Queued);
    set.on_upstream_attempt();
    settled(&engine, &mirror, Outcome::ConnectError, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erroring_mirrors_are_counted() {
    let engine = engine(MirrorOptions::default());
    let data = body(512 * 1024);

    let (failing, _rx) = servers::recording(500).await;
    let garbage = servers::garbage().await;
    let reset = servers::reset_after(64 * 1024).await;
    let cases = [
        (every_request_to(failing.addr), Outcome::Completed),
        (every_request_to(garbage.addr), Outcome::UpstreamError),
        (every_request_to(reset.addr), Outcome::UpstreamError),
    ];
    for (mirror, expected) in &cases {
        let mut set = attempting(&engine, mirror, &post(Some(data.len())), true);
        let _ = feed(&mut set, &data, 64 * 1024);
        settled(&engine, mirror, *expected, 1).await;
    }
    let five = engine
        .metrics()
        .responses
        .with_label_values(&[ROUTE, &cases[0].0.backend.name, "5xx"])
        .get();
    assert_eq!(five, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_and_connect_are_skipped() {
    let (server, _rx) = servers::recording(200).await;
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(server.addr);
    let mut ws = get();
    ws.append_header("connection", "upgrade").expect("header");
    ws.append_header("upgrade", "websocket").expect("header");
    let connect = RequestHeader::build("CONNECT", b"example.com:443", None).expect("head");
    for head in [ws, connect] {
        let mut set = MirrorSet::new(engine.clone());
        assert_eq!(
            set.start(&mirror, &head, ROUTE, false),
            Decision::Skipped(Outcome::SkippedUpgrade)
        );
    }
    settled(&engine, &mirror, Outcome::SkippedUpgrade, 2).await;
    assert_eq!(server.accepted(), 0);
}

// One thread: Pingora 0.9 hands a pooled connection back by unlocking it before it drops
// its own handle, so on two threads a reuse can lose that race and open a new one.
#[tokio::test]
async fn completed_exchanges_reuse_pooled_connections() {
    let (server, mut received) = servers::recording(200).await;
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(server.addr);
    for i in 1..=5u64 {
        let _set = attempting(&engine, &mirror, &get(), false);
        mirrored(&mut received).await;
        settled(&engine, &mirror, Outcome::Completed, i).await;
    }
    assert_eq!(
        server.accepted(),
        1,
        "one pooled connection served all copies"
    );
}

// One thread, for the reason above.
#[tokio::test]
async fn the_pool_keeps_no_more_idle_connections_than_its_size() {
    const WAVE: usize = 4;
    for (pool_size, expected) in [(2, WAVE + 2), (MirrorOptions::default().pool_size, WAVE)] {
        let server = servers::in_waves(WAVE).await;
        let engine = engine(MirrorOptions {
            pool_size,
            ..MirrorOptions::default()
        });
        let mirror = every_request_to(server.addr);
        for wave in 1..=2u64 {
            let _sets: Vec<MirrorSet> = (0..WAVE)
                .map(|_| attempting(&engine, &mirror, &get(), false))
                .collect();
            settled(&engine, &mirror, Outcome::Completed, wave * WAVE as u64).await;
        }
        assert_eq!(
            server.accepted(),
            expected,
            "pool of {pool_size}: the second wave reuses what the pool kept"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_fraction_never_mirrors() {
    let (server, _rx) = servers::recording(200).await;
    let engine = engine(MirrorOptions::default());
    let mut mirror = every_request_to(server.addr);
    mirror.fraction = Fraction {
        numerator: 0,
        denominator: 100,
    };
    let mut set = MirrorSet::new(engine.clone());
    for _ in 0..100 {
        assert_eq!(
            set.start(&mirror, &get(), ROUTE, false),
            Decision::NotSampled
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_requests_the_gateway_answers_are_never_sent() {
    let (server, _rx) = servers::recording(200).await;
    let engine = engine(MirrorOptions::default());
    let mirror = every_request_to(server.addr);
    let mut set = MirrorSet::new(engine.clone());
    assert_eq!(set.start(&mirror, &get(), ROUTE, false), Decision::Queued);
    // A later filter redirected: no upstream attempt, the request is over.
    set.on_primary_done();
    drop(set);
    assert_eq!(engine.inflight(), 0);
    for outcome in Outcome::ALL {
        assert_eq!(
            engine.metrics().count(ROUTE, &mirror.backend.name, outcome),
            0
        );
    }
    assert_eq!(server.accepted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_mirror_backend_gets_the_copy_over_http2() {
    let (server, mut received) = servers::recording_h2c().await;
    let engine = engine(MirrorOptions::default());
    let mirror = Mirror {
        backend: Arc::new(Backend::new(
            "default/h2c:80".into(),
            vec![server.addr],
            BackendProtocol::H2c,
        )),
        fraction: Fraction::ALL,
        policy: None,
    };
    let data = body(200_000);
    let mut set = attempting(&engine, &mirror, &post(Some(data.len())), true);
    let _ = feed(&mut set, &data, 16 * 1024);

    let got = mirrored(&mut received).await;
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/upload/a%20b?x=1&y=2");
    assert!(got.complete);
    assert_eq!(got.sha256, servers::sha256(&data));
    settled(&engine, &mirror, Outcome::Completed, 1).await;
}
