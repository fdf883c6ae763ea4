//! Sluice's benchmarks: generated configurations, and the load benchmark that runs Sluice, nginx
//! and Envoy side by side (see `benches/README.md`).

pub mod fixtures;
pub mod load;
