//! Standalone mode's config-to-traffic path: how long a file write takes to become a served
//! route (while an existing route keeps serving under load), and memory at 0 / 1,000 / 5,000 routes.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::paced::{self, request_bytes, Client, Plan};
use super::procfs;
use super::proxies::{self, Tools};
use super::BenchError;
use crate::fixtures::{extra_host, Shape, Topology};

#[derive(Debug)]
pub struct Propagation {
    pub changes: usize,
    /// Milliseconds from the rename that published each change to the first 200 on its route;
    /// changes not served within the deadline are left out and counted in `changes - len`.
    pub delays_ms: Vec<f64>,
    /// The existing route, under constant load throughout.
    pub existing: paced::Outcome,
}

impl Propagation {
    pub fn percentile_ms(&self, q: f64) -> Option<f64> {
        percentile(&self.delays_ms, q)
    }
}

/// Nearest-rank percentile of unsorted values.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len().max(1));
    v.get(rank - 1).copied()
}

/// Adds one route per change (host `rN.bench.test`) by rewriting the config file atomically (write
/// then rename, as config management tools do), and polls the new host until it answers 200.
pub fn measure(
    tools: &Tools,
    primary: SocketAddr,
    dir: &Path,
    changes: usize,
    existing_rate: f64,
) -> Result<Propagation, BenchError> {
    let mut topology = Topology {
        listen: proxies::free_port()?,
        primary,
        mirror: None,
        extra_routes: 0,
        shape: Shape::Hosts,
        revision: 0,
        main_host: Some("bench.test".into()),
    };
    let sluice = proxies::start_sluice(tools, &topology, dir)?;
    let config = dir.join("sluice.yaml");
    let staging = dir.join("sluice.yaml.next");
    let stop = Arc::new(AtomicBool::new(false));
    let plan = Plan {
        target: topology.listen,
        request: Arc::new(request_bytes("GET", "bench.test", "/", 0)),
        rate: existing_rate,
        connections: 10,
        duration: Duration::from_secs(600),
        stop: Some(Arc::clone(&stop)),
    };
    let load = std::thread::spawn(move || paced::run(&plan));

    let deadline = Duration::from_secs(5);
    let mut delays_ms = Vec::with_capacity(changes);
    let mut client = Client::new(topology.listen, Duration::from_secs(2));
    let mut result = Ok(());
    for i in 0..changes {
        topology.extra_routes = i + 1;
        let text = match topology.yaml() {
            Ok(t) => t,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        let probe = request_bytes("GET", &extra_host(i), "/", 0);
        if let Err(e) = std::fs::write(&staging, text)
            .map_err(BenchError::io("writing the next config"))
            .and_then(|()| {
                std::fs::rename(&staging, &config).map_err(BenchError::io("renaming the config"))
            })
        {
            result = Err(e);
            break;
        }
        let written = Instant::now();
        while written.elapsed() < deadline {
            if let Ok(200) = client.send(&probe) {
                delays_ms.push(written.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            std::thread::sleep(Duration::from_micros(250));
        }
        // Let the watcher's debounce window close, so each change is its own reload.
        std::thread::sleep(Duration::from_millis(30));
    }
    stop.store(true, Ordering::Relaxed);
    let existing = load.join().unwrap_or_else(|_| paced::Outcome::empty());
    sluice.stop();
    result?;
    Ok(Propagation {
        changes,
        delays_ms,
        existing,
    })
}

/// Resident memory of Sluice serving `routes` routes (one hostname each): idle after start, and
/// after a request to each of up to 2,000 of them.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub routes: usize,
    pub idle_kib: u64,
    pub after_kib: u64,
    /// After [`SETTLE`] more of light traffic: the allocator returns memory freed by loading the
    /// configuration only on later allocations, once its purge delay (mimalloc: 1 s) has passed,
    /// so the two readings above can still include it.
    pub settled_kib: u64,
}

/// Light traffic after the burst, for the settled reading: longer than the allocator's purge
/// delay, each request on a new connection as many clients would send it (one keep-alive
/// connection recycles the same few allocator pages and never gets to the purge), slow enough
/// to add nothing of its own.
const SETTLE: Duration = Duration::from_secs(2);
const SETTLE_INTERVAL: Duration = Duration::from_millis(10);

pub fn memory(
    tools: &Tools,
    primary: SocketAddr,
    dir: &Path,
    routes: usize,
) -> Result<Memory, BenchError> {
    let topology = Topology {
        listen: proxies::free_port()?,
        primary,
        mirror: None,
        extra_routes: routes,
        shape: Shape::Hosts,
        revision: 0,
        main_host: None,
    };
    let sluice = proxies::start_sluice(tools, &topology, dir)?;
    let pids = sluice.pids();
    let idle_kib = procfs::rss_kib(&pids);
    let mut client = Client::new(topology.listen, Duration::from_secs(2));
    let step = (routes / 2_000).max(1);
    for i in (0..routes).step_by(step) {
        let _ = client.send(&request_bytes("GET", &extra_host(i), "/", 0));
    }
    let after_kib = procfs::rss_kib(&pids);
    let settle_until = Instant::now() + SETTLE;
    let mut i = 0;
    while Instant::now() < settle_until {
        let mut fresh = Client::new(topology.listen, Duration::from_secs(2));
        let _ = fresh.send(&request_bytes(
            "GET",
            &extra_host(i % routes.max(1)),
            "/",
            0,
        ));
        i += 1;
        std::thread::sleep(SETTLE_INTERVAL);
    }
    let settled_kib = procfs::rss_kib(&pids);
    sluice.stop();
    Ok(Memory {
        routes,
        idle_kib,
        after_kib,
        settled_kib,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[3.0], 0.99), Some(3.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
