//! A MirrorPolicy's `request` section shapes the copies of the rule it targets, through the real
//! proxy app: each field changes the copy as documented, never the primary request, and never the
//! copies of another rule; its timeout and byte budget end copies with the right outcome, and
//! the byte budget sets when the proxy yields to that copy.

use sluice_test_support::mirror as gateway;
use sluice_test_support::servers::{self, Received};
use sluice_test_support::{until, within};

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gateway::{backend, backend_speaking, mirror, mirror_with_policy, Gateway, Rule};
use pingora_http::RequestHeader;
use sluice_controller::mirror_settings::MirrorSettings;
use sluice_controller::snapshot::{
    BackendProtocol, CopyHost, CopyShape, Fraction, Mirror, MirrorPolicy,
};
use sluice_gateway::mirror::{
    MirrorEngine, MirrorMetrics, MirrorOptions, MirrorSet, Outcome, Pace,
};
use sluice_test_support::proxy::headers;
use tokio::sync::mpsc::UnboundedReceiver;

const LIMIT: Duration = Duration::from_secs(60);
const MIRROR: &str = "shadow";

fn policy(request: CopyShape) -> MirrorPolicy {
    MirrorPolicy {
        name: "default/shape".into(),
        request,
        compare: None,
    }
}

/// Sends `request` and checks the primary answered 200.
async fn ok(what: &str, request: reqwest::RequestBuilder) {
    let resp = within(what, LIMIT, request.send()).await.expect("response");
    assert_eq!(resp.status(), 200, "{what}");
}

/// The next request a recording server reports, waited for within [`LIMIT`].
async fn received(what: &str, reports: &mut UnboundedReceiver<Received>) -> Received {
    within(what, LIMIT, reports.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: the server stopped reporting"))
}

fn values<'a>(r: &'a Received, name: &str) -> Vec<&'a str> {
    r.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect()
}

/// A primary and a mirror that record what they receive, and a gateway copying every request
/// to the mirror with `policy` over `settings`.
struct Shaped {
    gw: Gateway,
    at_primary: UnboundedReceiver<Received>,
    at_mirror: UnboundedReceiver<Received>,
    _servers: [servers::Server; 2],
}

impl Shaped {
    async fn start(policy: MirrorPolicy, settings: MirrorSettings) -> Shaped {
        let (primary, at_primary) = servers::recording(200).await;
        let (shadow, at_mirror) = servers::recording(200).await;
        let filters = vec![mirror_with_policy(backend(MIRROR, shadow.addr), policy)];
        let options = MirrorOptions {
            settings,
            ..MirrorOptions::default()
        };
        let gw = Gateway::start(primary.addr, filters, options).await;
        Shaped {
            gw,
            at_primary,
            at_mirror,
            _servers: [primary, shadow],
        }
    }

    /// What the primary and the mirror received for one request.
    async fn both(&mut self) -> (Received, Received) {
        let p = received("primary record", &mut self.at_primary).await;
        let m = received("mirror record", &mut self.at_mirror).await;
        self.gw.all_completed(MIRROR, 1).await;
        (p, m)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rewrite_and_headers_change_the_copy_not_the_primary() {
    let shape = policy(CopyShape {
        host: Some(CopyHost::Rewrite("shadow.test".into())),
        headers: Some(headers(
            &[("x-shadow", "1")],
            &[("x-multi", "mirror")],
            &["x-debug"],
        )),
        ..CopyShape::default()
    });
    let flags = MirrorSettings {
        headers: headers(&[("x-flag", "1")], &[], &[]),
        ..MirrorSettings::default()
    };
    let mut t = Shaped::start(shape, flags).await;
    ok(
        "the primary",
        gateway::client()
            .get(t.gw.url("/shape?q=1"))
            .header("host", "shop.example.com:8080")
            .header("x-debug", "on")
            .header("x-multi", "client"),
    )
    .await;
    let (p, m) = t.both().await;
    assert_eq!(values(&m, "host"), ["shadow.test:8080"], "the port is kept");
    assert_eq!(values(&m, "x-shadow"), ["1"]);
    assert_eq!(values(&m, "x-multi"), ["client", "mirror"]);
    assert!(values(&m, "x-debug").is_empty());
    assert!(
        values(&m, "x-flag").is_empty(),
        "the policy's headers replace the flag's"
    );
    assert_eq!(m.path, "/shape?q=1");
    // The primary got the request as the client sent it.
    assert_eq!(values(&p, "host"), ["shop.example.com:8080"]);
    assert_eq!(values(&p, "x-debug"), ["on"]);
    assert_eq!(values(&p, "x-multi"), ["client"]);
    assert!(values(&p, "x-shadow").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_host_suffix_replaces_the_flag_for_its_copies() {
    let shape = policy(CopyShape {
        host: Some(CopyHost::Suffix("-policy".into())),
        ..CopyShape::default()
    });
    let flags = MirrorSettings {
        host_suffix: Some("-flag".into()),
        ..MirrorSettings::default()
    };
    let mut t = Shaped::start(shape, flags).await;
    ok(
        "the primary",
        gateway::client()
            .get(t.gw.url("/suffix"))
            .header("host", "shop.example.com:8080"),
    )
    .await;
    let (p, m) = t.both().await;
    assert_eq!(values(&m, "host"), ["shop.example.com-policy:8080"]);
    assert_eq!(values(&p, "host"), ["shop.example.com:8080"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_reach_the_mirror_with_strip_credentials() {
    let shape = policy(CopyShape {
        strip_credentials: true,
        ..CopyShape::default()
    });
    let mut t = Shaped::start(shape, MirrorSettings::default()).await;
    ok(
        "the primary",
        gateway::client()
            .post(t.gw.url("/login"))
            .header("authorization", "Bearer live-token")
            .header("proxy-authorization", "Basic cHJveHk6cw==")
            .header("cookie", "session=1")
            .header("cookie", "theme=dark")
            .body("user=a"),
    )
    .await;
    let (p, m) = t.both().await;
    for name in ["authorization", "proxy-authorization", "cookie"] {
        assert!(values(&m, name).is_empty(), "{name} reached the mirror");
    }
    assert_eq!(m.sha256, servers::sha256(b"user=a"), "the body is copied");
    assert_eq!(values(&p, "authorization"), ["Bearer live-token"]);
    assert_eq!(values(&p, "cookie").join("; "), "session=1; theme=dark");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_on_one_rule_leaves_another_rules_copies_untouched() {
    let (primary, _p) = servers::recording(200).await;
    let (shadow, mut at_mirror) = servers::recording(200).await;
    let shape = policy(CopyShape {
        host: Some(CopyHost::Rewrite("shadow.test".into())),
        headers: Some(headers(&[("x-shadow", "1")], &[], &[])),
        strip_credentials: true,
        ..CopyShape::default()
    });
    let rules = vec![
        Rule {
            route: "shaped",
            prefix: "/shaped",
            filters: vec![mirror_with_policy(backend(MIRROR, shadow.addr), shape)],
        },
        Rule {
            route: "plain",
            prefix: "/plain",
            filters: vec![mirror(MIRROR, shadow.addr, Fraction::ALL)],
        },
    ];
    let gw = Gateway::start_rules(primary.addr, rules, MirrorOptions::default()).await;
    let send = |path: &str| {
        gateway::client()
            .get(gw.url(path))
            .header("host", "shop.example.com")
            .header("cookie", "session=1")
    };
    // One at a time, so the mirror's reports come in the order sent.
    ok("the plain rule", send("/plain")).await;
    let plain = received("plain copy", &mut at_mirror).await;
    ok("the shaped rule", send("/shaped")).await;
    let shaped = received("shaped copy", &mut at_mirror).await;

    assert_eq!(plain.path, "/plain");
    assert_eq!(values(&plain, "host"), ["shop.example.com"]);
    assert_eq!(values(&plain, "cookie"), ["session=1"]);
    assert!(values(&plain, "x-shadow").is_empty());
    assert_eq!(shaped.path, "/shaped");
    assert_eq!(values(&shaped, "host"), ["shadow.test"]);
    assert!(values(&shaped, "cookie").is_empty());
    assert_eq!(values(&shaped, "x-shadow"), ["1"]);
    for route in ["default/plain", "default/shaped"] {
        until(route, LIMIT, || {
            (gw.count_on(route, MIRROR, Outcome::Completed) == 1).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_copy_carries_the_rewritten_host_as_its_authority() {
    let (primary, _p) = servers::recording_h2c().await;
    let (shadow, mut at_mirror) = servers::recording_h2c().await;
    let shape = policy(CopyShape {
        host: Some(CopyHost::Rewrite("shadow.test".into())),
        ..CopyShape::default()
    });
    let to_mirror = backend_speaking(MIRROR, shadow.addr, BackendProtocol::H2c);
    let filters = vec![mirror_with_policy(to_mirror, shape)];
    let gw = Gateway::start_grpc(primary.addr, filters, MirrorOptions::default()).await;
    // The h2c client names the gateway in `:authority`, `127.0.0.1:{port}`.
    ok(
        "the primary",
        sluice_test_support::proxy::h2c_client().get(gw.url("/h2")),
    )
    .await;
    let m = received("mirror record", &mut at_mirror).await;
    let port = gw.addr.port();
    assert_eq!(m.authority, Some(format!("shadow.test:{port}")));
    assert!(
        values(&m, "host")
            .iter()
            .all(|h| *h == format!("shadow.test:{port}")),
        "no Host contradicts the authority"
    );
    gw.all_completed(MIRROR, 1).await;
}

/// A gateway copying every request, with `shape`, to a mirror that accepts and never reads.
async fn mirroring_to_a_blackhole(shape: CopyShape) -> (Gateway, [servers::Server; 2]) {
    let (primary, _p) = servers::recording(200).await;
    let hole = servers::blackhole().await;
    let filters = vec![mirror_with_policy(
        backend(MIRROR, hole.addr),
        policy(shape),
    )];
    // Flags far above what the policy sets: only the policy's values can end the copies in time.
    let settings = MirrorSettings {
        timeout: Duration::from_secs(600),
        request_buffer_bytes: 64 * 1024 * 1024,
        ..MirrorSettings::default()
    };
    let options = MirrorOptions {
        settings,
        ..MirrorOptions::default()
    };
    let gw = Gateway::start(primary.addr, filters, options).await;
    (gw, [primary, hole])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_timeout_ends_its_copies_as_timeout() {
    let (gw, _servers) = mirroring_to_a_blackhole(CopyShape {
        timeout: Some(Duration::from_millis(200)),
        ..CopyShape::default()
    })
    .await;
    for _ in 0..3 {
        ok(
            "the primary",
            gateway::client().post(gw.url("/slow")).body("small"),
        )
        .await;
    }
    gw.settled(MIRROR, 3).await;
    assert_eq!(gw.count(MIRROR, Outcome::Timeout), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_byte_budget_aborts_its_copies_as_dropped_overflow() {
    let (gw, _servers) = mirroring_to_a_blackhole(CopyShape {
        max_body_bytes: Some(64 * 1024),
        timeout: Some(Duration::from_secs(1)),
        ..CopyShape::default()
    })
    .await;
    // 32 MiB cannot all wait in the kernel's socket buffers (a few MiB per connection), so the
    // copy queues more than the policy's 64 KiB; the flag's 64 MiB would have held it all.
    let data = Bytes::from(vec![7u8; 32 * 1024 * 1024]);
    ok(
        "the primary",
        gateway::client().post(gw.url("/upload")).body(data),
    )
    .await;
    gw.settled(MIRROR, 1).await;
    assert_eq!(gw.count(MIRROR, Outcome::DroppedOverflow), 1);
    assert!(gw
        .metrics_text()
        .contains(r#"outcome="dropped_overflow",route="default/web"} 1"#));
}

/// A single-threaded runtime: no copy task runs before the test awaits, so what was queued for a
/// copy stays queued while the pace is checked.
#[tokio::test]
async fn a_copy_yields_at_an_eighth_of_its_own_byte_budget() {
    let hole = servers::blackhole().await;
    let settings = MirrorSettings {
        request_buffer_bytes: 64 * 1024 * 1024,
        ..MirrorSettings::default()
    };
    let options = MirrorOptions {
        settings,
        ..MirrorOptions::default()
    };
    let metrics = MirrorMetrics::register(&prometheus::Registry::new()).expect("register");
    let engine = MirrorEngine::new(options, metrics);
    let small = policy(CopyShape {
        max_body_bytes: Some(64 * 1024),
        ..CopyShape::default()
    });
    let mut head = RequestHeader::build("POST", b"/up", None).expect("head");
    head.append_header("content-length", "1000000")
        .expect("header");
    let chunk = Bytes::from(vec![1u8; 16 * 1024]);
    let pace = |policy: Option<Arc<MirrorPolicy>>| {
        let mirror = Mirror {
            backend: backend(MIRROR, hole.addr),
            fraction: Fraction::ALL,
            policy,
        };
        let mut set = MirrorSet::new(engine.clone());
        set.start(&mirror, &head, gateway::ROUTE, true);
        set.on_upstream_attempt();
        set.on_body_chunk(Some(&chunk), false)
    };
    // 16 KiB queued: far below the flag's threshold, at the policy's (64 KiB / 8).
    assert_eq!(pace(None), Pace::Continue);
    assert_eq!(pace(Some(Arc::new(small))), Pace::Yield);
}
