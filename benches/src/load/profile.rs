//! Where Sluice's CPU goes under load: `perf record` (software clock, flat) on the proxy while wrk
//! drives GET at 50 connections, with and without a mirror; the top symbols go to a text file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::proxies::{self, Kind, Tools};
use super::run::{Backends, MirrorMode};
use super::wrk::{self, WrkLoad};
use super::BenchError;

/// Profiles Sluice in `mode`; returns the report's path.
pub fn sluice(
    tools: &Tools,
    backends: &Backends,
    mode: MirrorMode,
    duration: Duration,
    load_core: u32,
    dir: &Path,
) -> Result<PathBuf, BenchError> {
    let mirror = match mode {
        MirrorMode::None => None,
        _ => Some(backends.fast_mirror.addr),
    };
    let proxy = proxies::start(Kind::Sluice, tools, backends.primary.addr, mirror, dir)?;
    let load = WrkLoad {
        connections: 50,
        body: 0,
    };
    let _ = wrk::run(proxy.addr, load, Duration::from_secs(1), load_core, dir);
    let data = dir.join("perf.data");
    // Hardware counters are often missing in VMs; the software clock always works.
    let mut perf = Command::new("taskset")
        .args([
            "-c",
            &load_core.to_string(),
            "perf",
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "2999",
            "-o",
        ])
        .arg(&data)
        .args(["-p", &proxy.pid().to_string(), "--", "sleep"])
        .arg(format!("{}", duration.as_secs_f64()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(BenchError::io("starting perf record"))?;
    let result = wrk::run(proxy.addr, load, duration, load_core, dir);
    let _ = perf.wait();
    proxy.stop();
    result?;
    // Share per binary (kernel, libc, sluice) first, then the top symbols.
    let mut text = String::new();
    for sort in ["dso", "dso,symbol"] {
        let report = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                sort,
                "--percent-limit",
                "0.7",
                "-i",
            ])
            .arg(&data)
            .output()
            .map_err(BenchError::io("running perf report"))?;
        text.extend(
            String::from_utf8_lossy(&report.stdout)
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| format!("{}\n", l.trim_end_matches([' ', '-']))),
        );
        text.push('\n');
    }
    let out = dir.join("profile.txt");
    std::fs::write(&out, text).map_err(BenchError::io("writing the profile"))?;
    Ok(out)
}
