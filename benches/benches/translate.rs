//! `translate` (resources -> snapshot + statuses) at 100 / 1,000 / 10,000 routes.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_benches::fixtures::{Shape, Topology};
use sluice_controller::translate::{translate, Timestamp, TranslateOptions};

fn translate_routes(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    let options = TranslateOptions::default();
    for routes in [100, 1_000, 10_000] {
        let resources = Topology {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            primary: SocketAddr::from(([127, 0, 0, 1], 9000)),
            mirror: Some(SocketAddr::from(([127, 0, 0, 1], 9001))),
            extra_routes: routes,
            shape: Shape::Hosts,
            revision: 0,
            main_host: None,
        }
        .resources()
        .expect("generated fixtures decode");
        group.throughput(Throughput::Elements(routes as u64));
        group.bench_with_input(BenchmarkId::from_parameter(routes), &resources, |b, r| {
            b.iter(|| black_box(translate(r, &options, Timestamp::UNIX_EPOCH)))
        });
    }
    group.finish();
}

criterion_group!(benches, translate_routes);
criterion_main!(benches);
