//! The measurement loop: for each repeat, each mirror mode, each proxy (order rotated per repeat),
//! start the proxy fresh, warm it up, then run every workload and record one sample each.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;
use super::paced::{self, request_bytes, Plan};
use super::procfs;
use super::proxies::{self, Kind, Tools};
use super::wrk::{self, WrkLoad};
use super::BenchError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MirrorMode {
    None,
    Fast,
    /// The mirror answers after 1 s.
    Slow,
    /// The mirror accepts and never reads.
    Blackhole,
}

impl fmt::Display for MirrorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MirrorMode::None => "none",
            MirrorMode::Fast => "fast",
            MirrorMode::Slow => "1 s",
            MirrorMode::Blackhole => "blackhole",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Workload {
    /// Closed loop with wrk.
    Closed(WrkLoadKey),
    /// Constant rate (GET) with the paced generator.
    Paced,
}

/// `WrkLoad` with an order, for use as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WrkLoadKey {
    pub body: usize,
    pub connections: u32,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::Closed(w) if w.body == 0 => write!(f, "GET, {} conns", w.connections),
            Workload::Closed(w) => write!(f, "POST {} KiB, {} conns", w.body / 1024, w.connections),
            Workload::Paced => f.write_str("GET at fixed rate"),
        }
    }
}

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    pub warmup: Duration,
    pub repeats: usize,
    pub kinds: Vec<Kind>,
    pub modes: Vec<MirrorMode>,
    pub paced_rate: f64,
    pub paced_connections: usize,
    pub load_core: u32,
    pub workdir: PathBuf,
}

/// The backends every proxy forwards to, shared by the whole run.
#[derive(Debug, Clone)]
pub struct Backends {
    pub primary: Backend,
    pub fast_mirror: Backend,
    pub slow_mirror: Backend,
    pub blackhole: Backend,
}

impl Backends {
    fn mirror(&self, mode: MirrorMode) -> Option<&Backend> {
        match mode {
            MirrorMode::None => None,
            MirrorMode::Fast => Some(&self.fast_mirror),
            MirrorMode::Slow => Some(&self.slow_mirror),
            MirrorMode::Blackhole => Some(&self.blackhole),
        }
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub rps: f64,
    pub cpu_us_per_request: f64,
    pub idle_rss_kib: u64,
    pub rss_kib: u64,
    /// Requests the mirror received / requests the primary received, in %; `None` without a
    /// mirror, or for the blackhole (which never reads a request).
    pub mirrored_pct: Option<f64>,
    pub errors: u64,
    /// Fixed-rate requests never sent because the proxy could not keep up.
    pub missed: u64,
    pub latency: Latency,
}

/// Latency percentiles, ms; `None` for a closed-loop run, which the paced generator did not time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
}

impl Latency {
    /// The percentiles of a paced run.
    fn of(out: &paced::Outcome) -> Latency {
        Latency {
            p50_ms: Some(out.percentile_ms(0.5)),
            p99_ms: Some(out.percentile_ms(0.99)),
            p999_ms: Some(out.percentile_ms(0.999)),
        }
    }
}

/// `None` as the proxy: the paced generator straight to the primary (the "direct" baseline).
pub type Key = (Workload, MirrorMode, Option<Kind>);

pub fn workloads(mode: MirrorMode) -> Vec<Workload> {
    let closed = |connections, body| Workload::Closed(WrkLoadKey { body, connections });
    match mode {
        MirrorMode::None | MirrorMode::Fast => vec![
            closed(50, 0),
            closed(200, 0),
            closed(50, 1024),
            closed(50, 64 * 1024),
            Workload::Paced,
        ],
        MirrorMode::Slow | MirrorMode::Blackhole => vec![closed(50, 0), Workload::Paced],
    }
}

/// Runs the whole matrix; a proxy that fails to start is reported on stderr and skipped for
/// that round, so one broken peer does not void the others' figures.
pub fn run_matrix(
    settings: &Settings,
    tools: &Tools,
    backends: &Backends,
) -> Result<BTreeMap<Key, Vec<Sample>>, BenchError> {
    let mut results: BTreeMap<Key, Vec<Sample>> = BTreeMap::new();
    let ticks = procfs::clock_ticks() as f64;
    for repeat in 0..settings.repeats {
        eprintln!("== repeat {}/{}", repeat + 1, settings.repeats);
        let direct = paced(settings, backends.primary.addr);
        results
            .entry((Workload::Paced, MirrorMode::None, None))
            .or_default()
            .push(Sample {
                latency: Latency::of(&direct),
                errors: direct.errors + direct.non_2xx,
                ..Sample::default()
            });
        for &mode in &settings.modes {
            let mut kinds = settings.kinds.clone();
            let n = kinds.len().max(1);
            kinds.rotate_left(repeat % n);
            for kind in kinds {
                let dir = settings.workdir.join(format!(
                    "{}-{}-{repeat}",
                    kind.to_string().to_lowercase(),
                    mode_slug(mode)
                ));
                let mirror = backends.mirror(mode).map(|b| b.addr);
                let proxy = match proxies::start(kind, tools, backends.primary.addr, mirror, &dir) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("   {kind} (mirror {mode}): skipped: {e}");
                        continue;
                    }
                };
                let pids = proxy.pids();
                let idle_rss_kib = procfs::rss_kib(&pids);
                let warm = WrkLoad {
                    connections: 200,
                    body: 0,
                };
                // Warm-up: pools filled, caches and allocator arenas at their working size.
                let _ = wrk::run(proxy.addr, warm, settings.warmup, settings.load_core, &dir);
                for workload in workloads(mode) {
                    let cpu0 = procfs::cpu_ticks(&pids);
                    let primary0 = backends.primary.requests();
                    let mirror0 = backends.mirror(mode).map(Backend::requests);
                    let mut sample = Sample {
                        idle_rss_kib,
                        ..Sample::default()
                    };
                    let requests = match workload {
                        Workload::Closed(w) => {
                            let load = WrkLoad {
                                connections: w.connections,
                                body: w.body,
                            };
                            match wrk::run(
                                proxy.addr,
                                load,
                                settings.duration,
                                settings.load_core,
                                &dir,
                            ) {
                                Ok(r) => {
                                    sample.rps = r.rps;
                                    sample.errors = r.errors;
                                    r.requests
                                }
                                Err(e) => {
                                    eprintln!("   {kind} {workload} (mirror {mode}): {e}");
                                    continue;
                                }
                            }
                        }
                        Workload::Paced => {
                            let out = paced(settings, proxy.addr);
                            sample.latency = Latency::of(&out);
                            sample.errors = out.errors + out.non_2xx;
                            sample.missed = out.missed;
                            sample.rps =
                                (out.ok + out.non_2xx) as f64 / settings.duration.as_secs_f64();
                            out.ok + out.non_2xx + out.errors
                        }
                    };
                    let cpu = procfs::cpu_ticks(&pids).saturating_sub(cpu0) as f64 / ticks;
                    sample.cpu_us_per_request = cpu * 1e6 / requests.max(1) as f64;
                    sample.rss_kib = procfs::rss_kib(&pids);
                    let primary = backends.primary.requests().saturating_sub(primary0);
                    sample.mirrored_pct = match (mode, mirror0, backends.mirror(mode)) {
                        (MirrorMode::Blackhole, _, _) => None,
                        (_, Some(m0), Some(m)) => Some(
                            100.0 * m.requests().saturating_sub(m0) as f64 / primary.max(1) as f64,
                        ),
                        _ => None,
                    };
                    eprintln!(
                        "   {kind:6} mirror {mode:9} {workload:22} {:>9.0} req/s {:>6.1} µs/req p99 {} errors {} missed {}",
                        sample.rps,
                        sample.cpu_us_per_request,
                        sample.latency.p99_ms.map(|v| format!("{v:.2} ms")).unwrap_or_else(|| "-".into()),
                        sample.errors,
                        sample.missed
                    );
                    results
                        .entry((workload, mode, Some(kind)))
                        .or_default()
                        .push(sample);
                }
                proxy.stop();
            }
        }
    }
    Ok(results)
}

fn paced(settings: &Settings, target: SocketAddr) -> paced::Outcome {
    paced::run(&Plan {
        target,
        request: Arc::new(request_bytes("GET", "bench.test", "/", 0)),
        rate: settings.paced_rate,
        connections: settings.paced_connections,
        duration: settings.duration,
        stop: None,
    })
}

fn mode_slug(mode: MirrorMode) -> &'static str {
    match mode {
        MirrorMode::None => "plain",
        MirrorMode::Fast => "mirror",
        MirrorMode::Slow => "slow-mirror",
        MirrorMode::Blackhole => "blackhole-mirror",
    }
}
