//! Snapshot swap: what a request pays to load the live snapshot, and what a publish costs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_controller::publish::Store;
use sluice_controller::snapshot::Snapshot;

fn store(c: &mut Criterion) {
    let store = Store::new();
    store.publish(Snapshot::default());
    c.bench_function("store/load", |b| b.iter(|| black_box(store.load())));
    c.bench_function("store/publish", |b| {
        b.iter(|| black_box(store.publish(Snapshot::default())))
    });
    // A reader holding the old snapshot while a publish swaps in the next one: the publish must
    // not wait for it.
    c.bench_function("store/publish_while_held", |b| {
        b.iter(|| {
            let held = store.load();
            let generation = store.publish(Snapshot::default());
            black_box((held, generation))
        })
    });
}

criterion_group!(benches, store);
criterion_main!(benches);
