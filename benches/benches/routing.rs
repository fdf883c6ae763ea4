//! Route lookup with 10 / 1,000 / 10,000 routes, for both ways routes spread: one hostname each
//! (the exact-host map) and one path prefix each on a single host (the entry list).
//!
//! Measured as the proxy looks up: through the segment index each `RouteGroup` of the snapshot
//! carries, built by translate before the snapshot is published. `paths-linear` is the unindexed
//! scan of the same listener's table, kept as the reference the index beats.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, Method};
use sluice_benches::fixtures::{extra_host, extra_path, Shape, Topology};
use sluice_controller::snapshot::Snapshot;
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};
use sluice_gateway::routing::{find_entry_linear, lookup, Lookup, RequestView};

const LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8000);

fn snapshot(routes: usize, shape: Shape) -> Snapshot {
    let resources = Topology {
        listen: LISTEN,
        primary: SocketAddr::from(([127, 0, 0, 1], 9000)),
        mirror: None,
        extra_routes: routes,
        shape,
        revision: 0,
        main_host: None,
    }
    .resources()
    .expect("generated fixtures decode");
    translate(
        &resources,
        &TranslateOptions::default(),
        Timestamp::UNIX_EPOCH,
    )
    .snapshot
}

fn lookups(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let method = Method::GET;
    let mut group = c.benchmark_group("routing");
    for routes in [10, 1_000, 10_000] {
        for shape in [Shape::Hosts, Shape::Paths] {
            let snap = snapshot(routes, shape);
            // The last route generated: the worst case for anything that scans in order.
            let (host, path) = match shape {
                Shape::Hosts => (extra_host(routes - 1), "/a/b".to_string()),
                Shape::Paths => (
                    "bench.test".to_string(),
                    format!("{}/x", extra_path(routes - 1)),
                ),
            };
            let req = RequestView {
                host: &host,
                path: &path,
                query: None,
                method: &method,
                headers: &headers,
            };
            match lookup(&snap, LISTEN, &req) {
                Lookup::Matched(m) => assert_ne!(
                    m.entry.route.name, "main",
                    "the request must hit its own route, not the catch-all"
                ),
                other => panic!("generated request does not route: {other:?}"),
            }
            let id = BenchmarkId::new(format!("{shape:?}").to_lowercase(), routes);
            group.bench_with_input(id, &req, |b, req| {
                b.iter(|| black_box(matches!(lookup(&snap, LISTEN, req), Lookup::Matched(_))))
            });
            if shape == Shape::Paths {
                let id = BenchmarkId::new("paths-linear", routes);
                let table = snap
                    .bind_for(LISTEN)
                    .and_then(|b| b.listener_for(&host))
                    .map(|l| &l.routes)
                    .expect("the generated request has a listener");
                group.bench_with_input(id, &req, |b, req| {
                    b.iter(|| black_box(find_entry_linear(table, req).is_some()))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
