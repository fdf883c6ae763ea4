//! The gRPC unary and TLS passthrough workloads (issue 13): Sluice and Envoy in front of the
//! harness's gRPC and TLS backends, each measured as CPU µs per call (or per connection) of the
//! proxy process alone; the generator straight to the backend is the floor.

pub mod envoy;
pub mod report;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::grpc::{self, GrpcBackend};
use super::procfs;
use super::proxies::{self, Kind, Running, Tools};
use super::tls::{self, TlsBackend};
use super::BenchError;
use crate::fixtures::protocols as fixtures;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// Unary calls, many in flight, multiplexed over a few HTTP/2 connections.
    Grpc,
    /// A new TLS connection per exchange, passed through on its SNI.
    Tls,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "gRPC unary",
            Protocol::Tls => "TLS passthrough",
        })
    }
}

/// What to run and for how long.
#[derive(Debug, Clone)]
pub struct Settings {
    pub duration: Duration,
    pub warmup: Duration,
    pub repeats: usize,
    pub protocols: Vec<Protocol>,
    /// Sluice and Envoy only: nginx is not part of issue 13's comparison.
    pub kinds: Vec<Kind>,
    pub grpc_streams: usize,
    pub grpc_connections: usize,
    pub tls_concurrency: usize,
    pub workdir: PathBuf,
}

/// The backends, shared by the whole run.
#[derive(Debug, Clone)]
pub struct Backends {
    pub grpc: GrpcBackend,
    pub tls: TlsBackend,
}

/// One measurement: calls (gRPC) or connections (TLS) per second, and what the proxy spent on each.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub per_second: f64,
    /// `None` for the direct floor, where no proxy runs.
    pub cpu_us_each: Option<f64>,
    /// Non-OK gRPC statuses and failed calls or connections.
    pub errors: u64,
}

/// `None` as the proxy: the generator straight to the backend.
pub type Key = (Protocol, Option<Kind>);

#[derive(Debug, Default)]
pub struct Results {
    pub samples: BTreeMap<Key, Vec<Sample>>,
    /// Why a proxy has no figures for a workload (its configuration refused, or it did not start).
    pub failed: BTreeMap<(Protocol, Kind), String>,
}

/// Runs every protocol × proxy, `repeats` times, order rotated per repeat. A proxy that fails
/// once for a workload is not retried for it: the reason is reported instead.
pub fn run(settings: &Settings, tools: &Tools, backends: &Backends) -> Results {
    let mut results = Results::default();
    if settings.protocols.is_empty() {
        return results;
    }
    let ticks = procfs::clock_ticks() as f64;
    for repeat in 0..settings.repeats {
        eprintln!("== gRPC / TLS repeat {}/{}", repeat + 1, settings.repeats);
        for &protocol in &settings.protocols {
            match generate(
                protocol,
                settings,
                backends,
                direct_target(protocol, backends),
            ) {
                Ok((ok, errors)) => {
                    let sample = Sample {
                        per_second: ok as f64 / settings.duration.as_secs_f64(),
                        cpu_us_each: None,
                        errors,
                    };
                    log(protocol, "direct", &sample);
                    results
                        .samples
                        .entry((protocol, None))
                        .or_default()
                        .push(sample);
                }
                Err(e) => eprintln!("   {protocol} direct: {e}"),
            }
            let mut kinds = settings.kinds.clone();
            let n = kinds.len().max(1);
            kinds.rotate_left(repeat % n);
            for kind in kinds {
                if results.failed.contains_key(&(protocol, kind)) {
                    continue;
                }
                match measure(protocol, kind, settings, tools, backends, repeat, ticks) {
                    Ok(sample) => {
                        log(protocol, &kind.to_string(), &sample);
                        results
                            .samples
                            .entry((protocol, Some(kind)))
                            .or_default()
                            .push(sample);
                    }
                    Err(e) => {
                        eprintln!("   {protocol} {kind}: {e}");
                        results.failed.insert((protocol, kind), e.to_string());
                    }
                }
            }
        }
    }
    results
}

fn log(protocol: Protocol, through: &str, s: &Sample) {
    eprintln!(
        "   {protocol:16} {through:7} {:>9.0} /s {:>8} µs each, errors {}",
        s.per_second,
        s.cpu_us_each
            .map(|c| format!("{c:.1}"))
            .unwrap_or_else(|| "-".into()),
        s.errors
    );
}

fn direct_target(protocol: Protocol, backends: &Backends) -> SocketAddr {
    match protocol {
        Protocol::Grpc => backends.grpc.addr,
        Protocol::Tls => backends.tls.addr,
    }
}

/// Starts `kind` fresh for `protocol`, warms it up, and measures it once.
fn measure(
    protocol: Protocol,
    kind: Kind,
    settings: &Settings,
    tools: &Tools,
    backends: &Backends,
    repeat: usize,
    ticks: f64,
) -> Result<Sample, BenchError> {
    let dir = settings.workdir.join(format!(
        "{}-{}-{repeat}",
        kind.to_string().to_lowercase(),
        match protocol {
            Protocol::Grpc => "grpc",
            Protocol::Tls => "tls",
        }
    ));
    let proxy = start(protocol, kind, tools, backends, &dir)?;
    let pids = proxy.pids();
    let warmup = Settings {
        duration: settings.warmup,
        ..settings.clone()
    };
    // Warm-up: connections and pools open, allocator arenas at their working size.
    let _ = generate(protocol, &warmup, backends, proxy.addr);
    let cpu0 = procfs::cpu_ticks(&pids);
    let measured = generate(protocol, settings, backends, proxy.addr);
    let cpu = procfs::cpu_ticks(&pids).saturating_sub(cpu0) as f64 / ticks;
    proxy.stop();
    let (ok, errors) = measured?;
    Ok(Sample {
        per_second: ok as f64 / settings.duration.as_secs_f64(),
        cpu_us_each: Some(cpu * 1e6 / (ok + errors).max(1) as f64),
        errors,
    })
}

/// Runs `protocol`'s generator against `target` for `settings.duration`: (ok, not ok).
fn generate(
    protocol: Protocol,
    settings: &Settings,
    backends: &Backends,
    target: SocketAddr,
) -> Result<(u64, u64), BenchError> {
    match protocol {
        Protocol::Grpc => {
            let out = grpc::run(grpc::Load {
                target,
                connections: settings.grpc_connections,
                streams: settings.grpc_streams,
                duration: settings.duration,
            })
            .map_err(BenchError::io("gRPC generator"))?;
            Ok((out.ok, out.non_ok + out.errors))
        }
        Protocol::Tls => {
            let out = tls::run(&tls::Load {
                target,
                concurrency: settings.tls_concurrency,
                duration: settings.duration,
                trusted: backends.tls.certificate.clone(),
            })
            .map_err(|e| BenchError::Io {
                what: "TLS generator".into(),
                source: std::io::Error::other(e),
            })?;
            Ok((out.ok, out.errors))
        }
    }
}

/// Writes `kind`'s configuration for `protocol` into `dir` and starts it; ready once one call
/// (or one exchange) succeeds through it.
fn start(
    protocol: Protocol,
    kind: Kind,
    tools: &Tools,
    backends: &Backends,
    dir: &Path,
) -> Result<Running, BenchError> {
    std::fs::create_dir_all(dir).map_err(BenchError::io(format!("creating {}", dir.display())))?;
    let listen = proxies::free_port()?;
    let backend = direct_target(protocol, backends);
    let trusted = backends.tls.certificate.clone();
    let ready: Box<dyn Fn(SocketAddr) -> bool> = match protocol {
        Protocol::Grpc => Box::new(grpc::probe),
        Protocol::Tls => Box::new(move |addr| tls::probe(addr, &trusted)),
    };
    match kind {
        Kind::Sluice => {
            let objects = match protocol {
                Protocol::Grpc => fixtures::grpc_objects(listen, backend),
                Protocol::Tls => fixtures::tls_objects(listen, backend),
            };
            let config = dir.join("sluice.yaml");
            proxies::write(&config, &crate::fixtures::yaml(&objects)?)?;
            start_sluice(tools, &config, listen, dir, &*ready)
        }
        Kind::Envoy => {
            let conf = dir.join("envoy.yaml");
            let text = match protocol {
                Protocol::Grpc => envoy::grpc_conf(listen, backend),
                Protocol::Tls => envoy::tls_conf(listen, backend),
            };
            proxies::write(&conf, &text)?;
            let cmd = proxies::envoy_command(tools, &conf, listen)?;
            proxies::launch(Kind::Envoy, cmd, listen, dir, &*ready)
        }
        Kind::Nginx => Err(BenchError::Rejected {
            proxy: kind.to_string(),
            error: "not part of the gRPC / TLS comparison".into(),
        }),
    }
}

/// `sluice validate` first, so a refused configuration is reported as such at once; then Sluice
/// itself. A Sluice that never gets ready after warnings (a kind it loads but does not serve) is
/// reported as rejecting the configuration, with those warnings.
pub(super) fn start_sluice(
    tools: &Tools,
    config: &Path,
    listen: SocketAddr,
    dir: &Path,
    ready: &dyn Fn(SocketAddr) -> bool,
) -> Result<Running, BenchError> {
    let out = Command::new(&tools.sluice)
        .arg("validate")
        .arg("--config")
        .arg(config)
        .output()
        .map_err(BenchError::io("running sluice validate"))?;
    let rejected = |error: String| BenchError::Rejected {
        proxy: Kind::Sluice.to_string(),
        error,
    };
    if !out.status.success() {
        return Err(rejected(first_lines(&out.stdout, &out.stderr)));
    }
    let warnings = warnings(&String::from_utf8_lossy(&out.stderr));
    if let Some(unserved) = warnings.iter().find(|w| serves_not(w)) {
        return Err(rejected(unserved.clone()));
    }
    let cmd = proxies::sluice_command(tools, config)?;
    match proxies::launch(Kind::Sluice, cmd, listen, dir, ready) {
        Err(BenchError::NotReady { .. } | BenchError::Exited { .. }) if !warnings.is_empty() => {
            Err(rejected(warnings.join("; ")))
        }
        other => other,
    }
}

/// The loader's warning for a valid object of a kind this Sluice does not serve
/// (`...: valid, but Sluice does not serve GRPCRoute; ignored`): starting it would be pointless.
/// Other warnings (what translation reports) may be harmless, so Sluice is started anyway.
fn serves_not(warning: &str) -> bool {
    warning.contains("Sluice does not serve")
}

/// `validate`'s `warning: ...` lines (from stderr), without the prefix.
fn warnings(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(str::to_string)
        .collect()
}

/// The first lines of what `validate` printed on failure (its errors are on stdout).
fn first_lines(stdout: &[u8], stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stdout);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(stderr)
    } else {
        text
    };
    text.lines().take(3).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_warning_lines_are_kept_without_their_prefix() {
        let stderr =
            "warning: a.yaml:3: GRPCRoute bench/grpc: not served; ignored\nsomething else\n";
        assert_eq!(
            warnings(stderr),
            ["a.yaml:3: GRPCRoute bench/grpc: not served; ignored"]
        );
    }

    #[test]
    fn only_an_unserved_kind_is_a_rejection_before_start() {
        assert!(serves_not(
            "a.yaml:69: GRPCRoute bench/grpc: valid, but Sluice does not serve GRPCRoute; ignored"
        ));
        assert!(!serves_not(
            "Gateway bench/bench: listener tls: the unknown option is ignored"
        ));
    }

    #[test]
    fn validate_errors_come_from_stdout_else_stderr() {
        assert_eq!(first_lines(b"e1\ne2\ne3\ne4\n", b"x"), "e1; e2; e3");
        assert_eq!(first_lines(b"", b"only stderr\n"), "only stderr");
    }
}
