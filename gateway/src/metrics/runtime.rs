//! What is running: `sluice_build_info`, the process collector's `process_*` metrics and the
//! memory limit the process runs under.

use std::path::PathBuf;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};

/// The crate version, and the git revision `build.rs` stamped (`unknown` without `.git`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub const REVISION: &str = env!("SLUICE_REVISION");

/// Registers `sluice_build_info{version,revision} 1`, `sluice_memory_limit_bytes` and, on
/// Linux, the process collector (`process_resident_memory_bytes`, `process_open_fds`,
/// `process_cpu_seconds_total`, ...).
pub fn register(registry: &Registry) -> prometheus::Result<()> {
    let info = IntGaugeVec::new(
        Opts::new(
            "sluice_build_info",
            "Always 1; the version and git revision of the running binary.",
        ),
        &["version", "revision"],
    )?;
    info.with_label_values(&[VERSION, REVISION]).set(1);
    registry.register(Box::new(info))?;
    registry.register(Box::new(MemoryLimit::new(CGROUP_LIMIT_FILES)?))?;
    register_process(registry)
}

#[cfg(target_os = "linux")]
fn register_process(registry: &Registry) -> prometheus::Result<()> {
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))
}

/// The collector reads `/proc`; elsewhere there are no `process_*` metrics.
#[cfg(not(target_os = "linux"))]
fn register_process(_registry: &Registry) -> prometheus::Result<()> {
    Ok(())
}

/// Where a container's memory limit is found: cgroup v2, then v1.
const CGROUP_LIMIT_FILES: &[&str] = &[
    "/sys/fs/cgroup/memory.max",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes",
];

/// `sluice_memory_limit_bytes`: the cgroup memory limit, read at scrape time (a pod can be
/// resized in place), so an alert can compare `process_resident_memory_bytes` with it without a
/// second exporter. Absent when there is no limit.
struct MemoryLimit {
    files: Vec<PathBuf>,
    gauge: IntGauge,
}

impl MemoryLimit {
    fn new(files: &[&str]) -> prometheus::Result<MemoryLimit> {
        Ok(MemoryLimit {
            files: files.iter().map(PathBuf::from).collect(),
            gauge: IntGauge::new(
                "sluice_memory_limit_bytes",
                "The memory limit of the process's cgroup (absent when unlimited).",
            )?,
        })
    }

    fn read(&self) -> Option<i64> {
        self.files
            .iter()
            .find_map(|f| std::fs::read_to_string(f).ok())
            .and_then(|text| parse_limit(&text))
    }
}

/// `max` (v2) or a number near `i64::MAX` rounded to pages (v1's "unlimited") mean no limit.
fn parse_limit(text: &str) -> Option<i64> {
    const UNLIMITED: i64 = 1 << 62;
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|&n| n > 0 && n < UNLIMITED)
}

impl Collector for MemoryLimit {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        match self.read() {
            Some(limit) => {
                self.gauge.set(limit);
                self.gauge.collect()
            }
            None => Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_limit_is_exported_and_no_limit_is_left_out() {
        assert_eq!(parse_limit("268435456\n"), Some(268_435_456));
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("9223372036854771712\n"), None);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.max");
        std::fs::write(&file, "1048576\n").unwrap();
        let limit = MemoryLimit::new(&[file.to_str().unwrap()]).unwrap();
        let families = limit.collect();
        assert_eq!(families.len(), 1);
        assert_eq!(
            families[0].get_metric()[0].get_gauge().get_value(),
            1_048_576.0
        );
        std::fs::write(&file, "max\n").unwrap();
        assert!(limit.collect().is_empty());
    }

    #[test]
    fn build_info_names_this_version() {
        let registry = Registry::new();
        register(&registry).unwrap();
        let info = registry
            .gather()
            .into_iter()
            .find(|f| f.name() == "sluice_build_info")
            .unwrap();
        let labels: Vec<(&str, &str)> = info.get_metric()[0]
            .get_label()
            .iter()
            .map(|l| (l.name(), l.value()))
            .collect();
        assert_eq!(labels, [("revision", REVISION), ("version", VERSION)]);
        assert!(!REVISION.is_empty());
    }
}
