//! CPU time and resident memory of a process tree, from /proc (utime + stime, VmRSS).

use std::process::Command;

/// Clock ticks per second for /proc's utime and stime (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// `pid` and its direct children (nginx's workers under its master).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if stat_fields(child).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
            == Some(pid)
        {
            out.push(child);
        }
    }
    out
}

/// The fields of /proc/PID/stat after the command name (which may contain spaces): index 0 is
/// field 3 (`state`), so field N is at N - 3.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// utime + stime of every process in the tree, in clock ticks (all threads included).
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&pid| {
            let f = stat_fields(pid)?;
            let utime: u64 = f.get(11)?.parse().ok()?;
            let stime: u64 = f.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .sum()
}

/// Resident set size of the tree in KiB.
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|&pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut spin = 0u64;
        while cpu_ticks(&[me]) == 0 && std::time::Instant::now() < deadline {
            spin = (0..100_000u64).fold(spin, |a, b| a.wrapping_add(b * b));
        }
        assert!(
            cpu_ticks(&[me]) > 0,
            "utime + stime parsed from /proc/self/stat"
        );
        assert!(rss_kib(&[me]) > 0);
        assert!(tree(me).contains(&me));
        assert!(clock_ticks() > 0);
        std::hint::black_box(spin);
    }
}
